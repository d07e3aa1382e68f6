/* add-disk bodies through nimbus's --disk parser; see disk_body.h. */
#include "disk_body.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "api/vmconfig_json.h"
#include "cli.h"
#include "config_limits.h"

char *disk_body_build(const char *syntax, char *err, size_t errlen)
{
    struct vm_config *cfg = malloc(sizeof(*cfg)); /* large: 16 nets, 16 disks... */
    if (!cfg) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    config_init(cfg);
    char *body = NULL;
    if (cli_parse_disk(syntax, cfg, err, errlen) < 0) {
        if (!err[0])
            snprintf(err, errlen, "cannot parse '%s'", syntax);
        goto out;
    }
    /* "One per vCPU" is resolved against a VM; a DiskConfig names a number,
     * and CH's own default is one. */
    if (cfg->disks[0].num_queues == CLI_DISK_QUEUES_PER_VCPU)
        cfg->disks[0].num_queues = 1;
    cJSON *o = diskconfig_to_cjson(&cfg->disks[0]);
    body = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!body)
        snprintf(err, errlen, "out of memory");
out:
    config_free(cfg);
    free(cfg);
    return body;
}
