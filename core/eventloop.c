#include "eventloop.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "seccomp_filter.h"

struct watch {
    int fd;
    uint32_t events;
    el_fd_fn fn;
    void *opaque;
    int dead;
    struct watch *next;
};

struct work {
    el_work_fn fn;
    void *opaque;
    struct work *next;
};

struct event_loop {
    int epfd;
    int wakefd;
    pthread_mutex_t lock;
    struct watch *watches;
    struct watch *graveyard; /* unwatched entries freed between batches */
    struct work *work_head, *work_tail;
    /* A batch of callbacks is being run, by `dispatcher`; `batches` counts
     * finished ones so el_sync can wait for the one in progress. */
    int dispatching;
    pthread_t dispatcher;
    uint64_t batches;
    pthread_cond_t batch_done;
    int stop;
    int running;
    pthread_t thread;
    int seccomp_kind; /* enum seccomp_kind, or -1: the creator's filter only */
    char name[16];    /* lock: el_rename may race the thread naming itself */
    int named;
};

struct event_loop *el_create(void)
{
    struct event_loop *el = calloc(1, sizeof(*el));
    if (!el)
        return NULL;
    el->epfd = epoll_create1(EPOLL_CLOEXEC);
    el->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (el->epfd < 0 || el->wakefd < 0)
        goto fail;
    el->seccomp_kind = -1;
    pthread_mutex_init(&el->lock, NULL);
    pthread_cond_init(&el->batch_done, NULL);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(el->epfd, EPOLL_CTL_ADD, el->wakefd, &ev) < 0)
        goto fail;
    return el;
fail:
    if (el->epfd >= 0)
        close(el->epfd);
    if (el->wakefd >= 0)
        close(el->wakefd);
    free(el);
    return NULL;
}

static void wake(struct event_loop *el)
{
    uint64_t one = 1;
    ssize_t r = write(el->wakefd, &one, sizeof(one));
    (void)r; /* EAGAIN means a wake is already pending */
}

static struct watch *find_live(struct event_loop *el, int fd)
{
    for (struct watch *w = el->watches; w; w = w->next)
        if (w->fd == fd && !w->dead)
            return w;
    return NULL;
}

int el_watch(struct event_loop *el, int fd, uint32_t events, el_fd_fn fn, void *opaque)
{
    pthread_mutex_lock(&el->lock);
    struct watch *w = find_live(el, fd);
    int op = EPOLL_CTL_MOD;
    if (!w) {
        w = calloc(1, sizeof(*w));
        if (!w) {
            pthread_mutex_unlock(&el->lock);
            return -ENOMEM;
        }
        w->fd = fd;
        w->next = el->watches;
        el->watches = w;
        op = EPOLL_CTL_ADD;
    }
    w->events = events;
    w->fn = fn;
    w->opaque = opaque;
    struct epoll_event ev = {.events = events, .data.ptr = w};
    int r = epoll_ctl(el->epfd, op, fd, &ev) < 0 ? -errno : 0;
    if (r < 0 && op == EPOLL_CTL_ADD) {
        el->watches = w->next;
        free(w);
    }
    pthread_mutex_unlock(&el->lock);
    return r;
}

int el_modify(struct event_loop *el, int fd, uint32_t events)
{
    pthread_mutex_lock(&el->lock);
    struct watch *w = find_live(el, fd);
    int r = -ENOENT;
    if (w) {
        w->events = events;
        struct epoll_event ev = {.events = events, .data.ptr = w};
        r = epoll_ctl(el->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
    }
    pthread_mutex_unlock(&el->lock);
    return r;
}

int el_unwatch(struct event_loop *el, int fd)
{
    pthread_mutex_lock(&el->lock);
    struct watch **pp = &el->watches;
    while (*pp && !((*pp)->fd == fd && !(*pp)->dead))
        pp = &(*pp)->next;
    struct watch *w = *pp;
    if (!w) {
        pthread_mutex_unlock(&el->lock);
        return -ENOENT;
    }
    *pp = w->next;
    w->dead = 1;
    epoll_ctl(el->epfd, EPOLL_CTL_DEL, fd, NULL);
    w->next = el->graveyard;
    el->graveyard = w;
    pthread_mutex_unlock(&el->lock);
    return 0;
}

void el_sync(struct event_loop *el)
{
    if (!el)
        return;
    pthread_mutex_lock(&el->lock);
    /* From a callback of this loop nothing else can be running. */
    if (el->dispatching && !pthread_equal(el->dispatcher, pthread_self())) {
        uint64_t seen = el->batches;
        while (el->dispatching && el->batches == seen)
            pthread_cond_wait(&el->batch_done, &el->lock);
    }
    pthread_mutex_unlock(&el->lock);
}

int el_post(struct event_loop *el, el_work_fn fn, void *opaque)
{
    struct work *wk = malloc(sizeof(*wk));
    if (!wk)
        return -ENOMEM;
    wk->fn = fn;
    wk->opaque = opaque;
    wk->next = NULL;
    pthread_mutex_lock(&el->lock);
    if (el->work_tail)
        el->work_tail->next = wk;
    else
        el->work_head = wk;
    el->work_tail = wk;
    pthread_mutex_unlock(&el->lock);
    wake(el);
    return 0;
}

static void run_work(struct event_loop *el)
{
    pthread_mutex_lock(&el->lock);
    struct work *wk = el->work_head;
    el->work_head = el->work_tail = NULL;
    pthread_mutex_unlock(&el->lock);
    while (wk) {
        struct work *next = wk->next;
        wk->fn(wk->opaque);
        free(wk);
        wk = next;
    }
}

int el_run_once(struct event_loop *el, int timeout_ms)
{
    /* No pointer from an earlier batch is alive here: free unwatched entries. */
    pthread_mutex_lock(&el->lock);
    struct watch *g = el->graveyard;
    el->graveyard = NULL;
    pthread_mutex_unlock(&el->lock);
    while (g) {
        struct watch *n = g->next;
        free(g);
        g = n;
    }

    struct epoll_event evs[32];
    int n = epoll_wait(el->epfd, evs, 32, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    pthread_mutex_lock(&el->lock);
    el->dispatching = 1;
    el->dispatcher = pthread_self();
    pthread_mutex_unlock(&el->lock);
    for (int i = 0; i < n; i++) {
        struct watch *w = evs[i].data.ptr;
        if (!w) {
            uint64_t v;
            ssize_t r = read(el->wakefd, &v, sizeof(v));
            (void)r;
            run_work(el);
            continue;
        }
        pthread_mutex_lock(&el->lock);
        int dead = w->dead;
        el_fd_fn fn = w->fn;
        void *opaque = w->opaque;
        int fd = w->fd;
        pthread_mutex_unlock(&el->lock);
        if (!dead)
            fn(opaque, fd, evs[i].events);
    }
    pthread_mutex_lock(&el->lock);
    el->dispatching = 0;
    el->batches++;
    pthread_cond_broadcast(&el->batch_done);
    pthread_mutex_unlock(&el->lock);
    return n;
}

static void *loop_thread(void *arg)
{
    struct event_loop *el = arg;
    /* The thread names itself: naming it from outside means a write to
     * /proc/self/task/TID/comm, a file open the creator need not do.  Under
     * the lock, so an el_rename racing the start is not overwritten by the
     * name it replaced. */
    char name[sizeof(el->name)];
    pthread_mutex_lock(&el->lock);
    memcpy(name, el->name, sizeof(name));
    if (name[0])
        pthread_setname_np(pthread_self(), name);
    el->named = 1;
    pthread_mutex_unlock(&el->lock);
    if (el->seccomp_kind >= 0)
        seccomp_enter((enum seccomp_kind)el->seccomp_kind, name[0] ? name : NULL);
    for (;;) {
        pthread_mutex_lock(&el->lock);
        int stop = el->stop;
        pthread_mutex_unlock(&el->lock);
        if (stop)
            break;
        int r = el_run_once(el, -1);
        if (r < 0) {
            log_error("event loop: epoll_wait: %s", strerror(-r));
            break;
        }
    }
    return NULL;
}

int el_start_named(struct event_loop *el, const char *name)
{
    snprintf(el->name, sizeof(el->name), "%s", name ? name : "");
    int r = pthread_create(&el->thread, NULL, loop_thread, el);
    if (r)
        return -r;
    el->running = 1;
    return 0;
}

void el_set_seccomp(struct event_loop *el, int kind)
{
    el->seccomp_kind = kind;
}

int el_rename(struct event_loop *el, const char *name)
{
    if (!el->running)
        return -ESRCH;
    pthread_mutex_lock(&el->lock);
    snprintf(el->name, sizeof(el->name), "%s", name);
    /* Not started yet: the thread takes the new name itself. */
    int r = el->named ? -pthread_setname_np(el->thread, el->name) : 0;
    pthread_mutex_unlock(&el->lock);
    return r;
}

int el_start(struct event_loop *el)
{
    return el_start_named(el, NULL);
}

void el_stop(struct event_loop *el)
{
    if (!el->running)
        return;
    pthread_mutex_lock(&el->lock);
    el->stop = 1;
    pthread_mutex_unlock(&el->lock);
    wake(el);
    pthread_join(el->thread, NULL);
    el->running = 0;
}

void el_destroy(struct event_loop *el)
{
    if (!el)
        return;
    el_stop(el);
    struct watch *lists[2] = {el->watches, el->graveyard};
    for (int i = 0; i < 2; i++) {
        struct watch *w = lists[i];
        while (w) {
            struct watch *n = w->next;
            free(w);
            w = n;
        }
    }
    struct work *wk = el->work_head;
    while (wk) {
        struct work *n = wk->next;
        free(wk);
        wk = n;
    }
    close(el->epfd);
    close(el->wakefd);
    pthread_cond_destroy(&el->batch_done);
    pthread_mutex_destroy(&el->lock);
    free(el);
}
