/*
 * Incremental HTTP/1.1 request reader for the API socket, on Debian's
 * libhttp-parser.  Bytes arrive in arbitrary pieces (Cloud Hypervisor's own
 * client writes the request line, then Content-Length, then the body); the
 * reader stops after each complete request so that what follows stays for
 * the next one, and bounds everything a client controls: the URL, the
 * header bytes, the header count and the body (a Content-Length above the
 * bound is refused as soon as the headers end, without waiting for data).
 */
#ifndef NIMBUS_API_HTTP_REQ_H
#define NIMBUS_API_HTTP_REQ_H

#include <http_parser.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_REQ_MAX_URL 1024u
#define HTTP_REQ_MAX_HEADER_BYTES 8192u
#define HTTP_REQ_MAX_HEADERS 64u
#define HTTP_REQ_MAX_BODY (1u << 20) /* VmConfig bodies are a few KiB */

enum http_req_state {
    HTTP_REQ_PARTIAL = 0, /* needs more bytes */
    HTTP_REQ_DONE,        /* a whole request is in the reader */
    HTTP_REQ_ERROR,       /* error_status/error_msg say why; close after answering */
};

struct http_req {
    http_parser parser;
    enum http_req_state state;
    int started;            /* a request's first byte was seen */
    int continue_sent;      /* "Expect: 100-continue" answered */
    int want_continue;      /* set at end of headers; the server answers and clears */
    int keep_alive;         /* valid when DONE */
    const char *method;     /* "GET", "PUT", ... (static) when DONE */
    char url[HTTP_REQ_MAX_URL + 1];
    size_t url_len;
    size_t header_bytes;
    unsigned nheaders;
    char cur_field[32];     /* the header name being read (lower-cased, truncated) */
    size_t cur_field_len;
    int in_value;           /* the last callback was a header value */
    int field_is_expect;
    char expect[32];
    size_t expect_len;
    char *body;             /* NUL-terminated; NULL when empty */
    size_t body_len, body_cap;
    int error_status;       /* 400, 413, 414, 417, 431, 500, 505 */
    const char *error_msg;
};

void http_req_init(struct http_req *r);
/* Free the body; the reader can be reused after http_req_next(). */
void http_req_free(struct http_req *r);
/*
 * Feed bytes.  Returns how many were consumed: all of them while PARTIAL,
 * up to the end of the request when it becomes DONE (the rest belongs to
 * the next request), anything on ERROR.
 */
size_t http_req_feed(struct http_req *r, const char *data, size_t len);
/* After DONE: forget this request and get ready for the next on the same connection. */
void http_req_next(struct http_req *r);
/* The URL's path without query or fragment ("/api/v1/vm.info"); NUL-terminated in out. */
int http_req_path(const struct http_req *r, char *out, size_t outlen);

#endif
