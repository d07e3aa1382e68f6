/* Argument parsing the static guest tools (blkbench, netbench) share. */
#ifndef NIMBUS_BENCH_ARGS_H
#define NIMBUS_BENCH_ARGS_H

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A decimal in [min, max], or one line naming the option and exit 2. */
static inline uint64_t bench_parse_u64(const char *tool, const char *opt, const char *s,
                                       uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "%s: %s needs an integer in %" PRIu64 "..%" PRIu64 ", got '%s'\n", tool,
                opt, min, max, s);
        exit(2);
    }
    return v;
}

#endif
