/* Process-wide logging: levels match the plugin ABI's NIMBUS_LOG_*. */
#ifndef NIMBUS_LOG_H
#define NIMBUS_LOG_H

#include <stdint.h>
#include <stdio.h>

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3, LOG_TRACE = 4 };

void log_set_level(int level);
int log_get_level(void);
/* Redirect log output to `path` (appending).  Returns 0 or -errno. */
int log_set_file(const char *path);
/* The --log-file descriptor, or -1: for async-signal-safe reports. */
int log_file_fd(void);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Rate limiting for messages a guest can trigger at will (a misbehaving
 * driver must not be able to fill the disk or stall a vCPU on stderr):
 * at most LOG_LIMIT_BURST messages per LOG_LIMIT_WINDOW_NS per limiter,
 * then silence until the window ends, when one line says how many were
 * dropped.  A limiter is zero-initialised (static or in a device).
 */
#define LOG_LIMIT_BURST 20u
#define LOG_LIMIT_WINDOW_NS 10000000000ull
struct log_limit {
    uint64_t window_start_ns;
    uint32_t count;      /* messages let through in this window */
    uint32_t suppressed; /* dropped in this window */
};
/* 1 when the caller may log now (after reporting earlier drops). */
int log_limit_allow(struct log_limit *l, int level);
/* Messages dropped by every limiter since the start, for tests. */
uint64_t log_suppressed_total(void);

#define log_limited(lim, level, ...)                                            \
    do {                                                                        \
        if ((level) <= log_get_level() && log_limit_allow((lim), (level)))      \
            log_msg((level), __VA_ARGS__);                                      \
    } while (0)
/* One limiter per call site. */
#define log_ratelimited(level, ...)                                             \
    do {                                                                        \
        static struct log_limit lim_;                                           \
        log_limited(&lim_, (level), __VA_ARGS__);                               \
    } while (0)

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_trace(...) log_msg(LOG_TRACE, __VA_ARGS__)

#endif
