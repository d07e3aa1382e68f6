/*
 * One plugin instance on a fake host, plus the generic checks every plugin
 * harness applies: reset returns to the power-on state, saved state restores,
 * and the plugin never breaks the host API contract.
 */
#ifndef NIMBUS_FUZZ_PLUGIN_TARGET_H
#define NIMBUS_FUZZ_PLUGIN_TARGET_H

#include <stdint.h>

#include "fake_host.h"
#include "fuzz_input.h"

struct plugin_target {
    const nimbus_plugin *p;
    char path[4096];
    const char *options;
    struct fake_host host;
    void *dev;
    nimbus_region regions[NIMBUS_MAX_REGIONS];
    uint32_t nregions;
    struct fake_host_snapshot snap; /* host right after create() */

    int can_save; /* state_save and state_restore both present */
    uint8_t *baseline; /* state_save right after create() */
    uint64_t baseline_len;
    uint8_t *buf; /* scratch for state_save */
    uint64_t cap;
    uint8_t *rt; /* the first blob of a save/restore round trip */
    uint64_t rt_cap;
    uint8_t *slot; /* a state saved by one op and restored by a later one */
    uint64_t slot_len, slot_cap;
    int slot_valid;
};

/*
 * Resolve the plugin (see pt_resolve), load it, create it with the options in
 * $NIMBUS_FUZZ_OPTIONS (default "") and record the baseline.  Setup problems
 * are not findings: they print a message and exit(1).
 */
void pt_init(struct plugin_target *t, const char *baked_name, uint64_t ram_size);

/*
 * `name` as given, if it contains '/'; else <name>.so searched in
 * $NIMBUS_FUZZ_PLUGIN_DIR, <exe dir>/plugins (test-only plugins) and
 * <exe dir>/../plugins (the build tree's plugin dir) and <exe dir> (an
 * out-of-tree plugin's build folder).  0 or -1.
 */
int pt_resolve(const char *name, char *out, size_t outlen);

/* Name of the plugin to fuzz: baked_name, else $NIMBUS_FUZZ_PLUGIN. */
const char *pt_plugin_name(const char *baked_name);

/* Before each input: host back to its post-create snapshot, device reset. */
void pt_begin(struct plugin_target *t);

/* reset(), then require the post-create state_save blob and IRQ levels. */
void pt_reset_and_check(struct plugin_target *t, const char *when);

/* state_save into t->buf (grown as needed); returns the length. */
uint64_t pt_save(struct plugin_target *t, const char *when);

/* save A, restore A (must succeed), save B: A and B must be identical. */
void pt_roundtrip(struct plugin_target *t, const char *when);

/* Guest access, clipped to the region; accesses that cannot fit are skipped. */
void pt_read(struct plugin_target *t, uint32_t region, uint64_t offset, uint32_t len);
void pt_write(struct plugin_target *t, uint32_t region, uint64_t offset,
              uint32_t len, uint64_t value);
/* Like pt_read, returning the value (0 if the access was skipped/rejected). */
uint64_t pt_read_val(struct plugin_target *t, uint32_t region, uint64_t offset,
                     uint32_t len);

/* Offer bytes to chr_input; fails if the device claims more than offered. */
uint64_t pt_chr_input(struct plugin_target *t, const uint8_t *bytes, size_t n);

/* The Morphuzz-style op interpreter (format in fuzz/README.md). */
void pt_run_ops(struct plugin_target *t, struct fuzz_in *in);

/* End of input: reset check plus host-contract check. */
void pt_end(struct plugin_target *t);

#endif
