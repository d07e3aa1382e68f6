/*
 * fuzz_vmconfig_json: the REST API's JSON bodies.  Every input is given to
 * vmconfig_from_json() (vm.create) and to netconfig_from_json()
 * (vm.add-net).  config_validate() only stat()s and access()es the paths an
 * input names: nothing is created, opened for writing or deleted.
 * Checks: the result is 0 or -1; an error comes with a NUL-terminated
 * message inside errlen; an accepted config is shown as JSON
 * (vmconfig_to_cjson) that parses back, and shows as the same JSON again
 * (the same for a NetConfig); when an input is both, vm.add-net's
 * netconfig_check_unique() refuses it exactly when one of the VM's nets has
 * its id or tap; everything is freed (LeakSanitizer).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/vmconfig_json.h"
#include "config.h"
#include "fuzz_target.h"
#include "log.h"

#define ERRLEN 256u

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_set_level(LOG_ERROR); /* ignored sections warn on every input */
    return 0;
}

static void check_err(int r, const char *err, const char *what)
{
    if (r != 0 && r != -1)
        fuzz_fail("%s returned %d", what, r);
    for (size_t i = ERRLEN; i < ERRLEN + 8; i++)
        if (err[i] != 0x5a)
            fuzz_fail("%s wrote past errlen", what);
    if (r == -1 && (memchr(err, '\0', ERRLEN) == NULL || err[0] == '\0'))
        fuzz_fail("%s failed without an error message", what);
}

static char *show(cJSON *j, const char *what)
{
    if (j == NULL)
        fuzz_fail("%s gave no JSON", what);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (s == NULL)
        fuzz_fail("%s: cJSON_PrintUnformatted failed", what);
    return s;
}

/* 0 with cfg filled (the caller frees it), or -1. */
static int vm_body(const char *data, size_t size, struct vm_config *out)
{
    struct vm_config cfg, back;
    char err[ERRLEN + 8];
    memset(err, 0x5a, sizeof(err));
    config_init(&cfg);
    int r = vmconfig_from_json(data, size, &cfg, err, ERRLEN);
    check_err(r, err, "vmconfig_from_json");
    if (r == 0) {
        if (cfg.kernel == NULL && cfg.firmware == NULL)
            fuzz_fail("vmconfig_from_json accepted a config without a kernel or firmware");
        char *s1 = show(vmconfig_to_cjson(&cfg, "/dev/pts/1", NULL), "vmconfig_to_cjson");
        config_init(&back);
        if (vmconfig_from_json(s1, strlen(s1), &back, err, ERRLEN) != 0)
            fuzz_fail("vm.info's config does not parse back: %s\n%s", err, s1);
        char *s2 = show(vmconfig_to_cjson(&back, "/dev/pts/1", NULL), "vmconfig_to_cjson");
        if (strcmp(s1, s2) != 0)
            fuzz_fail("VmConfig round trip differs:\n%s\n%s", s1, s2);
        free(s1);
        free(s2);
        config_free(&back);
    }
    *out = cfg;
    return r;
}

/* 0 with nc filled (the caller frees it), or -1. */
static int net_body(const char *data, size_t size, struct net_config *out)
{
    struct net_config nc, back;
    char err[ERRLEN + 8];
    int fds = -1;
    memset(err, 0x5a, sizeof(err));
    memset(&nc, 0, sizeof(nc));
    int r = netconfig_from_json(data, size, &nc, &fds, err, ERRLEN);
    check_err(r, err, "netconfig_from_json");
    if (fds != 0 && fds != 1)
        fuzz_fail("fds_in_body is %d", fds);
    if (r == 0) {
        char *s1 = show(netconfig_to_cjson(&nc), "netconfig_to_cjson");
        memset(&back, 0, sizeof(back));
        if (netconfig_from_json(s1, strlen(s1), &back, NULL, err, ERRLEN) != 0)
            fuzz_fail("a NetConfig does not parse back: %s\n%s", err, s1);
        char *s2 = show(netconfig_to_cjson(&back), "netconfig_to_cjson");
        if (strcmp(s1, s2) != 0)
            fuzz_fail("NetConfig round trip differs:\n%s\n%s", s1, s2);
        free(s1);
        free(s2);
        net_config_free(&back);
    }
    *out = nc;
    return r;
}

/* vm.add-net of nc to a VM made from cfg: refused exactly when one of its
 * nets has the same id or tap. */
static void check_unique(const struct vm_config *cfg, const struct net_config *nc)
{
    int clash = 0;
    for (uint32_t i = 0; i < cfg->nnets; i++) {
        const struct net_config *o = &cfg->nets[i];
        if ((nc->id && o->id && strcmp(nc->id, o->id) == 0) ||
            (nc->tap && o->tap && strcmp(nc->tap, o->tap) == 0))
            clash = 1;
    }
    char err[ERRLEN + 8];
    memset(err, 0x5a, sizeof(err));
    int r = netconfig_check_unique(cfg, nc, err, ERRLEN);
    check_err(r, err, "netconfig_check_unique");
    if ((r != 0) != clash)
        fuzz_fail("netconfig_check_unique returned %d for a net that %s", r,
                  clash ? "clashes" : "is unique");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vm_config cfg;
    struct net_config nc;
    int vr = vm_body((const char *)data, size, &cfg);
    int nr = net_body((const char *)data, size, &nc);
    if (vr == 0 && nr == 0)
        check_unique(&cfg, &nc);
    net_config_free(&nc);
    config_free(&cfg);
    return 0;
}
