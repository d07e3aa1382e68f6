#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

static int log_level = LOG_WARN;
static FILE *log_fp;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void log_set_level(int level)
{
    if (level < LOG_ERROR)
        level = LOG_ERROR;
    if (level > LOG_TRACE)
        level = LOG_TRACE;
    log_level = level;
}

int log_get_level(void) { return log_level; }

/* Unlocked on purpose: the seccomp reporter calls it from a signal handler. */
int log_file_fd(void)
{
    FILE *fp = __atomic_load_n(&log_fp, __ATOMIC_RELAXED);
    return fp ? fileno(fp) : -1;
}

int log_set_file(const char *path)
{
    FILE *fp = fopen(path, "ae");
    if (!fp)
        return -errno;
    setvbuf(fp, NULL, _IOLBF, 0);
    pthread_mutex_lock(&log_lock);
    if (log_fp)
        fclose(log_fp);
    __atomic_store_n(&log_fp, fp, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&log_lock);
    return 0;
}

void log_msg(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    if (level < LOG_ERROR)
        level = LOG_ERROR;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    pthread_mutex_lock(&log_lock);
    /* Timestamps are monotonic seconds so boot phases can be read off a log. */
    fprintf(log_fp ? log_fp : stderr, "nimbus[%ld.%06ld] %s: %s\n", (long)ts.tv_sec,
            ts.tv_nsec / 1000, level_names[level], msg);
    pthread_mutex_unlock(&log_lock);
}

static uint64_t suppressed_total;

uint64_t log_suppressed_total(void)
{
    pthread_mutex_lock(&log_lock);
    uint64_t n = suppressed_total;
    pthread_mutex_unlock(&log_lock);
    return n;
}

int log_limit_allow(struct log_limit *l, int level)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    uint32_t dropped = 0;
    int allow;
    /* The log lock: limiters are shared by threads (one per call site). */
    pthread_mutex_lock(&log_lock);
    if (l->window_start_ns == 0 || now - l->window_start_ns >= LOG_LIMIT_WINDOW_NS) {
        dropped = l->suppressed;
        l->window_start_ns = now ? now : 1;
        l->count = 0;
        l->suppressed = 0;
    }
    allow = l->count < LOG_LIMIT_BURST;
    if (allow) {
        l->count++;
    } else {
        l->suppressed++;
        suppressed_total++;
    }
    pthread_mutex_unlock(&log_lock);
    if (dropped)
        log_msg(level, "(%u similar messages suppressed)", dropped);
    return allow;
}
