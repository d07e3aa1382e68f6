#include "cli_opts.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

void cli_err_vset(const struct cli_err *e, const char *fmt, va_list ap)
{
    if (!e || !e->buf || e->len == 0)
        return;
    int n = 0;
    if (e->ctx && e->ctx[0])
        n = snprintf(e->buf, e->len, "%s: ", e->ctx);
    if (n < 0)
        n = 0;
    if ((size_t)n >= e->len)
        return; /* the prefix alone filled the buffer; it is NUL-terminated */
    vsnprintf(e->buf + n, e->len - (size_t)n, fmt, ap);
}

void cli_err_set(const struct cli_err *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_err_vset(e, fmt, ap);
    va_end(ap);
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Copy [p, p+n) without double quotes, optionally trimming blanks. */
static char *dup_unquoted(const char *p, size_t n, int trim)
{
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] != '"')
            d[k++] = p[i];
    d[k] = '\0';
    if (trim) {
        size_t b = 0;
        while (b < k && is_blank(d[b]))
            b++;
        while (k > b && is_blank(d[k - 1]))
            k--;
        memmove(d, d + b, k - b);
        d[k - b] = '\0';
    }
    return d;
}

static const struct cli_opt_spec *spec_find(const struct cli_opt_spec *spec,
                                            const char *key)
{
    for (; spec->key; spec++)
        if (strcmp(spec->key, key) == 0)
            return spec;
    return NULL;
}

/* Semantic checks of one freshly split item against the spec. */
static int check_item(const struct cli_opts *o, const struct cli_opt *it,
                      const struct cli_opt_spec *spec, const char *s,
                      const struct cli_err *e)
{
    if (it->key[0] == '\0') {
        cli_err_set(e, "missing key before '=' in '%s'", s);
        return -1;
    }
    if (!spec)
        return 0;
    const struct cli_opt_spec *sp = spec_find(spec, it->key);
    if (!sp) {
        cli_err_set(e, "unknown key '%s' in '%s'", it->key, s);
        return -1;
    }
    if (sp->kind == CLI_OPT_FLAG && it->value) {
        cli_err_set(e, "'%s' takes no value, got '%s' in '%s'", it->key, it->raw, s);
        return -1;
    }
    if (sp->kind != CLI_OPT_FLAG && !it->value) {
        cli_err_set(e, "'%s' needs a value (%s=...) in '%s'", it->key, it->key, s);
        return -1;
    }
    if (sp->kind == CLI_OPT_VALUE && it->value[0] == '\0') {
        cli_err_set(e, "empty value for '%s' in '%s'", it->key, s);
        return -1;
    }
    for (size_t i = 0; i < o->n; i++) {
        if (&o->items[i] != it && strcmp(o->items[i].key, it->key) == 0) {
            cli_err_set(e, "duplicate key '%s' in '%s'", it->key, s);
            return -1;
        }
    }
    return 0;
}

/* Fill one item from the token [p, p+n); the caller has counted o->n. */
static int split_item(struct cli_opt *it, const char *p, size_t n)
{
    /* The key ends at the first '=' outside quotes, so a quoted key may
     * contain '=' and a value may contain any number of them. */
    size_t eq = n;
    int quoted = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"')
            quoted = !quoted;
        else if (p[i] == '=' && !quoted) {
            eq = i;
            break;
        }
    }
    it->raw = malloc(n + 1);
    it->key = dup_unquoted(p, eq, 1);
    it->value = eq < n ? dup_unquoted(p + eq + 1, n - eq - 1, 1) : NULL;
    if (!it->raw || !it->key || (eq < n && !it->value))
        return -1;
    memcpy(it->raw, p, n);
    it->raw[n] = '\0';
    return 0;
}

int cli_opts_parse(struct cli_opts *o, const char *s,
                   const struct cli_opt_spec *spec, const struct cli_err *e)
{
    o->n = 0;
    if (!s)
        s = "";
    size_t b = 0, end = strlen(s);
    while (b < end && is_blank(s[b]))
        b++;
    while (end > b && is_blank(s[end - 1]))
        end--;
    if (b == end)
        return 0;

    /* Pass 1: balance and token count, so nothing is allocated for input
     * that is going to be rejected anyway. */
    size_t depth = 0, ntok = 1;
    int quoted = 0;
    for (size_t i = b; i < end; i++) {
        char c = s[i];
        if (c == '"') {
            quoted = !quoted;
        } else if (quoted) {
            continue;
        } else if (c == '[') {
            depth++;
        } else if (c == ']') {
            if (depth == 0) {
                cli_err_set(e, "unbalanced ']' in '%s'", s);
                return -1;
            }
            depth--;
        } else if (c == ',' && depth == 0) {
            ntok++;
        }
    }
    if (quoted || depth) {
        cli_err_set(e, "unbalanced %s in '%s'", quoted ? "quotes" : "'['", s);
        return -1;
    }
    if (ntok > CLI_OPTS_MAX) {
        cli_err_set(e, "more than %d sub-options in '%s'", CLI_OPTS_MAX, s);
        return -1;
    }

    /* Pass 2: split.  Same state machine, now known to be balanced. */
    size_t start = b;
    depth = 0;
    quoted = 0;
    for (size_t i = b; i <= end; i++) {
        char c = i < end ? s[i] : ',';
        if (c == '"')
            quoted = !quoted;
        else if (!quoted && c == '[')
            depth++;
        else if (!quoted && c == ']')
            depth--;
        if (c != ',' || quoted || depth)
            continue;
        if (i == start) {
            cli_err_set(e, "empty sub-option in '%s'", s);
            goto fail;
        }
        struct cli_opt *it = &o->items[o->n++];
        memset(it, 0, sizeof(*it));
        if (split_item(it, s + start, i - start) < 0) {
            cli_err_set(e, "out of memory");
            goto fail;
        }
        if (check_item(o, it, spec, s, e) < 0)
            goto fail;
        start = i + 1;
    }
    return 0;

fail:
    cli_opts_free(o);
    return -1;
}

void cli_opts_free(struct cli_opts *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->items[i].key);
        free(o->items[i].value);
        free(o->items[i].raw);
    }
    o->n = 0;
}

const struct cli_opt *cli_opts_find(const struct cli_opts *o, const char *key)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->items[i].key, key) == 0)
            return &o->items[i];
    return NULL;
}

int cli_opts_get_bool(const struct cli_opts *o, const char *key, int *dst,
                      const struct cli_err *e)
{
    const struct cli_opt *it = cli_opts_find(o, key);
    if (!it)
        return 0;
    if (!it->value || cli_parse_bool(it->value, dst) < 0) {
        cli_err_set(e, "%s must be on|off|true|false, got '%s'", key,
                    it->value ? it->value : it->raw);
        return -1;
    }
    return 0;
}

int cli_opts_get_u32(const struct cli_opts *o, const char *key, uint32_t min,
                     uint32_t max, uint32_t *dst, const struct cli_err *e)
{
    const struct cli_opt *it = cli_opts_find(o, key);
    if (!it)
        return 0;
    uint32_t v;
    if (!it->value || cli_parse_u32(it->value, &v) < 0 || v < min || v > max) {
        cli_err_set(e, "%s must be between %u and %u, got '%s'", key, min, max,
                    it->value ? it->value : it->raw);
        return -1;
    }
    *dst = v;
    return 0;
}

int cli_parse_bool(const char *s, int *out)
{
    if (!s)
        return -1;
    if (strcasecmp(s, "on") == 0 || strcasecmp(s, "true") == 0) {
        *out = 1;
        return 0;
    }
    if (strcasecmp(s, "off") == 0 || strcasecmp(s, "false") == 0) {
        *out = 0;
        return 0;
    }
    return -1;
}

int cli_parse_u32(const char *s, uint32_t *out)
{
    if (!s || !*s)
        return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX)
            return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int cli_parse_size(const char *s, uint64_t *out)
{
    if (!s || !out || *s < '0' || *s > '9')
        return -1;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    unsigned shift;
    switch (*s) {
    case '\0': shift = 0; break;
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    default: return -1;
    }
    if (shift && s[1] != '\0')
        return -1;
    if (v == 0 || v > (UINT64_MAX >> shift))
        return -1;
    *out = v << shift;
    return 0;
}
