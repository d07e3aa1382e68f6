/*
 * fuzz_remote_response: nimbus-remote's HTTP response parser
 * (tools/nimbus-remote/http_resp.c), which reads whatever the API socket's
 * peer sends.  The input is the bytes received so far, in an exact-size
 * heap copy so one byte read too far is an ASan finding.  Checks:
 *   - DONE: the status is 100-599, the head ends with CRLFCRLF inside the
 *     buffer and within the head limit, the body lies inside the buffer
 *     right after the head and within the body limit, total = head + body;
 *   - a decision is final: the response cut one byte short is INCOMPLETE,
 *     cut at its end it is DONE with the same fields, and a refused input
 *     stays refused whatever follows it;
 *   - BAD comes with a reason; the reason phrase holds no control character.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "http_resp.h"

/* Parse data[0, n) + tail[0, tn) from an exact-size copy; *body_off: where
 * the body starts in that copy (0 when there is none). */
static enum http_resp_result parse_copy(const uint8_t *data, size_t n, const char *tail,
                                        size_t tn, struct http_resp *r, size_t *body_off)
{
    char *buf = malloc(n + tn > 0 ? n + tn : 1);
    if (!buf)
        abort();
    if (n)
        memcpy(buf, data, n);
    if (tn)
        memcpy(buf + n, tail, tn);
    enum http_resp_result res = http_resp_parse(buf, n + tn, r);
    *body_off = r->body ? (size_t)(r->body - buf) : 0;
    r->body = NULL; /* it pointed into buf */
    free(buf);
    return res;
}

static void check_fields(const struct http_resp *r)
{
    if (memchr(r->reason, '\0', sizeof(r->reason)) == NULL)
        fuzz_fail("reason phrase not NUL-terminated");
    for (const char *p = r->reason; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            fuzz_fail("reason phrase holds byte 0x%02x", (unsigned char)*p);
    if (memchr(r->why, '\0', sizeof(r->why)) == NULL)
        fuzz_fail("reason for refusal not NUL-terminated");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_resp r, r2;
    size_t body_off, off2;
    enum http_resp_result res = parse_copy(data, size, NULL, 0, &r, &body_off);
    check_fields(&r);
    switch (res) {
    case HTTP_RESP_BAD:
        if (r.why[0] == '\0')
            fuzz_fail("BAD without a reason");
        if (parse_copy(data, size, "\r\n\r\n", 4, &r2, &off2) != HTTP_RESP_BAD)
            fuzz_fail("refused input (%s) accepted once more bytes came", r.why);
        return 0;
    case HTTP_RESP_INCOMPLETE:
        if (size >= HTTP_RESP_MAX_HEAD + HTTP_RESP_MAX_BODY)
            fuzz_fail("INCOMPLETE at %zu bytes, beyond every limit", size);
        return 0;
    case HTTP_RESP_DONE:
        break;
    default:
        fuzz_fail("http_resp_parse returned %d", (int)res);
    }

    if (r.status < 100 || r.status > 599)
        fuzz_fail("status %d accepted", r.status);
    if (r.head_len < 4 || r.head_len > size || r.head_len > HTTP_RESP_MAX_HEAD ||
        memcmp(data + r.head_len - 4, "\r\n\r\n", 4) != 0)
        fuzz_fail("head_len %zu does not end a head in %zu bytes", r.head_len, size);
    if (memmem(data, r.head_len - 1, "\r\n\r\n", 4) != NULL)
        fuzz_fail("head_len %zu is past the first blank line", r.head_len);
    if (r.body_len > HTTP_RESP_MAX_BODY || r.total_len != r.head_len + r.body_len ||
        r.total_len > size)
        fuzz_fail("body %zu + head %zu = total %zu in %zu bytes", r.body_len, r.head_len,
                  r.total_len, size);
    if ((r.body_len == 0) != (body_off == 0) || (r.body_len && body_off != r.head_len))
        fuzz_fail("body of %zu bytes at offset %zu, head is %zu bytes", r.body_len, body_off,
                  r.head_len);
    if (r.has_length && r.body_len && r.body_len != r.content_length)
        fuzz_fail("body of %zu bytes for Content-Length %zu", r.body_len, r.content_length);

    if (parse_copy(data, r.total_len - 1, NULL, 0, &r2, &off2) != HTTP_RESP_INCOMPLETE)
        fuzz_fail("response of %zu bytes already decided at %zu", r.total_len,
                  r.total_len - 1);
    if (parse_copy(data, r.total_len, NULL, 0, &r2, &off2) != HTTP_RESP_DONE ||
        r2.status != r.status || r2.total_len != r.total_len || r2.body_len != r.body_len ||
        off2 != body_off)
        fuzz_fail("the response alone parses differently from the response with what "
                  "follows it");
    return 0;
}
