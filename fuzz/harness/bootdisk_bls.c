/*
 * fuzz_bootdisk_bls: Boot Loader Specification entries
 * (core/bootdisk/bd_bls.c).  Input: up to 8 entry texts separated by NULs,
 * each parsed from an exact-size copy (no terminator: an over-read is an
 * ASan report) under the id "entry-<i>", as bd_find does with the files of
 * /loader/entries; the ones naming a kernel are sorted with bd_bls_sort.
 * Checks:
 *  - parsed strings are NUL-terminated, ninitrd within BD_MAX_INITRD, and a
 *    successful parse has a kernel and a title;
 *  - the order is the specification's: for every adjacent pair, the
 *    comparison recomputed here (sort-key entries first by key, then
 *    machine-id, then version, else id, newest first by bd_vercmp) is <= 0;
 *  - sorting the sorted list again changes nothing;
 *  - bd_vercmp is antisymmetric and reflexive on the first two versions
 *    (ids when an entry has none).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootdisk/bd_bls.h"
#include "fuzz_target.h"

#define MAX_TEXTS 8

static struct bd_bls_list list, again;

static const char *ver(const struct bd_bls_entry *e)
{
    return e->version[0] ? e->version : e->id;
}

static int spec_order(const struct bd_bls_entry *a, const struct bd_bls_entry *b)
{
    if (!!a->sort_key[0] != !!b->sort_key[0])
        return a->sort_key[0] ? -1 : 1;
    int c = strcmp(a->sort_key, b->sort_key);
    if (!c)
        c = strcmp(a->machine_id, b->machine_id);
    if (!c)
        c = bd_vercmp(ver(b), ver(a));
    return c;
}

static void check_entry(const struct bd_bls_entry *e, int parsed)
{
#define TERM(f)                                                                                 \
    do {                                                                                        \
        if (!memchr(e->f, '\0', sizeof(e->f)))                                                  \
            fuzz_fail("bls: %s not NUL-terminated", #f);                                        \
    } while (0)
    TERM(id);
    TERM(title);
    TERM(version);
    TERM(sort_key);
    TERM(machine_id);
    TERM(linux);
    TERM(options);
    if (e->ninitrd < 0 || e->ninitrd > BD_MAX_INITRD)
        fuzz_fail("bls: %d initrds", e->ninitrd);
    for (int k = 0; k < e->ninitrd; k++) {
        TERM(initrd[k]);
        if (!e->initrd[k][0])
            fuzz_fail("bls: initrd %d is empty", k);
    }
#undef TERM
    if (parsed && (!e->linux[0] || !e->title[0]))
        fuzz_fail("bls: parsed without a kernel or a title");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    list.n = 0;
    for (int i = 0; i < MAX_TEXTS && pos <= size; i++) {
        const uint8_t *nul = memchr(data + pos, '\0', size - pos);
        size_t len = nul ? (size_t)(nul - (data + pos)) : size - pos;
        char *text = malloc(len ? len : 1);
        if (!text)
            return 0;
        memcpy(text, data + pos, len);
        char id[16];
        snprintf(id, sizeof(id), "entry-%d", i);
        struct bd_bls_entry *e = &list.e[list.n];
        int r = bd_bls_parse(text, len, id, e);
        free(text);
        if (r != 0 && r != -1)
            fuzz_fail("bls: parse returned %d", r);
        check_entry(e, r == 0);
        if (r == 0)
            list.n++;
        pos += len + 1;
    }
    bd_bls_sort(&list);
    for (int i = 1; i < list.n; i++)
        if (spec_order(&list.e[i - 1], &list.e[i]) > 0)
            fuzz_fail("bls: '%s' (version '%s') sorted before '%s' (version '%s')",
                      list.e[i - 1].id, list.e[i - 1].version, list.e[i].id, list.e[i].version);
    again = list;
    bd_bls_sort(&again);
    if (memcmp(&again, &list, sizeof(list)) != 0)
        fuzz_fail("bls: sorting a sorted list changed it");
    if (list.n >= 2) {
        const char *a = ver(&list.e[0]), *b = ver(&list.e[1]);
        int ab = bd_vercmp(a, b), ba = bd_vercmp(b, a);
        if (ab != -ba)
            fuzz_fail("bls: vercmp('%s', '%s') = %d but vercmp('%s', '%s') = %d", a, b, ab, b,
                      a, ba);
        if (bd_vercmp(a, a) != 0)
            fuzz_fail("bls: vercmp('%s', itself) = %d", a, bd_vercmp(a, a));
    }
    return 0;
}
