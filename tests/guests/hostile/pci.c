/* PCI config access (mechanism #1 on 0xCF8/0xCFC, and ECAM) and BAR assignment. */
#include "guest.h"

static u32 cf8(u32 slot, u32 off)
{
    return 0x80000000u | (slot << 11) | (off & 0xfcu);
}

u32 cfg_read(u32 slot, u32 off, u32 len)
{
    outl(0xcf8, cf8(slot, off));
    u16 port = (u16)(0xcfc + (off & 3));
    return len == 1 ? inb(port) : len == 2 ? inw(port) : inl(port);
}

void cfg_write(u32 slot, u32 off, u32 len, u32 val)
{
    outl(0xcf8, cf8(slot, off));
    u16 port = (u16)(0xcfc + (off & 3));
    if (len == 1)
        outb(port, (u8)val);
    else if (len == 2)
        outw(port, (u16)val);
    else
        outl(port, val);
}

u32 ecam_addr(u32 bus, u32 slot, u32 fn, u32 off)
{
    return PCI_ECAM + (bus << 20) + (slot << 15) + (fn << 12) + off;
}

/*
 * nimbus places 64-bit BARs above RAM, out of reach of a guest without
 * paging; this guest is its own firmware and moves BAR 0 into the 32-bit
 * window, which the PCI layer must decode like any other place in it.
 */
void pci_assign(u32 slot)
{
    cfg_write(slot, 0x04, 2, 0); /* decoding off while the BAR moves */
    cfg_write(slot, 0x10, 4, PCI_MMIO32 + slot * BAR_SLOT_SIZE);
    cfg_write(slot, 0x14, 4, 0);
    cfg_write(slot, 0x04, 2, 0x0006); /* memory decoding + bus master */
}
