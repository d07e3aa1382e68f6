/*
 * What GRUB would boot from a grub.cfg: enough of GRUB's script language
 * (variables, if/elif/else with test, menuentry, submenu, load_env,
 * search, blscfg) to find the default entry and run its linux/initrd
 * lines.  Nothing is executed beyond that; unknown commands are no-ops,
 * unknown conditions false.
 */
#ifndef NIMBUS_BD_GRUB_H
#define NIMBUS_BD_GRUB_H

#include <stddef.h>

#include "bd_bls.h"

#define BD_DEV 160

/* A file GRUB names: a device (GRUB's spelling, see bd_grub_dev) and a path. */
struct bd_file_ref {
    char dev[BD_DEV];
    char path[BD_PATH];
};

struct bd_boot_spec {
    struct bd_file_ref kernel;
    struct bd_file_ref initrd[BD_MAX_INITRD];
    int ninitrd;
    char cmdline[BD_CMDLINE];
    char title[256];
    int from_bls; /* the entry came from blscfg */
};

/* What the interpreter asks of the disk. */
struct bd_grub_host {
    /* 1 when the file exists and (nonempty) is not empty; dev as in refs. */
    int (*file_test)(void *opaque, const char *dev, const char *path, int nonempty);
    /* The BLS entries blscfg would list, sorted; 0 or -1. */
    int (*bls)(void *opaque, const char *dev, struct bd_bls_list *out);
    void *opaque;
};

/*
 * Interpret grub.cfg (text), found on device `dev` in directory `dir`,
 * with the grubenv text beside it (may be NULL).  Fills spec with the
 * default entry's kernel, initrds and command line.  0, or -1 with a
 * message (no entries, the default names no entry, the entry has no linux
 * line, a chainloader entry...).
 */
int bd_grub_boot(const char *text, size_t len, const char *grubenv, size_t envlen,
                 const char *dev, const char *dir, const struct bd_grub_host *host,
                 struct bd_boot_spec *spec, char *err, size_t errlen);

/* Split "(dev)/path" into ref; a path without a device gets dflt. */
void bd_grub_ref(const char *word, const char *dflt, struct bd_file_ref *ref);

#endif
