#include "api_server.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "eventloop.h"
#include "http_req.h"
#include "log.h"
#include "seccomp_filter.h"

#define RECV_CHUNK 16384u

struct api_conn {
    struct api_server *srv;
    int fd;                  /* -1 once closed */
    struct http_req req;
    char *pend;              /* bytes read past the request in flight */
    size_t pend_len;
    int fds[API_MAX_FDS];    /* received for the request being read */
    unsigned nfds;
    int fd_overflow;         /* more fds than a request may carry */
    int busy;                /* a request is at the VMM */
    int close_after_write;
    char *out;               /* reply being written */
    size_t out_len, out_off;
    uint64_t last_progress;  /* monotonic seconds: a byte moved either way */
    struct api_conn *prev, *next;
};

struct api_server {
    struct event_loop *el;
    int listen_fd;
    int timer_fd;
    api_submit_fn submit;
    void *opaque;
    struct api_conn *conns;  /* most recently active first */
    unsigned nconns;
    /* Closed connections are freed after the current callback returns,
     * so no caller up the stack is left holding a dangling pointer. */
    struct api_conn *dead;
    int reap_posted;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    int stop_done;
};

const char *api_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    }
    return "Unknown";
}

static uint64_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec;
}

static void close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static void conn_touch(struct api_conn *c)
{
    struct api_server *s = c->srv;
    c->last_progress = now_s();
    if (s->conns == c)
        return;
    /* Most recent first, so eviction takes the tail. */
    c->prev->next = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = s->conns;
    s->conns->prev = c;
    s->conns = c;
}

static void conn_free(struct api_conn *c)
{
    http_req_free(&c->req);
    close_fds(c->fds, c->nfds);
    free(c->pend);
    free(c->out);
    free(c);
}

static void reap_dead(void *opaque)
{
    struct api_server *s = opaque;
    s->reap_posted = 0;
    while (s->dead) {
        struct api_conn *c = s->dead;
        s->dead = c->next;
        conn_free(c);
    }
}

/* Close the socket now; the memory goes once no request refers to it. */
static void conn_close(struct api_conn *c)
{
    if (c->fd < 0)
        return;
    struct api_server *s = c->srv;
    if (c->fd >= 0) {
        el_unwatch(s->el, c->fd);
        close(c->fd);
        c->fd = -1;
    }
    if (c->prev)
        c->prev->next = c->next;
    else if (s->conns == c)
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->nconns--;
    if (!c->busy) {
        c->next = s->dead;
        s->dead = c;
        if (!s->reap_posted && el_post(s->el, reap_dead, s) == 0)
            s->reap_posted = 1;
    }
}

static void conn_update_watch(struct api_conn *c)
{
    uint32_t ev = 0;
    if (c->out_off < c->out_len)
        ev |= EPOLLOUT;
    else if (!c->busy && !c->close_after_write)
        ev |= EPOLLIN;
    el_modify(c->srv->el, c->fd, ev | EPOLLRDHUP);
}

static int append_out(struct api_conn *c, const char *data, size_t len)
{
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
    }
    char *o = realloc(c->out, c->out_len + len);
    if (!o)
        return -1;
    memcpy(o + c->out_len, data, len);
    c->out = o;
    c->out_len += len;
    return 0;
}

static void try_write(struct api_conn *c);

static void queue_reply(struct api_conn *c, int status, const char *body, int close_conn)
{
    char head[512];
    size_t blen = body ? strlen(body) : 0;
    int n;
    if (blen)
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nServer: Cloud Hypervisor API\r\n"
                     "Connection: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     status, api_status_text(status), close_conn ? "close" : "keep-alive", blen);
    else
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nServer: Cloud Hypervisor API\r\n"
                     "Connection: %s\r\nContent-Type: application/json\r\n\r\n",
                     status, api_status_text(status), close_conn ? "close" : "keep-alive");
    if (append_out(c, head, (size_t)n) < 0 || (blen && append_out(c, body, blen) < 0)) {
        conn_close(c);
        return;
    }
    if (close_conn)
        c->close_after_write = 1;
    try_write(c);
}

static void parse_more(struct api_conn *c);

/* The reply is out: the next request on this connection may start. */
static void reply_sent(struct api_conn *c)
{
    if (c->close_after_write) {
        shutdown(c->fd, SHUT_RDWR);
        conn_close(c);
        return;
    }
    conn_update_watch(c);
    if (!c->busy && c->pend_len)
        parse_more(c);
}

static void try_write(struct api_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_update_watch(c);
            return;
        }
        if (w <= 0) {
            conn_close(c);
            return;
        }
        c->out_off += (size_t)w;
        c->last_progress = now_s();
    }
    c->out_off = c->out_len = 0;
    reply_sent(c);
}

static void error_body(char *buf, size_t len, const char *msg)
{
    snprintf(buf, len, "[\"%s\"]", msg);
}

/* A complete request: to the VMM, with the fds that came with it. */
static void dispatch(struct api_conn *c)
{
    struct http_req *r = &c->req;
    char msg[128];
    if (c->fd_overflow) {
        error_body(msg, sizeof(msg), "Too many file descriptors with one request");
        close_fds(c->fds, c->nfds);
        c->nfds = 0;
        c->fd_overflow = 0;
        http_req_next(r);
        queue_reply(c, 400, msg, 0);
        return;
    }
    struct api_request *q = calloc(1, sizeof(*q));
    if (!q || http_req_path(r, q->path, sizeof(q->path)) < 0) {
        free(q);
        error_body(msg, sizeof(msg), "Invalid request URL");
        close_fds(c->fds, c->nfds);
        c->nfds = 0;
        int ka = r->keep_alive;
        http_req_next(r);
        queue_reply(c, 400, msg, !ka);
        return;
    }
    q->method = r->method;
    q->body = r->body;
    q->body_len = r->body_len;
    r->body = NULL; /* the request owns it now */
    r->body_cap = r->body_len = 0;
    memcpy(q->fds, c->fds, c->nfds * sizeof(int));
    q->nfds = c->nfds;
    c->nfds = 0;
    q->conn = c;
    c->busy = 1;
    c->close_after_write = !r->keep_alive;
    http_req_next(r);
    conn_update_watch(c);
    c->srv->submit(c->srv->opaque, q);
}

/* Feed buffered bytes, then whatever the socket has, until a request is whole. */
static void feed(struct api_conn *c, const char *data, size_t len)
{
    size_t used = http_req_feed(&c->req, data, len);
    struct http_req *r = &c->req;
    if (r->want_continue && !r->continue_sent && r->state == HTTP_REQ_PARTIAL) {
        r->continue_sent = 1;
        r->want_continue = 0;
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        (void)!send(c->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    if (c->fd < 0)
        return;
    if (r->state == HTTP_REQ_ERROR) {
        char msg[128];
        error_body(msg, sizeof(msg), r->error_msg ? r->error_msg : "Bad Request");
        close_fds(c->fds, c->nfds);
        c->nfds = 0;
        free(c->pend);
        c->pend = NULL;
        c->pend_len = 0;
        queue_reply(c, r->error_status ? r->error_status : 400, msg, 1);
        return;
    }
    if (used < len) {
        /* Early bytes of the next request wait until this one is answered. */
        char *p = malloc(len - used);
        if (!p) {
            conn_close(c);
            return;
        }
        memcpy(p, data + used, len - used);
        free(c->pend);
        c->pend = p;
        c->pend_len = len - used;
    }
    if (r->state == HTTP_REQ_DONE)
        dispatch(c);
}

static void parse_more(struct api_conn *c)
{
    char *p = c->pend;
    size_t n = c->pend_len;
    c->pend = NULL;
    c->pend_len = 0;
    feed(c, p, n);
    free(p);
}

static void take_fds(struct api_conn *c, struct msghdr *mh)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *d = CMSG_DATA(cm);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, d + i * sizeof(int), sizeof(int));
            if (c->nfds < API_MAX_FDS) {
                c->fds[c->nfds++] = fd;
            } else {
                close(fd);
                c->fd_overflow = 1;
            }
        }
    }
    if (mh->msg_flags & MSG_CTRUNC)
        c->fd_overflow = 1; /* the kernel dropped some: the request cannot be trusted */
}

static void on_conn(void *opaque, int fd, uint32_t revents)
{
    struct api_conn *c = opaque;
    if (revents & EPOLLOUT) {
        try_write(c);
        if (c->fd < 0)
            return;
    }
    if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) || c->busy ||
        c->out_off < c->out_len)
        return;
    char buf[RECV_CHUNK];
    union {
        char b[CMSG_SPACE(sizeof(int) * API_MAX_FDS)];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = {buf, sizeof(buf)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.b,
                        .msg_controllen = sizeof(cbuf.b)};
    ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(c); /* EOF or error: a half-read request goes with it */
        return;
    }
    take_fds(c, &mh);
    conn_touch(c);
    feed(c, buf, (size_t)n);
}

/* The table is full: the least recently active idle connection makes room. */
static int evict_one(struct api_server *s)
{
    struct api_conn *c = s->conns;
    while (c && c->next)
        c = c->next;
    for (; c; c = c->prev)
        if (!c->busy && !c->req.started && c->out_off == c->out_len) {
            log_warn("api: %u connections open; closing the least recently used idle one",
                     s->nconns);
            conn_close(c);
            return 0;
        }
    return -1;
}

static void on_listen(void *opaque, int fd, uint32_t revents)
{
    struct api_server *s = opaque;
    (void)revents;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_warn("api: accept: %s", strerror(errno));
            return;
        }
        if (s->nconns >= API_MAX_CONNS && evict_one(s) < 0) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                       "Server: Cloud Hypervisor API\r\nConnection: close\r\n"
                                       "Content-Type: application/json\r\nContent-Length: 18\r\n"
                                       "\r\n[\"Too many clients\"]";
            (void)!send(cfd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            close(cfd);
            continue;
        }
        struct api_conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(cfd);
            continue;
        }
        c->srv = s;
        c->fd = cfd;
        http_req_init(&c->req);
        c->last_progress = now_s();
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->nconns++;
        if (el_watch(s->el, cfd, EPOLLIN | EPOLLRDHUP, on_conn, c) < 0)
            conn_close(c);
    }
}

/* Once a second: drop connections stuck mid-request or not reading their reply. */
static void on_tick(void *opaque, int fd, uint32_t revents)
{
    struct api_server *s = opaque;
    uint64_t ticks;
    (void)revents;
    (void)!read(fd, &ticks, sizeof(ticks));
    uint64_t now = now_s();
    struct api_conn *c = s->conns, *next;
    for (; c; c = next) {
        next = c->next;
        int stalled = (c->req.started && !c->busy) || c->out_off < c->out_len;
        if (stalled && now - c->last_progress > API_STALL_TIMEOUT_S) {
            log_warn("api: closing a connection stalled for %u s", API_STALL_TIMEOUT_S);
            conn_close(c);
        }
    }
}

struct api_server *api_server_start(int listen_fd, api_submit_fn submit, void *opaque,
                                    char *err, size_t errlen)
{
    struct api_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        close(listen_fd);
        return NULL;
    }
    s->listen_fd = listen_fd;
    s->submit = submit;
    s->opaque = opaque;
    pthread_mutex_init(&s->stop_lock, NULL);
    pthread_cond_init(&s->stop_cond, NULL);
    int fl = fcntl(listen_fd, F_GETFL);
    fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK);
    fcntl(listen_fd, F_SETFD, FD_CLOEXEC);
    s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    s->el = el_create();
    struct itimerspec its = {{1, 0}, {1, 0}};
    if (!s->el || s->timer_fd < 0 || timerfd_settime(s->timer_fd, 0, &its, NULL) < 0 ||
        el_watch(s->el, listen_fd, EPOLLIN, on_listen, s) < 0 ||
        el_watch(s->el, s->timer_fd, EPOLLIN, on_tick, s) < 0) {
        snprintf(err, errlen, "cannot set up the API server: %s", strerror(errno));
        goto fail;
    }
    el_set_seccomp(s->el, SECCOMP_API);
    int r = el_start_named(s->el, "http-server");
    if (r < 0) {
        snprintf(err, errlen, "cannot start the API thread: %s", strerror(-r));
        goto fail;
    }
    return s;
fail:
    el_destroy(s->el);
    if (s->timer_fd >= 0)
        close(s->timer_fd);
    close(listen_fd);
    free(s);
    return NULL;
}

static void complete_on_loop(void *opaque)
{
    struct api_request *q = opaque;
    struct api_conn *c = q->conn;
    c->busy = 0;
    if (c->fd < 0) {
        conn_free(c); /* the client left while the VMM worked */
    } else {
        queue_reply(c, q->status ? q->status : 500, q->resp_body, c->close_after_write);
    }
    close_fds(q->fds, q->nfds);
    free(q->body);
    free(q->resp_body);
    free(q);
}

void api_server_complete(struct api_server *s, struct api_request *req)
{
    if (el_post(s->el, complete_on_loop, req) < 0) {
        /* Cannot happen while the loop runs; never leak the client's fds. */
        close_fds(req->fds, req->nfds);
        req->nfds = 0;
        log_error("api: cannot post a reply: %s", strerror(errno));
    }
}

static void stop_marker(void *opaque)
{
    struct api_server *s = opaque;
    pthread_mutex_lock(&s->stop_lock);
    s->stop_done = 1;
    pthread_cond_broadcast(&s->stop_cond);
    pthread_mutex_unlock(&s->stop_lock);
}

void api_server_stop(struct api_server *s)
{
    if (!s)
        return;
    /* Posted work runs in order: once the marker ran, every reply completed
     * before this call has been handed to its socket. */
    if (el_post(s->el, stop_marker, s) == 0) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 1;
        pthread_mutex_lock(&s->stop_lock);
        while (!s->stop_done)
            if (pthread_cond_timedwait(&s->stop_cond, &s->stop_lock, &dl) == ETIMEDOUT)
                break;
        pthread_mutex_unlock(&s->stop_lock);
    }
    el_stop(s->el);
    /* Replies the kernel could not take at once get a short grace period. */
    for (int tries = 0; tries < 100; tries++) {
        int pending = 0;
        for (struct api_conn *c = s->conns; c; c = c->next)
            if (c->fd >= 0 && c->out_off < c->out_len) {
                ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w > 0)
                    c->out_off += (size_t)w;
                else if (!(w < 0 && errno == EAGAIN))
                    c->out_off = c->out_len;
                pending |= c->out_off < c->out_len;
            }
        if (!pending)
            break;
        usleep(10000);
    }
    while (s->conns) {
        struct api_conn *c = s->conns;
        s->conns = c->next;
        if (c->fd >= 0)
            close(c->fd);
        conn_free(c);
    }
    reap_dead(s);
    el_destroy(s->el);
    close(s->timer_fd);
    close(s->listen_fd);
    pthread_mutex_destroy(&s->stop_lock);
    pthread_cond_destroy(&s->stop_cond);
    free(s);
}

/* ---- the listening socket ----------------------------------------------- */

int api_socket_open(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "--api-socket: path '%s' is longer than %zu bytes", path,
                 sizeof(sa.sun_path) - 1);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "--api-socket: socket: %s", strerror(errno));
        return -1;
    }
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (!S_ISSOCK(sb.st_mode)) {
            snprintf(err, errlen, "--api-socket: '%s' exists and is not a socket", path);
            close(fd);
            return -1;
        }
        /* Only a socket nobody answers on is stale. */
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            snprintf(err, errlen, "--api-socket: '%s' is in use by a running server", path);
            close(fd);
            return -1;
        }
        if (errno != ECONNREFUSED) {
            snprintf(err, errlen, "--api-socket: cannot check '%s': %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        close(fd);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || unlink(path) < 0) {
            snprintf(err, errlen, "--api-socket: cannot replace stale '%s': %s", path,
                     strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
    }
    /* 0600 from the start: nobody else may connect even for an instant. */
    mode_t old = umask(0177);
    int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    umask(old);
    if (r < 0 || listen(fd, API_LISTEN_BACKLOG) < 0) {
        snprintf(err, errlen, "--api-socket: cannot listen on '%s': %s", path,
                 strerror(r < 0 ? e : errno));
        close(fd);
        return -1;
    }
    return fd;
}

int api_socket_adopt(int fd, char *err, size_t errlen)
{
    int type = 0;
    socklen_t l = sizeof(type);
    struct sockaddr_un sa;
    socklen_t sl = sizeof(sa);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        snprintf(err, errlen, "--api-socket: fd=%d is not a socket: %s", fd, strerror(errno));
        return -1;
    }
    if (type != SOCK_STREAM || sa.sun_family != AF_UNIX) {
        snprintf(err, errlen, "--api-socket: fd=%d is not a unix stream socket", fd);
        return -1;
    }
    /* listen() again also raises the backlog of a socket the caller made
     * (libvirt listens with 1): a burst of clients must not get EAGAIN. */
    if (listen(fd, API_LISTEN_BACKLOG) < 0) {
        snprintf(err, errlen, "--api-socket: fd=%d cannot listen: %s", fd, strerror(errno));
        return -1;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}
