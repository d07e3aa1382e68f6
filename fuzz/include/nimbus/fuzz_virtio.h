/*
 * The shared hostile virtio driver, for a virtio device plugin's fuzz
 * harness (in the tree or out of it: libnimbus-fuzz-virtio.a, pkg-config
 * nimbus-plugin-fuzz).  It runs the plugin on a fake host behind a fake
 * virtio transport and drives it like a malicious guest driver (features,
 * queue layouts, descriptor chains, resets, save/restore; the byte format
 * is fuzz/README.md's "virtio op stream"), and fails on sanitizer reports,
 * host-API contract violations, reset not returning to the post-create
 * state, and counters going down.
 *
 * A harness is this header plus one line:
 *
 *     #include <nimbus/fuzz_virtio.h>
 *     NIMBUS_FUZZ_VIRTIO_HARNESS("/path/to/my_device.so", "opt=1")
 *
 * built once per engine: with -fsanitize=fuzzer (libFuzzer, or AFL++'s
 * afl-clang-fast, whose libAFLDriver calls the same entry points) or linked
 * with libnimbus-fuzz-replay.a, a main() that replays files and folders (what
 * a unit test runs over the seed corpus and crash regressions).
 *
 * The plugin is a path (contains '/') or a name searched as NAME.so in
 * $NIMBUS_FUZZ_PLUGIN_DIR, <exe dir>/plugins, <exe dir>/../plugins and
 * <exe dir>; NULL takes $NIMBUS_FUZZ_PLUGIN.  $NIMBUS_FUZZ_OPTIONS, when
 * set, replaces the options.
 */
#ifndef NIMBUS_FUZZ_VIRTIO_H
#define NIMBUS_FUZZ_VIRTIO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Load and create the plugin, attach it to the fake transport.  Setup
 * problems print "fuzz: setup: ..." and exit(1): they are not findings. */
int nimbus_fuzz_virtio_init(int *argc, char ***argv, const char *plugin,
                            const char *options);
/* Run one input from a fresh, attached, not yet negotiated device. */
int nimbus_fuzz_virtio_one(const uint8_t *data, size_t size);

#define NIMBUS_FUZZ_VIRTIO_HARNESS(plugin_, options_)                          \
    int LLVMFuzzerInitialize(int *argc, char ***argv);                         \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);              \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                          \
    {                                                                          \
        return nimbus_fuzz_virtio_init(argc, argv, (plugin_), (options_));     \
    }                                                                          \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)               \
    {                                                                          \
        return nimbus_fuzz_virtio_one(data, size);                             \
    }

#ifdef __cplusplus
}
#endif

#endif
