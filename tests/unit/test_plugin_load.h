/*
 * The plugin a unit test binary exercises, loaded through the fake host
 * once and kept: each of these binaries tests exactly one plugin.
 * Include after <cmocka.h> and fake_host.h.
 */
#ifndef NIMBUS_TEST_PLUGIN_LOAD_H
#define NIMBUS_TEST_PLUGIN_LOAD_H

#include <stdio.h>
#include <string.h>

/* `file` is the plugin's name in NIMBUS_TEST_PLUGIN_DIR, e.g. "cmos.so". */
static const nimbus_plugin *test_load_plugin(const char *file)
{
    static const nimbus_plugin *p;
    static const char *loaded;
    if (!p) {
        char path[512], err[512];
        snprintf(path, sizeof(path), "%s/%s", NIMBUS_TEST_PLUGIN_DIR, file);
        p = fake_host_load_plugin(path, err, sizeof(err));
        if (!p)
            fail_msg("%s", err);
        loaded = file;
    } else if (strcmp(loaded, file) != 0) {
        fail_msg("test_load_plugin: %s asked for after %s (one plugin per binary)", file,
                 loaded);
    }
    return p;
}

#endif
