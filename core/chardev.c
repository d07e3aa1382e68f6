#include "chardev.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"

#define CHR_OUT_CAP (1u << 20)
#define CHR_IN_CHUNK 4096
/*
 * How often a pty with nobody on the other side is checked for a new
 * client.  epoll cannot wait for that (the master reports HUP until a slave
 * opens), so a timer polls; a quarter second is unnoticeable when attaching.
 */
#define CHR_PTY_POLL_NS 250000000L

struct chardev {
    enum chr_mode mode;
    int in_fd, out_fd;
    int own_out; /* out_fd was opened by us */
    struct event_loop *el;

    /* Protects the output ring and the pty_* flags that other threads read
     * (chr_write, chr_detach); held across el_watch/el_unwatch of the pty
     * so a detach cannot race a re-watch from the loop thread. */
    pthread_mutex_t lock;
    uint8_t *out;
    uint32_t out_head, out_len;
    int drain_posted;
    int out_broken;
    uint64_t out_refused; /* short accepts: the device retries or drops them */
    uint64_t out_dropped; /* overwritten in a pty nobody had open */

    /* Input: touched only on the loop thread. */
    chr_sink_fn sink;
    void *sink_opaque;
    int in_watched, in_paused, in_eof;
    uint8_t in_buf[CHR_IN_CHUNK];
    uint32_t in_off, in_len;

    int tty_saved;
    struct termios saved_termios;

    /*
     * CHR_PTY: in_fd == out_fd is the master.  While no slave is open the
     * master is not watched (it would report HUP forever) and output goes
     * to the ring only, keeping the newest CHR_OUT_CAP bytes for whoever
     * attaches; a timerfd looks for a client meanwhile.
     */
    char pty_name[64];
    int pty_connected; /* a slave is open; written on the loop thread */
    int pty_attached;  /* between chr_attach and chr_detach */
    int pty_out_wait;  /* the master was full: wait for EPOLLOUT */
    int pty_master_watched;
    int pty_timer_fd;
    int pty_timer_watched;
};

static void drain(void *opaque);
static int drain_ring(struct chardev *c);

/* Make master m the backend (taking it), with the timer that notices clients. */
static int pty_adopt(struct chardev *c, int m, char *err, size_t errlen)
{
    c->pty_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (c->pty_timer_fd < 0) {
        snprintf(err, errlen, "cannot create a timer: %s", strerror(errno));
        close(m);
        return -1;
    }
    c->in_fd = c->out_fd = m;
    c->own_out = 1;
    return 0;
}

/* Open a pty master, raw, with the slave closed again (see pty_connected). */
static int pty_open(struct chardev *c, char *err, size_t errlen)
{
    c->pty_timer_fd = -1;
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (m < 0) {
        snprintf(err, errlen, "cannot create a pty: %s", strerror(errno));
        return -1;
    }
    if (grantpt(m) < 0 || unlockpt(m) < 0 ||
        ptsname_r(m, c->pty_name, sizeof(c->pty_name)) != 0) {
        snprintf(err, errlen, "cannot set up the pty: %s", strerror(errno));
        close(m);
        return -1;
    }
    /*
     * Raw on the slave side, where the line discipline runs: the guest does
     * its own echo and line editing, and ^C must reach it as a byte.  The
     * pty keeps these settings while the master lives.  Closing our slave
     * fd afterwards leaves the master in the "nobody attached" state, so
     * output is not piled up in the kernel for a reader that never comes.
     */
    int s = open(c->pty_name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    struct termios t;
    if (s < 0 || tcgetattr(s, &t) < 0) {
        snprintf(err, errlen, "cannot configure '%s': %s", c->pty_name, strerror(errno));
        if (s >= 0)
            close(s);
        close(m);
        return -1;
    }
    cfmakeraw(&t);
    if (tcsetattr(s, TCSANOW, &t) < 0) {
        snprintf(err, errlen, "cannot make '%s' raw: %s", c->pty_name, strerror(errno));
        close(s);
        close(m);
        return -1;
    }
    close(s);
    return pty_adopt(c, m, err, errlen);
}

/* After a reboot: the pty the VMM kept, so its path (which a user or
 * libvirt has open) stays the same; its settings were made when it was new. */
static int pty_reuse(struct chardev *c, int master, char *err, size_t errlen)
{
    c->pty_timer_fd = -1;
    int m = fcntl(master, F_DUPFD_CLOEXEC, 0);
    if (m < 0 || ptsname_r(m, c->pty_name, sizeof(c->pty_name)) != 0) {
        snprintf(err, errlen, "cannot reuse the pty: %s", strerror(errno));
        if (m >= 0)
            close(m);
        return -1;
    }
    return pty_adopt(c, m, err, errlen);
}

struct chardev *chr_open_named(const struct chr_config *cfg, const char *what,
                               struct event_loop *el, char *err, size_t errlen)
{
    struct chardev *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->mode = cfg->mode;
    c->in_fd = c->out_fd = -1;
    c->pty_timer_fd = -1;
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
        /* After a reboot: the same open file, so earlier output stays. */
        c->out_fd = cfg->has_fd ? fcntl(cfg->fd, F_DUPFD_CLOEXEC, 0)
                                : open(cfg->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (c->out_fd < 0) {
            snprintf(err, errlen, "cannot open '%s': %s", cfg->path, strerror(errno));
            goto fail;
        }
        c->own_out = 1;
        break;
    case CHR_PTY:
        if ((cfg->has_fd ? pty_reuse(c, cfg->fd, err, errlen) : pty_open(c, err, errlen)) < 0)
            goto fail;
        break;
    default:
        snprintf(err, errlen, "unsupported character backend");
        goto fail;
    }
    if (c->out_fd >= 0) {
        c->out = malloc(CHR_OUT_CAP);
        if (!c->out) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    /* The one line a user needs to find the device; not subject to -v. */
    if (c->mode == CHR_PTY && !cfg->has_fd)
        fprintf(stderr, "nimbus: %s is on %s\n", what ? what : "character device",
                c->pty_name);
    return c;
fail:
    if (c->own_out)
        close(c->out_fd);
    if (c->pty_timer_fd >= 0)
        close(c->pty_timer_fd);
    pthread_mutex_destroy(&c->lock);
    free(c);
    return NULL;
}

struct chardev *chr_open(const struct chr_config *cfg, struct event_loop *el, char *err,
                         size_t errlen)
{
    return chr_open_named(cfg, NULL, el, err, errlen);
}

int chr_keep_fd(const struct chardev *c)
{
    if (!c || (c->mode != CHR_PTY && c->mode != CHR_FILE) || c->out_fd < 0)
        return -1;
    return fcntl(c->out_fd, F_DUPFD_CLOEXEC, 0);
}

const char *chr_pty_name(const struct chardev *c)
{
    return c && c->mode == CHR_PTY ? c->pty_name : NULL;
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

/* ---- pty connection state (loop thread) ---------------------------------- */

static void on_master(void *opaque, int fd, uint32_t revents);

/* Watch the master for what we wait on now; nothing while disconnected. */
static void pty_update_watch(struct chardev *c)
{
    pthread_mutex_lock(&c->lock);
    if (!c->pty_connected || !c->pty_attached) {
        if (c->pty_master_watched) {
            el_unwatch(c->el, c->out_fd);
            c->pty_master_watched = 0;
        }
    } else {
        uint32_t ev = (c->in_paused ? 0 : EPOLLIN) | (c->pty_out_wait ? EPOLLOUT : 0);
        if (el_watch(c->el, c->out_fd, ev, on_master, c) == 0)
            c->pty_master_watched = 1;
    }
    pthread_mutex_unlock(&c->lock);
}

static int pty_is_attached(struct chardev *c)
{
    pthread_mutex_lock(&c->lock);
    int a = c->pty_attached;
    pthread_mutex_unlock(&c->lock);
    return a;
}

static void pty_arm_timer(struct chardev *c, int on)
{
    struct itimerspec its = {{0, 0}, {0, 0}};
    if (on)
        its.it_value.tv_nsec = its.it_interval.tv_nsec = CHR_PTY_POLL_NS;
    timerfd_settime(c->pty_timer_fd, 0, &its, NULL);
}

static void pty_set_connected(struct chardev *c, int connected)
{
    pthread_mutex_lock(&c->lock);
    c->pty_connected = connected;
    c->pty_out_wait = 0;
    pthread_mutex_unlock(&c->lock);
    pty_arm_timer(c, !connected);
    pty_update_watch(c);
    if (connected)
        drain(c); /* what piled up while nobody was there */
}

/* A slave is open when the master no longer reports HUP. */
static void on_pty_timer(void *opaque, int fd, uint32_t revents)
{
    struct chardev *c = opaque;
    uint64_t ticks;
    ssize_t r = read(fd, &ticks, sizeof(ticks));
    (void)r;
    (void)revents;
    struct pollfd p = {.fd = c->out_fd, .events = POLLIN};
    if (poll(&p, 1, 0) >= 0 && !(p.revents & (POLLHUP | POLLERR | POLLNVAL)))
        pty_set_connected(c, 1);
}

/* ---- input --------------------------------------------------------------- */

/* Pause or resume reading while the device has no room. */
static void set_paused(struct chardev *c, int paused)
{
    if (paused == c->in_paused)
        return;
    c->in_paused = paused;
    if (c->mode == CHR_PTY)
        pty_update_watch(c);
    else if (c->in_watched)
        el_modify(c->el, c->in_fd, paused ? 0 : EPOLLIN);
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
    set_paused(c, c->in_off < c->in_len);
}

/* One read into the empty input buffer: 1 data, 0 nothing now, -1 EOF/error. */
static int read_input(struct chardev *c, int fd)
{
    ssize_t n = read(fd, c->in_buf, sizeof(c->in_buf));
    if (n > 0) {
        c->in_off = 0;
        c->in_len = (uint32_t)n;
        deliver(c);
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    return -1;
}

static void on_input(void *opaque, int fd, uint32_t revents)
{
    struct chardev *c = opaque;
    (void)revents;
    if (c->in_off < c->in_len) {
        deliver(c);
        return;
    }
    if (read_input(c, fd) < 0) {
        /* EOF on stdin (e.g. a pipe closed): the guest just gets no more input. */
        el_unwatch(c->el, fd);
        c->in_watched = 0;
        c->in_eof = 1;
    }
}

/*
 * The pty master: input, room for output, or the client went away (read
 * returns EIO once the last slave closed and its data was read).
 */
static void on_master(void *opaque, int fd, uint32_t revents)
{
    struct chardev *c = opaque;
    if (!c->pty_connected || !pty_is_attached(c))
        return; /* an event queued before the disconnect or detach */
    if (revents & EPOLLOUT) {
        pthread_mutex_lock(&c->lock);
        c->pty_out_wait = 0;
        pthread_mutex_unlock(&c->lock);
        if (drain_ring(c) < 0) {
            pty_set_connected(c, 0);
            return;
        }
    }
    int gone = 0;
    if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (c->in_off < c->in_len)
            /* Paused for the device, so only a hang-up wakes us: there is
             * no reading until it takes the pending bytes. */
            gone = (revents & (EPOLLHUP | EPOLLERR)) != 0;
        else
            gone = read_input(c, fd) < 0;
    }
    if (gone)
        pty_set_connected(c, 0);
    else
        pty_update_watch(c);
}

int chr_attach(struct chardev *c, chr_sink_fn sink, void *opaque)
{
    c->sink = sink;
    c->sink_opaque = opaque;
    if (c->mode == CHR_PTY) {
        pthread_mutex_lock(&c->lock);
        int r = el_watch(c->el, c->pty_timer_fd, EPOLLIN, on_pty_timer, c);
        if (r == 0) {
            c->pty_attached = 1;
            c->pty_timer_watched = 1;
        }
        pthread_mutex_unlock(&c->lock);
        if (r == 0)
            pty_arm_timer(c, 1);
        return r;
    }
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
    if (c->mode == CHR_PTY ? pty_is_attached(c) : c->in_watched)
        el_post(c->el, retry_input, c);
}

/* ---- output -------------------------------------------------------------- */

/*
 * A pty nobody has open keeps the newest bytes: dropping the oldest never
 * holds up the guest, and whoever attaches later sees the latest output
 * (the prompt) rather than the start of the boot log.
 */
static uint64_t pty_make_room(struct chardev *c, const uint8_t **buf, uint64_t len)
{
    if (len > CHR_OUT_CAP) {
        c->out_dropped += c->out_len + (len - CHR_OUT_CAP);
        *buf += len - CHR_OUT_CAP;
        c->out_head = 0;
        c->out_len = 0;
        return CHR_OUT_CAP;
    }
    uint64_t room = CHR_OUT_CAP - c->out_len;
    if (len > room) {
        uint32_t drop = (uint32_t)(len - room);
        c->out_head = (c->out_head + drop) % CHR_OUT_CAP;
        c->out_len -= drop;
        c->out_dropped += drop;
    }
    return len;
}

int64_t chr_write(struct chardev *c, const void *buf, uint64_t len)
{
    if (c->out_fd < 0)
        return (int64_t)len; /* null backend: accepted and discarded */
    const uint8_t *src = buf;
    uint64_t taken = len;
    pthread_mutex_lock(&c->lock);
    uint64_t n;
    if (c->mode == CHR_PTY && !c->pty_connected) {
        n = pty_make_room(c, &src, len);
    } else {
        uint64_t room = CHR_OUT_CAP - c->out_len;
        n = len < room ? len : room;
        taken = n;
        c->out_refused += len - n;
    }
    for (uint64_t i = 0; i < n; i++)
        c->out[(c->out_head + c->out_len + i) % CHR_OUT_CAP] = src[i];
    c->out_len += (uint32_t)n;
    int post = n > 0 && !c->drain_posted && !c->out_broken &&
               (c->mode != CHR_PTY || (c->pty_connected && !c->pty_out_wait));
    if (post)
        c->drain_posted = 1;
    pthread_mutex_unlock(&c->lock);
    if (post && el_post(c->el, drain, c) < 0) {
        pthread_mutex_lock(&c->lock);
        c->drain_posted = 0;
        pthread_mutex_unlock(&c->lock);
    }
    return (int64_t)taken;
}

/*
 * Write what is buffered.  Blocking fds (tty, file) are written until the
 * ring is empty.  The pty master is non-blocking: a full pty stops the
 * drain until EPOLLOUT (returns 1), and it only drains while someone is
 * attached.  -1 when the pty client went away mid-write.
 */
static int drain_ring(struct chardev *c)
{
    int r = 0;
    pthread_mutex_lock(&c->lock);
    while (c->out_len > 0 && !c->out_broken && (c->mode != CHR_PTY || c->pty_connected)) {
        uint32_t chunk = c->out_len;
        if (c->out_head + chunk > CHR_OUT_CAP)
            chunk = CHR_OUT_CAP - c->out_head;
        const uint8_t *p = c->out + c->out_head;
        pthread_mutex_unlock(&c->lock);
        ssize_t w = write(c->out_fd, p, chunk);
        pthread_mutex_lock(&c->lock);
        if (w < 0 && errno == EINTR)
            continue;
        if (c->mode == CHR_PTY && w < 0 && errno == EAGAIN) {
            c->pty_out_wait = 1;
            r = 1;
            break;
        }
        if (c->mode == CHR_PTY && w < 0 && errno == EIO) {
            r = -1;
            break;
        }
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
    return r;
}

/* Runs on the loop thread. */
static void drain(void *opaque)
{
    struct chardev *c = opaque;
    int r = drain_ring(c);
    if (c->mode != CHR_PTY)
        return;
    if (r < 0)
        pty_set_connected(c, 0);
    else if (r > 0)
        pty_update_watch(c);
}

void chr_detach(struct chardev *c)
{
    if (!c)
        return;
    if (c->in_watched) {
        el_unwatch(c->el, c->in_fd);
        c->in_watched = 0;
    }
    if (c->mode != CHR_PTY)
        return;
    pthread_mutex_lock(&c->lock);
    if (c->pty_master_watched) {
        el_unwatch(c->el, c->out_fd);
        c->pty_master_watched = 0;
    }
    if (c->pty_timer_watched) {
        el_unwatch(c->el, c->pty_timer_fd);
        c->pty_timer_watched = 0;
    }
    c->pty_attached = 0;
    pthread_mutex_unlock(&c->lock);
}

void chr_close(struct chardev *c)
{
    if (!c)
        return;
    chr_detach(c);
    if (c->out_fd >= 0) {
        /* A pty is drained as far as it takes without blocking: waiting
         * for a client that may never read would hang the exit. */
        drain_ring(c);
        if (c->mode == CHR_FILE && fdatasync(c->out_fd) < 0 && errno != EINVAL)
            log_warn("fdatasync of serial output: %s", strerror(errno));
        if (c->own_out)
            close(c->out_fd);
    }
    if (c->pty_timer_fd >= 0)
        close(c->pty_timer_fd);
    if (c->out_refused)
        log_warn("serial output: %llu bytes refused while the buffer was full "
                 "(backend too slow)", (unsigned long long)c->out_refused);
    if (c->out_dropped)
        log_warn("serial output: %llu bytes dropped while nobody had %s open",
                 (unsigned long long)c->out_dropped, c->pty_name);
    if (c->tty_saved)
        tcsetattr(c->in_fd, TCSANOW, &c->saved_termios);
    pthread_mutex_destroy(&c->lock);
    free(c->out);
    free(c);
}
