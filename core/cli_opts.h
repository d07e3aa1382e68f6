/*
 * Cloud Hypervisor-style sub-option strings: "key=value,flag,key2=value2".
 *
 * Shared by the command line and (later) the REST API so both accept the
 * same syntax and report the same errors.  Like Cloud Hypervisor, commas
 * inside [...] or "..." do not split, double quotes are removed from keys
 * and values, and blanks around the whole string and around values are
 * trimmed.  Unlike it, duplicate keys and empty values are errors rather
 * than silently "last wins" / "unset".
 */
#ifndef NIMBUS_CLI_OPTS_H
#define NIMBUS_CLI_OPTS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Caps the work a hostile string can cause (keys are looked up linearly). */
#define CLI_OPTS_MAX 64

/* Where errors go.  Messages read "<ctx>: <what>", e.g. "--disk: ...". */
struct cli_err {
    const char *ctx;
    char *buf; /* may be NULL */
    size_t len;
};

void cli_err_set(const struct cli_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cli_err_vset(const struct cli_err *e, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

enum cli_opt_kind {
    CLI_OPT_VALUE, /* must be written key=value, value non-empty */
    CLI_OPT_FLAG,  /* must be written bare: "tty", "off" */
    CLI_OPT_EMPTY_OK, /* key=value where the value may be empty: "tap=" */
};

struct cli_opt_spec {
    const char *key; /* NULL ends the table */
    enum cli_opt_kind kind;
};

struct cli_opt {
    char *key;   /* before the first '=', quotes removed */
    char *value; /* after it, quotes removed, trimmed; NULL for a bare key */
    char *raw;   /* the token as written (quotes kept), for pass-through */
};

struct cli_opts {
    struct cli_opt items[CLI_OPTS_MAX];
    size_t n;
};

/*
 * Split `s` into o (which needs no initialisation).  With a spec, every key
 * must be in it, appear once and have the right kind; with spec == NULL any
 * key is accepted (plugin pass-through).  An empty or all-blank string gives
 * zero items.  On error o holds nothing and needs no cli_opts_free.
 * Returns 0 or -1.
 */
int cli_opts_parse(struct cli_opts *o, const char *s,
                   const struct cli_opt_spec *spec, const struct cli_err *e);
void cli_opts_free(struct cli_opts *o);

/* The first item with this key, or NULL. */
const struct cli_opt *cli_opts_find(const struct cli_opts *o, const char *key);

/*
 * Typed lookups: if the key is absent *dst is left alone and 0 returned;
 * if present and valid *dst is set and 0 returned; otherwise -1 with an
 * error naming the key and the bad value.
 */
int cli_opts_get_bool(const struct cli_opts *o, const char *key, int *dst,
                      const struct cli_err *e);
int cli_opts_get_u32(const struct cli_opts *o, const char *key, uint32_t min,
                     uint32_t max, uint32_t *dst, const struct cli_err *e);

/* on|off|true|false, any case.  Returns 0 or -1. */
int cli_parse_bool(const char *s, int *out);
/* Plain decimal, no sign, no blanks, no overflow.  Returns 0 or -1. */
int cli_parse_u32(const char *s, uint32_t *out);
/* (cli_parse_size, declared in cli.h, is implemented in cli_opts.c too.) */

#endif
