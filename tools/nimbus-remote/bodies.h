/*
 * Request bodies of the subcommands, built as ch-remote builds them (the
 * same JSON keys, in the same order, null for what was not given).  Each
 * returns a malloc'ed NUL-terminated string, or NULL with a one-line reason
 * in err that the caller prefixes with the subcommand.
 */
#ifndef NIMBUS_REMOTE_BODIES_H
#define NIMBUS_REMOTE_BODIES_H

#include <stddef.h>

/* Request bodies are bounded like responses (the server's own limit is lower). */
#define BODY_MAX_FILE (16u * 1024u * 1024u)

/* create: the file's bytes as they are ("-" reads stdin); *len is set. */
char *body_read_file(const char *path, size_t *len, char *err, size_t errlen);
/* {"<key>":"<value>"}: snapshot and coredump (destination_url), remove-device (id). */
char *body_string(const char *key, const char *value, char *err, size_t errlen);
/* resize: {"desired_vcpus","desired_ram","desired_balloon"}; NULL arguments become null. */
char *body_resize(const char *cpus, const char *memory, const char *balloon, char *err,
                  size_t errlen);
/* resize-disk {"id","desired_size"} and resize-zone {"id","desired_ram"}. */
char *body_resize_id(const char *id, const char *size_key, const char *size, char *err,
                     size_t errlen);
/*
 * add-device: "plugin=<name>[,id=<id>][,<key>=<value>...]" (nimbus: the
 * other keys become the plugin's "options", as --device passes them) or
 * Cloud Hypervisor's "path=<sysfs device>[,iommu=on|off][,id=<id>]".
 */
char *body_device(const char *syntax, char *err, size_t errlen);
/* restore: "source_url=<url>[,prefault=on|off][,resume=on|off]". */
char *body_restore(const char *syntax, char *err, size_t errlen);

#endif
