/* --landlock: confine the process to the paths its configuration names. */
#ifndef NIMBUS_LANDLOCK_H
#define NIMBUS_LANDLOCK_H

#include <stddef.h>

#include "config.h"

/*
 * Build the ruleset from `cfg` (payload, disks, consoles, log, event
 * monitor, API socket folder, --landlock-rules) plus the plugin folders and
 * the device nodes the core opens, load every plugin, and restrict the
 * calling thread, and so every thread created after it.  Call before any
 * thread exists.  0, or -1 with err naming the path or the reason.
 */
int landlock_apply(const struct vm_config *cfg, const char *const *plugin_dirs, char *err,
                   size_t errlen);

#endif
