/*
 * The template's fuzz harness: nimbus's shared hostile virtio driver
 * (nimbus/fuzz_virtio.h) against this plugin.  The plugin is found by name
 * next to the harness (out of the tree) or in the build's plugin folder (in
 * it).  Add device-specific checks here if the generic ones (sanitizers,
 * host-API contract, reset == post-create state, counters never going
 * down) do not cover an invariant of your device.
 */
#include <nimbus/fuzz_virtio.h>

NIMBUS_FUZZ_VIRTIO_HARNESS("virtio_template", "seed=7")
