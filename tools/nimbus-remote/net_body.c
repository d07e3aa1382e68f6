/* add-net bodies through nimbus's --net parser; see net_body.h. */
#include "net_body.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/vmconfig_json.h"
#include "cli.h"

/* nimbus's own --net parser: the same syntax and the same messages. */
static int parse_net(const char *syntax, struct vm_config *cfg, char *err, size_t errlen)
{
    if (cli_parse_net(syntax, cfg, err, errlen) == 0)
        return 0;
    if (!err[0])
        snprintf(err, errlen, "cannot parse '%s'", syntax);
    return -1;
}

/* The NetConfig the server parses back (vm.info's shape), minus fds. */
static char *to_json(const struct net_config *n)
{
    cJSON *o = netconfig_to_cjson(n);
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

char *net_body_build(const char *syntax, int fds[NET_BODY_MAX_FDS], size_t *nfds,
                     char *err, size_t errlen)
{
    struct vm_config *cfg = malloc(sizeof(*cfg)); /* large: 16 nets, 16 disks... */
    if (!cfg) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    config_init(cfg);
    char *body = NULL;
    if (parse_net(syntax, cfg, err, errlen) < 0)
        goto out;
    const struct net_config *n = &cfg->nets[0];
    for (uint32_t i = 0; i < n->nfds; i++) {
        if (fcntl(n->fds[i], F_GETFD) < 0) {
            snprintf(err, errlen, "fd %d is not open in nimbus-remote (fd= sends "
                     "descriptors that nimbus-remote inherited)", n->fds[i]);
            goto out;
        }
        fds[i] = n->fds[i];
    }
    *nfds = n->nfds;
    body = to_json(n);
    if (!body)
        snprintf(err, errlen, "out of memory");
out:
    config_free(cfg);
    free(cfg);
    return body;
}
