/* One request/response exchange on the API socket; see http_client.h. */
#include "http_client.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_SCM_FDS 253 /* the kernel's SCM_MAX_FD */
#define MAX_INTERIM 8   /* 1xx responses skipped before giving up */
#define READ_CHUNK 4096u

struct conn {
    int fd;
    int timed;                  /* a deadline applies */
    struct timespec deadline;   /* CLOCK_MONOTONIC */
    char *err;
    size_t errlen;
};

static enum remote_call_result fail(struct conn *c, enum remote_call_result r,
                                    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static enum remote_call_result fail(struct conn *c, enum remote_call_result r,
                                    const char *fmt, ...)
{
    if (c->err && c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    return r;
}

/* Milliseconds left for poll(): -1 without a deadline, 0 once it passed. */
static int remaining_ms(const struct conn *c)
{
    if (!c->timed)
        return -1;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ms = (int64_t)(c->deadline.tv_sec - now.tv_sec) * 1000 +
                 (c->deadline.tv_nsec - now.tv_nsec) / 1000000;
    if (ms <= 0)
        return 0;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* 0 when fd is ready for `events` (or has an error to report), -1 with
 * errno ETIMEDOUT when the deadline passed. */
static int wait_for(const struct conn *c, short events)
{
    for (;;) {
        struct pollfd pfd = { .fd = c->fd, .events = events };
        int ms = remaining_ms(c);
        if (ms == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        int n = poll(&pfd, 1, ms);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* Send all of p[0, n); fds ride on the first byte that goes out. */
static int send_all(const struct conn *c, const char *p, size_t n, const int *fds,
                    size_t nfds)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * MAX_SCM_FDS)];
    } ctl;
    while (n > 0) {
        if (wait_for(c, POLLOUT) < 0)
            return -1;
        ssize_t k;
        if (nfds) {
            struct iovec iov = { .iov_base = (void *)p, .iov_len = n };
            struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
            memset(&ctl, 0, sizeof(ctl));
            msg.msg_control = ctl.buf;
            msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
            struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
            memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
            k = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        } else {
            k = send(c->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        if (k < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                continue;
            return -1;
        }
        nfds = 0;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The four writes of Cloud Hypervisor's api_client. */
static int send_request(const struct conn *c, const struct remote_request *rq)
{
    char head[256];
    int n = snprintf(head, sizeof(head), "%s /api/v1/%s HTTP/1.1\r\nHost: localhost\r\n"
                     "Accept: */*\r\n", rq->method, rq->endpoint);
    if (n < 0 || (size_t)n >= sizeof(head)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (send_all(c, head, (size_t)n, rq->fds, rq->nfds) < 0)
        return -1;
    if (rq->body) {
        n = snprintf(head, sizeof(head), "Content-Length: %zu\r\n", rq->body_len);
        if (send_all(c, head, (size_t)n, NULL, 0) < 0)
            return -1;
    }
    if (send_all(c, "\r\n", 2, NULL, 0) < 0)
        return -1;
    if (rq->body && send_all(c, rq->body, rq->body_len, NULL, 0) < 0)
        return -1;
    return 0;
}

/* Read until one final response is complete.  send_errno: why sending
 * stopped early (0 if it did not), for the message when nothing comes. */
static enum remote_call_result read_reply(struct conn *c, unsigned timeout_s,
                                          struct remote_reply *rp, int send_errno)
{
    const size_t hard = (size_t)HTTP_RESP_MAX_HEAD + HTTP_RESP_MAX_BODY;
    size_t cap = READ_CHUNK, len = 0;
    int interim = 0;
    enum remote_call_result res = REMOTE_FAILED;
    char *buf = malloc(cap);
    if (!buf)
        return fail(c, REMOTE_FAILED, "out of memory");
    for (;;) {
        struct http_resp r;
        enum http_resp_result pr = http_resp_parse(buf, len, &r);
        if (pr == HTTP_RESP_BAD) {
            fail(c, REMOTE_FAILED, "bad response: %s", r.why);
            break;
        }
        if (pr == HTTP_RESP_DONE && http_resp_is_interim(r.status)) {
            if (++interim > MAX_INTERIM) {
                fail(c, REMOTE_FAILED, "bad response: more than %d interim (1xx) responses",
                     MAX_INTERIM);
                break;
            }
            memmove(buf, buf + r.total_len, len - r.total_len);
            len -= r.total_len;
            continue;
        }
        if (pr == HTTP_RESP_DONE) {
            if (r.status == 101) {
                fail(c, REMOTE_FAILED, "bad response: unexpected 101 Switching Protocols");
                break;
            }
            rp->status = r.status;
            memcpy(rp->reason, r.reason, sizeof(rp->reason));
            if (r.body_len) {
                rp->body = malloc(r.body_len + 1);
                if (!rp->body) {
                    fail(c, REMOTE_FAILED, "out of memory");
                    break;
                }
                memcpy(rp->body, r.body, r.body_len);
                rp->body[r.body_len] = '\0';
                rp->body_len = r.body_len;
            }
            res = REMOTE_OK;
            break;
        }
        /* INCOMPLETE: the parser's bounds keep len below `hard`. */
        if (len == cap) {
            size_t ncap = cap * 2 < hard ? cap * 2 : hard;
            char *nb = ncap > cap ? realloc(buf, ncap) : NULL;
            if (!nb) {
                fail(c, REMOTE_FAILED, "out of memory reading a %zu-byte response", len);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        if (wait_for(c, POLLIN) < 0) {
            if (errno == ETIMEDOUT)
                fail(c, REMOTE_FAILED, "no complete response within %u s (%zu bytes received)",
                     timeout_s, len);
            else
                fail(c, REMOTE_FAILED, "waiting for the response: %s", strerror(errno));
            break;
        }
        ssize_t k = recv(c->fd, buf + len, cap - len, MSG_DONTWAIT);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            continue;
        if (k < 0 && !(errno == ECONNRESET && send_errno)) {
            fail(c, REMOTE_FAILED, "reading the response: %s", strerror(errno));
            break;
        }
        if (k <= 0) {
            if (send_errno)
                fail(c, REMOTE_FAILED, "sending the request: %s (and no response came)",
                     strerror(send_errno));
            else if (len == 0)
                fail(c, REMOTE_FAILED, "the server closed the connection without a response");
            else
                fail(c, REMOTE_FAILED, "the server closed the connection in the middle of "
                     "the response (after %zu bytes)", len);
            break;
        }
        len += (size_t)k;
    }
    free(buf);
    return res;
}

enum remote_call_result remote_call(const char *path, unsigned timeout_s,
                                    const struct remote_request *rq,
                                    struct remote_reply *rp, char *err, size_t errlen)
{
    struct conn c = { .fd = -1, .timed = timeout_s > 0, .err = err, .errlen = errlen };
    memset(rp, 0, sizeof(*rp));
    if (err && errlen)
        err[0] = '\0';
    if (rq->nfds > MAX_SCM_FDS)
        return fail(&c, REMOTE_FAILED, "%zu file descriptors are more than one message "
                    "can carry (%d)", rq->nfds, MAX_SCM_FDS);
    if (c.timed) {
        clock_gettime(CLOCK_MONOTONIC, &c.deadline);
        c.deadline.tv_sec += timeout_s;
    }

    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t plen = strlen(path);
    if (plen == 0 || plen >= sizeof(sa.sun_path))
        return fail(&c, REMOTE_NO_CONNECT, "cannot connect to '%s': the path must be 1-%zu "
                    "bytes long", path, sizeof(sa.sun_path) - 1);
    memcpy(sa.sun_path, path, plen);
    c.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c.fd < 0)
        return fail(&c, REMOTE_NO_CONNECT, "cannot connect to '%s': socket: %s", path,
                    strerror(errno));
    if (c.timed) {
        /* A unix connect() waits while the server's backlog is full, for
         * at most the send timeout. */
        struct timeval tv = { .tv_sec = (time_t)timeout_s };
        setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    if (connect(c.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(c.fd);
        return fail(&c, REMOTE_NO_CONNECT, "cannot connect to '%s': %s", path, strerror(e));
    }

    enum remote_call_result res;
    int send_errno = 0;
    if (send_request(&c, rq) < 0) {
        send_errno = errno;
        /* A server may answer (and close) before reading everything, as
         * with a body over its limit: its answer says more than EPIPE. */
        if (send_errno != EPIPE && send_errno != ECONNRESET) {
            res = send_errno == ETIMEDOUT
                      ? fail(&c, REMOTE_FAILED, "could not send the request within %u s",
                             timeout_s)
                      : fail(&c, REMOTE_FAILED, "sending the request: %s",
                             strerror(send_errno));
            close(c.fd);
            return res;
        }
    }
    res = read_reply(&c, timeout_s, rp, send_errno);
    close(c.fd);
    return res;
}

void remote_reply_free(struct remote_reply *rp)
{
    free(rp->body);
    rp->body = NULL;
    rp->body_len = 0;
}
