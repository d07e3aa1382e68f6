/*
 * HTTP/1.x response parser of nimbus-remote: a pure function over the bytes
 * received so far, so the client can call it after every read and the fuzz
 * harness (fuzz/harness/remote_response.c) can call it on anything.
 *
 * What the API server sends is small and simple, so this is strict: CRLF
 * line ends, no header folding, no control characters, a body only by
 * Content-Length (none without one, as Cloud Hypervisor's own client does),
 * and chunked or any other Transfer-Encoding refused.
 */
#ifndef NIMBUS_REMOTE_HTTP_RESP_H
#define NIMBUS_REMOTE_HTTP_RESP_H

#include <stddef.h>

#define HTTP_RESP_MAX_HEAD (16u * 1024u)         /* status line + headers + CRLF */
#define HTTP_RESP_MAX_BODY (16u * 1024u * 1024u) /* Content-Length */
#define HTTP_RESP_REASON_MAX 64u

enum http_resp_result {
    HTTP_RESP_BAD = -1,       /* not a response we accept; `why` says which rule */
    HTTP_RESP_INCOMPLETE = 0, /* valid so far; needs more bytes */
    HTTP_RESP_DONE = 1,       /* one whole response is in the buffer */
};

struct http_resp {
    int status;                           /* 100-599 */
    char reason[HTTP_RESP_REASON_MAX];    /* truncated, printable ASCII only */
    size_t head_len;                      /* bytes up to and including the blank line */
    int has_length;                       /* a Content-Length header was present */
    size_t content_length;
    const char *body;                     /* DONE: inside the buffer given (NULL if empty) */
    size_t body_len;
    size_t total_len;                     /* DONE: head_len + body_len; what follows is not ours */
    char why[128];                        /* BAD: a one-line reason */
};

/*
 * Parse the response at the start of buf[0, len).  Bytes after it are left
 * alone (the caller knows where they start from total_len).  Every field of
 * *r is set on every call; nothing is read outside the buffer and no memory
 * is allocated.
 */
enum http_resp_result http_resp_parse(const char *buf, size_t len, struct http_resp *r);

/* 1xx other than 101: an interim response that a final one follows. */
int http_resp_is_interim(int status);

#endif
