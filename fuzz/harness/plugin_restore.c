/*
 * fuzz_plugin_restore / fuzz_restore_<name>: state_restore() with an
 * untrusted blob (snapshots and migration streams come from outside).  A
 * rejected blob must fail cleanly; an accepted one must give a device that
 * saves back to a stable blob and survives guest accesses, timers and reset.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "plugin_target.h"

#ifndef NIMBUS_FUZZ_DEFAULT_PLUGIN
#define NIMBUS_FUZZ_DEFAULT_PLUGIN NULL
#endif

/* Bytes of each region read after a successful restore. */
#define PROBE_BYTES 64u

static struct plugin_target target;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    pt_init(&target, NIMBUS_FUZZ_DEFAULT_PLUGIN, 1u << 20);
    if (!target.can_save) {
        fprintf(stderr, "fuzz: %s cannot save/restore; nothing to fuzz\n",
                target.p->name);
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct plugin_target *t = &target;
    /* Exact-size copy: over-reads past the blob end are ASan reports. */
    uint8_t *blob = malloc(size ? size : 1);
    if (blob == NULL)
        return 0;
    memcpy(blob, data, size);
    pt_begin(t);
    int r = t->p->ops->state_restore(t->dev, blob, size);
    free(blob);
    if (r > 0)
        fuzz_fail("%s: state_restore returned %d (must be 0 or -errno)", t->p->name, r);
    if (r == 0) {
        /* Whatever was accepted must be a fixed point of save/restore. */
        pt_roundtrip(t, "(after restoring a fuzzed blob)");
        for (uint32_t i = 0; i < t->nregions; i++) {
            uint64_t n = t->regions[i].size < PROBE_BYTES ? t->regions[i].size : PROBE_BYTES;
            for (uint64_t off = 0; off < n; off++)
                pt_read(t, i, off, 1);
        }
        static const uint8_t probe[] = "nimbus\r\n";
        pt_chr_input(t, probe, sizeof(probe) - 1);
        for (int k = 0; k < 4; k++)
            fake_host_fire_next(&t->host, t->p, t->dev);
    }
    pt_end(t);
    return 0;
}
