/*
 * fuzz_plugin_generic / fuzz_plugin_<name>: any device plugin, driven by a
 * Morphuzz-style op stream (see fuzz/README.md for the byte format).  Which
 * plugin: NIMBUS_FUZZ_DEFAULT_PLUGIN baked in at build time, else the
 * NIMBUS_FUZZ_PLUGIN environment variable (a name or a .so path).  After
 * the ops, the plugin's counters are read once (if it has any).
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_target.h"
#include "plugin_target.h"

#ifndef NIMBUS_FUZZ_DEFAULT_PLUGIN
#define NIMBUS_FUZZ_DEFAULT_PLUGIN NULL
#endif

/* Guest RAM for DMA-capable devices; cleared between inputs only if touched. */
#define GENERIC_RAM_SIZE (1u << 20)

static struct plugin_target target;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    pt_init(&target, NIMBUS_FUZZ_DEFAULT_PLUGIN, GENERIC_RAM_SIZE);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    pt_begin(&target);
    pt_run_ops(&target, &in);
    /* Counters (ABI minor 3) in whatever state the ops left: the fake host
     * turns a bad name, a repeated one or a late emit into a violation. */
    struct fake_host_counters c;
    fake_host_counters(&target.host, target.p, target.dev, &c);
    pt_end(&target);
    return 0;
}
