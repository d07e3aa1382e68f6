#include "plugin_target.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nimbus/plugin_util.h>

#include "fuzz_target.h"

/* A blob larger than this is itself a finding (a guest could exhaust memory
 * through migration). */
#define PT_MAX_STATE (64ull << 20)
#define PT_MAX_OPS 4096u
#define PT_MAX_REPEAT 64u /* > any FIFO depth, small enough to stay fast */
#define PT_MAX_FILL 4096u /* bytes per RAM fill op */

/* Exact-size buffers for io_read/io_write so ASan catches a plugin that
 * touches more than `len` bytes (globals get redzones on both sides). */
static uint8_t io1[1], io2[2], io4[4], io8[8];

static uint8_t *io_buf(uint32_t len)
{
    switch (len) {
    case 1: return io1;
    case 2: return io2;
    case 4: return io4;
    default: return io8;
    }
}

const char *pt_plugin_name(const char *baked_name)
{
    if (baked_name && baked_name[0])
        return baked_name;
    return getenv("NIMBUS_FUZZ_PLUGIN");
}

static int try_path(char *out, size_t outlen, const char *dir, const char *sub,
                    const char *name)
{
    int n = snprintf(out, outlen, "%s%s/%s.so", dir, sub, name);
    return n > 0 && (size_t)n < outlen && access(out, R_OK) == 0;
}

int pt_resolve(const char *name, char *out, size_t outlen)
{
    if (strchr(name, '/')) {
        int n = snprintf(out, outlen, "%s", name);
        return n > 0 && (size_t)n < outlen ? 0 : -1;
    }
    const char *env = getenv("NIMBUS_FUZZ_PLUGIN_DIR");
    if (env && try_path(out, outlen, env, "", name))
        return 0;
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (k <= 0)
        return -1;
    exe[k] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    /* The last: an out-of-tree plugin's build folder holds its harness. */
    if (try_path(out, outlen, exe, "/plugins", name) ||
        try_path(out, outlen, exe, "/../plugins", name) || try_path(out, outlen, exe, "", name))
        return 0;
    return -1;
}

static void setup_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
static void setup_fail(const char *fmt, ...)
{
    va_list ap;
    fputs("fuzz: setup: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void grow(uint8_t **buf, uint64_t *cap, uint64_t need)
{
    if (need <= *cap)
        return;
    uint8_t *nb = realloc(*buf, need);
    if (nb == NULL)
        setup_fail("out of memory");
    *buf = nb;
    *cap = need;
}

uint64_t pt_save(struct plugin_target *t, const char *when)
{
    uint64_t need = 0, len = 0;
    int r = t->p->ops->state_save(t->dev, NULL, 0, &need);
    if (r < 0)
        fuzz_fail("%s: state_save size query failed (%d) %s", t->p->name, r, when);
    if (need > PT_MAX_STATE)
        fuzz_fail("%s: state_save wants %llu bytes %s", t->p->name,
                  (unsigned long long)need, when);
    grow(&t->buf, &t->cap, need ? need : 1);
    r = t->p->ops->state_save(t->dev, t->buf, need, &len);
    if (r < 0)
        fuzz_fail("%s: state_save into the size it asked for failed (%d) %s",
                  t->p->name, r, when);
    if (len > need)
        fuzz_fail("%s: state_save wrote %llu bytes into a %llu-byte buffer %s",
                  t->p->name, (unsigned long long)len, (unsigned long long)need, when);
    return len;
}

/* A buffer one byte too small must be refused, not overrun (the buffer is
 * exact-size heap memory, so ASan sees any write past it). */
static void check_short_save(struct plugin_target *t)
{
    uint64_t need = t->baseline_len, len = 0;
    if (need < 2)
        return;
    uint8_t *small = malloc(need - 1);
    if (small == NULL)
        setup_fail("out of memory");
    int r = t->p->ops->state_save(t->dev, small, need - 1, &len);
    free(small);
    if (r == 0 && len > need - 1)
        fuzz_fail("%s: state_save claimed success writing %llu bytes into %llu",
                  t->p->name, (unsigned long long)len, (unsigned long long)(need - 1));
}

void pt_init(struct plugin_target *t, const char *baked_name, uint64_t ram_size)
{
    char err[512];
    const char *name = pt_plugin_name(baked_name);
    if (name == NULL || !name[0])
        setup_fail("set NIMBUS_FUZZ_PLUGIN to a plugin name or .so path");
    if (pt_resolve(name, t->path, sizeof(t->path)) < 0)
        setup_fail("plugin '%s' not found (searched $NIMBUS_FUZZ_PLUGIN_DIR, "
                   "<exe>/plugins, <exe>/../plugins, <exe>)", name);
    t->p = fake_host_load_plugin(t->path, err, sizeof(err));
    if (t->p == NULL)
        setup_fail("%s", err);
    if (fake_host_init(&t->host, ram_size) < 0)
        setup_fail("fake host: out of memory");
    t->host.abort_on_violation = 1;
    t->options = getenv("NIMBUS_FUZZ_OPTIONS");
    if (t->options == NULL)
        t->options = "";
    t->nregions = NIMBUS_MAX_REGIONS;
    int r = fake_host_create(&t->host, t->p, t->options, &t->dev, t->regions,
                             &t->nregions, err, sizeof(err));
    if (r < 0)
        setup_fail("create() with options '%s' failed: %s", t->options, err);
    if (t->nregions > NIMBUS_MAX_REGIONS)
        fuzz_fail("%s: create() reported %u regions", t->p->name, t->nregions);
    for (uint32_t i = 0; i < t->nregions; i++)
        if (t->regions[i].size == 0)
            fuzz_fail("%s: create() gave region %u size 0", t->p->name, i);
    fake_host_snapshot_take(&t->host, &t->snap);
    t->can_save = FAKE_HOST_OP(t->p, state_save) && FAKE_HOST_OP(t->p, state_restore);
    if (t->can_save) {
        t->baseline_len = pt_save(t, "after create()");
        check_short_save(t);
        t->baseline = malloc(t->baseline_len ? t->baseline_len : 1);
        if (t->baseline == NULL)
            setup_fail("out of memory");
        memcpy(t->baseline, t->buf, t->baseline_len);
    } else {
        fprintf(stderr, "fuzz: %s has no state_save/state_restore: reset and "
                        "migration checks are off\n", t->p->name);
    }
    fprintf(stderr, "fuzz: plugin %s (%s), %u region(s), options '%s', state %llu bytes\n",
            t->p->name, t->path, t->nregions, t->options,
            (unsigned long long)t->baseline_len);
}

void pt_begin(struct plugin_target *t)
{
    fake_host_snapshot_restore(&t->host, &t->snap);
    fake_host_clear_ram(&t->host);
    t->host.chr_absent = 0;
    t->host.chr_stall = 0;
    t->host.chr_accept_max = 0;
    t->slot_valid = 0;
    t->p->ops->reset(t->dev);
}

static void dump(const char *label, const uint8_t *b, uint64_t len, uint64_t at)
{
    uint64_t from = at > 16 ? at - 16 : 0;
    fprintf(stderr, "  %s (len %llu) @%llu:", label, (unsigned long long)len,
            (unsigned long long)from);
    for (uint64_t i = from; i < len && i < from + 48; i++)
        fprintf(stderr, "%s%02x", i == at ? " [" : " ", b[i]);
    fputc('\n', stderr);
}

static void compare_blobs(struct plugin_target *t, const uint8_t *want,
                          uint64_t wlen, const uint8_t *got, uint64_t glen,
                          const char *what)
{
    if (wlen == glen && memcmp(want, got, wlen) == 0)
        return;
    uint64_t i = 0;
    while (i < wlen && i < glen && want[i] == got[i])
        i++;
    fprintf(stderr, "fuzz: %s: state blobs differ at byte %llu\n", t->p->name,
            (unsigned long long)i);
    dump("expected", want, wlen, i);
    dump("actual  ", got, glen, i);
    fuzz_fail("%s: %s", t->p->name, what);
}

void pt_reset_and_check(struct plugin_target *t, const char *when)
{
    t->p->ops->reset(t->dev);
    if (t->can_save) {
        uint64_t len = pt_save(t, when);
        compare_blobs(t, t->baseline, t->baseline_len, t->buf, len,
                      "reset() did not restore the power-on state (state_save "
                      "after reset differs from after create)");
    }
    for (uint32_t g = 0; g < FAKE_HOST_GSIS; g++)
        if (t->host.irq_level[g] != t->snap.irq_level[g])
            fuzz_fail("%s: reset() left GSI %u at level %u (power-on level %u) %s",
                      t->p->name, g, t->host.irq_level[g], t->snap.irq_level[g], when);
}

void pt_roundtrip(struct plugin_target *t, const char *when)
{
    if (!t->can_save)
        return;
    uint64_t alen = pt_save(t, when);
    grow(&t->rt, &t->rt_cap, alen ? alen : 1);
    uint8_t *a = t->rt;
    memcpy(a, t->buf, alen);
    int r = t->p->ops->state_restore(t->dev, a, alen);
    if (r < 0)
        fuzz_fail("%s: state_restore of its own state_save blob failed (%d) %s",
                  t->p->name, r, when);
    uint64_t blen = pt_save(t, when);
    compare_blobs(t, a, alen, t->buf, blen,
                  "state_save -> state_restore -> state_save changed the state");
}

/* Fit (offset, len) into the region: offsets wrap, accesses never cross the
 * region end (the core dispatches only whole accesses inside a region) and
 * port I/O is at most 4 bytes wide as on x86.  0 = skip. */
static int fit(const struct plugin_target *t, uint32_t region, uint64_t *offset,
               uint32_t *len)
{
    if (t->nregions == 0 || !FAKE_HOST_OP(t->p, io_read))
        return 0;
    const nimbus_region *r = &t->regions[region % t->nregions];
    if (r->kind == NIMBUS_REGION_PIO && *len > 4)
        *len = 4;
    while (*len > r->size)
        *len /= 2;
    *offset %= r->size;
    if (*offset > r->size - *len)
        *offset = r->size - *len;
    return 1;
}

uint64_t pt_read_val(struct plugin_target *t, uint32_t region, uint64_t offset,
                     uint32_t len)
{
    if (!fit(t, region, &offset, &len))
        return 0;
    uint8_t *b = io_buf(len);
    memset(b, 0xa5, len);
    int r = t->p->ops->io_read(t->dev, region % t->nregions, offset, b, len);
    return r < 0 ? 0 : nimbus_le_load(b, len);
}

void pt_read(struct plugin_target *t, uint32_t region, uint64_t offset, uint32_t len)
{
    (void)pt_read_val(t, region, offset, len);
}

void pt_write(struct plugin_target *t, uint32_t region, uint64_t offset,
              uint32_t len, uint64_t value)
{
    if (!fit(t, region, &offset, &len) || !FAKE_HOST_OP(t->p, io_write))
        return;
    uint8_t *b = io_buf(len);
    for (uint32_t i = 0; i < len; i++)
        b[i] = (uint8_t)(value >> (8 * i));
    t->p->ops->io_write(t->dev, region % t->nregions, offset, b, len);
}

uint64_t pt_chr_input(struct plugin_target *t, const uint8_t *bytes, size_t n)
{
    uint64_t (*in)(void *, const void *, uint64_t) = FAKE_HOST_OP(t->p, chr_input);
    if (!in)
        return 0;
    /* Copied to the END of a global so a read beyond what was offered runs
     * into the ASan redzone after it (cheaper than a malloc per op). */
    static uint8_t tail[1024];
    const uint8_t *src = bytes;
    uint8_t *heap = NULL;
    if (n <= sizeof(tail)) {
        src = memcpy(tail + sizeof(tail) - n, bytes, n);
    } else if ((heap = malloc(n)) != NULL) {
        src = memcpy(heap, bytes, n);
    }
    uint64_t got = in(t->dev, src, n);
    free(heap);
    if (got > n)
        fuzz_fail("%s: chr_input accepted %llu of %zu bytes", t->p->name,
                  (unsigned long long)got, n);
    return got;
}

enum {
    OP_READ,
    OP_WRITE,
    OP_WRITE_REPEAT,
    OP_READ_REPEAT,
    OP_RAM_FILL,
    OP_CHR_INPUT,
    OP_FD_READY,
    OP_ADVANCE,
    OP_FIRE_NEXT,
    OP_SAVE_RESTORE,
    OP_RESET,
    OP_CHR_MODE,
    OP_WALLCLOCK,
    OP_SAVE_SLOT,
    OP_RESTORE_SLOT,
    OP_WRITE_READ,
    OP_COUNT
};

/* Access selector byte: bits 0-2 region, bits 3-4 log2(len); then a 16-bit
 * offset, plus 16 more bits for regions larger than 64 KiB. */
static void decode_access(struct plugin_target *t, struct fuzz_in *in,
                          uint32_t *region, uint64_t *offset, uint32_t *len)
{
    uint8_t a = fin_u8(in);
    *region = t->nregions ? (uint32_t)(a & 7) % t->nregions : 0;
    *len = 1u << ((a >> 3) & 3);
    *offset = fin_le(in, 2);
    if (t->nregions && t->regions[*region].size > 0x10000)
        *offset |= fin_le(in, 2) << 16;
}

static void op_ram_fill(struct plugin_target *t, struct fuzz_in *in)
{
    struct fake_host *h = &t->host;
    uint64_t gpa = fin_le(in, 4), len = fin_le(in, 2) % PT_MAX_FILL + 1;
    size_t plen = (size_t)(fin_u8(in) % 16) + 1;
    const uint8_t *pat;
    plen = fin_take(in, plen, &pat);
    if (h->ram_size == 0 || plen == 0)
        return;
    gpa %= h->ram_size;
    if (len > h->ram_size - gpa)
        len = h->ram_size - gpa;
    for (uint64_t i = 0; i < len; i++)
        h->ram[gpa + i] = pat[i % plen];
    fake_host_mark_dirty(h, gpa, len);
}

static void op_fd_ready(struct plugin_target *t, struct fuzz_in *in)
{
    uint8_t idx = fin_u8(in), ev = fin_u8(in);
    void (*ready)(void *, int, uint64_t, uint32_t) = FAKE_HOST_OP(t->p, fd_ready);
    unsigned used = 0;
    while (fake_host_watched(&t->host, used) >= 0)
        used++;
    if (!ready || used == 0)
        return;
    const struct fake_host_fd *f = &t->host.fds[fake_host_watched(&t->host, idx % used)];
    /* The loop reports only what was asked for, plus errors and hangups. */
    uint32_t revents = ev & (f->events | NIMBUS_EV_ERR | NIMBUS_EV_HUP);
    if (f->events == 0 || revents == 0)
        return;
    ready(t->dev, f->fd, f->token, revents);
}

static void op_save_slot(struct plugin_target *t)
{
    if (!t->can_save)
        return;
    uint64_t len = pt_save(t, "(save-slot op)");
    grow(&t->slot, &t->slot_cap, len ? len : 1);
    memcpy(t->slot, t->buf, len);
    t->slot_len = len;
    t->slot_valid = 1;
}

static void op_restore_slot(struct plugin_target *t)
{
    if (!t->slot_valid)
        return;
    int r = t->p->ops->state_restore(t->dev, t->slot, t->slot_len);
    if (r < 0)
        fuzz_fail("%s: state_restore of an earlier state_save blob failed (%d)",
                  t->p->name, r);
    uint64_t len = pt_save(t, "(restore-slot op)");
    compare_blobs(t, t->slot, t->slot_len, t->buf, len,
                  "restoring an earlier blob into a changed device did not "
                  "reproduce that state");
}

void pt_run_ops(struct plugin_target *t, struct fuzz_in *in)
{
    struct fake_host *h = &t->host;
    uint32_t region, len;
    uint64_t offset;
    for (unsigned nops = 0; fin_more(in) && nops < PT_MAX_OPS; nops++) {
        switch (fin_u8(in) % OP_COUNT) {
        case OP_READ:
            decode_access(t, in, &region, &offset, &len);
            pt_read(t, region, offset, len);
            break;
        case OP_WRITE:
            decode_access(t, in, &region, &offset, &len);
            pt_write(t, region, offset, len, fin_le(in, len));
            break;
        case OP_WRITE_REPEAT: {
            decode_access(t, in, &region, &offset, &len);
            unsigned n = fin_u8(in) % PT_MAX_REPEAT + 1u;
            uint64_t v = fin_le(in, len);
            for (unsigned i = 0; i < n; i++)
                pt_write(t, region, offset, len, v);
            break;
        }
        case OP_READ_REPEAT: {
            decode_access(t, in, &region, &offset, &len);
            unsigned n = fin_u8(in) % PT_MAX_REPEAT + 1u;
            for (unsigned i = 0; i < n; i++)
                pt_read(t, region, offset, len);
            break;
        }
        case OP_RAM_FILL:
            op_ram_fill(t, in);
            break;
        case OP_CHR_INPUT: {
            const uint8_t *b;
            size_t n = fin_take(in, fin_u8(in), &b);
            pt_chr_input(t, b, n);
            break;
        }
        case OP_FD_READY:
            op_fd_ready(t, in);
            break;
        case OP_ADVANCE: {
            uint8_t e = fin_u8(in), m = fin_u8(in);
            fake_host_advance(h, t->p, t->dev, ((uint64_t)m + 1) << (e % 41));
            break;
        }
        case OP_FIRE_NEXT:
            fake_host_fire_next(h, t->p, t->dev);
            break;
        case OP_SAVE_RESTORE:
            pt_roundtrip(t, "(save/restore op)");
            break;
        case OP_RESET:
            pt_reset_and_check(t, "(reset op)");
            break;
        case OP_CHR_MODE: {
            uint8_t m = fin_u8(in) % 4;
            h->chr_absent = m == 3;
            h->chr_stall = m == 2;
            h->chr_accept_max = m == 1 ? 1 : 0;
            break;
        }
        case OP_WALLCLOCK: {
            /* Wall clock steps (NTP, host suspend): +-68 years in seconds. */
            int64_t step = (int64_t)(int32_t)(uint32_t)fin_le(in, 4) * 1000000000ll;
            int64_t w;
            if (__builtin_add_overflow(h->wall_ns, step, &w))
                w = step < 0 ? 0 : INT64_MAX >> 1;
            h->wall_ns = w < 0 ? 0 : w > (INT64_MAX >> 1) ? (INT64_MAX >> 1) : w;
            break;
        }
        case OP_SAVE_SLOT:
            op_save_slot(t);
            break;
        case OP_RESTORE_SLOT:
            op_restore_slot(t);
            break;
        case OP_WRITE_READ:
            decode_access(t, in, &region, &offset, &len);
            pt_write(t, region, offset, len, fin_le(in, len));
            pt_read(t, region, offset, len);
            break;
        }
    }
}

/* NIMBUS_FUZZ_DUMP_STATE=<dir>: write each input's final device state to
 * <dir>/state-<hash>, the way restore-harness seeds are made from op seeds. */
static void dump_state(struct plugin_target *t)
{
    static const char *dir;
    static int checked;
    if (!checked) {
        dir = getenv("NIMBUS_FUZZ_DUMP_STATE");
        checked = 1;
    }
    if (dir == NULL || !t->can_save)
        return;
    uint64_t len = pt_save(t, "(state dump)");
    uint64_t hash = 0xcbf29ce484222325ull; /* FNV-1a: content-named files */
    for (uint64_t i = 0; i < len; i++)
        hash = (hash ^ t->buf[i]) * 0x100000001b3ull;
    char path[4096];
    snprintf(path, sizeof(path), "%s/state-%016llx", dir, (unsigned long long)hash);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(t->buf, 1, len, f) != len)
        fprintf(stderr, "fuzz: cannot write %s\n", path);
    if (f)
        fclose(f);
}

void pt_end(struct plugin_target *t)
{
    dump_state(t);
    /* Pending timers must be harmless too: let the device finish its work. */
    fake_host_advance(&t->host, t->p, t->dev, 1000000000ull);
    pt_reset_and_check(t, "(end of input)");
    if (fake_host_violation_count(&t->host))
        fuzz_fail("%s: host API contract violations", t->p->name);
}
