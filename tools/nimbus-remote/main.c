/*
 * nimbus-remote: Cloud Hypervisor's ch-remote for nimbus.  One request to
 * the REST API on the unix socket of `nimbus --api-socket` per invocation.
 *
 * Exit status: 0 success (HTTP 200/204), 1 the server answered with an
 * error or could not be reached or understood, 2 a bad command line.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli_opts.h"
#include "cmds.h"
#include "http_client.h"
#include "reply.h"

#define EXIT_USAGE 2

static void print_help(FILE *out)
{
    fprintf(out,
"nimbus-remote %s\n"
"Remotely control a nimbus VMM through its REST API (Cloud Hypervisor's ch-remote).\n"
"\n"
"Usage: nimbus-remote --api-socket <path> [--timeout <secs>] <subcommand> [<args>]\n"
"\n"
"Options (before the subcommand):\n"
"      --api-socket <path>\n"
"          HTTP API socket path (UNIX domain socket), as given to\n"
"          nimbus --api-socket. Required.\n"
"      --timeout <secs>\n"
"          Give up when the call has not finished after this many seconds.\n"
"          [default: wait as long as the server takes]\n"
"  -h, --help\n"
"          Print this help and exit (after a subcommand: its usage).\n"
"  -V, --version\n"
"          Print the version and exit.\n"
"\n"
"Subcommands:\n",
            NIMBUS_VERSION);
    remote_cmd_print_list(out);
    fprintf(out,
"\n"
"A 200 response's body is printed on standard output as received. Any status\n"
"but 200 and 204 prints \"nimbus-remote: <endpoint>: HTTP <code>: <messages>\".\n"
"\n"
"Exit status: 0 on success; 1 when the server answers with an error or cannot\n"
"be reached; 2 on a bad command line.\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("nimbus-remote: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_USAGE;
}

/* "--name VALUE" or "--name=VALUE" at argv[*i]; NULL if it is another word. */
static const char *option_value(int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    *missing = 0;
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

int main(int argc, char **argv)
{
    const char *socket_path = NULL;
    const char *timeout_arg = NULL;
    unsigned timeout_s = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        int missing;
        const char *v;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_help(stdout);
            return 0;
        }
        if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("nimbus-remote %s\n", NIMBUS_VERSION);
            return 0;
        }
        if ((v = option_value(argc, argv, &i, "--api-socket", &missing)) || missing) {
            if (missing)
                return usage_error("--api-socket needs a value");
            if (socket_path)
                return usage_error("--api-socket given more than once");
            if (!v[0])
                return usage_error("--api-socket has an empty value");
            socket_path = v;
            continue;
        }
        if ((v = option_value(argc, argv, &i, "--timeout", &missing)) || missing) {
            uint32_t t;
            if (missing)
                return usage_error("--timeout needs a value");
            if (timeout_arg)
                return usage_error("--timeout given more than once");
            if (cli_parse_u32(v, &t) < 0 || t == 0)
                return usage_error("--timeout: '%s' is not a number of seconds (1 or more)", v);
            timeout_arg = v;
            timeout_s = t;
            continue;
        }
        return usage_error("unknown option '%s' (see --help)", a);
    }
    if (i == argc)
        return usage_error("missing subcommand (see --help)");

    struct remote_cmd cmd;
    char err[1024];
    enum remote_cmd_result cr = remote_cmd_build(argc - i, argv + i, &cmd, stdout, err,
                                                 sizeof(err));
    if (cr == REMOTE_CMD_HELP)
        return 0;
    if (cr != REMOTE_CMD_OK)
        return usage_error("%s", err);
    if (!socket_path) {
        remote_cmd_free(&cmd);
        return usage_error("--api-socket <path> is required (see --help)");
    }

    struct remote_request rq = {
        .method = cmd.method,
        .endpoint = cmd.endpoint,
        .body = cmd.body,
        .body_len = cmd.body_len,
        .fds = cmd.fds,
        .nfds = cmd.nfds,
    };
    struct remote_reply rp;
    enum remote_call_result res = remote_call(socket_path, timeout_s, &rq, &rp, err,
                                              sizeof(err));
    int status = 1;
    if (res == REMOTE_NO_CONNECT)
        fprintf(stderr, "nimbus-remote: %s\n", err);
    else if (res != REMOTE_OK)
        fprintf(stderr, "nimbus-remote: %s: %s\n", cmd.endpoint, err);
    else
        status = reply_report(cmd.endpoint, &rp, stdout, stderr);
    remote_reply_free(&rp);
    remote_cmd_free(&cmd);
    return status;
}
