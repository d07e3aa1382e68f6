/*
 * Dropping capabilities with the two raw system calls rather than libcap:
 * the whole job is one capget and one capset of a fixed mask, done once.
 */
#include "privileges.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

static uint64_t bit(int cap) { return 1ull << cap; }

int privileges_drop(int keep_net_admin)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capget, &hdr, data) < 0)
        return -errno;
    uint64_t perm = (uint64_t)data[1].permitted << 32 | data[0].permitted;
    uint64_t keep = bit(CAP_DAC_OVERRIDE) | bit(CAP_DAC_READ_SEARCH);
    if (keep_net_admin)
        keep |= bit(CAP_NET_ADMIN);
    /* Ambient capabilities would survive into anything exec'd: none. */
    (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (perm == 0)
        return 0;
    uint64_t now = perm & keep;
    for (int i = 0; i < 2; i++) {
        data[i].effective = data[i].permitted = (uint32_t)(now >> (32 * i));
        data[i].inheritable = 0;
    }
    if (syscall(SYS_capset, &hdr, data) < 0)
        return -errno;
    log_info("privileges: capabilities reduced from 0x%llx to 0x%llx", (unsigned long long)perm,
             (unsigned long long)now);
    return 0;
}
