/*
 * The endpoint table of the REST API: Cloud Hypervisor's /api/v1 names,
 * the one method each takes, whether it takes a body, and its handler
 * (NULL: a CH endpoint nimbus does not implement yet).  The table lives
 * with the handlers (vmm/vmm_api.c); the lookup is here so that it can be
 * tested and fuzzed without a VMM.
 */
#ifndef NIMBUS_API_ROUTES_H
#define NIMBUS_API_ROUTES_H

#include <stddef.h>

#include "api_server.h"

#define API_PREFIX "/api/v1/"

enum api_body { API_BODY_NONE, API_BODY_REQUIRED, API_BODY_ANY };

struct vmm;
typedef void (*api_handler_fn)(struct vmm *v, struct api_request *r);

struct api_route {
    const char *name;   /* "vm.boot": the path after /api/v1/ */
    const char *method; /* "GET" or "PUT" */
    enum api_body body;
    api_handler_fn fn;
};

/*
 * The route for path and method.  NULL with *status 404 (no such endpoint)
 * or 400 (the endpoint exists with another method, as CH answers).
 */
const struct api_route *api_route_find(const char *path, const char *method,
                                       const struct api_route *routes, size_t n, int *status);
/* The VMM's table (vmm/vmm_api.c). */
const struct api_route *api_routes(size_t *n);

#endif
