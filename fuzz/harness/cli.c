/*
 * fuzz_cli: cli_parse() over an argv built from the input split on NUL
 * bytes (argv[0] is "nimbus").  The parser only stat()s paths it is given,
 * so inputs may name any path: nothing is created, opened for writing or
 * deleted.  --net is only parsed too: taps are opened (and fd= checked, and
 * a random MAC drawn) by add_net() in vm_virtio.c while a VM is built, which
 * this harness never does, so no tap is ever created.  Checks: the result
 * is one of the three enum values, errors come with a NUL-terminated
 * message inside errlen, config_free() releases everything
 * (LeakSanitizer), and cli_parse_size() agrees with itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "fuzz_target.h"

#define MAX_ARGS 64
#define ERRLEN 256u

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    devnull = fopen("/dev/null", "w");
    if (devnull == NULL) {
        perror("fuzz_cli: /dev/null");
        exit(1);
    }
    return 0;
}

static void check_size(const char *s)
{
    uint64_t v = 0xdeadbeef, v2 = 0;
    if (cli_parse_size(s, &v) != 0)
        return;
    /* A parsed size printed in plain bytes must parse to the same value. */
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    if (cli_parse_size(buf, &v2) != 0 || v2 != v)
        fuzz_fail("cli_parse_size('%s') = %llu, but '%s' does not round-trip",
                  s, (unsigned long long)v, buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Own copy with a terminating NUL so every piece is a C string. */
    char *buf = malloc(size + 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';

    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = (char *)"nimbus";
    for (size_t i = 0; i < size && argc <= MAX_ARGS; i += strlen(buf + i) + 1)
        argv[argc++] = buf + i;
    argv[argc] = NULL;

    struct vm_config cfg;
    char err[ERRLEN + 8];
    memset(err, 0x5a, sizeof(err));
    err[0] = '\0';
    config_init(&cfg);
    enum cli_result r = cli_parse(argc, argv, &cfg, devnull, err, ERRLEN);
    for (size_t i = ERRLEN; i < sizeof(err); i++)
        if (err[i] != 0x5a)
            fuzz_fail("cli_parse wrote past errlen");
    if (r != CLI_OK && r != CLI_EXIT_OK && r != CLI_ERROR && r != CLI_LIST_PLUGINS)
        fuzz_fail("cli_parse returned %d", (int)r);
    if (r == CLI_ERROR && (memchr(err, '\0', ERRLEN) == NULL || err[0] == '\0'))
        fuzz_fail("cli_parse failed without an error message");
    /* Without a payload only an API server waiting for vm.create is valid. */
    if (r == CLI_OK && cfg.kernel == NULL && cfg.api_socket_path == NULL &&
        cfg.api_socket_fd < 0)
        fuzz_fail("cli_parse accepted a config without --kernel or --api-socket");
    config_free(&cfg);

    for (int i = 1; i < argc; i++)
        check_size(argv[i]);
    free(buf);
    return 0;
}
