#!/usr/bin/env bash
# CI check of the development container (Dockerfile + dev_cli.sh):
#
#   ci/test-container.sh [DEV_CLI GLOBAL OPTIONS]    e.g. --engine docker
#
#   1. build the nimbus-dev image, or reuse it when the Dockerfile is unchanged
#      (the first build bootstraps debian:bookworm when it cannot be pulled);
#   2. build nimbus and run the unit tests inside it (-DNIMBUS_WERROR=ON, in
#      build-container/ so the host's build/ is not reconfigured);
#   3. check that /dev/kvm works inside the container (KVM_GET_API_VERSION;
#      skipped with a warning on a host without /dev/kvm);
#   4. boot a guest inside it: './dev_cli.sh tests --integration --
#      --guest-only -k EXPR', i.e. ci/test-integration.sh's guest part (through
#      the nested test host where /dev/kvm cannot run Linux) limited to the
#      quick boot test;
#   5. build the Debian cloud image and boot it with nothing but its disk and a
#      seed, logging in over SSH: './dev_cli.sh cloud-image' (the image cache
#      is the host's, so only the first run pays for debootstrap).
#
# A package missing from the Dockerfile makes step 2 or 4 fail, so CI runs
# this once per run. Settings (environment):
#   NIMBUS_CONTAINER_BOOT_TESTS  pytest -k expression for step 4 (default
#                                test_boots_to_interactive_shell: nimbus
#                                boots the Debian cloud kernel to a shell);
#                                empty skips step 4
#   NIMBUS_CONTAINER_BUILD_DIR   build directory for step 2 (default
#                                build-container)
#   NIMBUS_CONTAINER_CLOUD_IMAGE 0 skips step 5 (default 1)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dev_cli=("$root/dev_cli.sh" "$@")
boot_tests=${NIMBUS_CONTAINER_BOOT_TESTS-test_boots_to_interactive_shell}
build_dir=${NIMBUS_CONTAINER_BUILD_DIR:-build-container}
export CI=${CI:-true}

t0=$SECONDS
step() {
    local name=$1 start=$SECONDS rc=0
    shift
    echo "test-container: === $name"
    "$@" || rc=$?
    if ((rc != 0)); then
        echo "test-container: FAILED: $name (exit $rc, after $((SECONDS - start)) s)" >&2
        exit "$rc"
    fi
    echo "test-container: ok: $name ($((SECONDS - start)) s)"
}

# 12 is the only KVM API version Linux has ever reported.
kvm_probe='import fcntl, os, sys
fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
version = fcntl.ioctl(fd, 0xAE00)  # KVM_GET_API_VERSION
print("KVM API version", version)
sys.exit(0 if version == 12 else 1)'

step "image" "${dev_cli[@]}" build-container
step "unit tests in the container" "${dev_cli[@]}" tests --unit --build-dir "$build_dir"
if [[ -e /dev/kvm ]]; then
    step "/dev/kvm in the container" "${dev_cli[@]}" shell -- python3 -c "$kvm_probe"
else
    # Some CI machines have no /dev/kvm at all; the boot below then runs in
    # the nested test host (QEMU TCG), which needs none.
    echo "test-container: warning: /dev/kvm is missing on this host: no KVM probe;" \
        "the guest boot runs in the nested test host" >&2
fi
if [[ -n $boot_tests ]]; then
    step "guest boot in the container (pytest -k '$boot_tests')" \
        "${dev_cli[@]}" tests --integration --build-dir "$build_dir" -- \
        --guest-only -k "$boot_tests"
else
    echo "test-container: guest boot skipped (NIMBUS_CONTAINER_BOOT_TESTS is empty)"
fi
if [[ ${NIMBUS_CONTAINER_CLOUD_IMAGE:-1} != 0 ]]; then
    step "cloud image built and booted in the container" \
        "${dev_cli[@]}" cloud-image --build-dir "$build_dir"
else
    echo "test-container: cloud image skipped (NIMBUS_CONTAINER_CLOUD_IMAGE=0)"
fi
echo "test-container: all checks passed in $((SECONDS - t0)) s"
