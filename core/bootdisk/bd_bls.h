/*
 * Boot Loader Specification entries (uapi-group.org, "Boot Loader
 * Specification"): the .conf files in /loader/entries, as Fedora's GRUB
 * (blscfg) and systemd-boot read them.
 */
#ifndef NIMBUS_BD_BLS_H
#define NIMBUS_BD_BLS_H

#include <stddef.h>

#define BD_MAX_INITRD 4
#define BD_MAX_BLS 32
#define BD_PATH 512
#define BD_CMDLINE 4096

struct bd_bls_entry {
    char id[128];      /* the file name without .conf */
    char title[128];
    char version[64];
    char sort_key[64];
    char machine_id[64];
    char linux[BD_PATH];
    char initrd[BD_MAX_INITRD][BD_PATH];
    int ninitrd;
    char options[BD_CMDLINE];
};

struct bd_bls_list {
    struct bd_bls_entry e[BD_MAX_BLS];
    int n;
};

/* Parse one entry's text; 0, or -1 when it names no kernel. */
int bd_bls_parse(const char *text, size_t len, const char *id, struct bd_bls_entry *out);
/* The specification's order: sort-key, machine-id, then version, newest first. */
void bd_bls_sort(struct bd_bls_list *l);
/* Version comparison as in the specification (alphanumeric runs, like rpm). */
int bd_vercmp(const char *a, const char *b);

#endif
