/*
 * fuzz_plugin_options / fuzz_options_<name>: create() with an untrusted
 * option string (the input up to its first NUL).  create() must either
 * succeed with sane regions, or fail with a negative errno and a
 * NUL-terminated one-line message; it must never write outside the region
 * array or error buffer it was given, and never leak (LeakSanitizer).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "plugin_target.h"

#ifndef NIMBUS_FUZZ_DEFAULT_PLUGIN
#define NIMBUS_FUZZ_DEFAULT_PLUGIN NULL
#endif

#define ERRLEN 200u
#define CANARY 0xc5

static struct plugin_target target;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* Loads the plugin and proves the default options work. */
    pt_init(&target, NIMBUS_FUZZ_DEFAULT_PLUGIN, 1u << 16);
    return 0;
}

static void check_regions(const nimbus_plugin *p, const nimbus_region *r,
                          uint32_t n, const char *opts)
{
    if (n == 0 || n > NIMBUS_MAX_REGIONS)
        fuzz_fail("%s: create('%s') succeeded with %u regions", p->name, opts, n);
    for (uint32_t i = 0; i < n; i++) {
        if (r[i].kind != NIMBUS_REGION_PIO && r[i].kind != NIMBUS_REGION_MMIO)
            fuzz_fail("%s: create('%s'): region %u kind %u", p->name, opts, i, r[i].kind);
        if (r[i].flags != 0 || r[i].size == 0 || r[i].base + r[i].size < r[i].base)
            fuzz_fail("%s: create('%s'): region %u flags %u base 0x%llx size 0x%llx",
                      p->name, opts, i, r[i].flags, (unsigned long long)r[i].base,
                      (unsigned long long)r[i].size);
        if (r[i].kind == NIMBUS_REGION_PIO && r[i].base + r[i].size > 0x10000)
            fuzz_fail("%s: create('%s'): port region %u beyond 0xffff", p->name, opts, i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const nimbus_plugin *p = target.p;
    char *opts = malloc(size + 1);
    if (opts == NULL)
        return 0;
    memcpy(opts, data, size);
    opts[size] = '\0';

    /* One spare slot/byte past what create() is told it may use. */
    nimbus_region regions[NIMBUS_MAX_REGIONS + 1];
    char err[ERRLEN + 16];
    memset(regions, CANARY, sizeof(regions));
    memset(err, CANARY, sizeof(err));
    uint32_t n = NIMBUS_MAX_REGIONS;
    void *dev = NULL;

    fake_host_snapshot_restore(&target.host, &target.snap);
    int r = fake_host_create(&target.host, p, opts, &dev, regions, &n, err, ERRLEN);
    const uint8_t *spare = (const uint8_t *)&regions[NIMBUS_MAX_REGIONS];
    for (size_t i = 0; i < sizeof(nimbus_region); i++)
        if (spare[i] != CANARY)
            fuzz_fail("%s: create('%s') wrote past the region array", p->name, opts);
    for (size_t i = ERRLEN; i < sizeof(err); i++)
        if ((uint8_t)err[i] != CANARY)
            fuzz_fail("%s: create('%s') wrote past errlen", p->name, opts);
    if (r > 0)
        fuzz_fail("%s: create('%s') returned %d (must be 0 or -errno)", p->name, opts, r);
    if (r < 0) {
        if (memchr(err, '\0', ERRLEN) == NULL || err[0] == '\0')
            fuzz_fail("%s: create('%s') failed (%d) without an error message",
                      p->name, opts, r);
    } else {
        check_regions(p, regions, n, opts);
        /* A configuration that create() accepted must be usable. */
        p->ops->reset(dev);
        if (target.can_save) {
            uint64_t len = 0;
            if (p->ops->state_save(dev, NULL, 0, &len) < 0)
                fuzz_fail("%s: state_save size query failed after create('%s')",
                          p->name, opts);
        }
        p->ops->destroy(dev);
    }
    /* No region slot at all: must fail cleanly or need no region. */
    n = 0;
    dev = NULL;
    err[0] = '\0';
    memset(regions, CANARY, sizeof(regions));
    r = fake_host_create(&target.host, p, opts, &dev, regions, &n, err, ERRLEN);
    for (size_t i = 0; i < sizeof(nimbus_region); i++)
        if (((const uint8_t *)&regions[0])[i] != CANARY)
            fuzz_fail("%s: create('%s') wrote a region with capacity 0", p->name, opts);
    if (r == 0) {
        if (n != 0)
            fuzz_fail("%s: create('%s') used %u regions with capacity 0", p->name, opts, n);
        p->ops->destroy(dev);
    } else if (err[0] == '\0') {
        fuzz_fail("%s: create('%s') with no region slot failed without a message",
                  p->name, opts);
    }
    if (fake_host_violation_count(&target.host))
        fuzz_fail("%s: host API contract violations", p->name);
    free(opts);
    return 0;
}
