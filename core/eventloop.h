/*
 * The device event loop: one epoll thread that runs device callbacks (fd
 * readiness, timers, deferred work) so vCPU threads never block on I/O.
 * The control plane (API socket) will join it as one more fd.  Devices that
 * declare I/O groups get more loops of the same kind, one thread each.
 */
#ifndef NIMBUS_EVENTLOOP_H
#define NIMBUS_EVENTLOOP_H

#include <stdint.h>

struct event_loop;

/* events are EPOLLIN/EPOLLOUT/... bits; revents likewise. */
typedef void (*el_fd_fn)(void *opaque, int fd, uint32_t revents);
typedef void (*el_work_fn)(void *opaque);

struct event_loop *el_create(void);
/* Stop (if running), join and free.  Pending deferred work is dropped. */
void el_destroy(struct event_loop *el);

/* Watch fd; replaces an existing watch of the same fd.  Thread-safe. */
int el_watch(struct event_loop *el, int fd, uint32_t events, el_fd_fn fn, void *opaque);
/* Change the event mask (0 pauses the watch).  Thread-safe. */
int el_modify(struct event_loop *el, int fd, uint32_t events);
/* Stop watching fd.  After return the callback is not started again, but
 * one started before may still be running on the loop thread: el_sync
 * before freeing what it uses.  Never blocks, so a caller may hold locks
 * the callback takes. */
int el_unwatch(struct event_loop *el, int fd);
/* Wait until the callbacks the loop thread is running (if any) have
 * returned; returns at once on the loop thread itself.  After el_unwatch
 * and el_sync, the fd's callback is neither running nor will run, so its
 * opaque may be freed.  The caller must hold no lock a callback takes. */
void el_sync(struct event_loop *el);

/* Run fn(opaque) on the loop thread soon.  Thread-safe, never blocks. */
int el_post(struct event_loop *el, el_work_fn fn, void *opaque);

/* Start the loop thread. */
int el_start(struct event_loop *el);
/* The same, naming the thread (at most 15 bytes show: ps, top, gdb, seccomp logs). */
int el_start_named(struct event_loop *el, const char *name);
/* Before el_start: the loop thread confines itself with this seccomp kind
 * (enum seccomp_kind, core/seccomp_filter.h) before running anything. */
void el_set_seccomp(struct event_loop *el, int kind);
/* Rename a running loop's thread (truncated to 15 bytes). */
int el_rename(struct event_loop *el, const char *name);
/* Ask the loop to stop and wait for the thread to finish. */
void el_stop(struct event_loop *el);
/* Run one iteration on the calling thread (tests): waits up to timeout_ms. */
int el_run_once(struct event_loop *el, int timeout_ms);

#endif
