#include "chardev.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"

#define CHR_OUT_CAP (1u << 20)
#define CHR_IN_CHUNK 4096

struct chardev {
    enum chr_mode mode;
    int in_fd, out_fd;
    int own_out; /* out_fd was opened by us */
    struct event_loop *el;

    pthread_mutex_t lock; /* protects the output ring */
    uint8_t *out;
    uint32_t out_head, out_len;
    int drain_posted;
    int out_broken;
    uint64_t out_dropped;

    /* Input: touched only on the loop thread. */
    chr_sink_fn sink;
    void *sink_opaque;
    int in_watched, in_paused, in_eof;
    uint8_t in_buf[CHR_IN_CHUNK];
    uint32_t in_off, in_len;

    int tty_saved;
    struct termios saved_termios;
};

static void drain(void *opaque);

struct chardev *chr_open(const struct chr_config *cfg, struct event_loop *el, char *err,
                         size_t errlen)
{
    struct chardev *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->mode = cfg->mode;
    c->in_fd = c->out_fd = -1;
    c->el = el;
    pthread_mutex_init(&c->lock, NULL);
    switch (cfg->mode) {
    case CHR_NULL:
        break;
    case CHR_TTY:
        c->in_fd = STDIN_FILENO;
        c->out_fd = STDOUT_FILENO;
        break;
    case CHR_FILE:
        c->out_fd = open(cfg->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (c->out_fd < 0) {
            snprintf(err, errlen, "cannot open '%s': %s", cfg->path, strerror(errno));
            free(c);
            return NULL;
        }
        c->own_out = 1;
        break;
    default:
        snprintf(err, errlen, "unsupported character backend");
        free(c);
        return NULL;
    }
    if (c->out_fd >= 0) {
        c->out = malloc(CHR_OUT_CAP);
        if (!c->out) {
            snprintf(err, errlen, "out of memory");
            if (c->own_out)
                close(c->out_fd);
            free(c);
            return NULL;
        }
    }
    return c;
}

static void set_raw(struct chardev *c)
{
    if (c->in_fd < 0 || !isatty(c->in_fd) || tcgetattr(c->in_fd, &c->saved_termios) < 0)
        return;
    struct termios t = c->saved_termios;
    /* Raw, so ^C and friends reach the guest rather than killing the VMM. */
    cfmakeraw(&t);
    t.c_oflag |= OPOST | ONLCR; /* keep our own log lines readable */
    if (tcsetattr(c->in_fd, TCSANOW, &t) == 0)
        c->tty_saved = 1;
}

static void deliver(struct chardev *c)
{
    while (c->in_off < c->in_len) {
        uint64_t n = c->sink(c->sink_opaque, c->in_buf + c->in_off, c->in_len - c->in_off);
        if (n > c->in_len - c->in_off)
            n = c->in_len - c->in_off;
        if (n == 0)
            break;
        c->in_off += (uint32_t)n;
    }
    int full = c->in_off < c->in_len;
    if (c->in_watched && full != c->in_paused) {
        el_modify(c->el, c->in_fd, full ? 0 : EPOLLIN);
        c->in_paused = full;
    }
}

static void on_input(void *opaque, int fd, uint32_t revents)
{
    struct chardev *c = opaque;
    if (c->in_off < c->in_len) {
        deliver(c);
        return;
    }
    ssize_t n = read(fd, c->in_buf, sizeof(c->in_buf));
    if (n > 0) {
        c->in_off = 0;
        c->in_len = (uint32_t)n;
        deliver(c);
    } else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        /* EOF on stdin (e.g. a pipe closed): the guest just gets no more input. */
        el_unwatch(c->el, fd);
        c->in_watched = 0;
        c->in_eof = 1;
    }
    (void)revents;
}

int chr_attach(struct chardev *c, chr_sink_fn sink, void *opaque)
{
    c->sink = sink;
    c->sink_opaque = opaque;
    if (c->in_fd < 0)
        return 0;
    set_raw(c);
    int r = el_watch(c->el, c->in_fd, EPOLLIN, on_input, c);
    if (r == -EPERM) {
        /* A regular file or /dev/null as stdin cannot be polled: no input. */
        log_debug("serial input is not pollable; guest input disabled");
        return 0;
    }
    if (r == 0)
        c->in_watched = 1;
    return r;
}

static void retry_input(void *opaque)
{
    struct chardev *c = opaque;
    if (c->sink && !c->in_eof)
        deliver(c);
}

void chr_input_ready(struct chardev *c)
{
    if (c->in_watched)
        el_post(c->el, retry_input, c);
}

int64_t chr_write(struct chardev *c, const void *buf, uint64_t len)
{
    if (c->out_fd < 0)
        return (int64_t)len; /* null backend: accepted and discarded */
    pthread_mutex_lock(&c->lock);
    uint64_t room = CHR_OUT_CAP - c->out_len;
    uint64_t n = len < room ? len : room;
    for (uint64_t i = 0; i < n; i++)
        c->out[(c->out_head + c->out_len + i) % CHR_OUT_CAP] = ((const uint8_t *)buf)[i];
    c->out_len += (uint32_t)n;
    c->out_dropped += len - n;
    int post = n > 0 && !c->drain_posted && !c->out_broken;
    if (post)
        c->drain_posted = 1;
    pthread_mutex_unlock(&c->lock);
    if (post && el_post(c->el, drain, c) < 0) {
        pthread_mutex_lock(&c->lock);
        c->drain_posted = 0;
        pthread_mutex_unlock(&c->lock);
    }
    return (int64_t)n;
}

/* Write everything buffered; runs on the loop thread (or at close). */
static void drain(void *opaque)
{
    struct chardev *c = opaque;
    pthread_mutex_lock(&c->lock);
    while (c->out_len > 0 && !c->out_broken) {
        uint32_t chunk = c->out_len;
        if (c->out_head + chunk > CHR_OUT_CAP)
            chunk = CHR_OUT_CAP - c->out_head;
        const uint8_t *p = c->out + c->out_head;
        pthread_mutex_unlock(&c->lock);
        ssize_t w = write(c->out_fd, p, chunk);
        pthread_mutex_lock(&c->lock);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            log_warn("serial output write failed: %s; output is discarded from now on",
                     w < 0 ? strerror(errno) : "short write");
            c->out_broken = 1;
            c->out_len = 0;
            break;
        }
        c->out_head = (c->out_head + (uint32_t)w) % CHR_OUT_CAP;
        c->out_len -= (uint32_t)w;
    }
    c->drain_posted = 0;
    pthread_mutex_unlock(&c->lock);
}

void chr_detach(struct chardev *c)
{
    if (c && c->in_watched) {
        el_unwatch(c->el, c->in_fd);
        c->in_watched = 0;
    }
}

void chr_close(struct chardev *c)
{
    if (!c)
        return;
    chr_detach(c);
    if (c->out_fd >= 0) {
        drain(c);
        if (c->own_out) {
            if (fdatasync(c->out_fd) < 0 && errno != EINVAL)
                log_warn("fdatasync of serial output: %s", strerror(errno));
            close(c->out_fd);
        }
    }
    if (c->out_dropped)
        log_warn("serial output: %llu bytes dropped (backend too slow)",
                 (unsigned long long)c->out_dropped);
    if (c->tty_saved)
        tcsetattr(c->in_fd, TCSANOW, &c->saved_termios);
    pthread_mutex_destroy(&c->lock);
    free(c->out);
    free(c);
}
