/*
 * A small GRUB script interpreter: tokens first, then statements run (or
 * skipped) straight off the token array.  Everything is bounded: tokens,
 * variables, menu entries, nesting and the number of statements run, so a
 * hostile grub.cfg costs at most a few milliseconds.
 */
#include "bd_grub.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOK 65536u
#define MAX_VARS 128
#define VAL_MAX 1024
#define MAX_ENTRIES 128
#define MAX_ARGS 64
#define MAX_STEPS 200000u
#define MAX_DEPTH 32

enum tk { T_WORD, T_SEP, T_LB, T_RB };
struct tok {
    uint8_t kind;
    uint32_t off, len;
};

struct var {
    char name[32];
    char val[VAL_MAX];
};

struct entry {
    char title[256];
    char id[256];
    int submenu;
    uint32_t b0, b1;  /* body tokens [b0, b1) */
    int bls;          /* index into the BLS list, or -1 */
    char bls_dev[BD_DEV];
};

struct menu {
    struct entry e[MAX_ENTRIES];
    int n;
};

enum mode { COLLECT, BOOT };

struct gctx {
    const char *text;
    struct tok *t;
    uint32_t nt;
    struct var *vars;
    int nvars;
    const struct bd_grub_host *host;
    const char *env;
    size_t envlen;
    enum mode mode;
    struct menu *menu;
    struct bd_bls_list *bls;
    struct bd_boot_spec *spec;
    int have_linux;
    char *err;
    size_t errlen;
    int failed;
    unsigned steps;
    int depth;
    char argv[MAX_ARGS][VAL_MAX];
    int argc;
};

static int fail(struct gctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct gctx *c, const char *fmt, ...)
{
    if (c->failed)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    c->failed = 1;
    return -1;
}

/* Copy, cutting what does not fit (titles and ids are only shown). */
static void scopy(char *dst, size_t n, const char *src)
{
    size_t l = strnlen(src, n - 1);
    memcpy(dst, src, l);
    dst[l] = 0;
}

/* ---- tokens -------------------------------------------------------------- */

static int tokenize(struct gctx *c, const char *s, size_t n)
{
    size_t i = 0;
    c->nt = 0;
    while (i < n) {
        char ch = s[i];
        if (ch == ' ' || ch == '\t' || ch == '\r') {
            i++;
            continue;
        }
        if (ch == '\\' && i + 1 < n && s[i + 1] == '\n') {
            i += 2;
            continue;
        }
        if (c->nt >= MAX_TOK)
            return fail(c, "grub.cfg has more than %u tokens", MAX_TOK);
        struct tok *t = &c->t[c->nt];
        t->off = (uint32_t)i;
        if (ch == '\n' || ch == ';') {
            t->kind = T_SEP, t->len = 1, i++, c->nt++;
            continue;
        }
        if (ch == '#') {
            while (i < n && s[i] != '\n')
                i++;
            continue;
        }
        if ((ch == '{' || ch == '}') &&
            (i + 1 == n || strchr(" \t\r\n;", s[i + 1]))) {
            t->kind = ch == '{' ? T_LB : T_RB, t->len = 1, i++, c->nt++;
            continue;
        }
        t->kind = T_WORD;
        while (i < n && !strchr(" \t\r\n;", s[i])) {
            if (s[i] == '\\') {
                i += i + 1 < n ? 2 : 1;
            } else if (s[i] == '\'' || s[i] == '"') {
                char q = s[i++];
                while (i < n && s[i] != q) {
                    if (q == '"' && s[i] == '\\' && i + 1 < n)
                        i++;
                    i++;
                }
                if (i >= n)
                    return fail(c, "grub.cfg: unterminated %c quote", q);
                i++;
            } else {
                i++;
            }
        }
        t->len = (uint32_t)(i - t->off);
        c->nt++;
    }
    return 0;
}

static int word_is(const struct gctx *c, uint32_t i, const char *w)
{
    return i < c->nt && c->t[i].kind == T_WORD && c->t[i].len == strlen(w) &&
           memcmp(c->text + c->t[i].off, w, c->t[i].len) == 0;
}

/* ---- variables and expansion -------------------------------------------- */

static const char *getvar(struct gctx *c, const char *name)
{
    for (int i = 0; i < c->nvars; i++)
        if (!strcmp(c->vars[i].name, name))
            return c->vars[i].val;
    return NULL;
}

static void setvar(struct gctx *c, const char *name, const char *val)
{
    size_t nl = strlen(name);
    if (nl == 0 || nl >= sizeof(c->vars[0].name))
        return;
    struct var *v = NULL;
    for (int i = 0; i < c->nvars; i++)
        if (!strcmp(c->vars[i].name, name))
            v = &c->vars[i];
    if (!v) {
        if (c->nvars >= MAX_VARS)
            return; /* a script with more variables loses the rest */
        v = &c->vars[c->nvars++];
        memcpy(v->name, name, nl + 1);
    }
    scopy(v->val, sizeof(v->val), val);
}

static void unsetvar(struct gctx *c, const char *name)
{
    for (int i = 0; i < c->nvars; i++)
        if (!strcmp(c->vars[i].name, name)) {
            c->vars[i] = c->vars[--c->nvars];
            return;
        }
}

struct out {
    char *p;
    size_t n, len;
};

static void put(struct out *o, char ch)
{
    if (o->len + 1 < o->n)
        o->p[o->len++] = ch;
    o->p[o->len] = 0;
}

static void puts_(struct out *o, const char *s)
{
    while (s && *s)
        put(o, *s++);
}

/* $name or ${name} at s[*i] (s[*i] == '$'). */
static void expand_var(struct gctx *c, const char *s, size_t n, size_t *i, struct out *o)
{
    char name[32];
    size_t k = 0, j = *i + 1;
    if (j < n && s[j] == '{') {
        j++;
        while (j < n && s[j] != '}') {
            if (k + 1 < sizeof(name))
                name[k++] = s[j];
            j++;
        }
        j++; /* past '}' (or the end) */
    } else {
        while (j < n && (isalnum((unsigned char)s[j]) || s[j] == '_' || s[j] == '?')) {
            if (k + 1 < sizeof(name))
                name[k++] = s[j];
            j++;
        }
    }
    name[k] = 0;
    *i = j;
    if (k == 0) {
        put(o, '$');
        return;
    }
    puts_(o, getvar(c, name));
}

/* One word, quotes removed and variables expanded; *quoted set when any
 * part was quoted (an empty quoted word is still a word). */
static size_t expand(struct gctx *c, const char *s, size_t n, char *dst, size_t dn, int *quoted)
{
    struct out o = {dst, dn, 0};
    dst[0] = 0;
    *quoted = 0;
    for (size_t i = 0; i < n;) {
        char ch = s[i];
        if (ch == '\\' && i + 1 < n) {
            put(&o, s[i + 1]);
            i += 2;
        } else if (ch == '\'') {
            *quoted = 1;
            for (i++; i < n && s[i] != '\''; i++)
                put(&o, s[i]);
            i++;
        } else if (ch == '"') {
            *quoted = 1;
            for (i++; i < n && s[i] != '"';) {
                if (s[i] == '\\' && i + 1 < n && strchr("$\"\\", s[i + 1])) {
                    put(&o, s[i + 1]);
                    i += 2;
                } else if (s[i] == '$') {
                    expand_var(c, s, n, &i, &o);
                } else {
                    put(&o, s[i++]);
                }
            }
            i++;
        } else if (ch == '$') {
            expand_var(c, s, n, &i, &o);
        } else {
            put(&o, ch);
            i++;
        }
    }
    return o.len;
}

/* The words of a command, tokens [i, end), into c->argv. */
static void gather(struct gctx *c, uint32_t i, uint32_t end)
{
    c->argc = 0;
    for (; i < end && c->argc < MAX_ARGS; i++) {
        int quoted;
        const struct tok *t = &c->t[i];
        size_t l = expand(c, c->text + t->off, t->len, c->argv[c->argc], VAL_MAX, &quoted);
        if (l || quoted)
            c->argc++;
    }
}

/* grubenv: "# GRUB Environment Block" then name=value lines, '#' padding. */
static void load_env(struct gctx *c, int nnames, char names[][VAL_MAX])
{
    const char *s = c->env;
    size_t n = c->envlen, i = 0;
    while (s && i < n) {
        size_t e = i;
        while (e < n && s[e] != '\n')
            e++;
        const char *eq = memchr(s + i, '=', e - i);
        if (s[i] != '#' && eq) {
            char name[32], val[VAL_MAX];
            size_t nl = (size_t)(eq - (s + i)), vl = e - (size_t)(eq - s) - 1;
            if (nl > 0 && nl < sizeof(name) && vl < sizeof(val)) {
                memcpy(name, s + i, nl);
                name[nl] = 0;
                /* grubenv escapes '\' and newlines with '\' */
                size_t k = 0;
                for (size_t j = 0; j < vl; j++) {
                    char ch = eq[1 + j];
                    if (ch == '\\' && j + 1 < vl)
                        ch = eq[1 + ++j] == 'n' ? '\n' : eq[1 + j];
                    val[k++] = ch;
                }
                val[k] = 0;
                int want = nnames == 0;
                for (int j = 0; j < nnames; j++)
                    want |= !strcmp(names[j], name);
                if (want)
                    setvar(c, name, val);
            }
        }
        i = e + 1;
    }
}

/* ---- commands ------------------------------------------------------------ */

void bd_grub_ref(const char *word, const char *dflt, struct bd_file_ref *ref)
{
    const char *p = word;
    memset(ref, 0, sizeof(*ref));
    if (p[0] == '(') {
        const char *close = strchr(p, ')');
        if (close) {
            size_t dl = (size_t)(close - p - 1);
            if (dl >= sizeof(ref->dev))
                dl = sizeof(ref->dev) - 1;
            memcpy(ref->dev, p + 1, dl);
            p = close + 1;
        }
    }
    if (!ref->dev[0])
        scopy(ref->dev, sizeof(ref->dev), dflt ? dflt : "");
    snprintf(ref->path, sizeof(ref->path), "%s%s", p[0] == '/' ? "" : "/", p);
}

static int file_test(struct gctx *c, const char *word, int nonempty)
{
    struct bd_file_ref r;
    bd_grub_ref(word, getvar(c, "root"), &r);
    return c->host && c->host->file_test && c->host->file_test(c->host->opaque, r.dev, r.path,
                                                                  nonempty);
}

/* test / [ ... ]: 0 true, 1 false. */
static int eval_test(struct gctx *c, int a, int b)
{
    for (int k = a; k < b; k++) { /* -o binds loosest, then -a */
        if (!strcmp(c->argv[k], "-o"))
            return (eval_test(c, a, k) == 0 || eval_test(c, k + 1, b) == 0) ? 0 : 1;
    }
    for (int k = a; k < b; k++) {
        if (!strcmp(c->argv[k], "-a"))
            return (eval_test(c, a, k) == 0 && eval_test(c, k + 1, b) == 0) ? 0 : 1;
    }
    int n = b - a;
    if (n >= 1 && !strcmp(c->argv[a], "!"))
        return eval_test(c, a + 1, b) == 0 ? 1 : 0;
    if (n == 0)
        return 1;
    if (n == 1)
        return c->argv[a][0] ? 0 : 1;
    const char *x = c->argv[a], *y = c->argv[a + 1];
    if (n == 2) {
        if (!strcmp(x, "-n"))
            return y[0] ? 0 : 1;
        if (!strcmp(x, "-z"))
            return y[0] ? 1 : 0;
        if (!strcmp(x, "-e") || !strcmp(x, "-f") || !strcmp(x, "-d"))
            return file_test(c, y, 0) ? 0 : 1;
        if (!strcmp(x, "-s"))
            return file_test(c, y, 1) ? 0 : 1;
        return 1;
    }
    if (n == 3) {
        const char *z = c->argv[a + 2];
        if (!strcmp(y, "=") || !strcmp(y, "=="))
            return strcmp(x, z) ? 1 : 0;
        if (!strcmp(y, "!="))
            return strcmp(x, z) ? 0 : 1;
        if (!strcmp(y, "<"))
            return strcmp(x, z) < 0 ? 0 : 1;
        if (!strcmp(y, ">"))
            return strcmp(x, z) > 0 ? 0 : 1;
        long long l = strtoll(x, NULL, 10), r = strtoll(z, NULL, 10);
        if (!strcmp(y, "-eq")) return l == r ? 0 : 1;
        if (!strcmp(y, "-ne")) return l != r ? 0 : 1;
        if (!strcmp(y, "-lt")) return l < r ? 0 : 1;
        if (!strcmp(y, "-le")) return l <= r ? 0 : 1;
        if (!strcmp(y, "-gt")) return l > r ? 0 : 1;
        if (!strcmp(y, "-ge")) return l >= r ? 0 : 1;
    }
    return 1;
}

static int cmd_search(struct gctx *c)
{
    const char *kind = "file", *var = "root", *key = NULL;
    const char *cmd = c->argv[0];
    if (!strcmp(cmd, "search.fs_uuid"))
        kind = "fsuuid";
    else if (!strcmp(cmd, "search.fs_label"))
        kind = "fslabel";
    for (int k = 1; k < c->argc; k++) {
        const char *a = c->argv[k];
        if (!strcmp(a, "--fs-uuid") || !strcmp(a, "-u"))
            kind = "fsuuid";
        else if (!strcmp(a, "--label") || !strcmp(a, "-l"))
            kind = "fslabel";
        else if (!strcmp(a, "--file") || !strcmp(a, "-f"))
            kind = "file";
        else if (!strncmp(a, "--set=", 6))
            var = a + 6;
        else if ((!strcmp(a, "--set") || !strcmp(a, "-s")) && k + 1 < c->argc)
            var = c->argv[++k];
        else if (a[0] == '-')
            continue; /* --no-floppy, --hint*=... */
        else if (!key)
            key = a;
        else if (cmd[6] == '.') /* search.fs_uuid UUID VAR */
            var = a;
    }
    if (!key)
        return 1;
    char dev[BD_DEV];
    snprintf(dev, sizeof(dev), "%s=%.150s", kind, key); /* kind is at most 7 */
    setvar(c, var, dev);
    return 0;
}

static void add_initrd(struct gctx *c, const char *word)
{
    struct bd_boot_spec *s = c->spec;
    if (s->ninitrd < BD_MAX_INITRD)
        bd_grub_ref(word, getvar(c, "root"), &s->initrd[s->ninitrd++]);
}

static int run_command(struct gctx *c)
{
    const char *cmd = c->argv[0];
    if (c->argc == 0)
        return 0;
    const char *eq = strchr(cmd, '=');
    if (eq && (isalpha((unsigned char)cmd[0]) || cmd[0] == '_')) {
        char name[32];
        size_t nl = (size_t)(eq - cmd);
        if (nl < sizeof(name)) {
            memcpy(name, cmd, nl);
            name[nl] = 0;
            setvar(c, name, eq + 1);
        }
        return 0;
    }
    if (!strcmp(cmd, "set")) {
        for (int k = 1; k < c->argc; k++) {
            char *e = strchr(c->argv[k], '=');
            if (e) {
                *e = 0;
                setvar(c, c->argv[k], e + 1);
            }
        }
        return 0;
    }
    if (!strcmp(cmd, "unset")) {
        for (int k = 1; k < c->argc; k++)
            unsetvar(c, c->argv[k]);
        return 0;
    }
    if (!strcmp(cmd, "load_env")) {
        int first = 1;
        while (first < c->argc && c->argv[first][0] == '-')
            first += !strcmp(c->argv[first], "-f") || !strcmp(c->argv[first], "--file") ? 2 : 1;
        if (first > c->argc)
            first = c->argc;
        load_env(c, c->argc - first, &c->argv[first]);
        return 0;
    }
    if (!strcmp(cmd, "true"))
        return 0;
    if (!strcmp(cmd, "false"))
        return 1;
    if (!strcmp(cmd, "[")) {
        int b = c->argc;
        if (b > 1 && !strcmp(c->argv[b - 1], "]"))
            b--;
        return eval_test(c, 1, b);
    }
    if (!strcmp(cmd, "test"))
        return eval_test(c, 1, c->argc);
    if (!strncmp(cmd, "search", 6) && (cmd[6] == 0 || cmd[6] == '.'))
        return cmd_search(c);
    /* Probes that fail on a machine with no display and no keyboard. */
    if (!strcmp(cmd, "loadfont") || !strcmp(cmd, "keystatus") || !strcmp(cmd, "background_image"))
        return 1;
    if (c->mode == COLLECT && !strcmp(cmd, "blscfg")) {
        const char *root = getvar(c, "root");
        if (!c->host || !c->host->bls || c->host->bls(c->host->opaque, root ? root : "", c->bls))
            return 1;
        for (int k = 0; k < c->bls->n && c->menu->n < MAX_ENTRIES; k++) {
            struct entry *e = &c->menu->e[c->menu->n++];
            memset(e, 0, sizeof(*e));
            scopy(e->title, sizeof(e->title), c->bls->e[k].title);
            scopy(e->id, sizeof(e->id), c->bls->e[k].id);
            scopy(e->bls_dev, sizeof(e->bls_dev), root ? root : "");
            e->bls = k;
        }
        return 0;
    }
    if (c->mode != BOOT)
        return 0;
    if (!strcmp(cmd, "linux") || !strcmp(cmd, "linux16") || !strcmp(cmd, "linuxefi")) {
        if (c->argc < 2)
            return fail(c, "the entry's '%s' line names no kernel", cmd);
        struct bd_boot_spec *s = c->spec;
        bd_grub_ref(c->argv[1], getvar(c, "root"), &s->kernel);
        struct out o = {s->cmdline, sizeof(s->cmdline), 0};
        s->cmdline[0] = 0;
        for (int k = 2; k < c->argc; k++) {
            if (o.len)
                put(&o, ' ');
            puts_(&o, c->argv[k]);
        }
        s->ninitrd = 0;
        c->have_linux = 1;
        return 0;
    }
    if (!strcmp(cmd, "initrd") || !strcmp(cmd, "initrd16") || !strcmp(cmd, "initrdefi")) {
        c->spec->ninitrd = 0;
        for (int k = 1; k < c->argc; k++)
            add_initrd(c, c->argv[k]);
        return 0;
    }
    if (!strcmp(cmd, "chainloader"))
        return fail(c, "the default entry chain-loads another boot loader (%s)",
                    c->argc > 1 ? c->argv[1] : "");
    if (!strcmp(cmd, "multiboot") || !strcmp(cmd, "multiboot2"))
        return fail(c, "the default entry boots through %s (a hypervisor such as Xen)", cmd);
    return 0;
}

/* ---- statements ---------------------------------------------------------- */

static uint32_t list(struct gctx *c, uint32_t i, uint32_t end, int run, int *status,
                     const char *const *stops);

/* Index of the T_RB matching the T_LB at i, or end. */
static uint32_t match_brace(const struct gctx *c, uint32_t i, uint32_t end)
{
    int depth = 0;
    for (; i < end; i++) {
        if (c->t[i].kind == T_LB)
            depth++;
        else if (c->t[i].kind == T_RB && --depth == 0)
            return i;
    }
    return end;
}

static uint32_t if_stmt(struct gctx *c, uint32_t i, uint32_t end, int run, int *status)
{
    static const char *const then_[] = {"then", NULL};
    static const char *const branch[] = {"elif", "else", "fi", NULL};
    static const char *const fi[] = {"fi", NULL};
    int st = 1, done = 0;
    i = list(c, i + 1, end, run, &st, then_);
    if (!word_is(c, i, "then"))
        return fail(c, "grub.cfg: 'if' without 'then'"), end;
    int taken = run && st == 0;
    i = list(c, i + 1, end, taken, status, branch);
    done = taken;
    while (!c->failed && word_is(c, i, "elif")) {
        st = 1;
        i = list(c, i + 1, end, run && !done, &st, then_);
        if (!word_is(c, i, "then"))
            return fail(c, "grub.cfg: 'elif' without 'then'"), end;
        taken = run && !done && st == 0;
        i = list(c, i + 1, end, taken, status, branch);
        done |= taken;
    }
    if (!c->failed && word_is(c, i, "else"))
        i = list(c, i + 1, end, run && !done, status, fi);
    if (!word_is(c, i, "fi"))
        return fail(c, "grub.cfg: 'if' without 'fi'"), end;
    return i + 1;
}

/* menuentry/submenu TITLE [options] { body } */
static uint32_t entry_stmt(struct gctx *c, uint32_t i, uint32_t end, int run)
{
    int submenu = word_is(c, i, "submenu");
    uint32_t w0 = i, lb = i;
    while (lb < end && c->t[lb].kind == T_WORD)
        lb++;
    if (lb >= end || c->t[lb].kind != T_LB)
        return fail(c, "grub.cfg: '%s' without '{'", submenu ? "submenu" : "menuentry"), end;
    uint32_t rb = match_brace(c, lb, end);
    if (rb >= end)
        return fail(c, "grub.cfg: '%s' without '}'", submenu ? "submenu" : "menuentry"), end;
    if (run && c->mode == COLLECT && c->menu->n < MAX_ENTRIES) {
        gather(c, w0, lb);
        struct entry *e = &c->menu->e[c->menu->n++];
        memset(e, 0, sizeof(*e));
        e->submenu = submenu;
        e->bls = -1;
        e->b0 = lb + 1;
        e->b1 = rb;
        if (c->argc > 1)
            scopy(e->title, sizeof(e->title), c->argv[1]);
        for (int k = 2; k + 1 < c->argc; k++)
            if (!strcmp(c->argv[k], "--id"))
                scopy(e->id, sizeof(e->id), c->argv[k + 1]);
        for (int k = 2; k < c->argc; k++)
            if (!strncmp(c->argv[k], "--id=", 5))
                scopy(e->id, sizeof(e->id), c->argv[k] + 5);
    }
    return rb + 1;
}

static uint32_t skip_loop(struct gctx *c, uint32_t i, uint32_t end)
{
    int depth = 0;
    for (; i < end; i++) {
        if (word_is(c, i, "do"))
            depth++;
        else if (word_is(c, i, "done") && --depth <= 0)
            return i + 1;
    }
    return end;
}

static uint32_t stmt(struct gctx *c, uint32_t i, uint32_t end, int run, int *status)
{
    if (++c->steps > MAX_STEPS)
        return fail(c, "grub.cfg is too complex (more than %u statements)", MAX_STEPS), end;
    if (c->t[i].kind == T_LB) { /* a bare block: not GRUB syntax we need */
        uint32_t rb = match_brace(c, i, end);
        return rb < end ? rb + 1 : end;
    }
    if (word_is(c, i, "if")) {
        if (++c->depth > MAX_DEPTH)
            return fail(c, "grub.cfg nests deeper than %d", MAX_DEPTH), end;
        uint32_t r = if_stmt(c, i, end, run, status);
        c->depth--;
        return r;
    }
    if (word_is(c, i, "menuentry") || word_is(c, i, "submenu"))
        return entry_stmt(c, i, end, run);
    if (word_is(c, i, "function")) {
        uint32_t lb = i + 1;
        while (lb < end && c->t[lb].kind == T_WORD)
            lb++;
        uint32_t rb = lb < end && c->t[lb].kind == T_LB ? match_brace(c, lb, end) : end;
        return rb < end ? rb + 1 : end;
    }
    if (word_is(c, i, "for") || word_is(c, i, "while") || word_is(c, i, "until"))
        return skip_loop(c, i, end);
    uint32_t e = i;
    while (e < end && c->t[e].kind == T_WORD)
        e++;
    if (run) {
        gather(c, i, e);
        *status = run_command(c);
    }
    return e;
}

static int is_stop(const struct gctx *c, uint32_t i, const char *const *stops)
{
    for (; stops && *stops; stops++)
        if (word_is(c, i, *stops))
            return 1;
    return 0;
}

static uint32_t list(struct gctx *c, uint32_t i, uint32_t end, int run, int *status,
                     const char *const *stops)
{
    for (;;) {
        while (i < end && c->t[i].kind == T_SEP)
            i++;
        if (i >= end || c->failed)
            return end;
        if (is_stop(c, i, stops))
            return i;
        if (c->t[i].kind == T_RB)
            return i + 1; /* a stray '}': GRUB would complain; we go on */
        i = stmt(c, i, end, run, status);
    }
}

/* ---- the default entry --------------------------------------------------- */

static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

static int find_entry(const struct menu *m, const char *want)
{
    if (all_digits(want)) {
        long k = strtol(want, NULL, 10);
        return k < m->n ? (int)k : -1;
    }
    for (int k = 0; k < m->n; k++)
        if (m->e[k].id[0] && !strcmp(m->e[k].id, want))
            return k;
    for (int k = 0; k < m->n; k++)
        if (!strcmp(m->e[k].title, want))
            return k;
    return -1;
}

int bd_grub_boot(const char *text, size_t len, const char *grubenv, size_t envlen,
                 const char *dev, const char *dir, const struct bd_grub_host *host,
                 struct bd_boot_spec *spec, char *err, size_t errlen)
{
    struct gctx *c = calloc(1, sizeof(*c));
    struct menu *top = calloc(1, sizeof(*top)), *sub = calloc(1, sizeof(*sub));
    struct bd_bls_list *bls = calloc(1, sizeof(*bls));
    struct var *vars = calloc(MAX_VARS, sizeof(*vars));
    struct tok *toks = calloc(MAX_TOK, sizeof(*toks));
    int rc = -1;
    memset(spec, 0, sizeof(*spec));
    if (!c || !top || !sub || !bls || !vars || !toks) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    c->text = text;
    c->t = toks;
    c->vars = vars;
    c->host = host;
    c->env = grubenv;
    c->envlen = grubenv ? envlen : 0;
    c->bls = bls;
    c->spec = spec;
    c->err = err;
    c->errlen = errlen;
    if (tokenize(c, text, len) < 0)
        goto out;
    /* What GRUB has set before it reads grub.cfg on a BIOS machine. */
    char v[BD_PATH + BD_DEV + 4];
    setvar(c, "root", dev);
    snprintf(v, sizeof(v), "(%s)%s", dev, dir);
    setvar(c, "prefix", v);
    setvar(c, "config_directory", v);
    setvar(c, "grub_platform", "pc");
    setvar(c, "grub_cpu", "i386");
    static const char *const features[] = {
        "feature_menuentry_id", "feature_default_font_path", "feature_all_video_module",
        "feature_platform_search_hint", "feature_timeout_style", "feature_200_final"};
    for (size_t k = 0; k < sizeof(features) / sizeof(features[0]); k++)
        setvar(c, features[k], "y");

    int status = 0;
    c->mode = COLLECT;
    c->menu = top;
    list(c, 0, c->nt, 1, &status, NULL);
    if (c->failed)
        goto out;
    if (top->n == 0) {
        snprintf(err, errlen, "grub.cfg has no menu entries");
        goto out;
    }
    const char *def = getvar(c, "default");
    char want[VAL_MAX];
    scopy(want, sizeof(want), def && def[0] ? def : "0");

    /* "a>b>c": a path through submenus, by number, id or title. */
    const struct menu *m = top;
    struct entry chosen;
    char *save = NULL, *part = strtok_r(want, ">", &save);
    int k = -1;
    for (int level = 0; part && level < 8; level++) {
        k = find_entry(m, part);
        if (k < 0) {
            /* GRUB boots the first entry when the default names none. */
            m = top;
            k = 0;
            break;
        }
        part = strtok_r(NULL, ">", &save);
        if (!m->e[k].submenu || !part)
            break;
        /* Enter the submenu: its body runs now, adding its own entries. */
        struct entry se = m->e[k];
        sub->n = 0;
        c->menu = sub;
        list(c, se.b0, se.b1, 1, &status, NULL);
        if (c->failed)
            goto out;
        m = sub;
        k = -1;
    }
    if (k < 0)
        k = 0;
    if (k >= m->n) {
        snprintf(err, errlen, "grub.cfg: the default entry '%s' names no entry",
                 def ? def : "0");
        goto out;
    }
    chosen = m->e[k];
    if (chosen.submenu) {
        snprintf(err, errlen, "grub.cfg: the default '%s' is a submenu, not an entry",
                 def ? def : "0");
        goto out;
    }
    scopy(spec->title, sizeof(spec->title), chosen.title);
    if (chosen.bls >= 0) {
        const struct bd_bls_entry *b = &bls->e[chosen.bls];
        int q;
        spec->from_bls = 1;
        bd_grub_ref(b->linux, chosen.bls_dev, &spec->kernel);
        for (int j = 0; j < b->ninitrd && j < BD_MAX_INITRD; j++)
            bd_grub_ref(b->initrd[j], chosen.bls_dev, &spec->initrd[spec->ninitrd++]);
        /* options may name grubenv variables ($kernelopts on Fedora). */
        expand(c, b->options, strlen(b->options), spec->cmdline, sizeof(spec->cmdline), &q);
        rc = 0;
        goto out;
    }
    c->mode = BOOT;
    list(c, chosen.b0, chosen.b1, 1, &status, NULL);
    if (c->failed)
        goto out;
    if (!c->have_linux) {
        snprintf(err, errlen, "grub.cfg: the default entry '%s' has no linux line",
                 chosen.title);
        goto out;
    }
    rc = 0;
out:
    free(toks);
    free(vars);
    free(bls);
    free(sub);
    free(top);
    free(c);
    return rc;
}
