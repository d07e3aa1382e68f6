/*
 * Booting a disk with nothing else: the boot-loader reader (bd_find.c)
 * runs in a helper process forked before any thread exists, holding only
 * the disks' read-only descriptors and a socket to nimbus, with no
 * capabilities, a strict seccomp filter (it can read those descriptors,
 * answer on the socket and allocate memory: nothing else) and a memory
 * limit; nimbus gives each answer a deadline and kills the helper past it.
 * Reading a guest's disk on the host is how Xen's pygrub was exploited:
 * whatever a hostile image does to the parsers stays in that process.
 * The helper stays for the VM's life and is asked again at every reboot,
 * so a kernel the guest installed boots next time, as under a firmware.
 */
#ifndef NIMBUS_BOOTDISK_H
#define NIMBUS_BOOTDISK_H

#include <stddef.h>
#include <stdint.h>

struct vm_config;
struct bootdisk;

struct bootdisk_payload {
    uint8_t *kernel, *initrd;
    size_t kernel_len, initrd_len;
    char *cmdline;     /* what the boot loader says, or a made-up root= */
    int cmdline_made;  /* no boot loader command line: add a console= */
    char *what;        /* where it came from, for the log */
};

/* Open the config's disks read-only and fork the helper. NULL + err. */
struct bootdisk *bootdisk_start(const struct vm_config *cfg, char *err, size_t errlen);
/* Ask the helper what to boot: 0, or -1 with err (the image's problem or the helper's). */
int bootdisk_resolve(struct bootdisk *bd, struct bootdisk_payload *p, char *err, size_t errlen);
void bootdisk_payload_free(struct bootdisk_payload *p);
void bootdisk_stop(struct bootdisk *bd);

/* The helper's seconds per answer (tests shorten it: NIMBUS_BOOTDISK_TIMEOUT). */
#define BOOTDISK_TIMEOUT_S 60

#endif
