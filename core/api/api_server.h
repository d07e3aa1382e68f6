/*
 * The REST API's socket side: one thread that owns the listening unix
 * socket and every connection (so it can receive file descriptors sent as
 * SCM_RIGHTS with a request, as Kata and libvirt send taps with
 * vm.add-net), reads requests with http_req.c and hands each complete
 * request to the VMM thread.  Nothing here touches the VM: a slow, stalled
 * or hostile client only ever costs its own connection, and a connection
 * has at most one request in flight (clients do not pipeline; bytes that
 * arrive early wait in the connection).
 */
#ifndef NIMBUS_API_SERVER_H
#define NIMBUS_API_SERVER_H

#include <stddef.h>

#define API_MAX_FDS 16       /* per request: one tap per queue pair */
#define API_MAX_CONNS 256    /* beyond it the oldest idle connection goes */
#define API_STALL_TIMEOUT_S 30
#define API_LISTEN_BACKLOG 1024 /* a half-sent request or an unread reply */

struct api_conn;

struct api_request {
    /* What the client asked. */
    const char *method;   /* "GET", "PUT", ... */
    char path[256];       /* "/api/v1/vm.info" */
    char *body;           /* NUL-terminated, may be NULL */
    size_t body_len;
    int fds[API_MAX_FDS]; /* received with the request; a handler that keeps one sets it to -1 */
    unsigned nfds;
    /* The answer, filled by the handler. */
    int status;
    char *resp_body;      /* malloc'ed JSON or NULL */
    /* Server-private. */
    struct api_conn *conn;
    struct api_request *next;
};

/* Called on the server thread for each complete request; the receiver
 * answers later, from any thread, with api_server_complete(). */
typedef void (*api_submit_fn)(void *opaque, struct api_request *req);

struct api_server;

/*
 * Serve on listen_fd (already listening; the server owns it from now on).
 * Returns NULL with err set on failure.
 */
struct api_server *api_server_start(int listen_fd, api_submit_fn submit, void *opaque,
                                    char *err, size_t errlen);
/* Send req's answer and free it (and any fds the handler left). Any thread. */
void api_server_complete(struct api_server *s, struct api_request *req);
/*
 * Stop serving: answers already completed are written out (for up to a
 * second), then every connection closes and the thread ends.  Every
 * submitted request must have been completed before.
 */
void api_server_stop(struct api_server *s);

/*
 * --api-socket path=PATH: a new listening socket, mode 0600.  A path where
 * a live server answers is refused; a stale socket file is replaced; any
 * other file is refused.
 */
int api_socket_open(const char *path, char *err, size_t errlen);
/* --api-socket fd=N: check N is a unix stream socket and make it listen. */
int api_socket_adopt(int fd, char *err, size_t errlen);

/* "OK", "Not Found", ... for the status line. */
const char *api_status_text(int status);

#endif
