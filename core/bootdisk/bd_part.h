/* Partition tables: MBR (with logical partitions) and GPT (with its backup). */
#ifndef NIMBUS_BD_PART_H
#define NIMBUS_BD_PART_H

#include <stddef.h>
#include <stdint.h>

#include "bd_dev.h"

#define BD_MAX_PARTS 128u

enum bd_table_kind { BD_TABLE_NONE = 0, BD_TABLE_MBR, BD_TABLE_GPT };

struct bd_part {
    uint32_t number;     /* as Linux numbers it: vda<number>; 0 = the whole disk */
    uint64_t start, size; /* bytes */
    char partuuid[40];   /* GPT unique GUID, or MBR "<disk id>-<nn>" as Linux's PARTUUID= */
    int is_esp;          /* EFI system partition (GPT type or MBR 0xef) */
    int is_bios_boot;    /* GPT BIOS boot: never holds a file system */
};

struct bd_table {
    enum bd_table_kind kind;
    uint32_t nparts;
    struct bd_part parts[BD_MAX_PARTS];
    char note[160];      /* what was odd but survivable ("primary GPT bad, backup used") */
};

/*
 * Read the disk's partition table.  No table at all (a bare file system)
 * yields one "partition" 0 spanning the disk.  A table that is present but
 * broken (a GPT whose headers both fail their checks) fails with a message.
 */
int bd_part_read(const struct bd_dev *disk, struct bd_table *t, char *err, size_t errlen);

const char *bd_table_name(enum bd_table_kind k);

#endif
