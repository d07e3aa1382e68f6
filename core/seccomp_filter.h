/*
 * --seccomp: one system-call filter per kind of thread (core/seccomp_filter.c).
 *
 * The main thread builds every kind's filter once (seccomp_setup), installs
 * the VMM thread's own, and each thread installs its kind's filter as the
 * first thing it does (seccomp_enter).  Filters stack: a thread is bound by
 * its creator's filter and its own, so the VMM filter is the widest.
 */
#ifndef NIMBUS_SECCOMP_FILTER_H
#define NIMBUS_SECCOMP_FILTER_H

#include <stddef.h>

enum seccomp_mode {
    SECCOMP_OFF,   /* --seccomp false: no filter at all */
    SECCOMP_TRAP,  /* true (default): a forbidden call ends nimbus, naming it */
    SECCOMP_LOG,   /* log: allowed, and logged by the kernel (audit) */
    SECCOMP_ERRNO, /* errno: the call fails with EPERM */
};

enum seccomp_kind {
    SECCOMP_VMM,    /* the main thread: control loop, VM creation, reboot */
    SECCOMP_VCPU,   /* KVM_RUN and the device code an exit runs */
    SECCOMP_DEVICE, /* the device event loop and per-queue I/O threads */
    SECCOMP_API,    /* the REST API's HTTP server */
    SECCOMP_NKINDS
};

/* "true"/NULL, "false", "log", "errno" -> mode; -1 for anything else. */
int seccomp_parse_mode(const char *s);

/*
 * Build every kind's filter, install the SIGSYS reporter, and confine the
 * calling (main) thread with the VMM filter.  Call before any other thread
 * exists.  0, or -1 with err saying why.
 */
int seccomp_setup(enum seccomp_mode mode, char *err, size_t errlen);

/*
 * Confine the calling thread with its kind's filter; `name` is what a
 * report calls the thread.  A no-op when seccomp_setup was not called or
 * the mode is off.  A failure ends the process: a thread must never run
 * unconfined when the user asked for filters.
 */
void seccomp_enter(enum seccomp_kind kind, const char *name);

const char *seccomp_kind_name(enum seccomp_kind kind);

#endif
