/* `nimbus --device help`: list the device plugins the loader would find. */
#ifndef NIMBUS_PLUGIN_LIST_H
#define NIMBUS_PLUGIN_LIST_H

#include <stdio.h>

/* Print every *.so in `dirs` (NULL-terminated, search order) as the loader
 * sees it: name, version, ABI, summary, options, or why it is refused.
 * Returns how many files were looked at. */
int plugin_list(FILE *out, const char *const *dirs);

/* 1 when a folder entry named `name` is a plugin file (NAME.so, not hidden). */
int plugin_is_file(const char *name);

#endif
