/* fuzz_virtio_<name> (NIMBUS_FUZZ_DEFAULT_PLUGIN baked in) and
 * fuzz_virtio_generic ($NIMBUS_FUZZ_PLUGIN): the shared hostile driver of
 * virtio_generic.c, entered the way an out-of-tree harness enters it. */
#include <nimbus/fuzz_virtio.h>

#ifndef NIMBUS_FUZZ_DEFAULT_PLUGIN
#define NIMBUS_FUZZ_DEFAULT_PLUGIN NULL
#endif

NIMBUS_FUZZ_VIRTIO_HARNESS(NIMBUS_FUZZ_DEFAULT_PLUGIN, NULL)
