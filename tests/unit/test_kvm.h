/*
 * Unit tests that create VMs: skipped where /dev/kvm is missing, unless
 * NIMBUS_TEST_REQUIRE_KVM=1 says this run must have one (CI sets it, and
 * runs these tests inside the nested test host where the machine has no
 * /dev/kvm: ci/run-tests.sh), so a skip can never pass silently there.
 * Include after <cmocka.h>.
 */
#ifndef NIMBUS_TEST_KVM_H
#define NIMBUS_TEST_KVM_H

#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* 1 when the test may use /dev/kvm; otherwise skips (or fails, see above).
 * `why` (may be NULL) says what failed when the caller found out itself. */
static inline int test_kvm_or_skip(int usable, const char *why)
{
    if (usable)
        return 1;
    const char *req = getenv("NIMBUS_TEST_REQUIRE_KVM");
    if (req && strcmp(req, "1") == 0)
        fail_msg("no usable /dev/kvm (%s), and NIMBUS_TEST_REQUIRE_KVM=1", why ? why : "access");
    print_message("no usable /dev/kvm (%s): skipped\n", why ? why : "access");
    skip();
    return 0;
}

/* /dev/kvm opens and speaks the KVM API (not merely a node that exists). */
static inline int test_kvm_usable(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int ok = ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION;
    close(fd);
    return ok;
}

#define SKIP_WITHOUT_KVM() test_kvm_or_skip(test_kvm_usable(), NULL)

#endif
