#!/usr/bin/env bash
# Print how the integration tests reach a /dev/kvm that can run Linux guests:
#   direct  this machine's CPU has VMX/SVM and /dev/kvm works: run guests here
#   nested  otherwise: run the guest-side tests inside ci/vmrun.sh's VM
# NIMBUS_TEST_HOST=direct|nested forces the answer. With --why, a one-line
# reason follows on stderr.
set -euo pipefail

why=0
[[ ${1:-} == --why ]] && why=1
say() {
    printf '%s\n' "$1"
    if ((why)); then printf 'kvm-mode: %s\n' "$2" >&2; fi
    exit 0
}

case ${NIMBUS_TEST_HOST:-} in
direct | nested) say "$NIMBUS_TEST_HOST" "forced by NIMBUS_TEST_HOST" ;;
"") ;;
*) echo "kvm-mode: NIMBUS_TEST_HOST must be direct or nested, not '$NIMBUS_TEST_HOST'" >&2; exit 2 ;;
esac

# A paravirtual /dev/kvm (e.g. kvm_pvm) works for tiny guests but hides
# VMX/SVM from the CPU flags and cannot run stock Linux: the flags decide.
if ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
    say nested "CPU has no vmx/svm flag"
fi
# KVM_GET_API_VERSION must answer 12 and KVM_CREATE_VM must succeed.
if "$(dirname "${BASH_SOURCE[0]}")/kvm-usable.sh"; then
    say direct "CPU has vmx/svm and /dev/kvm creates VMs"
fi
say nested "/dev/kvm missing or unusable"
