/*
 * core/api/http_req.c, the API socket's incremental request reader: the
 * way clients really split their writes, requests back to back, chunked
 * bodies, Expect: 100-continue, every bound (413, 414, 431) and refusal
 * (400, 417, 505), keep-alive, and the path of the URL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/http_req.h"

/*
 * Feed s in pieces of `piece` bytes (0: all at once) until the reader is
 * DONE or in ERROR or s runs out.  Returns how many bytes it consumed.
 * Checks what the server relies on: while PARTIAL every byte is taken.
 */
static size_t feed_pieces(struct http_req *r, const char *s, size_t len, size_t piece)
{
    size_t off = 0;
    while (off < len && r->state == HTTP_REQ_PARTIAL) {
        size_t k = piece && piece < len - off ? piece : len - off;
        size_t n = http_req_feed(r, s + off, k);
        assert_true(n <= k);
        if (r->state == HTTP_REQ_PARTIAL)
            assert_int_equal(n, k);
        off += n;
    }
    return off;
}

static size_t feed_str(struct http_req *r, const char *s, size_t piece)
{
    return feed_pieces(r, s, strlen(s), piece);
}

static void assert_request(const struct http_req *r, const char *method, const char *url,
                           const char *body)
{
    assert_int_equal(r->state, HTTP_REQ_DONE);
    assert_string_equal(r->method, method);
    assert_string_equal(r->url, url);
    assert_int_equal(r->url_len, strlen(url));
    if (!body) {
        assert_int_equal(r->body_len, 0);
        return;
    }
    assert_int_equal(r->body_len, strlen(body));
    assert_non_null(r->body);
    assert_memory_equal(r->body, body, r->body_len);
    assert_int_equal(r->body[r->body_len], '\0');
}

static void assert_error(const char *req, size_t piece, int status)
{
    struct http_req r;
    http_req_init(&r);
    feed_str(&r, req, piece);
    assert_int_equal(r.state, HTTP_REQ_ERROR);
    assert_int_equal(r.error_status, status);
    assert_non_null(r.error_msg);
    /* Nothing more is read from a connection in error. */
    assert_int_equal(http_req_feed(&r, "GET / HTTP/1.1\r\n\r\n", 18), 0);
    http_req_free(&r);
}

static const char create_req[] =
    "PUT /api/v1/vm.create HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    "Content-Length: 31\r\n\r\n{\"payload\":{\"kernel\":\"/vmlin\"}}";

static void test_whole_and_byte_by_byte(void **state)
{
    (void)state;
    /* Every split, from all at once to one byte per read, gives the same request. */
    for (size_t piece = 0; piece <= 7; piece++) {
        struct http_req r;
        http_req_init(&r);
        assert_int_equal(feed_str(&r, create_req, piece), strlen(create_req));
        assert_request(&r, "PUT", "/api/v1/vm.create", "{\"payload\":{\"kernel\":\"/vmlin\"}}");
        assert_true(r.keep_alive);
        assert_false(r.want_continue);
        http_req_free(&r);
    }
}

/* Cloud Hypervisor's api_client: the request line and two headers, then
 * Content-Length, then the blank line, then the body, in separate writes. */
static void test_ch_api_client_pieces(void **state)
{
    (void)state;
    static const char *const parts[] = {
        "PUT /api/v1/vm.add-net HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n",
        "Content-Length: 13\r\n", "\r\n", "{\"id\":\"net0\"}"};
    struct http_req r;
    http_req_init(&r);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(r.state, HTTP_REQ_PARTIAL);
        assert_int_equal(http_req_feed(&r, parts[i], strlen(parts[i])), strlen(parts[i]));
        assert_true(r.started);
    }
    assert_request(&r, "PUT", "/api/v1/vm.add-net", "{\"id\":\"net0\"}");
    http_req_free(&r);
}

static void test_two_requests_in_one_buffer(void **state)
{
    (void)state;
    static const char two[] = "GET /api/v1/vmm.ping HTTP/1.1\r\nHost: localhost\r\n\r\n"
                              "PUT /api/v1/vm.boot HTTP/1.1\r\nHost: localhost\r\n\r\n";
    size_t first = strlen("GET /api/v1/vmm.ping HTTP/1.1\r\nHost: localhost\r\n\r\n");
    struct http_req r;
    http_req_init(&r);
    size_t n = http_req_feed(&r, two, strlen(two));
    assert_int_equal(n, first);
    assert_request(&r, "GET", "/api/v1/vmm.ping", NULL);
    /* DONE holds the request: more bytes wait until http_req_next(). */
    assert_int_equal(http_req_feed(&r, two + n, strlen(two) - n), 0);
    http_req_next(&r);
    assert_int_equal(r.state, HTTP_REQ_PARTIAL);
    assert_false(r.started);
    assert_int_equal(http_req_feed(&r, two + n, strlen(two) - n), strlen(two) - n);
    assert_request(&r, "PUT", "/api/v1/vm.boot", NULL);
    http_req_free(&r);
}

/* A body left by one request is not seen by the next. */
static void test_next_forgets_the_body(void **state)
{
    (void)state;
    struct http_req r;
    http_req_init(&r);
    feed_str(&r, create_req, 0);
    assert_int_equal(r.state, HTTP_REQ_DONE);
    http_req_next(&r);
    assert_int_equal(r.body_len, 0);
    assert_int_equal(r.url_len, 0);
    assert_null(r.method);
    feed_str(&r, "PUT /api/v1/vm.boot HTTP/1.1\r\n\r\n", 0);
    assert_request(&r, "PUT", "/api/v1/vm.boot", NULL);
    assert_true(r.body == NULL || r.body[0] == '\0');
    http_req_free(&r);
    assert_null(r.body);
}

static void test_chunked_body(void **state)
{
    (void)state;
    static const char req[] = "PUT /api/v1/vm.create HTTP/1.1\r\nHost: localhost\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n"
                              "5\r\n{\"a\":\r\n"
                              "a;ext=1\r\n1234567890\r\n"
                              "1\r\n}\r\n"
                              "0\r\n\r\n";
    for (size_t piece = 0; piece <= 3; piece++) {
        struct http_req r;
        http_req_init(&r);
        assert_int_equal(feed_str(&r, req, piece), strlen(req));
        assert_request(&r, "PUT", "/api/v1/vm.create", "{\"a\":1234567890}");
        http_req_free(&r);
    }
}

/* curl sends "Expect: 100-continue" and waits for the interim answer. */
static void test_expect_continue(void **state)
{
    (void)state;
    static const char head[] = "PUT /api/v1/vm.create HTTP/1.1\r\nHost: localhost\r\n"
                               "Content-Length: 2\r\nExpect: 100-Continue\r\n\r\n";
    struct http_req r;
    http_req_init(&r);
    assert_int_equal(http_req_feed(&r, head, strlen(head)), strlen(head));
    assert_int_equal(r.state, HTTP_REQ_PARTIAL);
    assert_true(r.want_continue);
    /* The server answers "100 Continue" and clears it; the body follows. */
    r.want_continue = 0;
    r.continue_sent = 1;
    assert_int_equal(http_req_feed(&r, "{}", 2), 2);
    assert_request(&r, "PUT", "/api/v1/vm.create", "{}");
    assert_false(r.want_continue);
    http_req_next(&r);
    assert_false(r.continue_sent);
    http_req_free(&r);

    assert_error("PUT /x HTTP/1.1\r\nExpect: something-else\r\nContent-Length: 2\r\n\r\n", 0,
                 417);
}

static void test_body_bound(void **state)
{
    (void)state;
    char req[256];
    /* Refused at the end of the headers, without waiting for the body. */
    snprintf(req, sizeof(req), "PUT /api/v1/vm.create HTTP/1.1\r\nContent-Length: %u\r\n\r\n",
             HTTP_REQ_MAX_BODY + 1);
    assert_error(req, 0, 413);
    assert_error(req, 1, 413);
    snprintf(req, sizeof(req),
             "PUT /api/v1/vm.create HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n");
    assert_error(req, 0, 400); /* beyond 64 bits: malformed */

    /* Exactly at the bound: accepted. */
    size_t blen = HTTP_REQ_MAX_BODY;
    char *big = malloc(blen + 128);
    assert_non_null(big);
    int h = snprintf(big, 128, "PUT /a HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", blen);
    memset(big + h, 'x', blen);
    struct http_req r;
    http_req_init(&r);
    assert_int_equal(feed_pieces(&r, big, (size_t)h + blen, 65536), (size_t)h + blen);
    assert_int_equal(r.state, HTTP_REQ_DONE);
    assert_int_equal(r.body_len, blen);
    assert_int_equal(r.body[blen], '\0');
    http_req_free(&r);
    free(big);
}

/* A chunked body has no length up front: the bound applies as it grows. */
static void test_chunked_body_bound(void **state)
{
    (void)state;
    size_t chunk = 0x10000, nchunks = HTTP_REQ_MAX_BODY / chunk + 1;
    static const char head[] = "PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    size_t cap = sizeof(head) + nchunks * (chunk + 16) + 8;
    char *req = malloc(cap);
    assert_non_null(req);
    size_t len = (size_t)snprintf(req, cap, "%s", head);
    for (size_t i = 0; i < nchunks; i++) {
        len += (size_t)snprintf(req + len, cap - len, "%zx\r\n", chunk);
        memset(req + len, 'y', chunk);
        len += chunk;
        memcpy(req + len, "\r\n", 2);
        len += 2;
    }
    memcpy(req + len, "0\r\n\r\n", 5);
    len += 5;
    struct http_req r;
    http_req_init(&r);
    feed_pieces(&r, req, len, 4096);
    assert_int_equal(r.state, HTTP_REQ_ERROR);
    assert_int_equal(r.error_status, 413);
    assert_true(r.body_len <= HTTP_REQ_MAX_BODY);
    http_req_free(&r);
    free(req);
}

static void test_url_bound(void **state)
{
    (void)state;
    char req[HTTP_REQ_MAX_URL + 64];
    for (int extra = 0; extra <= 1; extra++) {
        size_t ulen = HTTP_REQ_MAX_URL + (size_t)extra;
        memcpy(req, "GET /", 5);
        memset(req + 5, 'u', ulen - 1);
        strcpy(req + 4 + ulen, " HTTP/1.1\r\n\r\n");
        for (size_t piece = 0; piece <= 1; piece++) {
            struct http_req r;
            http_req_init(&r);
            feed_str(&r, req, piece ? 100 : 0);
            if (extra) {
                assert_int_equal(r.state, HTTP_REQ_ERROR);
                assert_int_equal(r.error_status, 414);
            } else {
                assert_int_equal(r.state, HTTP_REQ_DONE);
                assert_int_equal(r.url_len, HTTP_REQ_MAX_URL);
                assert_int_equal(strlen(r.url), HTTP_REQ_MAX_URL);
            }
            http_req_free(&r);
        }
    }
}

static char *with_headers(unsigned n, size_t value_len)
{
    size_t cap = 64 + (size_t)n * (value_len + 16);
    char *s = malloc(cap);
    assert_non_null(s);
    size_t len = (size_t)snprintf(s, cap, "GET /api/v1/vm.info HTTP/1.1\r\n");
    for (unsigned i = 0; i < n; i++) {
        len += (size_t)snprintf(s + len, cap - len, "X-%03u: ", i);
        memset(s + len, 'v', value_len);
        len += value_len;
        memcpy(s + len, "\r\n", 2);
        len += 2;
    }
    memcpy(s + len, "\r\n", 3);
    return s;
}

static void test_header_bounds(void **state)
{
    (void)state;
    struct http_req r;
    char *s = with_headers(HTTP_REQ_MAX_HEADERS, 1);
    http_req_init(&r);
    feed_str(&r, s, 0);
    assert_int_equal(r.state, HTTP_REQ_DONE);
    assert_int_equal(r.nheaders, HTTP_REQ_MAX_HEADERS);
    http_req_free(&r);
    free(s);

    s = with_headers(HTTP_REQ_MAX_HEADERS + 1, 1);
    assert_error(s, 0, 431);
    assert_error(s, 1, 431);
    free(s);

    /* Few headers, too many bytes: 8 x 1100 > 8 KiB. */
    s = with_headers(8, 1100);
    assert_error(s, 0, 431);
    assert_error(s, 7, 431);
    free(s);
}

static void test_refusals(void **state)
{
    (void)state;
    assert_error("GET /api/v1/vmm.ping HTTP/2.0\r\n\r\n", 0, 505);
    assert_error("GET /api/v1/vmm.ping HTTP/2.0\r\n\r\n", 1, 505);
    assert_error("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0, 400); /* a TLS hello */
    assert_error("HELLO\r\n\r\n", 0, 400);
    assert_error("GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 0, 400);
    assert_error("GET /x HTTP/1.1\r\nBad Header\r\n\r\n", 0, 400);
}

/*
 * An Upgrade header is ignored, whatever the reads look like: once, a
 * request with a body was refused when the body came in a later read, and
 * the request after an Upgrade one was refused when it came in pieces.
 */
static void test_upgrade_ignored(void **state)
{
    (void)state;
    static const char req[] = "GET /api/v1/vmm.ping HTTP/1.1\r\nConnection: Upgrade\r\n"
                              "Upgrade: h2c\r\nContent-Length: 2\r\n\r\n{}"
                              "PUT /api/v1/vm.boot HTTP/1.1\r\n\r\n";
    size_t first = strlen(req) - strlen("PUT /api/v1/vm.boot HTTP/1.1\r\n\r\n");
    for (size_t piece = 0; piece <= 5; piece++) {
        struct http_req r;
        http_req_init(&r);
        assert_int_equal(feed_pieces(&r, req, first, piece), first);
        assert_request(&r, "GET", "/api/v1/vmm.ping", "{}");
        http_req_next(&r);
        assert_int_equal(feed_pieces(&r, req + first, strlen(req) - first, piece),
                         strlen(req) - first);
        assert_request(&r, "PUT", "/api/v1/vm.boot", NULL);
        http_req_free(&r);
    }
    /* CONNECT would make a tunnel of the connection. */
    assert_error("CONNECT localhost:80 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 0, 400);
    assert_error("CONNECT localhost:80 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 1, 400);
}

static int keep_alive_of(const char *req)
{
    struct http_req r;
    http_req_init(&r);
    feed_str(&r, req, 0);
    assert_int_equal(r.state, HTTP_REQ_DONE);
    int ka = r.keep_alive;
    http_req_free(&r);
    return ka;
}

static void test_keep_alive(void **state)
{
    (void)state;
    assert_true(keep_alive_of("GET / HTTP/1.1\r\n\r\n"));
    assert_false(keep_alive_of("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
    assert_false(keep_alive_of("GET / HTTP/1.0\r\n\r\n"));
    assert_true(keep_alive_of("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
}

static void test_path(void **state)
{
    (void)state;
    static const struct { const char *url, *path; } cases[] = {
        {"/api/v1/vm.info", "/api/v1/vm.info"},
        {"/api/v1/vm.info?x=1", "/api/v1/vm.info"},
        {"/api/v1/vm.info#frag", "/api/v1/vm.info"},
        {"http://localhost/api/v1/vm.boot", "/api/v1/vm.boot"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char req[256], out[64];
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n\r\n", cases[i].url);
        struct http_req r;
        http_req_init(&r);
        feed_str(&r, req, 0);
        assert_int_equal(r.state, HTTP_REQ_DONE);
        assert_int_equal(http_req_path(&r, out, sizeof(out)), 0);
        assert_string_equal(out, cases[i].path);
        /* The path and its NUL must fit. */
        size_t n = strlen(cases[i].path);
        assert_int_equal(http_req_path(&r, out, n), -1);
        assert_int_equal(http_req_path(&r, out, n + 1), 0);
        http_req_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_and_byte_by_byte),
        cmocka_unit_test(test_ch_api_client_pieces),
        cmocka_unit_test(test_two_requests_in_one_buffer),
        cmocka_unit_test(test_next_forgets_the_body),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_body_bound),
        cmocka_unit_test(test_chunked_body_bound),
        cmocka_unit_test(test_url_bound),
        cmocka_unit_test(test_header_bounds),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_upgrade_ignored),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
