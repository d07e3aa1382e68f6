/*
 * Guest RAM: one host mapping, split into at most two guest regions around
 * the 32-bit MMIO hole.  The hole is not backed by host memory: the high
 * region starts in the host mapping right where the low one ends, and the
 * memory hotplug area, if any, right after that.
 */
#include "memory.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "layout.h"
#include "log.h"

/* Architectural limit of x86-64 physical addresses; also keeps every
 * gpa + size computation below from overflowing. */
#define GM_MAX_GPA (1ull << 52)
#define GM_PAGE 4096ull
#define GM_HUGE_PAGE (2ull << 20)

int gm_layout(uint64_t size, struct guest_region *out, unsigned max)
{
    const uint64_t low_max = LAYOUT_MMIO32_START;

    if (size == 0 || !out || max == 0)
        return -1;
    if (size > low_max && size - low_max > GM_MAX_GPA - LAYOUT_RAM_ABOVE_4G)
        return -1;

    out[0] = (struct guest_region){.gpa = 0, .size = size < low_max ? size : low_max};
    if (size <= low_max)
        return 1;
    if (max < 2)
        return -1;
    out[1] = (struct guest_region){.gpa = LAYOUT_RAM_ABOVE_4G, .size = size - low_max};
    return 2;
}

/* Point every region at its place in the host mapping (regions are packed). */
static int gm_setup(struct guest_mem *gm, uint8_t *base, uint64_t size)
{
    int n = gm_layout(size, gm->regions, GUEST_MEM_MAX_REGIONS);
    uint64_t off = 0;

    if (n < 0)
        return -EINVAL;
    gm->nregions = (unsigned)n;
    for (unsigned i = 0; i < gm->nregions; i++) {
        gm->regions[i].host = base + off;
        off += gm->regions[i].size;
    }
    gm->base = base;
    gm->ram_size = size;
    return 0;
}

static void gm_advise(uint8_t *base, uint64_t size, const struct memory_config *cfg)
{
    /* Guest RAM in a core dump is huge and may hold guest secrets. */
    if (madvise(base, size, MADV_DONTDUMP) != 0)
        log_debug("memory: MADV_DONTDUMP failed: %s", strerror(errno));
    /* Explicit hugetlb pages are already huge; THP only applies otherwise. */
    if (cfg->thp && !cfg->hugepages && madvise(base, size, MADV_HUGEPAGE) != 0)
        log_debug("memory: MADV_HUGEPAGE failed: %s", strerror(errno));
    /* KSM may be compiled out; the guest still runs, so only warn. */
    if (cfg->mergeable && madvise(base, size, MADV_MERGEABLE) != 0)
        log_warn("memory: mergeable=on ignored, MADV_MERGEABLE failed: %s", strerror(errno));
}

static int gm_open_memfd(const struct memory_config *cfg)
{
    unsigned flags = MFD_CLOEXEC | (cfg->hugepages ? MFD_HUGETLB : 0u);
    int fd = memfd_create("nimbus-guest-ram", flags);

    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)(cfg->size + cfg->hotplug_size)) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/*
 * KVM maps guest memory with huge pages in the (nested) page tables only
 * where gpa and host address agree modulo 2 MiB, and THP only backs
 * 2 MiB-aligned host ranges.  Kernels before 6.7 do not align large
 * anonymous mappings (Debian 12's 6.1 hands out 4 KiB-aligned ones), which
 * leaves the guest on 4 KiB pages throughout: so reserve 2 MiB more address
 * space, place the mapping on the boundary inside it and give the rest back.
 */
static void *gm_mmap_aligned(size_t size, int prot, int flags, int fd, int hugetlb)
{
    const size_t align = (size_t)GM_HUGE_PAGE;
    uint8_t *res, *p;
    uintptr_t start;

    /* hugetlb mappings are aligned to their page size (maybe 1 GiB) anyway. */
    if (hugetlb)
        return mmap(NULL, size, prot, flags, fd, 0);
    if (size > SIZE_MAX - align) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    res = mmap(NULL, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
               -1, 0);
    if (res == MAP_FAILED)
        return MAP_FAILED;
    start = ((uintptr_t)res + align - 1) & ~(uintptr_t)(align - 1);
    p = mmap((void *)start, size, prot, flags | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        munmap(res, size + align);
        errno = e;
        return MAP_FAILED;
    }
    if (p > res)
        munmap(res, (size_t)(p - res));
    if (p + size < res + size + align)
        munmap(p + size, (size_t)(res + size + align - (p + size)));
    return p;
}

/* prefault=on where MAP_POPULATE cannot be used (only part of a mapping). */
static void gm_populate(uint8_t *p, uint64_t len)
{
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
    if (madvise(p, (size_t)len, MADV_POPULATE_WRITE) != 0)
        log_warn("memory: prefault=on: MADV_POPULATE_WRITE failed: %s", strerror(errno));
}

int gm_map(struct guest_mem *gm, const struct memory_config *cfg)
{
    struct guest_region probe[GUEST_MEM_MAX_REGIONS];
    int prot = PROT_READ | PROT_WRITE, flags, fd = -1, rc;
    void *p;

    if (!gm || !cfg)
        return -EINVAL;
    memset(gm, 0, sizeof(*gm));
    gm->memfd = -1;
    if (gm_layout(cfg->size, probe, GUEST_MEM_MAX_REGIONS) < 0)
        return -EINVAL;
    /* KVM memslots are page granular; hugetlb mappings are 2 MiB granular. */
    if (cfg->size % (cfg->hugepages ? GM_HUGE_PAGE : GM_PAGE) != 0)
        return -EINVAL;
    uint64_t hp_base = gm_hotplug_base(cfg->size), total;
    if (cfg->hotplug_size % GM_HOTPLUG_ALIGN != 0 ||
        cfg->hotplug_size > GM_MAX_GPA - hp_base ||
        __builtin_add_overflow(cfg->size, cfg->hotplug_size, &total) || total > SIZE_MAX)
        return -EINVAL;

    if (cfg->shared) {
        fd = gm_open_memfd(cfg);
        if (fd < 0)
            return fd;
        flags = MAP_SHARED;
    } else {
        flags = MAP_PRIVATE | MAP_ANONYMOUS | (cfg->hugepages ? MAP_HUGETLB : 0);
    }
    /* Hugetlb pages are reserved up front so a shortage fails here, not as
     * a SIGBUS when the guest first touches the page. */
    if (!cfg->hugepages)
        flags |= MAP_NORESERVE;
    /* Prefault boot RAM only: the hotplug area is populated when plugged. */
    if (cfg->prefault && !cfg->hotplug_size)
        flags |= MAP_POPULATE;

    /* The hotplug area follows boot RAM in the same mapping: MAP_NORESERVE
     * (hugetlb aside) costs nothing until the guest has it and uses it. */
    p = gm_mmap_aligned((size_t)total, prot, flags, fd, cfg->hugepages);
    if (p == MAP_FAILED) {
        rc = -errno;
        if (fd >= 0)
            close(fd);
        return rc;
    }
    gm_setup(gm, p, cfg->size);
    gm->mapped = total;
    gm->memfd = fd;
    if (cfg->hotplug_size)
        gm->hp = (struct guest_region){.gpa = hp_base, .size = cfg->hotplug_size,
                                       .host = (uint8_t *)p + cfg->size};
    gm_advise(p, total, cfg);
    if (cfg->prefault && cfg->hotplug_size)
        gm_populate(p, cfg->size);
    gm->prefault = cfg->prefault;
    return 0;
}

uint64_t gm_hotplug_slot_size(uint64_t hotplug_size)
{
    uint64_t slot = GM_HOTPLUG_ALIGN;
    while (hotplug_size / slot > GM_HOTPLUG_MAX_SLOTS)
        slot <<= 1;
    return slot;
}

uint64_t gm_hotplug_base(uint64_t size)
{
    uint64_t end = LAYOUT_RAM_ABOVE_4G;
    if (size > LAYOUT_MMIO32_START)
        end += size - LAYOUT_MMIO32_START;
    return (end + (1ull << 30) - 1) & ~((1ull << 30) - 1);
}

int gm_hotplug_grow(struct guest_mem *gm, uint64_t bytes, uint64_t *gpa)
{
    uint64_t cur = __atomic_load_n(&gm->hp_plugged, __ATOMIC_ACQUIRE);
    if (bytes > gm->hp.size - cur)
        return -ENOSPC;
    if (gpa)
        *gpa = gm->hp.gpa + cur;
    if (gm->prefault)
        gm_populate(gm->hp.host + cur, bytes);
    /* Release: a reader that sees the new size sees the KVM slot's
     * memory as the caller left it. */
    __atomic_store_n(&gm->hp_plugged, cur + bytes, __ATOMIC_RELEASE);
    return 0;
}

uint64_t gm_top(const struct guest_mem *gm)
{
    uint64_t end = 0;
    for (unsigned i = 0; i < gm->nregions && i < GUEST_MEM_MAX_REGIONS; i++)
        if (gm->regions[i].gpa + gm->regions[i].size > end)
            end = gm->regions[i].gpa + gm->regions[i].size;
    if (gm->hp.size && gm->hp.gpa + gm->hp.size > end)
        end = gm->hp.gpa + gm->hp.size;
    return end;
}

int gm_overlaps(const struct guest_mem *gm, uint64_t start, uint64_t last)
{
    for (unsigned i = 0; i < gm->nregions && i < GUEST_MEM_MAX_REGIONS; i++) {
        const struct guest_region *r = &gm->regions[i];
        if (start <= r->gpa + r->size - 1 && last >= r->gpa)
            return 1;
    }
    return gm->hp.size && start <= gm->hp.gpa + gm->hp.size - 1 && last >= gm->hp.gpa;
}

int gm_wrap(struct guest_mem *gm, void *buf, uint64_t size)
{
    if (!gm)
        return -EINVAL;
    memset(gm, 0, sizeof(*gm));
    gm->memfd = -1;
    if (!buf)
        return -EINVAL;
    /* mapped stays 0: the buffer is the caller's, gm_unmap must not free it. */
    return gm_setup(gm, buf, size);
}

void gm_unmap(struct guest_mem *gm)
{
    if (!gm)
        return;
    if (gm->base && gm->mapped)
        munmap(gm->base, (size_t)gm->mapped);
    if (gm->memfd >= 0)
        close(gm->memfd);
    memset(gm, 0, sizeof(*gm));
    gm->memfd = -1;
}

static int in_region(const struct guest_region *r, uint64_t gpa, int end_ok)
{
    return gpa >= r->gpa && (gpa - r->gpa < r->size || (end_ok && gpa - r->gpa == r->size));
}

/*
 * The region holding gpa (gpa == region end counts only when end_ok), as a
 * copy: the hotplug area's is cut to what is plugged now.
 */
static const struct guest_region *gm_find(const struct guest_mem *gm, uint64_t gpa, int end_ok,
                                          struct guest_region *tmp)
{
    if (!gm)
        return NULL;
    for (unsigned i = 0; i < gm->nregions && i < GUEST_MEM_MAX_REGIONS; i++)
        if (in_region(&gm->regions[i], gpa, end_ok))
            return &gm->regions[i];
    if (!gm->hp.size)
        return NULL;
    *tmp = gm->hp;
    tmp->size = __atomic_load_n(&gm->hp_plugged, __ATOMIC_ACQUIRE);
    return tmp->size && in_region(tmp, gpa, end_ok) ? tmp : NULL;
}

void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
    struct guest_region tmp;
    const struct guest_region *r = gm_find(gm, gpa, len == 0, &tmp);
    uint64_t off;

    if (!r)
        return NULL;
    off = gpa - r->gpa;
    /* off <= size holds, so the subtraction cannot wrap. */
    if (len > r->size - off)
        return NULL;
    return r->host + off;
}

/*
 * Walk [gpa, gpa+len) region by region, copying into dst or out of src.
 * With neither it only checks that every byte is RAM, so a failing access
 * never leaves a partial copy behind.
 */
static int gm_walk(const struct guest_mem *gm, uint64_t gpa, uint64_t len, uint8_t *dst,
                   const uint8_t *src)
{
    uint64_t end, done = 0;

    if (len == 0)
        return 0;
    if (__builtin_add_overflow(gpa, len, &end))
        return -EFAULT;
    while (gpa < end) {
        struct guest_region tmp;
        const struct guest_region *r = gm_find(gm, gpa, 0, &tmp);
        uint64_t off, chunk;

        if (!r)
            return -EFAULT;
        off = gpa - r->gpa;
        chunk = r->size - off;
        if (chunk > end - gpa)
            chunk = end - gpa;
        if (dst)
            memcpy(dst + done, r->host + off, (size_t)chunk);
        else if (src)
            memcpy(r->host + off, src + done, (size_t)chunk);
        done += chunk;
        gpa += chunk;
    }
    return 0;
}

int gm_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len)
{
    if (len && !dst)
        return -EINVAL;
    if (gm_walk(gm, gpa, len, NULL, NULL) != 0)
        return -EFAULT;
    return gm_walk(gm, gpa, len, dst, NULL);
}

int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len)
{
    if (len && !src)
        return -EINVAL;
    if (gm_walk(gm, gpa, len, NULL, NULL) != 0)
        return -EFAULT;
    return gm_walk(gm, gpa, len, NULL, src);
}

uint64_t gm_low_ram_end(const struct guest_mem *gm)
{
    uint64_t end = 0;

    if (!gm)
        return 0;
    for (unsigned i = 0; i < gm->nregions && i < GUEST_MEM_MAX_REGIONS; i++) {
        const struct guest_region *r = &gm->regions[i];
        if (r->gpa < LAYOUT_MMIO32_START && r->gpa + r->size > end)
            end = r->gpa + r->size;
    }
    return end;
}
