/* Cloud Hypervisor-compatible command line. */
#ifndef NIMBUS_CLI_H
#define NIMBUS_CLI_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "config.h"

enum cli_result {
    CLI_OK = 0,      /* cfg filled; boot the VM */
    CLI_EXIT_OK = 1, /* --help / --version printed to `out`; exit 0 */
    CLI_ERROR = -1,  /* err holds a message naming the bad token; exit 2 */
    CLI_LIST_PLUGINS = 2, /* --device help: list plugins (plugin_list.h); exit 0 */
};

/*
 * Parse argv into cfg (which must have been config_init'ed).  Help and
 * version text go to `out`.  Never exits, never prints errors itself.
 */
enum cli_result cli_parse(int argc, char **argv, struct vm_config *cfg,
                          FILE *out, char *err, size_t errlen);

/*
 * One --net value (without the option name) appended to cfg->nets, with the
 * command line's checks and messages (nimbus-remote add-net uses it).
 * Returns 0 or -1 with err set.
 */
int cli_parse_net(const char *val, struct vm_config *cfg, char *err, size_t errlen);
/* One --disk value into cfg's next disk (nimbus-remote add-disk); as cli_parse_net. */
int cli_parse_disk(const char *val, struct vm_config *cfg, char *err, size_t errlen);

/* "512M", "2G", "1048576", "4096K": bytes.  -1 on malformed or overflow. */
int cli_parse_size(const char *s, uint64_t *out);

#endif
