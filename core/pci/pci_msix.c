/*
 * MSI-X (PCI Local Bus 3.0, section 6.8.2): the capability, the vector
 * table and the pending bit array, emulated here so function owners only
 * say "vector n happened".
 *
 * Each vector owns one msi ops slot for its whole life.  A slot is
 * (re)programmed when its vector becomes able to fire (unmasked, MSI-X
 * enabled, function not masked) with a message different from the one
 * programmed, and, for guests that rewrite an unmasked entry, at the next
 * delivery; never on each table dword write, so a KVM routing update is not
 * paid while the guest assembles a message.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pci_internal.h"
#include "../boot/bytes.h"
#include "../log.h"

static uint16_t msix_ctrl(const struct pci_func *f)
{
    return get_le16(f->cfg + f->msix.cap_off + 2);
}

static bool func_can_fire(const struct pci_func *f)
{
    uint16_t c = msix_ctrl(f);
    return f->msix.nvec && (c & PCI_MSIX_CTRL_ENABLE) && !(c & PCI_MSIX_CTRL_MASKALL);
}

static bool vec_masked(const struct pci_func *f, uint32_t v)
{
    return f->msix.table[v].ctrl & PCI_MSIX_ENTRY_MASKED;
}

static bool pending(const struct pci_func *f, uint32_t v)
{
    return (f->msix.pba[v / 64] >> (v % 64)) & 1u;
}

static void set_pending(struct pci_func *f, uint32_t v, bool on)
{
    if (on)
        f->msix.pba[v / 64] |= 1ull << (v % 64);
    else
        f->msix.pba[v / 64] &= ~(1ull << (v % 64));
}

/* Program v's slot with its current message unless it already carries it. */
static int route_vector(struct pci_func *f, uint32_t v)
{
    struct pci_host *h = f->h;
    const struct pci_msix_entry *e = &f->msix.table[v];
    struct pci_msix_route *r = &f->msix.routed[v];
    uint64_t addr = (uint64_t)e->addr_hi << 32 | e->addr_lo;

    if (r->valid && r->addr == addr && r->data == e->data)
        return 0;
    int rc = h->msi.route(h->msi_opaque, f->msix.handle[v], addr, e->data);
    if (rc < 0) {
        r->valid = false;
        log_debug("PCI 00:%02x.0 MSI-X vector %u: cannot route 0x%llx/0x%x: %d", f->slot, v,
                  (unsigned long long)addr, e->data, rc);
        return rc;
    }
    *r = (struct pci_msix_route){.addr = addr, .data = e->data, .valid = true};
    return 0;
}

static int deliver(struct pci_func *f, uint32_t v)
{
    struct pci_host *h = f->h;
    if (!h->has_msi)
        return 0; /* no interrupt controller behind us: the message is lost */
    int rc = route_vector(f, v);
    if (rc < 0)
        return rc;
    return h->msi.fire(h->msi_opaque, f->msix.handle[v]);
}

/* v just became able to fire: program it now and deliver what was pending. */
static void vector_ready(struct pci_func *f, uint32_t v)
{
    if (pending(f, v)) {
        set_pending(f, v, false);
        deliver(f, v);
    } else if (f->h->has_msi) {
        route_vector(f, v);
    }
}

void pci_msix_control_written(struct pci_func *f, uint16_t old)
{
    bool could = f->msix.nvec && (old & PCI_MSIX_CTRL_ENABLE) && !(old & PCI_MSIX_CTRL_MASKALL);
    if (could || !func_can_fire(f))
        return;
    for (uint32_t v = 0; v < f->msix.nvec; v++)
        if (!vec_masked(f, v))
            vector_ready(f, v);
}

/* ---- table and PBA ---------------------------------------------------------- */

static void entry_bytes(const struct pci_msix_entry *e, uint8_t out[16])
{
    put_le32(out, e->addr_lo);
    put_le32(out + 4, e->addr_hi);
    put_le32(out + 8, e->data);
    put_le32(out + 12, e->ctrl);
}

static void table_read(struct pci_func *f, uint64_t off, uint8_t *dst, uint32_t len)
{
    for (uint32_t i = 0; i < len;) {
        uint64_t v = (off + i) / PCI_MSIX_ENTRY_SIZE;
        uint8_t raw[16];
        entry_bytes(&f->msix.table[v], raw);
        for (; i < len && (off + i) / PCI_MSIX_ENTRY_SIZE == v; i++)
            dst[i] = raw[(off + i) % PCI_MSIX_ENTRY_SIZE];
    }
}

/* Any width the bus delivers, even one spanning two entries, is applied byte by byte. */
static void table_write(struct pci_func *f, uint64_t off, const uint8_t *src, uint32_t len)
{
    for (uint32_t i = 0; i < len;) {
        uint32_t v = (uint32_t)((off + i) / PCI_MSIX_ENTRY_SIZE);
        struct pci_msix_entry *e = &f->msix.table[v];
        bool was_masked = e->ctrl & PCI_MSIX_ENTRY_MASKED;
        uint8_t raw[16];
        entry_bytes(e, raw);
        for (; i < len && (off + i) / PCI_MSIX_ENTRY_SIZE == v; i++)
            raw[(off + i) % PCI_MSIX_ENTRY_SIZE] = src[i];
        e->addr_lo = get_le32(raw) & ~3u; /* dword-aligned address: bits 1:0 are 0 */
        e->addr_hi = get_le32(raw + 4);
        e->data = get_le32(raw + 8);
        e->ctrl = get_le32(raw + 12) & PCI_MSIX_ENTRY_MASKED; /* the rest is reserved */
        if (was_masked && !(e->ctrl & PCI_MSIX_ENTRY_MASKED) && func_can_fire(f))
            vector_ready(f, v);
    }
}

static void pba_read(const struct pci_func *f, uint64_t off, uint8_t *dst, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++) {
        uint64_t b = off + i;
        dst[i] = (uint8_t)(f->msix.pba[b / 8] >> (8 * (b % 8)));
    }
}

static bool within(uint64_t off, uint32_t len, uint64_t start, uint64_t size)
{
    return off >= start && off - start <= size && len <= size - (off - start);
}

static bool touches(uint64_t off, uint32_t len, uint64_t start, uint64_t size)
{
    return off < start + size && start < off + len;
}

/*
 * Answer a BAR access that touches the table or PBA; false (untouched) for
 * anything else, which goes to the owner.  The layout is only read under
 * the lock: an access looked up before decoding went off may still arrive.
 */
bool pci_msix_bar_access(struct pci_func *f, uint32_t bar, uint64_t off, void *data,
                         uint32_t len, int is_write)
{
    const struct pci_msix *m = &f->msix;
    pthread_mutex_lock(&f->lock);
    uint64_t tsize = (uint64_t)m->nvec * PCI_MSIX_ENTRY_SIZE;
    if (!m->nvec || bar != m->bar ||
        (!touches(off, len, m->table_off, tsize) && !touches(off, len, m->pba_off, m->pba_size))) {
        pthread_mutex_unlock(&f->lock);
        return false;
    }
    if (within(off, len, m->table_off, tsize)) {
        if (is_write)
            table_write(f, off - m->table_off, data, len);
        else
            table_read(f, off - m->table_off, data, len);
    } else if (within(off, len, m->pba_off, m->pba_size)) {
        /* The PBA is read-only. */
        if (!is_write)
            pba_read(f, off - m->pba_off, data, len);
    } else if (!is_write) {
        memset(data, 0, len); /* straddles the table or PBA edge */
    }
    pthread_mutex_unlock(&f->lock);
    return true;
}

/* ---- API ------------------------------------------------------------------ */

static void release_handles(struct pci_host *h, const uint32_t *handle, uint32_t n)
{
    if (!h->has_msi || !handle)
        return;
    for (uint32_t v = 0; v < n; v++)
        h->msi.release(h->msi_opaque, handle[v]);
}

static void free_arrays(struct pci_msix *m)
{
    free(m->table);
    free(m->pba);
    free(m->handle);
    free(m->routed);
    m->table = NULL;
    m->pba = NULL;
    m->handle = NULL;
    m->routed = NULL;
}

int pci_func_add_msix(struct pci_func *f, uint32_t nvec, uint32_t bar, uint64_t table_off,
                      uint64_t pba_off)
{
    if (!f || nvec == 0 || nvec > PCI_MSIX_MAX_VECTORS || bar >= PCI_NUM_BARS ||
        (table_off | pba_off) & 7u || table_off > UINT32_MAX || pba_off > UINT32_MAX)
        return -EINVAL;
    uint64_t tsize = (uint64_t)nvec * PCI_MSIX_ENTRY_SIZE;
    uint64_t psize = ((uint64_t)nvec + 63) / 64 * 8;
    if (touches(table_off, (uint32_t)tsize, pba_off, psize))
        return -EINVAL;

    struct pci_host *h = f->h;
    struct pci_msix m = {.nvec = nvec, .bar = bar, .table_off = table_off, .pba_off = pba_off,
                         .pba_size = psize};
    m.table = calloc(nvec, sizeof(*m.table));
    m.pba = calloc(psize / 8, sizeof(*m.pba));
    m.routed = calloc(nvec, sizeof(*m.routed));
    m.handle = calloc(nvec, sizeof(*m.handle));
    if (!m.table || !m.pba || !m.routed || !m.handle) {
        free_arrays(&m);
        return -ENOMEM;
    }
    for (uint32_t v = 0; v < nvec; v++)
        m.table[v].ctrl = PCI_MSIX_ENTRY_MASKED;

    uint8_t cap[PCI_MSIX_CAP_LEN] = {PCI_CAP_ID_MSIX};
    put_le16(cap + 2, (uint16_t)(nvec - 1));
    put_le32(cap + 4, (uint32_t)table_off | bar);
    put_le32(cap + 8, (uint32_t)pba_off | bar);

    /* remap_lock keeps the BAR from being decoded while the table is set up. */
    pthread_mutex_lock(&h->remap_lock);
    pthread_mutex_lock(&f->lock);
    int r = 0;
    const struct pci_bar *b = &f->bars[bar];
    if (f->msix.nvec || (get_le16(f->cfg + PCI_COMMAND) & PCI_CMD_MEM))
        r = -EBUSY;
    else if (!b->size || !within(table_off, 0, 0, b->size) || tsize > b->size - table_off ||
             !within(pba_off, 0, 0, b->size) || psize > b->size - pba_off)
        r = -EINVAL;
    uint32_t allocated = 0;
    if (r == 0 && h->has_msi) {
        for (; allocated < nvec; allocated++) {
            r = h->msi.alloc(h->msi_opaque, &m.handle[allocated]);
            if (r < 0)
                break;
        }
    }
    uint32_t cap_off = 0;
    if (r == 0)
        r = pci_cap_add_locked(f, cap, sizeof(cap), &cap_off);
    if (r == 0) {
        m.cap_off = cap_off;
        f->msix = m;
        /* Enable and Function Mask are the only writable bits. */
        f->wmask[cap_off + 3] = (uint8_t)((PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL) >> 8);
    } else {
        release_handles(h, m.handle, allocated);
        free_arrays(&m);
    }
    pthread_mutex_unlock(&f->lock);
    pthread_mutex_unlock(&h->remap_lock);
    return r < 0 ? r : 0;
}

int pci_msix_notify(struct pci_func *f, uint32_t vec)
{
    if (!f)
        return -EINVAL;
    if (vec == PCI_MSIX_NO_VECTOR)
        return 0;
    pthread_mutex_lock(&f->lock);
    int r = 0;
    if (vec >= f->msix.nvec)
        r = -EINVAL;
    else if (func_can_fire(f) && !vec_masked(f, vec))
        r = deliver(f, vec);
    else
        set_pending(f, vec, true);
    pthread_mutex_unlock(&f->lock);
    return r;
}

int pci_msix_enabled(const struct pci_func *f)
{
    if (!f)
        return 0;
    struct pci_func *mf = (struct pci_func *)f; /* the lock is not part of the value */
    pthread_mutex_lock(&mf->lock);
    int on = f->msix.nvec && (msix_ctrl(f) & PCI_MSIX_CTRL_ENABLE);
    pthread_mutex_unlock(&mf->lock);
    return on;
}

uint32_t pci_msix_nvec(const struct pci_func *f)
{
    if (!f)
        return 0;
    struct pci_func *mf = (struct pci_func *)f;
    pthread_mutex_lock(&mf->lock);
    uint32_t n = f->msix.nvec;
    pthread_mutex_unlock(&mf->lock);
    return n;
}

void pci_msix_reset(struct pci_func *f)
{
    struct pci_msix *m = &f->msix;
    if (!m->nvec)
        return;
    uint16_t c = msix_ctrl(f) & (uint16_t) ~(PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL);
    put_le16(f->cfg + m->cap_off + 2, c);
    for (uint32_t v = 0; v < m->nvec; v++)
        m->table[v] = (struct pci_msix_entry){.ctrl = PCI_MSIX_ENTRY_MASKED};
    memset(m->pba, 0, m->pba_size);
    /* m->routed stays: it mirrors what the slots still carry. */
}

void pci_msix_free(struct pci_func *f)
{
    release_handles(f->h, f->msix.handle, f->msix.nvec);
    free_arrays(&f->msix);
    f->msix.nvec = 0;
}
