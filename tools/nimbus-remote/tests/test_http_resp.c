/* nimbus-remote's response parser: what it accepts, where it stops, and
 * every rule it refuses with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http_resp.h"

static enum http_resp_result parse(const char *s, struct http_resp *r)
{
    return http_resp_parse(s, strlen(s), r);
}

static void expect_bad(const char *s, const char *why_part)
{
    struct http_resp r;
    assert_int_equal(parse(s, &r), HTTP_RESP_BAD);
    if (!strstr(r.why, why_part))
        fail_msg("why '%s' lacks '%s' for input '%s'", r.why, why_part, s);
}

static void test_no_content(void **state)
{
    struct http_resp r;
    const char *s = "HTTP/1.1 204 No Content\r\nServer: Cloud Hypervisor API\r\n\r\n";
    assert_int_equal(parse(s, &r), HTTP_RESP_DONE);
    assert_int_equal(r.status, 204);
    assert_string_equal(r.reason, "No Content");
    assert_int_equal(r.head_len, strlen(s));
    assert_int_equal(r.total_len, strlen(s));
    assert_null(r.body);
    assert_int_equal(r.body_len, 0);
}

static void test_body_and_what_follows(void **state)
{
    struct http_resp r;
    const char *head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       "Content-Length: 14\r\n\r\n";
    char s[256];
    snprintf(s, sizeof(s), "%s{\"state\":\"ok\"}HTTP/1.1 204 \r\n\r\n", head);
    assert_int_equal(parse(s, &r), HTTP_RESP_DONE);
    assert_int_equal(r.status, 200);
    assert_true(r.has_length);
    assert_int_equal(r.body_len, 14);
    assert_ptr_equal(r.body, s + strlen(head));
    assert_memory_equal(r.body, "{\"state\":\"ok\"}", 14);
    assert_int_equal(r.total_len, strlen(head) + 14);
}

/* Every proper prefix is INCOMPLETE: nothing is decided before the end. */
static void test_every_prefix_incomplete(void **state)
{
    const char *s = "HTTP/1.1 400 Bad Request\r\ncontent-length: 9\r\nX: y\r\n\r\n[\"a\",\"b\"]";
    size_t n = strlen(s);
    for (size_t k = 0; k < n; k++) {
        struct http_resp r;
        enum http_resp_result res = http_resp_parse(s, k, &r);
        if (res != HTTP_RESP_INCOMPLETE)
            fail_msg("prefix of %zu bytes gave %d (%s)", k, (int)res, r.why);
    }
    struct http_resp r;
    assert_int_equal(http_resp_parse(s, n, &r), HTTP_RESP_DONE);
    assert_int_equal(r.status, 400);
    assert_int_equal(r.body_len, 9);
}

static void test_no_length_means_no_body(void **state)
{
    struct http_resp r;
    assert_int_equal(parse("HTTP/1.0 200\r\n\r\nrest", &r), HTTP_RESP_DONE);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.reason, "");
    assert_false(r.has_length);
    assert_int_equal(r.body_len, 0);
    assert_int_equal(r.total_len, 16);
}

static void test_bodiless_statuses(void **state)
{
    struct http_resp r;
    assert_int_equal(parse("HTTP/1.1 204 x\r\nContent-Length: 5\r\n\r\n", &r),
                     HTTP_RESP_DONE);
    assert_int_equal(r.body_len, 0);
    assert_int_equal(parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK", &r),
                     HTTP_RESP_DONE);
    assert_int_equal(r.status, 100);
    assert_true(http_resp_is_interim(r.status));
    assert_false(http_resp_is_interim(101));
    assert_false(http_resp_is_interim(200));
    assert_int_equal(r.total_len, 25);
}

static void test_duplicate_lengths(void **state)
{
    struct http_resp r;
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length:  2 \r\n"
                           "\r\nab", &r), HTTP_RESP_DONE);
    assert_int_equal(r.body_len, 2);
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
               "two different Content-Length");
}

static void test_length_rules(void **state)
{
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 16777217\r\n\r\n", "above the limit");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
               "above the limit");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "not a number");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n", "not a number");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", "empty Content-Length");
    /* The limit itself is fine: INCOMPLETE while the body is coming. */
    struct http_resp r;
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 16777216\r\n\r\n", &r),
                     HTTP_RESP_INCOMPLETE);
}

static void test_transfer_encoding_refused(void **state)
{
    expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "chunked");
    expect_bad("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, CHUNKED\r\n\r\n", "chunked");
    expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "not supported");
}

static void test_status_line_rules(void **state)
{
    expect_bad("SSH-2.0-OpenSSH", "not an HTTP/1.x response");
    expect_bad("HTTP/2 200\r\n\r\n", "not an HTTP/1.x response");
    expect_bad("HTTP/1.1 99 OK\r\n\r\n", "malformed status line");
    expect_bad("HTTP/1.1 099 OK\r\n\r\n", "out of range");
    expect_bad("HTTP/1.1 600 OK\r\n\r\n", "out of range");
    expect_bad("HTTP/1.1 2000 OK\r\n\r\n", "malformed status line");
    expect_bad("HTTP/1.1 200 O\x1bK\r\n\r\n", "control character");
    expect_bad("HTTP/1.x 200 OK\r\n\r\n", "malformed status line");
    /* Garbage is refused before the head is complete. */
    struct http_resp r;
    assert_int_equal(http_resp_parse("HTTX", 4, &r), HTTP_RESP_BAD);
    assert_int_equal(http_resp_parse("HTT", 3, &r), HTTP_RESP_INCOMPLETE);
    assert_int_equal(http_resp_parse(NULL, 0, &r), HTTP_RESP_INCOMPLETE);
}

static void test_reason_is_clean(void **state)
{
    struct http_resp r;
    char s[256];
    snprintf(s, sizeof(s), "HTTP/1.1 500 %s\xe9\r\n\r\n",
             "A reason phrase much longer than the sixty-four bytes the struct keeps");
    assert_int_equal(parse(s, &r), HTTP_RESP_DONE);
    assert_int_equal(strlen(r.reason), HTTP_RESP_REASON_MAX - 1);
    assert_int_equal(parse("HTTP/1.1 500 caf\xc3\xa9\r\n\r\n", &r), HTTP_RESP_DONE);
    assert_string_equal(r.reason, "caf??");
    assert_int_equal(parse("HTTP/1.1 500 a\tb\r\n\r\n", &r), HTTP_RESP_DONE);
    assert_string_equal(r.reason, "a b");
}

static void test_header_rules(void **state)
{
    expect_bad("HTTP/1.1 200 OK\r\nX: a\r\n  folded\r\n\r\n", "folded");
    expect_bad("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "without ':'");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\nx", "bad header name");
    expect_bad("HTTP/1.1 200 OK\r\n: x\r\n\r\n", "empty header name");
    expect_bad("HTTP/1.1 200 OK\r\nX: a\nb\r\n\r\n", "control character");
    expect_bad("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", "control character");
    struct http_resp r;
    char s[] = "HTTP/1.1 200 OK\r\nX: a?b\r\n\r\n";
    s[21] = '\0';
    assert_int_equal(http_resp_parse(s, sizeof(s) - 1, &r), HTTP_RESP_BAD);
}

static void test_head_limit(void **state)
{
    size_t n = HTTP_RESP_MAX_HEAD + 10;
    char *s = malloc(n);
    assert_non_null(s);
    static const char start[] = "HTTP/1.1 200 OK\r\nX-Pad: ";
    memcpy(s, start, sizeof(start) - 1);
    memset(s + sizeof(start) - 1, 'a', n - (sizeof(start) - 1));
    struct http_resp r;
    /* Below the limit without a blank line: wait for more. */
    assert_int_equal(http_resp_parse(s, HTTP_RESP_MAX_HEAD - 1, &r), HTTP_RESP_INCOMPLETE);
    assert_int_equal(http_resp_parse(s, HTTP_RESP_MAX_HEAD, &r), HTTP_RESP_BAD);
    assert_non_null(strstr(r.why, "longer than"));
    /* A head that ends exactly at the limit is accepted. */
    memcpy(s + HTTP_RESP_MAX_HEAD - 4, "\r\n\r\n", 4);
    assert_int_equal(http_resp_parse(s, HTTP_RESP_MAX_HEAD, &r), HTTP_RESP_DONE);
    assert_int_equal(r.head_len, HTTP_RESP_MAX_HEAD);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_content),
        cmocka_unit_test(test_body_and_what_follows),
        cmocka_unit_test(test_every_prefix_incomplete),
        cmocka_unit_test(test_no_length_means_no_body),
        cmocka_unit_test(test_bodiless_statuses),
        cmocka_unit_test(test_duplicate_lengths),
        cmocka_unit_test(test_length_rules),
        cmocka_unit_test(test_transfer_encoding_refused),
        cmocka_unit_test(test_status_line_rules),
        cmocka_unit_test(test_reason_is_clean),
        cmocka_unit_test(test_header_rules),
        cmocka_unit_test(test_head_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
