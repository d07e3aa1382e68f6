#include "event_monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static pthread_mutex_t em_lock = PTHREAD_MUTEX_INITIALIZER;
static int em_fd = -1;
static struct timespec em_start;
static unsigned long em_dropped;

int event_monitor_open(const char *path, int fd, char *err, size_t errlen)
{
    clock_gettime(CLOCK_MONOTONIC, &em_start);
    if (fd < 0) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        if (fd < 0) {
            snprintf(err, errlen, "--event-monitor: cannot open '%s': %s", path,
                     strerror(errno));
            return -1;
        }
    } else if (fcntl(fd, F_GETFL) < 0) {
        snprintf(err, errlen, "--event-monitor: fd=%d is not open", fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    pthread_mutex_lock(&em_lock);
    em_fd = fd;
    pthread_mutex_unlock(&em_lock);
    return 0;
}

void event_emit(const char *source, const char *event, const char *properties)
{
    pthread_mutex_lock(&em_lock);
    if (em_fd < 0) {
        pthread_mutex_unlock(&em_lock);
        return;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long secs = (long long)(now.tv_sec - em_start.tv_sec);
    long nanos = now.tv_nsec - em_start.tv_nsec;
    if (nanos < 0) {
        nanos += 1000000000L;
        secs--;
    }
    char buf[4096];
    int n = snprintf(buf, sizeof(buf),
                     "{\"timestamp\":{\"secs\":%lld,\"nanos\":%ld},\"source\":\"%s\","
                     "\"event\":\"%s\",\"properties\":%s}\n\n",
                     secs, nanos, source, event, properties ? properties : "null");
    if (n > 0 && (size_t)n < sizeof(buf)) {
        ssize_t w = write(em_fd, buf, (size_t)n);
        if (w != n) {
            /* Partial or refused: the reader is gone or not reading. */
            if (em_dropped++ == 0)
                log_warn("event monitor: cannot write event %s:%s (%s); later losses are "
                         "counted", source, event, w < 0 ? strerror(errno) : "short write");
        }
    }
    pthread_mutex_unlock(&em_lock);
}

void event_monitor_close(void)
{
    pthread_mutex_lock(&em_lock);
    if (em_fd >= 0) {
        close(em_fd);
        em_fd = -1;
    }
    if (em_dropped > 1)
        log_warn("event monitor: %lu events could not be written", em_dropped);
    pthread_mutex_unlock(&em_lock);
}
