/*
 * Storms: random accesses of random widths to BARs, config space (0xCF8/0xCFC
 * and ECAM), legacy ports and the PCI hole.  What a storm writes is defused
 * only where it would break this guest or the canary rule (see attack.c):
 * MSI-X delivery modes, the i8042 reset line, ACPI SLP_EN, queue ring fields.
 * Config-space storms end with every BAR back at its home (pci_assign).
 */
#include "guest.h"

/* Keep a write to BAR offset `off` from giving an MSI-X entry a non-fixed delivery mode. */
static u32 msix_safe(u32 off, u32 len, u32 val)
{
    for (u32 i = 0; i < len; i++) {
        u32 pos = (off + i) & 0xffffu;
        if (pos >= 0x4000 && pos < 0x6000 && (pos & 15u) == 9)
            val &= ~(7u << (8 * i));
    }
    return val;
}

/*
 * Whether a random write would touch a queue's size, enable or ring
 * addresses in the common configuration.  Storms leave those alone: a
 * queue enabled with random rings could legitimately make the device write
 * anywhere in RAM, canaries included.  ring_attack and queue_reconf attack
 * those fields with values that keep the rule at the top of attack.c.
 */
static int ring_field(u32 off, u32 len)
{
    return off < CC_SIZE && off + len > CC_QSIZE && off < CC_QDEVICE + 8 &&
           !(off >= CC_QMSIX && off + len <= CC_QMSIX + 2) &&
           !(off >= CC_QNOTIFY_OFF && off + len <= CC_QNOTIFY_OFF + 2);
}

void bar_write(u32 addr, u32 len, u32 val)
{
    /* Our BARs sit at PCI_MMIO32 + slot * 64 KiB: the low 16 bits are the BAR offset. */
    if (addr >= PCI_MMIO32 && addr < PCI_MMIO32 + 32 * BAR_SLOT_SIZE) {
        if (ring_field(addr & 0xffffu, len))
            return;
        val = msix_safe(addr & 0xffffu, len, val);
    }
    if (len == 1)
        w8(addr, (u8)val);
    else if (len == 2)
        w16(addr, (u16)val);
    else
        w32(addr, val);
}

void bar_read(u32 addr, u32 len)
{
    if (len == 1)
        (void)r8(addr);
    else if (len == 2)
        (void)r16(addr);
    else
        (void)r32(addr);
}

u32 rand_width(void)
{
    return 1u << rnd(3);
}

void bar_storm(struct vdev *d, u32 base_range)
{
    u32 n = 16 + rnd(112);
    for (u32 i = 0; i < n; i++) {
        u32 len = rand_width(), addr = d->bar + rnd(base_range);
        if (rnd(3))
            addr &= ~(len - 1);
        if (rnd(3))
            bar_write(addr, len, (u32)rnd64());
        else
            bar_read(addr, len);
    }
}

/* The device-specific configuration (blk writeback, net MAC, ...), in bounds and past them. */
void devcfg_storm(struct vdev *d)
{
    u32 n = 4 + rnd(60), at = d->devcfg ? d->devcfg : d->bar + 0x2000;
    for (u32 i = 0; i < n; i++) {
        u32 len = rand_width(), a = at + (rnd(4) ? rnd(0x40) : rnd(0x1000 - 4));
        if (rnd(2))
            bar_write(a, len, (u32)rnd64());
        else
            bar_read(a, len);
    }
}

void cfg_storm(void)
{
    u32 n = 16 + rnd(48);
    for (u32 i = 0; i < n; i++) {
        u32 len = rand_width(), slot = rnd(4) ? devs[rnd(ndevs)].slot : rnd(32);
        u32 off = rnd(4) ? rnd(256) : rnd(4096);
        u32 val = (u32)rnd64();
        switch (rnd(5)) {
        case 0: /* a raw latch, any bus/device/function/register */
            outl(0xcf8, (u32)rnd64());
            if (rnd(2))
                outl(0xcfc, val);
            else
                (void)inl((u16)(0xcfc + rnd(4)));
            break;
        case 1: { /* ECAM, bus 0 (and beyond the 1 MiB it decodes) */
            u32 a = rnd(8) ? ecam_addr(0, slot, rnd(8) ? 0 : rnd(8), off & ~(len - 1))
                           : PCI_ECAM + rnd(0x200000);
            if (rnd(2))
                bar_write(a, len, val);
            else
                bar_read(a, len);
            break;
        }
        case 2: (void)cfg_read(slot, off & 0xff, len); break;
        default: cfg_write(slot, off & 0xff & ~(len - 1), len, val); break;
        }
    }
    for (u32 i = 0; i < ndevs; i++)
        pci_assign(devs[i].slot);
}

/* Port writes that would reset or power off this guest are defused, not skipped. */
static u32 port_safe(u16 port, u32 len, u32 val)
{
    if (port <= 0x64 && port + len > 0x64)
        for (u32 i = 0; i < len; i++) {
            u8 b = (u8)(val >> (8 * i));
            if (b == 0xd1 || (b >= 0xf0 && !(b & 1)))
                val = (val & ~(0xffu << (8 * i))) | (0xd0u << (8 * i));
        }
    if (port <= 0x600 && port + len > 0x600)
        for (u32 i = 0; i < len; i++)
            val &= ~(0x20u << (8 * i)); /* SLP_EN */
    return val;
}

void port_storm(void)
{
    static const u16 ports[] = {0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0x3fe, 0x3ff,
                                0x60, 0x64, 0x70, 0x71, 0xcf8, 0xcf9, 0xcfa, 0xcfb,
                                0xcfc, 0xcfd, 0xcfe, 0xcff, 0x600, 0x601, 0x80};
    u32 n = 16 + rnd(112);
    for (u32 i = 0; i < n; i++) {
        u16 port = rnd(4) ? ports[rnd(sizeof(ports) / sizeof(ports[0]))] : (u16)rnd64();
        u32 len = rand_width();
        if (rnd(2)) {
            u32 v = port_safe(port, len, (u32)rnd64());
            if (len == 1)
                outb(port, (u8)v);
            else if (len == 2)
                outw(port, (u16)v);
            else
                outl(port, v);
        } else if (len == 1) {
            (void)inb(port);
        } else if (len == 2) {
            (void)inw(port);
        } else {
            (void)inl(port);
        }
    }
    /* 0xCF8/0xCFC are among the ports: config space may have changed. */
    for (u32 i = 0; i < ndevs; i++)
        pci_assign(devs[i].slot);
}

void hole_storm(void)
{
    u32 n = 16 + rnd(48);
    for (u32 i = 0; i < n; i++) {
        u32 a;
        /* The 32-bit window (BARs and empty space) and the hole above ECAM, below the IOAPIC. */
        if (rnd(2))
            a = PCI_MMIO32 + rnd(rnd(2) ? 32 * BAR_SLOT_SIZE : PCI_MMIO32_END - PCI_MMIO32);
        else
            a = 0xe0100000u + rnd(0xfec00000u - 0xe0100000u - 8);
        u32 len = rand_width();
        if (rnd(2))
            bar_write(a, len, (u32)rnd64());
        else
            bar_read(a, len);
    }
}

void notify_storm(struct vdev *d)
{
    u32 n = 16 + rnd(240);
    for (u32 i = 0; i < n; i++) {
        if (rnd(2)) {
            virtio_kick(d, d->nq_used ? rnd(d->nq_used) : 0);
        } else {
            u32 len = rand_width();
            u32 a = d->notify + (rnd(2) ? 4 * rnd(8) : rnd(0x1000 - 4));
            if (rnd(4))
                bar_write(a, len, rnd(2) ? rnd(8) : (u32)rnd64());
            else
                bar_read(a, len);
        }
    }
}
