/*
 * A test plugin that makes one system call the seccomp filters forbid, on
 * the thread the test chooses, so test_vmm_smoke can check that nimbus ends
 * with a message naming the call and the thread.  Never installed.
 *
 * Options: call=acct|socket, on=create|timer|io.  on=io claims port 0x510,
 * which the tiny guest's 'o' mode writes (from its vCPU thread).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nimbus/plugin_abi.h"

struct probe {
    const nimbus_host_api *host;
    void *hctx;
    int call_socket; /* else acct */
};

static void forbidden_call(struct probe *p)
{
    if (p->call_socket) {
        int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
        if (fd >= 0)
            close(fd);
    } else {
        /* acct(NULL) only switches accounting off: harmless if let through. */
        (void)syscall(SYS_acct, NULL);
    }
}

static int p_create(const nimbus_host_api *h, void *hctx, const char *o, void **dev,
                    nimbus_region *r, uint32_t *n, char *err, uint32_t errlen)
{
    (void)err;
    (void)errlen;
    struct probe *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->host = h;
    p->hctx = hctx;
    p->call_socket = strstr(o, "call=socket") != NULL;
    *n = 0;
    *dev = p;
    if (strstr(o, "on=create")) {
        forbidden_call(p);
    } else if (strstr(o, "on=timer")) {
        h->timer_arm(hctx, 0, h->clock_ns(hctx) + 1);
    } else if (strstr(o, "on=io")) {
        r[0] = (nimbus_region){NIMBUS_REGION_PIO, 0, 0x510, 1};
        *n = 1;
    }
    return 0;
}
static void p_destroy(void *dev) { free(dev); }
static void p_reset(void *dev) { (void)dev; }
static int p_read(void *d, uint32_t r, uint64_t o, void *data, uint32_t l)
{
    (void)d; (void)r; (void)o;
    memset(data, 0, l);
    return 0;
}
static int p_write(void *d, uint32_t r, uint64_t o, const void *data, uint32_t l)
{
    (void)r; (void)o; (void)data; (void)l;
    forbidden_call(d);
    return 0;
}
static void p_timer(void *d, uint32_t id)
{
    (void)id;
    forbidden_call(d);
}

static const nimbus_device_ops ops = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = p_create,
    .destroy = p_destroy,
    .reset = p_reset,
    .io_read = p_read,
    .io_write = p_write,
    .timer_fired = p_timer,
};

NIMBUS_EXPORT const nimbus_plugin nimbus_plugin_v1 = {
    1, 0, sizeof(nimbus_plugin), 0, "syscall_probe", "0", "seccomp test plugin", "call=,on=", &ops};
