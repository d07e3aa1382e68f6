#include "http_req.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static struct http_req *req_of(http_parser *p)
{
    return (struct http_req *)p->data;
}

static int fail(struct http_req *r, int status, const char *msg)
{
    r->error_status = status;
    r->error_msg = msg;
    /* Negative: for on_headers_complete, 1 and 2 mean "no body", not an error. */
    return -1;
}

static int on_message_begin(http_parser *p)
{
    req_of(p)->started = 1;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_req *r = req_of(p);
    if (len > HTTP_REQ_MAX_URL - r->url_len)
        return fail(r, 414, "URI Too Long");
    memcpy(r->url + r->url_len, at, len);
    r->url_len += len;
    r->url[r->url_len] = '\0';
    return 0;
}

static int count_header_bytes(struct http_req *r, size_t len)
{
    if (len > HTTP_REQ_MAX_HEADER_BYTES - r->header_bytes)
        return fail(r, 431, "Request Header Fields Too Large");
    r->header_bytes += len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_req *r = req_of(p);
    if (count_header_bytes(r, len))
        return -1;
    /* A name after a value starts a new header; two names in a row are
     * one name split across reads. */
    if (r->in_value) {
        r->in_value = 0;
        r->cur_field_len = 0;
    }
    for (size_t i = 0; i < len; i++)
        if (r->cur_field_len < sizeof(r->cur_field) - 1)
            r->cur_field[r->cur_field_len++] = (char)tolower((unsigned char)at[i]);
    r->cur_field[r->cur_field_len] = '\0';
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_req *r = req_of(p);
    if (count_header_bytes(r, len))
        return -1;
    if (!r->in_value) {
        r->in_value = 1;
        if (++r->nheaders > HTTP_REQ_MAX_HEADERS)
            return fail(r, 431, "Too Many Header Fields");
        r->field_is_expect = strcmp(r->cur_field, "expect") == 0;
    }
    if (r->field_is_expect)
        for (size_t i = 0; i < len && r->expect_len < sizeof(r->expect) - 1; i++)
            r->expect[r->expect_len++] = (char)tolower((unsigned char)at[i]);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct http_req *r = req_of(p);
    if (p->http_major != 1)
        return fail(r, 505, "HTTP Version Not Supported");
    /* CONNECT would make the connection a tunnel (http_parser ends the
     * request at its headers, whatever Content-Length says).  An Upgrade
     * header is ignored instead, as Cloud Hypervisor's server ignores it:
     * the request is read as HTTP/1.1, whatever the reads look like. */
    if (p->method == HTTP_CONNECT)
        return fail(r, 400, "CONNECT Not Supported");
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > HTTP_REQ_MAX_BODY)
        return fail(r, 413, "Payload Too Large");
    if (r->expect_len) {
        r->expect[r->expect_len] = '\0';
        if (strcmp(r->expect, "100-continue") != 0)
            return fail(r, 417, "Expectation Failed");
        r->want_continue = 1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_req *r = req_of(p);
    /* Chunked bodies have no length up front: the bound applies as they grow. */
    if (len > HTTP_REQ_MAX_BODY - r->body_len)
        return fail(r, 413, "Payload Too Large");
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        /* Content-Length is known: one allocation of the right size. */
        if ((p->flags & F_CONTENTLENGTH) && cap < p->content_length + r->body_len + 1)
            cap = (size_t)p->content_length + r->body_len + 1;
        char *b = realloc(r->body, cap);
        if (!b)
            return fail(r, 500, "Out Of Memory");
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_req *r = req_of(p);
    r->state = HTTP_REQ_DONE;
    r->keep_alive = http_should_keep_alive(p);
    r->method = http_method_str((enum http_method)p->method);
    http_parser_pause(p, 1); /* what follows is the next request */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void reset_fields(struct http_req *r)
{
    r->state = HTTP_REQ_PARTIAL;
    r->started = 0;
    r->continue_sent = r->want_continue = 0;
    r->keep_alive = 0;
    r->method = NULL;
    r->url[0] = '\0';
    r->url_len = 0;
    r->header_bytes = 0;
    r->nheaders = 0;
    r->cur_field[0] = '\0';
    r->cur_field_len = 0;
    r->field_is_expect = 0;
    r->in_value = 0;
    r->expect_len = 0;
    r->body_len = 0;
    if (r->body)
        r->body[0] = '\0';
    r->error_status = 0;
    r->error_msg = NULL;
}

void http_req_init(struct http_req *r)
{
    memset(r, 0, sizeof(*r));
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
    reset_fields(r);
}

void http_req_free(struct http_req *r)
{
    free(r->body);
    r->body = NULL;
    r->body_cap = r->body_len = 0;
}

size_t http_req_feed(struct http_req *r, const char *data, size_t len)
{
    if (r->state != HTTP_REQ_PARTIAL)
        return 0;
    size_t n = http_parser_execute(&r->parser, &settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
    if (r->state == HTTP_REQ_DONE)
        return n;
    if (e != HPE_OK) {
        r->state = HTTP_REQ_ERROR;
        if (!r->error_status) {
            r->error_status = 400;
            r->error_msg = http_errno_description(e);
        }
        return len;
    }
    return n;
}

void http_req_next(struct http_req *r)
{
    http_parser_pause(&r->parser, 0);
    reset_fields(r);
}

int http_req_path(const struct http_req *r, char *out, size_t outlen)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(r->url, r->url_len, 0, &u) != 0 ||
        !(u.field_set & (1u << UF_PATH)))
        return -1;
    size_t n = u.field_data[UF_PATH].len;
    if (n + 1 > outlen)
        return -1;
    memcpy(out, r->url + u.field_data[UF_PATH].off, n);
    out[n] = '\0';
    return 0;
}
