/* The libFuzzer entry points every harness defines (AFL++'s libAFLDriver and
 * replay_main.c call the same two functions). */
#ifndef NIMBUS_FUZZ_TARGET_H
#define NIMBUS_FUZZ_TARGET_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Print "fuzz: <message>" to stderr and abort(): a finding. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
