#include "api_routes.h"

#include <string.h>

const struct api_route *api_route_find(const char *path, const char *method,
                                       const struct api_route *routes, size_t n, int *status)
{
    *status = 404;
    if (!path || !method || strncmp(path, API_PREFIX, strlen(API_PREFIX)) != 0)
        return NULL;
    const char *name = path + strlen(API_PREFIX);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(routes[i].name, name) != 0)
            continue;
        if (strcmp(routes[i].method, method) == 0)
            return &routes[i];
        *status = 400;
        return NULL;
    }
    return NULL;
}
