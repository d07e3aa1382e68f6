/*
 * Typed, strict reads from a cJSON tree for the REST API's request bodies.
 *
 * Every error names the JSON path of the value: "memory.size: ...",
 * "disks[1].queue_size: ...".  Members are matched case-sensitively and a
 * member given twice is an error (serde's rules; cJSON itself matches
 * without case and takes the first).  A member that is absent or JSON null
 * reads as absent: the destination is left alone.
 */
#ifndef NIMBUS_API_JSON_READ_H
#define NIMBUS_API_JSON_READ_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Integers above this are not exact in a double (cJSON's number type). */
#define JR_MAX_INT (1ull << 53)

/* Where errors go. */
struct jr {
    char *err;
    size_t errlen;
};

/* "<path>.<key>: <what>" (either may be NULL or "").  Returns -1. */
int jr_fail(struct jr *r, const char *path, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "disks" + 3 -> "disks[3]". */
void jr_index(char *out, size_t outlen, const char *path, size_t i);
/* "cpus" + "topology" -> "cpus.topology". */
void jr_join(char *out, size_t outlen, const char *path, const char *key);

/*
 * The body's bytes must be UTF-8 without NUL, and its strings must not
 * contain \u0000: every string cJSON gives back is then a whole C string,
 * and prints back as valid JSON.  Then parse it, with nothing but blanks
 * after the value.  Returns the tree or NULL with an error.
 */
cJSON *jr_parse(struct jr *r, const char *json, size_t len);

/* The member `key` of obj (NULL when absent or null).  Returns 0 or -1. */
int jr_member(struct jr *r, const cJSON *obj, const char *path, const char *key,
              const cJSON **out);

/* Typed members.  *given (may be NULL) is set to 1 when the member was read. */
int jr_bool(struct jr *r, const cJSON *obj, const char *path, const char *key, int *dst);
int jr_u64(struct jr *r, const cJSON *obj, const char *path, const char *key, uint64_t min,
           uint64_t max, uint64_t *dst, int *given);
int jr_u32(struct jr *r, const cJSON *obj, const char *path, const char *key, uint32_t min,
           uint32_t max, uint32_t *dst, int *given);
/* *out points into the tree (NULL when absent); "" is refused unless allow_empty. */
int jr_string(struct jr *r, const cJSON *obj, const char *path, const char *key,
              int allow_empty, const char **out);
/* As jr_string, into a fresh copy that replaces *dst. */
int jr_strdup(struct jr *r, const cJSON *obj, const char *path, const char *key,
              int allow_empty, char **dst);
/* One of names[0..n-1], exactly; *dst is its index. */
int jr_enum(struct jr *r, const cJSON *obj, const char *path, const char *key,
            const char *const *names, int n, int *dst);
int jr_object(struct jr *r, const cJSON *obj, const char *path, const char *key,
              const cJSON **out);
/* An array of at most max items; *count is its length (0 when absent). */
int jr_array(struct jr *r, const cJSON *obj, const char *path, const char *key, size_t max,
             const cJSON **out, size_t *count);

/* "a string", "an object", ... for messages. */
const char *jr_type_name(const cJSON *v);

#endif
