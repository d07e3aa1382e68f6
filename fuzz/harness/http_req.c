/*
 * fuzz_http_req: core/api/http_req.c, the reader of the REST API socket,
 * fed as api_server.c feeds it: reads of any size, and after each complete
 * request http_req_next() and the unconsumed rest of that read.
 *
 * Input: u8 mode, u8 arg, then the bytes of one connection.  mode & 3 cuts
 * them into reads: 0 one read, 1 one byte per read, 2 reads of arg + 1
 * bytes, 3 reads of 1..arg + 1 bytes drawn from a generator seeded by arg.
 * mode & 4: each request's body is taken away after it is read, as
 * dispatch() does.  mode & 8: http_req_path() gets an exact buffer of
 * arg % 64 + 1 bytes instead of the server's 256.
 *
 * Findings: besides sanitizer reports and leaks, a read consumes more than
 * it was given, or less while the request is still partial (the server
 * would lose the rest); DONE without a method or with an error status, or
 * with a URL or body that is not NUL-terminated or over its bound;
 * http_req_path() output that is unterminated, does not fit or is not part
 * of the URL; ERROR without a status the server can send (400, 413, 414,
 * 417, 431, 500, 505) or without a message.  And the cut must not matter:
 * every read pattern must give the same requests (method, URL, body,
 * keep-alive, 100-continue) and end the same way (partial or in error) as
 * one read of everything.  Error statuses may differ between cuts (a URL
 * that is both too long and malformed is found one way or the other first).
 * A reader in error consumes nothing more.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http_req.h"
#include "fuzz_target.h"

#define SERVER_PATH_LEN 256u /* struct api_request.path */
#define MAX_RECORDED 256u

struct seen {
    const char *method; /* http_method_str(): static */
    char *url;
    char *body;
    size_t body_len;
    int keep_alive, expect_continue;
};

struct outcome {
    struct seen req[MAX_RECORDED];
    unsigned n;
    int error;   /* ended in HTTP_REQ_ERROR */
    int started; /* ended partway through a request */
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static char *dup_bytes(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        fuzz_fail("out of memory");
    if (n)
        memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static void outcome_free(struct outcome *o)
{
    for (unsigned i = 0; i < o->n; i++) {
        free(o->req[i].url);
        free(o->req[i].body);
    }
}

static void check_error(const struct http_req *r)
{
    switch (r->error_status) {
    case 400: case 413: case 414: case 417: case 431: case 500: case 505:
        break;
    default:
        fuzz_fail("ERROR with status %d", r->error_status);
    }
    if (!r->error_msg || !r->error_msg[0])
        fuzz_fail("ERROR %d without a message", r->error_status);
}

static void check_path(const struct http_req *r, size_t outlen)
{
    char *out = malloc(outlen); /* exact: one byte too many is an ASan report */
    if (!out)
        fuzz_fail("out of memory");
    memset(out, 0x5a, outlen);
    if (http_req_path(r, out, outlen) == 0) {
        if (!memchr(out, '\0', outlen))
            fuzz_fail("http_req_path: no NUL within %zu bytes", outlen);
        size_t n = strlen(out);
        if (n == 0 || !memmem(r->url, r->url_len, out, n))
            fuzz_fail("http_req_path: '%s' is not part of the URL '%s'", out, r->url);
    }
    free(out);
}

static void check_done(const struct http_req *r, size_t path_len)
{
    if (!r->method || !r->method[0])
        fuzz_fail("DONE without a method");
    if (r->error_status)
        fuzz_fail("DONE with error status %d (%s)", r->error_status,
                  r->error_msg ? r->error_msg : "");
    if (r->url_len > HTTP_REQ_MAX_URL || r->url[r->url_len] != '\0' ||
        strlen(r->url) != r->url_len)
        fuzz_fail("DONE with a URL of %zu bytes that is not a C string of that length",
                  r->url_len);
    if (r->body_len > HTTP_REQ_MAX_BODY)
        fuzz_fail("DONE with a body of %zu bytes", r->body_len);
    if (r->body_len && (!r->body || r->body_len >= r->body_cap || r->body[r->body_len]))
        fuzz_fail("DONE with a body of %zu bytes that is not NUL-terminated", r->body_len);
    if (r->header_bytes > HTTP_REQ_MAX_HEADER_BYTES || r->nheaders > HTTP_REQ_MAX_HEADERS)
        fuzz_fail("DONE past the header bounds: %zu bytes, %u fields", r->header_bytes,
                  r->nheaders);
    check_path(r, path_len);
}

struct cutter {
    unsigned kind, arg;
    uint32_t x;
};

static size_t next_read(struct cutter *c, size_t left)
{
    size_t k = left;
    switch (c->kind) {
    case 1:
        k = 1;
        break;
    case 2:
        k = (size_t)c->arg + 1;
        break;
    case 3:
        c->x ^= c->x << 13;
        c->x ^= c->x >> 17;
        c->x ^= c->x << 5;
        k = 1 + c->x % (c->arg + 1);
        break;
    }
    return k < left ? k : left;
}

/* One connection's bytes through one reader, as the server does it. */
static void run(const uint8_t *data, size_t size, unsigned kind, unsigned arg, int take_body,
                size_t path_len, struct outcome *o)
{
    struct cutter c = {kind, arg, 0x9e3779b9u * (arg + 1)};
    struct http_req r;
    http_req_init(&r);
    const char *p = (const char *)data;
    size_t left = size;
    memset(o, 0, sizeof(*o));
    while (left > 0 && r.state == HTTP_REQ_PARTIAL) {
        size_t k = next_read(&c, left);
        /* One read: the reader may stop at the end of each request in it. */
        while (k > 0) {
            size_t n = http_req_feed(&r, p, k);
            if (n > k)
                fuzz_fail("consumed %zu of %zu bytes", n, k);
            if (r.state == HTTP_REQ_PARTIAL && n != k)
                fuzz_fail("PARTIAL after consuming %zu of %zu bytes", n, k);
            if (r.state == HTTP_REQ_ERROR) {
                check_error(&r);
                /* The server closes then; a reader in error takes nothing more. */
                if (http_req_feed(&r, "\r\n", 2) != 0)
                    fuzz_fail("a reader in error consumed more bytes");
                k = 0;
                break;
            }
            p += n;
            left -= n;
            k -= n;
            /* The server's answer to "Expect: 100-continue". */
            if (r.want_continue && !r.continue_sent && r.state == HTTP_REQ_PARTIAL) {
                r.continue_sent = 1;
                r.want_continue = 0;
            }
            if (r.state != HTTP_REQ_DONE)
                continue;
            check_done(&r, path_len);
            if (o->n < MAX_RECORDED) {
                struct seen *s = &o->req[o->n++];
                s->method = r.method;
                s->url = dup_bytes(r.url, r.url_len);
                s->body = dup_bytes(r.body ? r.body : "", r.body_len);
                s->body_len = r.body_len;
                s->keep_alive = r.keep_alive;
                s->expect_continue = r.want_continue || r.continue_sent;
            }
            if (take_body)
                http_req_free(&r); /* dispatch(): the request owns the body now */
            http_req_next(&r);
        }
    }
    o->error = r.state == HTTP_REQ_ERROR;
    o->started = r.state == HTTP_REQ_PARTIAL && r.started;
    http_req_free(&r);
}

static void compare(const struct outcome *a, const struct outcome *b, unsigned kind,
                    unsigned arg)
{
    if (a->n != b->n)
        fuzz_fail("cut %u/%u: %u requests, %u in one read", kind, arg, b->n, a->n);
    for (unsigned i = 0; i < a->n; i++) {
        const struct seen *x = &a->req[i], *y = &b->req[i];
        if (strcmp(x->method, y->method) != 0 || strcmp(x->url, y->url) != 0 ||
            x->body_len != y->body_len || memcmp(x->body, y->body, x->body_len) != 0 ||
            x->keep_alive != y->keep_alive || x->expect_continue != y->expect_continue)
            fuzz_fail("cut %u/%u: request %u is %s %s (body %zu, keep-alive %d, continue %d); "
                      "in one read %s %s (body %zu, keep-alive %d, continue %d)",
                      kind, arg, i, y->method, y->url, y->body_len, y->keep_alive,
                      y->expect_continue, x->method, x->url, x->body_len, x->keep_alive,
                      x->expect_continue);
    }
    if (a->error != b->error || a->started != b->started)
        fuzz_fail("cut %u/%u: ends with error %d, partial %d; in one read error %d, partial %d",
                  kind, arg, b->error, b->started, a->error, a->started);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned mode = data[0], arg = data[1];
    unsigned kind = mode & 3;
    int take_body = (mode & 4) != 0;
    size_t path_len = (mode & 8) ? arg % 64 + 1 : SERVER_PATH_LEN;
    data += 2;
    size -= 2;

    static struct outcome whole, cut;
    run(data, size, 0, 0, 0, SERVER_PATH_LEN, &whole);
    if (kind != 0 || take_body || path_len != SERVER_PATH_LEN) {
        run(data, size, kind, arg, take_body, path_len, &cut);
        compare(&whole, &cut, kind, arg);
        outcome_free(&cut);
    }
    outcome_free(&whole);
    return 0;
}
