/* Printing a response; see reply.h. */
#include "reply.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <string.h>

#define MAX_MESSAGE 4096u /* a hostile server could send 16 MiB of error */

/* Append untrusted text to out on one line: line breaks and tabs become
 * spaces, other control characters (C0, DEL, UTF-8-encoded C1, which some
 * terminals obey) '?'. */
static void append_clean(char *out, size_t cap, size_t *k, const char *s, size_t n)
{
    for (size_t i = 0; i < n && *k + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n' || c == '\r' || c == '\t') {
            out[(*k)++] = ' ';
        } else if (c < 0x20 || c == 0x7f) {
            out[(*k)++] = '?';
        } else if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
                   (unsigned char)s[i + 1] <= 0x9f) {
            out[(*k)++] = '?';
            i++;
        } else {
            out[(*k)++] = (char)c;
        }
    }
    out[*k] = '\0';
}

/* The messages of a CH error body joined; -1 if it is not an array of strings. */
static int join_messages(const cJSON *arr, char *out, size_t cap)
{
    size_t k = 0;
    const cJSON *it;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0)
        return -1;
    cJSON_ArrayForEach(it, arr)
        if (!cJSON_IsString(it))
            return -1;
    cJSON_ArrayForEach(it, arr) {
        if (k)
            append_clean(out, cap, &k, ": ", 2);
        append_clean(out, cap, &k, it->valuestring, strlen(it->valuestring));
    }
    return 0;
}

static void describe(const struct remote_reply *rp, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = '\0';
    if (rp->body_len) {
        cJSON *j = cJSON_ParseWithLength(rp->body, rp->body_len);
        int done = 0;
        if (j && join_messages(j, out, cap) == 0) {
            done = 1;
        } else if (cJSON_IsString(j) && j->valuestring[0]) {
            append_clean(out, cap, &k, j->valuestring, strlen(j->valuestring));
            done = 1;
        }
        cJSON_Delete(j);
        if (done)
            return;
        /* Not CH's shape: show what came, trimmed. */
        const char *b = rp->body;
        size_t n = rp->body_len;
        while (n && (*b == ' ' || *b == '\n' || *b == '\r' || *b == '\t'))
            b++, n--;
        while (n && (b[n - 1] == ' ' || b[n - 1] == '\n' || b[n - 1] == '\r' ||
                     b[n - 1] == '\t'))
            n--;
        append_clean(out, cap, &k, b, n);
        if (k)
            return;
    }
    append_clean(out, cap, &k, rp->reason, strlen(rp->reason));
    if (!k)
        append_clean(out, cap, &k, "(no message)", 12);
}

int reply_report(const char *endpoint, const struct remote_reply *rp, FILE *out,
                 FILE *errout)
{
    if (rp->status == 200 || rp->status == 204) {
        if (rp->status == 200 && rp->body_len) {
            fwrite(rp->body, 1, rp->body_len, out);
            if (rp->body[rp->body_len - 1] != '\n')
                fputc('\n', out);
        }
        if (fflush(out) != 0 || ferror(out)) {
            fprintf(errout, "nimbus-remote: %s: writing the response: %s\n", endpoint,
                    strerror(errno));
            return 1;
        }
        return 0;
    }
    char msg[MAX_MESSAGE];
    describe(rp, msg, sizeof(msg));
    fprintf(errout, "nimbus-remote: %s: HTTP %d: %s\n", endpoint, rp->status, msg);
    return 1;
}
