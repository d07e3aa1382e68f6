#include "bd_find.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bd_fs.h"
#include "bd_grub.h"
#include "bd_part.h"

#define GRUBENV_MAX (64u << 10)
#define BLS_ENTRY_MAX (64u << 10)
#define BLS_DIR_MAX 256u

struct disk {
    struct bd_dev dev;
    struct bd_table t;
    int table_ok;
    char table_err[160];
    struct bd_fs fs[BD_MAX_PARTS];
    signed char fs_state[BD_MAX_PARTS]; /* 0 not tried, 1 open, -1 none */
    char fs_err[BD_MAX_PARTS][80];
};

struct finder {
    struct disk *d;
    int nd;
    int cur_disk;        /* where grub.cfg was found: "" device names resolve here */
    uint32_t cur_part;
};

static struct bd_fs *part_fs(struct finder *f, int di, uint32_t pi)
{
    struct disk *d = &f->d[di];
    if (pi >= d->t.nparts)
        return NULL;
    if (d->fs_state[pi] == 0) {
        struct bd_dev pd;
        const struct bd_part *p = &d->t.parts[pi];
        d->fs_state[pi] = -1;
        if (p->is_bios_boot)
            snprintf(d->fs_err[pi], sizeof(d->fs_err[pi]), "BIOS boot");
        else if (bd_sub(&d->dev, p->start, p->size, &pd) != 0)
            snprintf(d->fs_err[pi], sizeof(d->fs_err[pi]), "outside the disk");
        else if (bd_fs_open(&pd, &d->fs[pi], d->fs_err[pi], sizeof(d->fs_err[pi])) == 0)
            d->fs_state[pi] = 1;
    }
    return d->fs_state[pi] == 1 ? &d->fs[pi] : NULL;
}

/* A GRUB device name to (disk, partition index); -1 when nothing matches. */
static int resolve_dev(struct finder *f, const char *dev, int *di, uint32_t *pi)
{
    if (!dev || !dev[0]) {
        *di = f->cur_disk, *pi = f->cur_part;
        return 0;
    }
    int want_uuid = !strncmp(dev, "fsuuid=", 7), want_label = !strncmp(dev, "fslabel=", 8);
    int want_file = !strncmp(dev, "file=", 5);
    if (want_uuid || want_label || want_file) {
        const char *key = strchr(dev, '=') + 1;
        for (int d = 0; d < f->nd; d++)
            for (uint32_t p = 0; f->d[d].table_ok && p < f->d[d].t.nparts; p++) {
                struct bd_fs *fs = part_fs(f, d, p);
                if (!fs)
                    continue;
                if ((want_uuid && !strcasecmp(fs->uuid, key)) ||
                    (want_label && !strcmp(fs->label, key)) ||
                    (want_file && bd_fs_exists(fs, key))) {
                    *di = d, *pi = p;
                    return 0;
                }
            }
        return -1;
    }
    /* hdN, hdN,M, hdN,gptM, hdN,msdosM */
    if (strncmp(dev, "hd", 2) || !isdigit((unsigned char)dev[2]))
        return -1;
    char *end;
    long n = strtol(dev + 2, &end, 10);
    if (n < 0 || n >= f->nd || !f->d[n].table_ok)
        return -1;
    long m = 0;
    if (*end == ',') {
        end++;
        if (!strncmp(end, "gpt", 3))
            end += 3;
        else if (!strncmp(end, "msdos", 5))
            end += 5;
        m = strtol(end, &end, 10);
    }
    if (*end)
        return -1;
    for (uint32_t p = 0; p < f->d[n].t.nparts; p++)
        if (f->d[n].t.parts[p].number == (uint32_t)m) {
            *di = (int)n, *pi = p;
            return 0;
        }
    return -1;
}

static int host_file_test(void *opaque, const char *dev, const char *path, int nonempty)
{
    struct finder *f = opaque;
    int di;
    uint32_t pi;
    if (resolve_dev(f, dev, &di, &pi) < 0)
        return 0;
    struct bd_fs *fs = part_fs(f, di, pi);
    if (!fs || !bd_fs_exists(fs, path))
        return 0;
    if (!nonempty)
        return 1;
    uint8_t *data = NULL;
    size_t len = 0;
    char e[160];
    int ok = bd_fs_read(fs, path, GRUBENV_MAX, &data, &len, e, sizeof(e)) == 0 && len > 0;
    free(data);
    return ok;
}

struct bls_collect {
    struct bd_fs *fs;
    const char *dir;
    struct bd_bls_list *out;
};

static int bls_one(void *opaque, const char *name, int is_dir)
{
    struct bls_collect *b = opaque;
    size_t nl = strlen(name);
    if (is_dir || nl < 6 || strcasecmp(name + nl - 5, ".conf") || b->out->n >= BD_MAX_BLS)
        return 0;
    char path[BD_PATH], id[128], e[160];
    snprintf(path, sizeof(path), "%s/%s", b->dir, name);
    snprintf(id, sizeof(id), "%.*s", (int)(nl - 5), name);
    uint8_t *data = NULL;
    size_t len = 0;
    if (bd_fs_read(b->fs, path, BLS_ENTRY_MAX, &data, &len, e, sizeof(e)) != 0)
        return 0;
    if (bd_bls_parse((const char *)data, len, id, &b->out->e[b->out->n]) == 0)
        b->out->n++;
    free(data);
    return 0;
}

/* Entries in /loader/entries, else /boot/loader/entries; sorted. */
static int bls_read(struct bd_fs *fs, struct bd_bls_list *out, const char **dir_used)
{
    static const char *const dirs[] = {"/loader/entries", "/boot/loader/entries"};
    out->n = 0;
    for (size_t k = 0; k < 2; k++) {
        struct bls_collect b = {fs, dirs[k], out};
        if (bd_fs_list(fs, dirs[k], bls_one, &b, BLS_DIR_MAX) == 0 && out->n > 0) {
            bd_bls_sort(out);
            if (dir_used)
                *dir_used = dirs[k];
            return 0;
        }
    }
    return -1;
}

static int host_bls(void *opaque, const char *dev, struct bd_bls_list *out)
{
    struct finder *f = opaque;
    int di;
    uint32_t pi;
    if (resolve_dev(f, dev, &di, &pi) < 0)
        return -1;
    struct bd_fs *fs = part_fs(f, di, pi);
    return fs ? bls_read(fs, out, NULL) : -1;
}

/*
 * Read a file a boot entry names.  BLS and GRUB paths on a system whose
 * /boot is not a separate partition sometimes omit /boot: try it too.
 */
static int read_ref(struct finder *f, const struct bd_file_ref *r, size_t max, uint8_t **data,
                    size_t *len, char *err, size_t errlen)
{
    int di;
    uint32_t pi;
    if (resolve_dev(f, r->dev, &di, &pi) < 0) {
        bd_errf(err, errlen, "%s: device '%s' is not on any disk given", r->path, r->dev);
        return -ENODEV;
    }
    struct bd_fs *fs = part_fs(f, di, pi);
    if (!fs) {
        bd_errf(err, errlen, "%s: device '%s' holds no readable file system", r->path, r->dev);
        return -ENODEV;
    }
    int rc = bd_fs_read(fs, r->path, max, data, len, err, errlen);
    if (rc == -ENOENT && strncmp(r->path, "/boot/", 6) != 0) {
        char alt[BD_PATH + 8], e2[160];
        snprintf(alt, sizeof(alt), "/boot%s", r->path);
        if (bd_fs_read(fs, alt, max, data, len, e2, sizeof(e2)) == 0)
            return 0;
    }
    return rc;
}

/* GRUB splits words and joins them with one space: so do we. */
static void squeeze(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (isspace((unsigned char)*r)) {
            if (w > s && w[-1] != ' ')
                *w++ = ' ';
        } else {
            *w++ = *r;
        }
    }
    if (w > s && w[-1] == ' ')
        w--;
    *w = 0;
}

static int load_spec(struct finder *f, const struct bd_boot_spec *s, struct bd_found *out,
                     char *err, size_t errlen)
{
    char e[256];
    if (read_ref(f, &s->kernel, BD_KERNEL_MAX, &out->kernel, &out->kernel_len, e, sizeof(e))) {
        bd_errf(err, errlen, "the kernel: %s", e);
        return -1;
    }
    if (out->kernel_len == 0) {
        bd_errf(err, errlen, "the kernel: %.200s: the file is empty", s->kernel.path);
        return -1;
    }
    for (int k = 0; k < s->ninitrd; k++) {
        uint8_t *d = NULL;
        size_t l = 0;
        if (read_ref(f, &s->initrd[k], BD_INITRD_MAX, &d, &l, e, sizeof(e))) {
            bd_errf(err, errlen, "the initrd: %s", e);
            return -1;
        }
        /* Several initrds are concatenated, as GRUB does (cpio archives append). */
        if (l > BD_INITRD_MAX - out->initrd_len) {
            free(d);
            bd_errf(err, errlen, "the initrds add up to more than %u bytes", BD_INITRD_MAX);
            return -1;
        }
        uint8_t *n = realloc(out->initrd, out->initrd_len + l + 1);
        if (!n) {
            free(d);
            bd_errf(err, errlen, "out of memory for the initrd");
            return -1;
        }
        memcpy(n + out->initrd_len, d, l);
        out->initrd = n;
        out->initrd_len += l;
        free(d);
    }
    snprintf(out->cmdline, sizeof(out->cmdline), "%s", s->cmdline);
    squeeze(out->cmdline);
    return 0;
}

static const char *const GRUB_CFGS[] = {"/boot/grub/grub.cfg", "/grub/grub.cfg",
                                        "/boot/grub2/grub.cfg", "/grub2/grub.cfg"};

static void dev_name(const struct disk *d, int di, uint32_t pi, char *out, size_t n)
{
    const struct bd_part *p = &d->t.parts[pi];
    if (d->t.kind == BD_TABLE_NONE)
        snprintf(out, n, "hd%d", di);
    else
        snprintf(out, n, "hd%d,%s%u", di, d->t.kind == BD_TABLE_GPT ? "gpt" : "msdos", p->number);
}

/* 1 when a grub.cfg was found and used (out filled), -1 on its error, 0 none. */
static int try_grub(struct finder *f, int di, uint32_t pi, struct bd_found *out, char *err,
                    size_t errlen)
{
    struct bd_fs *fs = part_fs(f, di, pi);
    for (size_t k = 0; fs && k < sizeof(GRUB_CFGS) / sizeof(GRUB_CFGS[0]); k++) {
        uint8_t *cfg = NULL, *env = NULL;
        size_t cl = 0, el = 0;
        char e[256];
        int r = bd_fs_read(fs, GRUB_CFGS[k], BD_CONFIG_MAX, &cfg, &cl, e, sizeof(e));
        if (r == -ENOENT)
            continue;
        if (r) {
            bd_errf(err, errlen, "%s", e);
            return -1;
        }
        char dir[BD_PATH], dev[BD_DEV], envpath[BD_PATH + 16];
        snprintf(dir, sizeof(dir), "%s", GRUB_CFGS[k]);
        *strrchr(dir, '/') = 0;
        snprintf(envpath, sizeof(envpath), "%s/grubenv", dir);
        if (bd_fs_read(fs, envpath, GRUBENV_MAX, &env, &el, e, sizeof(e)) != 0)
            env = NULL, el = 0;
        dev_name(&f->d[di], di, pi, dev, sizeof(dev));
        f->cur_disk = di, f->cur_part = pi;
        struct bd_grub_host host = {host_file_test, host_bls, f};
        struct bd_boot_spec *spec = calloc(1, sizeof(*spec));
        if (!spec) {
            free(cfg), free(env);
            bd_errf(err, errlen, "out of memory");
            return -1;
        }
        r = bd_grub_boot((const char *)cfg, cl, (const char *)env, el, dev, dir, &host, spec, e,
                         sizeof(e));
        free(cfg);
        free(env);
        if (r == 0)
            r = load_spec(f, spec, out, e, sizeof(e));
        if (r) {
            bd_errf(err, errlen, "disk %d partition %u: %s: %s", di, f->d[di].t.parts[pi].number,
                    GRUB_CFGS[k], e);
            free(spec);
            return -1;
        }
        snprintf(out->what, sizeof(out->what),
                 "disk %d partition %u (%s): %s, entry '%.120s'%s: kernel (%.100s)%.200s, %d initrd",
                 di, f->d[di].t.parts[pi].number, bd_fs_name(fs), GRUB_CFGS[k], spec->title,
                 spec->from_bls ? " (BLS)" : "", spec->kernel.dev, spec->kernel.path,
                 spec->ninitrd);
        free(spec);
        return 1;
    }
    return 0;
}

static int try_bls(struct finder *f, int di, uint32_t pi, struct bd_found *out, char *err,
                   size_t errlen)
{
    struct bd_fs *fs = part_fs(f, di, pi);
    struct bd_bls_list *l = calloc(1, sizeof(*l));
    const char *dir = NULL;
    int rc = 0;
    if (!fs || !l) {
        free(l);
        return 0;
    }
    if (bls_read(fs, l, &dir) == 0) {
        struct bd_boot_spec *s = calloc(1, sizeof(*s));
        char dev[BD_DEV], e[256];
        if (!s) {
            free(l);
            return 0;
        }
        dev_name(&f->d[di], di, pi, dev, sizeof(dev));
        f->cur_disk = di, f->cur_part = pi;
        const struct bd_bls_entry *b = &l->e[0];
        bd_grub_ref(b->linux, dev, &s->kernel);
        for (int k = 0; k < b->ninitrd; k++)
            bd_grub_ref(b->initrd[k], dev, &s->initrd[s->ninitrd++]);
        snprintf(s->cmdline, sizeof(s->cmdline), "%s", b->options);
        if (load_spec(f, s, out, e, sizeof(e)) != 0) {
            bd_errf(err, errlen, "disk %d partition %u: %s/%s.conf: %s", di,
                    f->d[di].t.parts[pi].number, dir, b->id, e);
            rc = -1;
        } else {
            snprintf(out->what, sizeof(out->what),
                     "disk %d partition %u (%s): %s/%.120s.conf: kernel %.200s, %d initrd", di,
                     f->d[di].t.parts[pi].number, bd_fs_name(fs), dir, b->id, b->linux,
                     b->ninitrd);
            rc = 1;
        }
        free(s);
    }
    free(l);
    return rc;
}

static int try_links(struct finder *f, int di, uint32_t pi, struct bd_found *out, char *err,
                     size_t errlen)
{
    static const char *const pairs[][2] = {{"/vmlinuz", "/initrd.img"},
                                           {"/boot/vmlinuz", "/boot/initrd.img"}};
    struct bd_fs *fs = part_fs(f, di, pi);
    for (size_t k = 0; fs && k < 2; k++) {
        char e[256];
        if (!bd_fs_exists(fs, pairs[k][0])) {
            /* A dangling or looping link is worth saying, not skipping. */
            uint8_t *d = NULL;
            size_t l = 0;
            int r = bd_fs_read(fs, pairs[k][0], 1, &d, &l, e, sizeof(e));
            free(d);
            if (r == -ELOOP) {
                bd_errf(err, errlen, "disk %d partition %u: %s", di, f->d[di].t.parts[pi].number,
                        e);
                return -1;
            }
            continue;
        }
        if (bd_fs_read(fs, pairs[k][0], BD_KERNEL_MAX, &out->kernel, &out->kernel_len, e,
                       sizeof(e))) {
            bd_errf(err, errlen, "disk %d partition %u: %s", di, f->d[di].t.parts[pi].number, e);
            return -1;
        }
        if (out->kernel_len == 0) {
            bd_errf(err, errlen, "disk %d partition %u: %s: the file is empty", di,
                    f->d[di].t.parts[pi].number, pairs[k][0]);
            return -1;
        }
        if (bd_fs_exists(fs, pairs[k][1]) &&
            bd_fs_read(fs, pairs[k][1], BD_INITRD_MAX, &out->initrd, &out->initrd_len, e,
                       sizeof(e))) {
            bd_errf(err, errlen, "disk %d partition %u: %s", di, f->d[di].t.parts[pi].number, e);
            return -1;
        }
        const struct bd_part *p = &f->d[di].t.parts[pi];
        if (p->partuuid[0])
            snprintf(out->cmdline, sizeof(out->cmdline), "root=PARTUUID=%s ro", p->partuuid);
        else
            snprintf(out->cmdline, sizeof(out->cmdline), "root=UUID=%s ro", fs->uuid);
        out->cmdline_made = 1;
        snprintf(out->what, sizeof(out->what), "disk %d partition %u (%s): %s%s%s", di,
                 p->number, bd_fs_name(fs), pairs[k][0], out->initrd ? " and " : "",
                 out->initrd ? pairs[k][1] : "");
        return 1;
    }
    return 0;
}

/* "GPT: 1 ext4 (no boot loader files), 14 BIOS boot, 15 vfat" */
static void describe(struct finder *f, int di, char *buf, size_t n)
{
    struct disk *d = &f->d[di];
    size_t len = 0;
    if (!d->table_ok) {
        snprintf(buf, n, "%s", d->table_err);
        return;
    }
    len += (size_t)snprintf(buf, n, "%s:", bd_table_name(d->t.kind));
    for (uint32_t p = 0; p < d->t.nparts && len < n; p++) {
        struct bd_fs *fs = part_fs(f, di, p);
        len += (size_t)snprintf(buf + len, n - len, "%s %u %s", p ? "," : "",
                                d->t.parts[p].number, fs ? bd_fs_name(fs) : d->fs_err[p]);
    }
}

static void free_disks(struct finder *f)
{
    for (int d = 0; d < f->nd; d++)
        for (uint32_t p = 0; p < BD_MAX_PARTS; p++)
            if (f->d[d].fs_state[p] == 1)
                bd_fs_close(&f->d[d].fs[p]);
    free(f->d);
}

int bd_find(const struct bd_dev *disks, int ndisks, struct bd_found *out, char *err,
            size_t errlen)
{
    struct finder f = {0};
    memset(out, 0, sizeof(*out));
    if (ndisks <= 0 || ndisks > BD_MAX_DISKS) {
        bd_errf(err, errlen, "no disk to boot from");
        return -1;
    }
    f.d = calloc((size_t)ndisks, sizeof(*f.d));
    if (!f.d) {
        bd_errf(err, errlen, "out of memory");
        return -1;
    }
    f.nd = ndisks;
    for (int d = 0; d < ndisks; d++) {
        f.d[d].dev = disks[d];
        f.d[d].table_ok = bd_part_read(&disks[d], &f.d[d].t, f.d[d].table_err,
                                       sizeof(f.d[d].table_err)) == 0;
    }
    int rc = 0;
    for (int d = 0; d < ndisks && rc == 0; d++) {
        if (!f.d[d].table_ok)
            continue;
        /* Boot loader files first on every partition, ESPs last (their
         * grub.cfg is usually a stub pointing at /boot). */
        for (int esp = 0; esp < 2 && rc == 0; esp++)
            for (uint32_t p = 0; p < f.d[d].t.nparts && rc == 0; p++)
                if (f.d[d].t.parts[p].is_esp == esp)
                    rc = try_grub(&f, d, p, out, err, errlen);
        for (uint32_t p = 0; p < f.d[d].t.nparts && rc == 0; p++)
            rc = try_bls(&f, d, p, out, err, errlen);
        for (uint32_t p = 0; p < f.d[d].t.nparts && rc == 0; p++)
            rc = try_links(&f, d, p, out, err, errlen);
    }
    if (rc == 0) {
        size_t len = (size_t)snprintf(err, errlen, "no boot loader configuration or kernel "
                                                   "found:");
        for (int d = 0; d < ndisks && len < errlen; d++) {
            char desc[512];
            describe(&f, d, desc, sizeof(desc));
            len += (size_t)snprintf(err + len, errlen - len, "%s disk %d: %s", d ? ";" : "",
                                    d, desc);
        }
    }
    free_disks(&f);
    if (rc != 1) {
        bd_found_free(out);
        return -1;
    }
    return 0;
}

void bd_found_free(struct bd_found *f)
{
    free(f->kernel);
    free(f->initrd);
    f->kernel = f->initrd = NULL;
    f->kernel_len = f->initrd_len = 0;
}
