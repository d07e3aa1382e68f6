#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_target.h"

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    fputs("fuzz: FINDING: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}
