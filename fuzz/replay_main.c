/*
 * Engine-less driver: feeds files (or every file in directories) to
 * LLVMFuzzerTestOneInput once each, so corpora and past crashes run as
 * regression tests under ctest with any compiler.  A finding aborts.
 *
 * Usage: <target> [--allow-empty] PATH...   (missing PATHs are skipped;
 * running zero files is an error unless --allow-empty)
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_target.h"

extern int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) < 0 || st.st_size < 0) {
        fclose(f);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    /* Exactly `size` bytes, as libFuzzer does, so over-reads are caught. */
    uint8_t *data = malloc(size ? size : 1);
    if (data == NULL || fread(data, 1, size, f) != size) {
        fprintf(stderr, "replay: %s: read failed\n", path);
        free(data);
        fclose(f);
        return -1;
    }
    fclose(f);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    return 0;
}

static int skip_entry(const struct dirent *d)
{
    return d->d_name[0] != '.'; /* .gitkeep, ., .. */
}

/* Returns files run, or -1 on a read error. */
static long run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        fprintf(stderr, "replay: %s: not present, skipped\n", path);
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path) < 0 ? -1 : 1;
    struct dirent **list;
    int n = scandir(path, &list, skip_entry, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    long ran = 0;
    for (int i = 0; i < n; i++) {
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", path, list[i]->d_name);
        struct stat fst;
        if (ran >= 0 && stat(full, &fst) == 0 && S_ISREG(fst.st_mode))
            ran = run_file(full) < 0 ? -1 : ran + 1;
        free(list[i]);
    }
    free(list);
    return ran;
}

int main(int argc, char **argv)
{
    int allow_empty = 0;
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    long total = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--allow-empty")) {
            allow_empty = 1;
            continue;
        }
        if (argv[i][0] == '-')
            continue; /* libFuzzer flags: ignored so command lines are shared */
        long n = run_path(argv[i]);
        if (n < 0)
            return 1;
        total += n;
    }
    fprintf(stderr, "replay: %ld input(s) ran without a finding\n", total);
    if (total == 0 && !allow_empty) {
        fprintf(stderr, "replay: no inputs found (wrong corpus path?)\n");
        return 1;
    }
    return 0;
}
