#include "api/json_read.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int jr_fail(struct jr *r, const char *path, const char *key, const char *fmt, ...)
{
    if (!r->err || r->errlen == 0)
        return -1;
    int has_path = path && *path, has_key = key && *key;
    int n = snprintf(r->err, r->errlen, "%s%s%s%s", has_path ? path : "",
                     has_path && has_key ? "." : "", has_key ? key : "",
                     has_path || has_key ? ": " : "");
    if (n < 0 || (size_t)n >= r->errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

void jr_index(char *out, size_t outlen, const char *path, size_t i)
{
    snprintf(out, outlen, "%s[%zu]", path, i);
}

void jr_join(char *out, size_t outlen, const char *path, const char *key)
{
    snprintf(out, outlen, "%s%s%s", path && *path ? path : "", path && *path ? "." : "", key);
}

const char *jr_type_name(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsObject(v))
        return "an object";
    if (cJSON_IsNull(v))
        return "null";
    return "an invalid value";
}

/* Length of the UTF-8 sequence at s (at most n bytes), or 0 if it is not
 * one: no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/*
 * What cJSON lets through but JSON (and serde_json, which Cloud Hypervisor
 * uses) does not, plus NUL in any form, which would cut a C string short
 * and make "path\u0000junk" mean "path".
 */
static int body_check(struct jr *r, const char *json, size_t len)
{
    const unsigned char *s = (const unsigned char *)json;
    int in_string = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t n = utf8_len(s + i, len - i);
            if (n == 0)
                return jr_fail(r, "body", NULL, "invalid UTF-8 at byte %zu", i);
            i += n;
            continue;
        }
        if (c < 0x20 && (in_string || (c != '\t' && c != '\n' && c != '\r')))
            return jr_fail(r, "body", NULL, "control character 0x%02x at byte %zu", c, i);
        if (in_string && c == '\\') {
            if (i + 5 < len && memcmp(s + i + 1, "u0000", 5) == 0)
                return jr_fail(r, "body", NULL, "\\u0000 in a string at byte %zu", i);
            /* The escaped byte cannot end the string; a bad escape is cJSON's
             * to refuse. */
            i += i + 1 < len && s[i + 1] < 0x80 ? 2 : 1;
            continue;
        }
        if (c == '"')
            in_string = !in_string;
        i++;
    }
    return 0;
}

cJSON *jr_parse(struct jr *r, const char *json, size_t len)
{
    if (!json || len == 0) {
        jr_fail(r, "body", NULL, "empty");
        return NULL;
    }
    if (body_check(r, json, len) < 0)
        return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        size_t at = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        jr_fail(r, "body", NULL, "not valid JSON (at byte %zu)", at);
        return NULL;
    }
    for (const char *p = end; p < json + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            jr_fail(r, "body", NULL, "data after the JSON value at byte %zu",
                    (size_t)(p - json));
            cJSON_Delete(root);
            return NULL;
        }
    }
    return root;
}

int jr_member(struct jr *r, const cJSON *obj, const char *path, const char *key,
              const cJSON **out)
{
    const cJSON *found = NULL;
    *out = NULL;
    for (const cJSON *c = obj ? obj->child : NULL; c; c = c->next) {
        if (!c->string || strcmp(c->string, key) != 0)
            continue;
        if (found)
            return jr_fail(r, path, key, "given more than once");
        found = c;
    }
    if (found && !cJSON_IsNull(found))
        *out = found;
    return 0;
}

int jr_bool(struct jr *r, const cJSON *obj, const char *path, const char *key, int *dst)
{
    const cJSON *v;
    if (jr_member(r, obj, path, key, &v) < 0)
        return -1;
    if (!v)
        return 0;
    if (!cJSON_IsBool(v))
        return jr_fail(r, path, key, "expected true or false, got %s", jr_type_name(v));
    *dst = cJSON_IsTrue(v);
    return 0;
}

int jr_u64(struct jr *r, const cJSON *obj, const char *path, const char *key, uint64_t min,
           uint64_t max, uint64_t *dst, int *given)
{
    const cJSON *v;
    if (jr_member(r, obj, path, key, &v) < 0)
        return -1;
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v))
        return jr_fail(r, path, key, "expected an integer, got %s", jr_type_name(v));
    double d = v->valuedouble;
    /* The cast is defined only once d is known to be in range. */
    if (!(d >= 0 && d <= (double)JR_MAX_INT) || (double)(uint64_t)d != d)
        return jr_fail(r, path, key, "expected an integer from 0 to %llu, got %g",
                       (unsigned long long)JR_MAX_INT, d);
    uint64_t u = (uint64_t)d;
    if (u < min || u > max)
        return jr_fail(r, path, key, "must be from %llu to %llu, got %llu",
                       (unsigned long long)min, (unsigned long long)max,
                       (unsigned long long)u);
    *dst = u;
    if (given)
        *given = 1;
    return 0;
}

int jr_u32(struct jr *r, const cJSON *obj, const char *path, const char *key, uint32_t min,
           uint32_t max, uint32_t *dst, int *given)
{
    uint64_t u = *dst;
    if (jr_u64(r, obj, path, key, min, max, &u, given) < 0)
        return -1;
    *dst = (uint32_t)u;
    return 0;
}

int jr_string(struct jr *r, const cJSON *obj, const char *path, const char *key,
              int allow_empty, const char **out)
{
    const cJSON *v;
    *out = NULL;
    if (jr_member(r, obj, path, key, &v) < 0)
        return -1;
    if (!v)
        return 0;
    if (!cJSON_IsString(v) || !v->valuestring)
        return jr_fail(r, path, key, "expected a string, got %s", jr_type_name(v));
    if (!allow_empty && v->valuestring[0] == '\0')
        return jr_fail(r, path, key, "must not be empty");
    *out = v->valuestring;
    return 0;
}

int jr_strdup(struct jr *r, const cJSON *obj, const char *path, const char *key,
              int allow_empty, char **dst)
{
    const char *s;
    if (jr_string(r, obj, path, key, allow_empty, &s) < 0)
        return -1;
    if (!s)
        return 0;
    char *copy = strdup(s);
    if (!copy)
        return jr_fail(r, path, key, "out of memory");
    free(*dst);
    *dst = copy;
    return 0;
}

int jr_enum(struct jr *r, const cJSON *obj, const char *path, const char *key,
            const char *const *names, int n, int *dst)
{
    const char *s;
    if (jr_string(r, obj, path, key, 1, &s) < 0)
        return -1;
    if (!s)
        return 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            *dst = i;
            return 0;
        }
    }
    char list[160];
    size_t k = 0;
    list[0] = '\0';
    for (int i = 0; i < n && k < sizeof(list); i++) {
        int w = snprintf(list + k, sizeof(list) - k, "%s\"%s\"", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        k += (size_t)w;
    }
    return jr_fail(r, path, key, "\"%.64s\" is not one of %s", s, list);
}

int jr_object(struct jr *r, const cJSON *obj, const char *path, const char *key,
              const cJSON **out)
{
    if (jr_member(r, obj, path, key, out) < 0)
        return -1;
    if (*out && !cJSON_IsObject(*out))
        return jr_fail(r, path, key, "expected an object, got %s", jr_type_name(*out));
    return 0;
}

int jr_array(struct jr *r, const cJSON *obj, const char *path, const char *key, size_t max,
             const cJSON **out, size_t *count)
{
    *count = 0;
    if (jr_member(r, obj, path, key, out) < 0)
        return -1;
    if (!*out)
        return 0;
    if (!cJSON_IsArray(*out))
        return jr_fail(r, path, key, "expected an array, got %s", jr_type_name(*out));
    size_t n = 0;
    for (const cJSON *c = (*out)->child; c; c = c->next)
        if (++n > max)
            return jr_fail(r, path, key, "more than %zu items", max);
    *count = n;
    return 0;
}
