/*
 * ch-remote's subcommands: their arguments and the request each one makes
 * (method, endpoint, body, file descriptors).
 */
#ifndef NIMBUS_REMOTE_CMDS_H
#define NIMBUS_REMOTE_CMDS_H

#include <stddef.h>
#include <stdio.h>

#include "net_body.h"

struct remote_cmd {
    const char *name;     /* "add-net" */
    const char *method;   /* "PUT" */
    const char *endpoint; /* "vm.add-net" */
    char *body;           /* NULL: the request has none */
    size_t body_len;
    int fds[NET_BODY_MAX_FDS];
    size_t nfds;
};

enum remote_cmd_result {
    REMOTE_CMD_OK = 0,
    REMOTE_CMD_HELP = 1,    /* "<subcommand> --help": usage printed to `out` */
    REMOTE_CMD_ERROR = -1,  /* err names the bad token */
};

/*
 * argv[0] is the subcommand, the rest its arguments.  Reads the file of
 * `create` and parses add-net's NetConfig here, so that every mistake is
 * reported before anything is sent.
 */
enum remote_cmd_result remote_cmd_build(int argc, char **argv, struct remote_cmd *cmd,
                                        FILE *out, char *err, size_t errlen);
void remote_cmd_free(struct remote_cmd *cmd);
/* The subcommand list of --help. */
void remote_cmd_print_list(FILE *out);

#endif
