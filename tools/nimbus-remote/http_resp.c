/* HTTP/1.x response parser of nimbus-remote; see http_resp.h. */
#include "http_resp.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static enum http_resp_result bad(struct http_resp *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum http_resp_result bad(struct http_resp *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    va_end(ap);
    return HTTP_RESP_BAD;
}

/* Up to 32 bytes of untrusted text made safe to print inside quotes. */
static void show(char out[40], const char *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && i < 32; i++) {
        unsigned char c = (unsigned char)p[i];
        out[k++] = c >= 0x20 && c < 0x7f && c != '\'' ? (char)c : '?';
    }
    if (n > 32) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = '\0';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 9110 field-value / reason-phrase bytes: HTAB, SP, VCHAR, obs-text. */
static int is_text(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* RFC 9110 tchar. */
static int is_tchar(unsigned char c)
{
    if (c >= 0x80 || c <= 0x20 || c == 0x7f)
        return 0;
    return strchr("\"(),/:;<=>?@[\\]{}", c) == NULL;
}

int http_resp_is_interim(int status)
{
    return status >= 100 && status <= 199 && status != 101;
}

static enum http_resp_result status_line(struct http_resp *r, const char *p, size_t n)
{
    char s[40];
    /* "HTTP/1.x SSS" then optionally " reason" */
    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || !is_digit(p[7]) || p[8] != ' ' ||
        !is_digit(p[9]) || !is_digit(p[10]) || !is_digit(p[11]) || (n > 12 && p[12] != ' ')) {
        show(s, p, n);
        return bad(r, "malformed status line '%s'", s);
    }
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (r->status < 100 || r->status > 599) {
        show(s, p, n);
        return bad(r, "status code out of range in '%s'", s);
    }
    size_t k = 0;
    for (size_t i = 13; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!is_text(c))
            return bad(r, "control character 0x%02x in the status line", c);
        if (k + 1 < sizeof(r->reason))
            r->reason[k++] = c == '\t' ? ' ' : c < 0x80 ? (char)c : '?';
    }
    r->reason[k] = '\0';
    return HTTP_RESP_INCOMPLETE;
}

static enum http_resp_result content_length(struct http_resp *r, const char *v, size_t n)
{
    char s[40];
    uint64_t len = 0;
    if (n == 0) {
        return bad(r, "empty Content-Length");
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(v[i])) {
            show(s, v, n);
            return bad(r, "Content-Length '%s' is not a number", s);
        }
        len = len * 10 + (uint64_t)(v[i] - '0');
        if (len > HTTP_RESP_MAX_BODY) {
            show(s, v, n);
            return bad(r, "Content-Length %s is above the limit of %u bytes", s,
                       HTTP_RESP_MAX_BODY);
        }
    }
    if (r->has_length && r->content_length != len)
        return bad(r, "two different Content-Length headers (%zu and %llu)",
                   r->content_length, (unsigned long long)len);
    r->has_length = 1;
    r->content_length = (size_t)len;
    return HTTP_RESP_INCOMPLETE;
}

static int contains_ci(const char *p, size_t n, const char *word)
{
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= n; i++)
        if (strncasecmp(p + i, word, w) == 0)
            return 1;
    return 0;
}

static enum http_resp_result header_line(struct http_resp *r, const char *p, size_t n)
{
    char s[40];
    if (p[0] == ' ' || p[0] == '\t')
        return bad(r, "folded header line (obsolete line folding is not accepted)");
    const char *colon = memchr(p, ':', n);
    if (!colon) {
        show(s, p, n);
        return bad(r, "header line without ':' ('%s')", s);
    }
    size_t namelen = (size_t)(colon - p);
    for (size_t i = 0; i < namelen; i++)
        if (!is_tchar((unsigned char)p[i])) {
            show(s, p, namelen);
            return bad(r, "bad header name '%s'", s);
        }
    if (namelen == 0)
        return bad(r, "empty header name");
    const char *v = colon + 1, *end = p + n;
    for (const char *q = v; q < end; q++)
        if (!is_text((unsigned char)*q)) {
            show(s, p, namelen);
            return bad(r, "control character 0x%02x in header '%s'", (unsigned char)*q, s);
        }
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;

    if (namelen == 14 && strncasecmp(p, "Content-Length", 14) == 0)
        return content_length(r, v, (size_t)(end - v));
    if (namelen == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
        show(s, v, (size_t)(end - v));
        if (contains_ci(v, (size_t)(end - v), "chunked"))
            return bad(r, "chunked transfer encoding is not supported (Transfer-Encoding: %s)", s);
        return bad(r, "Transfer-Encoding '%s' is not supported", s);
    }
    return HTTP_RESP_INCOMPLETE;
}

enum http_resp_result http_resp_parse(const char *buf, size_t len, struct http_resp *r)
{
    memset(r, 0, sizeof(*r));
    if (!buf)
        len = 0;

    /* Garbage is refused at once instead of after the server closes. */
    size_t pre = len < 7 ? len : 7;
    if (memcmp(buf ? buf : "", "HTTP/1.", pre) != 0) {
        char s[40];
        show(s, buf, len);
        return bad(r, "not an HTTP/1.x response (it starts '%s')", s);
    }

    size_t lim = len < HTTP_RESP_MAX_HEAD ? len : HTTP_RESP_MAX_HEAD;
    const char *blank = lim >= 4 ? memmem(buf, lim, "\r\n\r\n", 4) : NULL;
    if (!blank) {
        if (len >= HTTP_RESP_MAX_HEAD)
            return bad(r, "status line and headers are longer than %u bytes",
                       HTTP_RESP_MAX_HEAD);
        return HTTP_RESP_INCOMPLETE;
    }
    size_t head_len = (size_t)(blank - buf) + 4;

    /* Lines of [buf, blank + 2): each ends with CRLF; none is empty, since
     * blank is the first CRLFCRLF. */
    const char *p = buf, *region_end = blank + 2;
    int first = 1;
    while (p < region_end) {
        const char *eol = memmem(p, (size_t)(region_end - p), "\r\n", 2);
        size_t n = (size_t)(eol - p); /* eol is found: the region ends with CRLF */
        enum http_resp_result res = first ? status_line(r, p, n) : header_line(r, p, n);
        if (res == HTTP_RESP_BAD)
            return res;
        first = 0;
        p = eol + 2;
    }
    r->head_len = head_len;

    /* RFC 9112 6.3: these never have a body, whatever the headers say. */
    int bodiless = (r->status >= 100 && r->status <= 199) || r->status == 204 ||
                   r->status == 304;
    if (!bodiless && r->has_length) {
        if (len - head_len < r->content_length)
            return HTTP_RESP_INCOMPLETE;
        r->body_len = r->content_length;
        r->body = r->body_len ? buf + head_len : NULL;
    }
    r->total_len = head_len + r->body_len;
    return HTTP_RESP_DONE;
}
