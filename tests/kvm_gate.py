"""Whether a ctest-driven script may create VMs here (shared by the scripts
under tests/ that ctest runs with the label kvm)."""
import fcntl
import os

SKIP = 77  # ctest's SKIP_RETURN_CODE for these tests
KVM_GET_API_VERSION = 0xAE00
KVM_API_VERSION = 12


def kvm_usable() -> bool:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, KVM_GET_API_VERSION) == KVM_API_VERSION
    except OSError:
        return False
    finally:
        os.close(fd)


def kvm_gate(name: str):
    """None when VMs can run; otherwise the exit status to return: a skip,
    or a failure where NIMBUS_TEST_REQUIRE_KVM=1 (CI must not skip)."""
    if kvm_usable():
        return None
    if os.environ.get("NIMBUS_TEST_REQUIRE_KVM") == "1":
        print("%s: no usable /dev/kvm, and NIMBUS_TEST_REQUIRE_KVM=1" % name)
        return 1
    print("%s: no usable /dev/kvm: skipped" % name)
    return SKIP
