/*
 * Find what a disk's boot loader would boot, the way the boot loader
 * would: the partition table, the file system /boot lives on, GRUB's
 * default entry, else Boot Loader Specification entries, else the
 * /vmlinuz and /initrd.img links.  Runs in the sandboxed helper
 * (bootdisk.c) and in the fuzz harnesses; every input is the image's.
 */
#ifndef NIMBUS_BD_FIND_H
#define NIMBUS_BD_FIND_H

#include <stddef.h>
#include <stdint.h>

#include "bd_bls.h"
#include "bd_dev.h"

#define BD_MAX_DISKS 16
#define BD_KERNEL_MAX (256u << 20)
#define BD_INITRD_MAX (1024u << 20)
#define BD_CONFIG_MAX (1u << 20)

struct bd_found {
    uint8_t *kernel, *initrd;
    size_t kernel_len, initrd_len;
    char cmdline[BD_CMDLINE];
    int cmdline_made; /* no boot loader gave one: "root=PARTUUID=... ro" made up */
    char what[768];   /* where it came from, for the log */
};

/*
 * Disks in command-line order (GRUB's hd0, hd1, ...); the first that
 * yields a kernel wins.  0, or -1 with err saying what each disk holds.
 */
int bd_find(const struct bd_dev *disks, int ndisks, struct bd_found *out, char *err,
            size_t errlen);
void bd_found_free(struct bd_found *f);

#endif
