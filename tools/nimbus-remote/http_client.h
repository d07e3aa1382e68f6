/*
 * One request to the API socket and its response, with the bytes on the
 * wire exactly as Cloud Hypervisor's api_client sends them: the request
 * line with its Host and Accept headers in one sendmsg() that also carries
 * the file descriptors (SCM_RIGHTS), then "Content-Length: N" when
 * there is a body, then the blank line, then the body, each its own write.
 * A server that works with ch-remote works with nimbus-remote, and the other
 * way round.
 */
#ifndef NIMBUS_REMOTE_HTTP_CLIENT_H
#define NIMBUS_REMOTE_HTTP_CLIENT_H

#include <stddef.h>

#include "http_resp.h"

struct remote_request {
    const char *method;   /* "GET", "PUT" */
    const char *endpoint; /* "vm.info": the path is /api/v1/<endpoint> */
    const char *body;     /* NULL: no body and no Content-Length */
    size_t body_len;
    const int *fds;       /* sent with the first bytes of the request */
    size_t nfds;
};

struct remote_reply {
    int status;
    char reason[HTTP_RESP_REASON_MAX];
    char *body;           /* NUL-terminated copy (NULL when there is none) */
    size_t body_len;
};

enum remote_call_result {
    REMOTE_OK = 0,          /* a final response arrived: see reply->status */
    REMOTE_NO_CONNECT = -1, /* the socket could not be reached */
    REMOTE_FAILED = -2,     /* sending, receiving or parsing failed, or time ran out */
};

/*
 * Connect to the unix socket at path, send the request, read one final
 * response (1xx interim responses are skipped).  timeout_s 0 waits for ever
 * (vm.boot or vm.shutdown can take a while); otherwise the whole call must
 * finish within it.  On failure err holds one line (no program name).
 */
enum remote_call_result remote_call(const char *path, unsigned timeout_s,
                                    const struct remote_request *rq,
                                    struct remote_reply *rp, char *err, size_t errlen);
void remote_reply_free(struct remote_reply *rp);

#endif
