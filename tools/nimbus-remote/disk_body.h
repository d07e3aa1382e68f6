/*
 * add-disk: DiskConfig syntax ("path=/img,readonly=on,id=d1") parsed by
 * nimbus's own --disk parser, so the syntax and every error message are the
 * command line's, then sent as the Cloud Hypervisor DiskConfig JSON body
 * the server reads (diskconfig_to_cjson(), the shape vm.info shows), as
 * ch-remote turns its argument into JSON.
 */
#ifndef NIMBUS_REMOTE_DISK_BODY_H
#define NIMBUS_REMOTE_DISK_BODY_H

#include <stddef.h>

/* The malloc'ed JSON body, or NULL with a one-line reason in err. */
char *disk_body_build(const char *syntax, char *err, size_t errlen);

#endif
