/* --net value parsers (core/net/net_addr.c) and the plugin option string (net_opts.c). */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "net/net_addr.h"
#include "net/net_opts.h"

static void test_mac(void **state)
{
    (void)state;
    uint8_t m[6];
    char s[NET_MAC_STRLEN];
    assert_int_equal(net_parse_mac("52:54:00:Ab:cD:ef", m), 0);
    const uint8_t want[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
    assert_memory_equal(m, want, 6);
    net_format_mac(m, s);
    assert_string_equal(s, "52:54:00:ab:cd:ef");
    assert_true(net_mac_is_unicast(m));
    assert_false(net_mac_is_zero(m));

    static const char *const bad[] = {
        "", "52:54:00:12:34", "52:54:00:12:34:56:", "52:54:00:12:34:5", "52-54-00-12-34-56",
        "52:54:00:12:34:5g", " 52:54:00:12:34:56", "52:54:00:12:34:56 ", "5254:00:12:34:56:",
        "52:54:00:12:34::6", "g2:54:00:12:34:56", "52:54:00:12:34:56:78",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(m, 0xee, sizeof(m));
        if (net_parse_mac(bad[i], m) == 0)
            fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(m[0], 0xee); /* untouched on failure */
    }
    assert_int_equal(net_parse_mac(NULL, m), -1);

    assert_int_equal(net_parse_mac("01:00:5e:00:00:01", m), 0);
    assert_false(net_mac_is_unicast(m));
    assert_int_equal(net_parse_mac("00:00:00:00:00:00", m), 0);
    assert_true(net_mac_is_zero(m));
}

static void test_random_mac(void **state)
{
    (void)state;
    uint8_t a[6], b[6];
    assert_int_equal(net_random_mac(a), 0);
    assert_int_equal(net_random_mac(b), 0);
    assert_int_equal(a[0], 0x52);
    assert_true(net_mac_is_unicast(a));
    assert_true(a[0] & 2); /* locally administered */
    assert_memory_not_equal(a, b, 6); /* 40 random bits: equal once in 2^40 */
}

static uint32_t ip4(const char *s)
{
    struct in_addr a;
    assert_int_equal(inet_pton(AF_INET, s, &a), 1);
    return a.s_addr;
}

static void test_ipv4(void **state)
{
    (void)state;
    static const char *const good[] = { "0.0.0.0", "1.2.3.4", "192.168.249.1",
                                        "255.255.255.255", "10.0.2.15", "100.200.0.99" };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint32_t v = 0;
        if (net_parse_ipv4(good[i], &v) != 0)
            fail_msg("'%s' rejected", good[i]);
        assert_int_equal(v, ip4(good[i]));
    }
    static const char *const bad[] = {
        "", "1", "1.2.3", "1.2.3.4.", "1.2.3.4.5", "1..3.4", ".1.2.3", "256.1.1.1",
        "1.2.3.256", "01.2.3.4", "1.2.3.00", "1.2.3.4 ", " 1.2.3.4", "1.2.3.-4", "0x1.2.3.4",
        "1.2.3.4x", "1000.2.3.4", "::1", "a.b.c.d", "1,2,3,4",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint32_t v = 0x12345678;
        if (net_parse_ipv4(bad[i], &v) == 0)
            fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(v, 0x12345678);
    }
    uint32_t v;
    assert_int_equal(net_parse_ipv4(NULL, &v), -1);
}

static void test_mask_prefix(void **state)
{
    (void)state;
    for (int p = 0; p <= 32; p++) {
        uint32_t m = p ? htonl(0xffffffffu << (32 - p)) : 0;
        assert_int_equal(net_mask_prefix(m), p);
    }
    assert_int_equal(net_mask_prefix(ip4("255.0.255.0")), -1);
    assert_int_equal(net_mask_prefix(ip4("0.255.255.255")), -1);
    assert_int_equal(net_mask_prefix(ip4("255.255.255.254")), 31);
    assert_int_equal(net_mask_prefix(ip4("255.255.255.253")), -1);
    assert_int_equal(net_mask_prefix(ip4("128.0.0.1")), -1);
}

static void test_hostfwd(void **state)
{
    (void)state;
    static const char *const good[] = {
        "tcp:127.0.0.1:2222-:22", "udp::5353-:53", ":0.0.0.0:8080-10.0.2.15:80", "::1-:1",
        "tcp::65535-1.2.3.4:65535",
    };
    char why[128];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (net_hostfwd_check(good[i], why, sizeof(why)) != 0)
            fail_msg("'%s' rejected: %s", good[i], why);

    static const struct { const char *rule, *why; } bad[] = {
        { "", "expected [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport" },
        { "tcp::2222", "expected" },
        { "tcp:2222-:22", "expected" },
        { "tcp::2222:22", "expected" },
        { "2222-:22", "expected" },
        { "tcp:1.2.3.4.5.6.7.8.9:1-:2", "expected" }, /* field too long */
        { "TCP::1-:2", "protocol 'TCP' is not tcp or udp" },
        { "icmp::1-:2", "protocol 'icmp' is not tcp or udp" },
        { "tcp:localhost:1-:2", "host address 'localhost' is not an IPv4 address" },
        { "tcp::0-:2", "host port '0' is not 1-65535" },
        { "tcp::-:2", "host port '' is not 1-65535" },
        { "tcp::65536-:2", "host port '65536' is not 1-65535" },
        { "tcp::0x10-:2", "host port '0x10' is not 1-65535" },
        { "tcp::1-1.2.3:2", "guest address '1.2.3' is not an IPv4 address" },
        { "tcp::1-:0", "guest port '0' is not 1-65535" },
        { "tcp::1-:", "guest port '' is not 1-65535" },
        { "tcp::1-:2:3", "guest port '2:3' is not 1-65535" },
        { "tcp::1-:123456", "guest port '123456' is not 1-65535" },
        { "tcp::1-:2;udp::3-:4", "guest port '2;udp::3-:4' is not 1-65535" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        if (net_hostfwd_check(bad[i].rule, why, sizeof(why)) != -1)
            fail_msg("'%s' accepted", bad[i].rule);
        if (!strstr(why, bad[i].why))
            fail_msg("'%s': '%s' lacks '%s'", bad[i].rule, why, bad[i].why);
    }
    assert_int_equal(net_hostfwd_check("tcp::1-:0", NULL, 0), -1);
}

static void base(struct net_config *nc)
{
    memset(nc, 0, sizeof(*nc));
    nc->num_queues = 2;
    nc->queue_size = 256;
    nc->offload_tso = nc->offload_ufo = nc->offload_csum = 1;
    assert_int_equal(net_parse_mac("52:54:00:12:34:56", nc->mac), 0);
}

static void test_plugin_options(void **state)
{
    (void)state;
    struct net_config nc;
    char buf[512];
    int fds[3] = { 5, 6, 7 };

    base(&nc);
    int n = net_plugin_options(&nc, fds, 1, buf, sizeof(buf));
    assert_int_equal(n, (int)strlen(buf));
    assert_string_equal(buf, "fd=5,mac=52:54:00:12:34:56,num_queues=2,queue_size=256,"
                             "offload_tso=on,offload_ufo=on,offload_csum=on");

    nc.num_queues = 6;
    nc.queue_size = 1024;
    nc.mtu = 9000;
    nc.offload_tso = 0;
    nc.offload_csum = 0;
    nc.id = "net0";
    nc.tap = "ignored"; /* the plugin only sees fds */
    assert_true(net_plugin_options(&nc, fds, 3, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "fd=5:6:7,mac=52:54:00:12:34:56,mtu=9000,num_queues=6,"
                             "queue_size=1024,offload_tso=off,offload_ufo=on,"
                             "offload_csum=off,id=net0");
    /* fds must match num_queues: one per pair. */
    assert_int_equal(net_plugin_options(&nc, fds, 2, buf, sizeof(buf)), -1);
    assert_int_equal(net_plugin_options(&nc, fds, 0, buf, sizeof(buf)), -1);

    base(&nc);
    nc.user = 1;
    char *rules[2] = { "tcp:127.0.0.1:2222-:22", "udp::5353-:53" };
    nc.hostfwd[0] = rules[0];
    nc.hostfwd[1] = rules[1];
    nc.nhostfwd = 2;
    assert_true(net_plugin_options(&nc, NULL, 0, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "user=on,hostfwd=tcp:127.0.0.1:2222-:22;udp::5353-:53,"
                             "mac=52:54:00:12:34:56,num_queues=2,queue_size=256,"
                             "offload_tso=on,offload_ufo=on,offload_csum=on");
    nc.nhostfwd = 0;
    nc.mac[5] = 0x57;
    assert_true(net_plugin_options(&nc, NULL, 0, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "user=on,mac=52:54:00:12:34:57,num_queues=2,queue_size=256,"
                             "offload_tso=on,offload_ufo=on,offload_csum=on");

    /* Exactly large enough, and one byte short. */
    size_t need = strlen(buf) + 1;
    char exact[512];
    assert_int_equal(net_plugin_options(&nc, NULL, 0, exact, need), (int)need - 1);
    assert_string_equal(exact, buf);
    assert_int_equal(net_plugin_options(&nc, NULL, 0, exact, need - 1), -1);
    assert_int_equal(net_plugin_options(&nc, NULL, 0, exact, 0), -1);

    /* Values that would split the option string are refused. */
    nc.id = "a,b";
    assert_int_equal(net_plugin_options(&nc, NULL, 0, buf, sizeof(buf)), -1);
    nc.id = "a;b";
    assert_int_equal(net_plugin_options(&nc, NULL, 0, buf, sizeof(buf)), -1);
    nc.id = NULL;
    char *evil[1] = { "tcp::1-:2,fd=3" };
    nc.hostfwd[0] = evil[0];
    nc.nhostfwd = 1;
    assert_int_equal(net_plugin_options(&nc, NULL, 0, buf, sizeof(buf)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mac),
        cmocka_unit_test(test_random_mac),
        cmocka_unit_test(test_ipv4),
        cmocka_unit_test(test_mask_prefix),
        cmocka_unit_test(test_hostfwd),
        cmocka_unit_test(test_plugin_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
