/* Request bodies of the subcommands; see bodies.h. */
#include "bodies.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_opts.h"

static char *fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static char *fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

/* Print and free o; NULL (with err) if anything on the way ran out of memory. */
static char *finish(cJSON *o, int ok, char *err, size_t errlen)
{
    char *s = ok && o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s ? s : fail(err, errlen, "out of memory");
}

char *body_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    int use_stdin = strcmp(path, "-") == 0;
    const char *name = use_stdin ? "standard input" : path;
    FILE *f = use_stdin ? stdin : fopen(path, "rb");
    if (!f)
        return fail(err, errlen, "cannot read '%s': %s", name, strerror(errno));
    char *buf = NULL;
    size_t cap = 0, n = 0;
    int too_big = 0, oom = 0, rerr = 0;
    for (;;) {
        if (n == cap) {
            if (cap == BODY_MAX_FILE) {
                /* Full at the limit: one more byte means it is too large. */
                too_big = fgetc(f) != EOF;
                rerr = ferror(f) ? errno : 0;
                break;
            }
            size_t ncap = cap ? cap * 2 : 4096;
            if (ncap > BODY_MAX_FILE)
                ncap = BODY_MAX_FILE;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                oom = 1;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) {
            rerr = ferror(f) ? (errno ? errno : EIO) : 0;
            break;
        }
    }
    if (!use_stdin)
        fclose(f);
    if (too_big || oom || rerr) {
        free(buf);
        if (too_big)
            return fail(err, errlen, "'%s' is larger than %u bytes", name, BODY_MAX_FILE);
        if (oom)
            return fail(err, errlen, "out of memory reading '%s'", name);
        return fail(err, errlen, "cannot read '%s': %s", name, strerror(rerr));
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

char *body_string(const char *key, const char *value, char *err, size_t errlen)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, key, value);
    return finish(o, ok, err, errlen);
}

/* Sizes as Cloud Hypervisor's ByteSized: bytes with an optional K/M/G
 * (nimbus's own parser, which adds T), and 0 (a balloon can shrink to 0). */
static int parse_size(const char *s, uint64_t *out)
{
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    return cli_parse_size(s, out);
}

/* A u64 as a JSON number token: cJSON's doubles would round above 2^53. */
static int add_u64(cJSON *o, const char *key, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
    return cJSON_AddRawToObject(o, key, num) != NULL;
}

static int add_size_or_null(cJSON *o, const char *key, const char *opt, const char *s,
                            char *err, size_t errlen, int *bad)
{
    if (!s)
        return cJSON_AddNullToObject(o, key) != NULL;
    uint64_t v;
    if (parse_size(s, &v) < 0) {
        fail(err, errlen, "%s '%s' is not a size (bytes with an optional K, M, G or T "
             "suffix)", opt, s);
        *bad = 1;
        return 0;
    }
    return add_u64(o, key, v);
}

char *body_resize(const char *cpus, const char *memory, const char *balloon, char *err,
                  size_t errlen)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL, bad = 0;
    if (ok && cpus) {
        uint32_t n;
        if (cli_parse_u32(cpus, &n) < 0) {
            cJSON_Delete(o);
            return fail(err, errlen, "--cpus '%s' is not a number of vCPUs", cpus);
        }
        ok = add_u64(o, "desired_vcpus", n);
    } else if (ok) {
        ok = cJSON_AddNullToObject(o, "desired_vcpus") != NULL;
    }
    ok = ok && add_size_or_null(o, "desired_ram", "--memory", memory, err, errlen, &bad);
    ok = ok && add_size_or_null(o, "desired_balloon", "--balloon", balloon, err, errlen, &bad);
    if (bad) {
        cJSON_Delete(o);
        return NULL;
    }
    return finish(o, ok, err, errlen);
}

char *body_resize_id(const char *id, const char *size_key, const char *size, char *err,
                     size_t errlen)
{
    uint64_t v;
    if (parse_size(size, &v) < 0)
        return fail(err, errlen, "--size '%s' is not a size (bytes with an optional K, M, "
                    "G or T suffix)", size);
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "id", id) && add_u64(o, size_key, v);
    return finish(o, ok, err, errlen);
}

char *body_device(const char *syntax, char *err, size_t errlen)
{
    size_t n = strlen(syntax);
    char *copy = strdup(syntax), *options = calloc(1, n + 1);
    cJSON *o = cJSON_CreateObject();
    char *body = NULL;
    if (!copy || !options || !o) {
        fail(err, errlen, "out of memory");
        goto out;
    }
    int ok = 1, has_plugin = 0, has_path = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok && ok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok) {
            fail(err, errlen, "'%s' in '%s' is not key=value", tok, syntax);
            goto out;
        }
        *eq = '\0';
        const char *key = tok, *val = eq + 1;
        if (strcmp(key, "plugin") == 0 || strcmp(key, "path") == 0 || strcmp(key, "id") == 0) {
            if (cJSON_GetObjectItemCaseSensitive(o, key)) {
                fail(err, errlen, "%s= given more than once in '%s'", key, syntax);
                goto out;
            }
            has_plugin |= key[1] == 'l';
            has_path |= key[1] == 'a';
            ok = cJSON_AddStringToObject(o, key, val) != NULL;
        } else if (strcmp(key, "iommu") == 0 && !has_plugin) {
            ok = cJSON_AddBoolToObject(o, key, strcmp(val, "on") == 0) != NULL;
        } else {
            /* The plugin's own options, passed on in order, verbatim. */
            if (options[0])
                strcat(options, ",");
            strcat(options, key);
            strcat(options, "=");
            strcat(options, val);
        }
    }
    if (!has_plugin && !has_path) {
        fail(err, errlen, "plugin= (or path=) is required in '%s'", syntax);
        goto out;
    }
    if (options[0] && !has_plugin) {
        fail(err, errlen, "'%s' has options but no plugin=", syntax);
        goto out;
    }
    if (options[0])
        ok = ok && cJSON_AddStringToObject(o, "options", options) != NULL;
    body = finish(o, ok, err, errlen);
    o = NULL;
out:
    cJSON_Delete(o);
    free(copy);
    free(options);
    return body;
}

char *body_restore(const char *syntax, char *err, size_t errlen)
{
    static const struct cli_opt_spec spec[] = {
        { "source_url", CLI_OPT_VALUE },
        { "prefault", CLI_OPT_VALUE },
        { "resume", CLI_OPT_VALUE },
        { NULL, CLI_OPT_VALUE },
    };
    struct cli_err e = { .ctx = NULL, .buf = err, .len = errlen };
    struct cli_opts o;
    if (cli_opts_parse(&o, syntax, spec, &e) < 0)
        return NULL;
    int prefault = 0, resume = 0;
    const struct cli_opt *url = cli_opts_find(&o, "source_url");
    char *s = NULL;
    if (!url) {
        fail(err, errlen, "source_url= is required in '%s'", syntax);
    } else if (cli_opts_get_bool(&o, "prefault", &prefault, &e) == 0 &&
               cli_opts_get_bool(&o, "resume", &resume, &e) == 0) {
        cJSON *j = cJSON_CreateObject();
        int ok = j && cJSON_AddStringToObject(j, "source_url", url->value) &&
                 cJSON_AddBoolToObject(j, "prefault", prefault) &&
                 cJSON_AddBoolToObject(j, "resume", resume);
        s = finish(j, ok, err, errlen);
    }
    cli_opts_free(&o);
    return s;
}
