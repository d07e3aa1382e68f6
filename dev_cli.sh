#!/usr/bin/env bash
# dev_cli.sh: build, test and fuzz nimbus in the nimbus-dev container image
# (see Dockerfile), or on the host with --local. Run `./dev_cli.sh --help`.
#
# Every container run re-enters this same script with --local, so the steps a
# developer runs on the host and the steps CI runs in the image are one code
# path.
set -euo pipefail

NIMBUS_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
SELF="$NIMBUS_ROOT/dev_cli.sh"
DOCKERFILE="$NIMBUS_ROOT/Dockerfile"
IMAGE_REPO=nimbus-dev
DEFAULT_BASE_IMAGE=debian:bookworm
# Base images this script knows how to bootstrap with debootstrap.
BOOTSTRAPPABLE_BASES=" debian:bookworm docker.io/library/debian:bookworm "
SUBCOMMANDS="build tests fuzz cloud-image shell clean build-container"

# Global options.
OPT_LOCAL=0
OPT_ENGINE=""
OPT_IMAGE="${NIMBUS_DEV_IMAGE:-}"
DRY_RUN="${NIMBUS_DEV_CLI_DRY_RUN:-0}"
[[ $DRY_RUN == 0 || -z $DRY_RUN ]] && DRY_RUN=0 || DRY_RUN=1
# Set (only) by this script when it re-enters itself inside a container.
IN_CONTAINER="${NIMBUS_DEV_CLI_IN_CONTAINER:-0}"
# The KVM device checked for and passed to containers (tests point it away).
KVM_DEVICE="${NIMBUS_DEV_CLI_KVM_DEVICE:-/dev/kvm}"

die() {
    echo "dev_cli.sh: error: $*" >&2
    exit 1
}
warn() { echo "dev_cli.sh: warning: $*" >&2; }
info() { echo "dev_cli.sh: $*" >&2; }

# Runs a command, or prints it (shell-quoted, prefixed by "+ ") in dry-run mode.
run() {
    if ((DRY_RUN)); then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
        return 0
    fi
    "$@"
}

# Takes "--opt VALUE" or "--opt=VALUE"; prints VALUE. $1 = option as given,
# $2 = following word (may be absent).
option_value() {
    local opt=$1
    if [[ $opt == *=* ]]; then
        printf '%s\n' "${opt#*=}"
    elif [[ $# -ge 2 && -n $2 && $2 != --* ]]; then
        printf '%s\n' "$2"
    else
        die "option '${opt%%=*}' needs a value"
    fi
}

CONTAINER_LIB="$NIMBUS_ROOT/ci/container.sh"
[[ -r $CONTAINER_LIB ]] || die "$CONTAINER_LIB is missing (it holds the container engine code of this script)"
# shellcheck source=ci/container.sh
. "$CONTAINER_LIB"

# ---------------------------------------------------------------- help texts

usage_main() {
    cat <<EOF
Usage: ./dev_cli.sh [GLOBAL OPTIONS] SUBCOMMAND [OPTIONS]

Build, test and fuzz nimbus inside the nimbus-dev container image (built from
./Dockerfile on demand), or directly on the host with --local.

Subcommands:
  build             Configure (CMake) and build (Ninja) nimbus
  tests             Run unit tests, integration tests and/or fuzz smoke runs
  fuzz              Run fuzz targets (arguments go to ci/fuzz.sh)
  cloud-image       Build the Debian 12 cloud image and boot it with nimbus
  shell             Open a shell, or run one command, in the dev environment
  clean             Remove the build directories this script creates
  build-container   Build the nimbus-dev container image
  help [SUBCOMMAND] Show this help, or a subcommand's help

Run './dev_cli.sh SUBCOMMAND --help' for the options of a subcommand.

Global options (before the subcommand):
  --local           Run the steps on the host, without a container
  --engine ENGINE   Container engine: podman or docker. Default: podman if
                    installed, else docker if its daemon answers
  --image NAME      Container image to use. Default: $IMAGE_REPO:<first 12 hex
                    digits of sha256(Dockerfile)>, built when missing
  -h, --help        Show this help

Build directories (inside the source tree, owned by the tree's owner):
  build/             --release (default), CMAKE_BUILD_TYPE=RelWithDebInfo
  build-debug/       --debug, CMAKE_BUILD_TYPE=Debug
  build-asan/        --sanitize (ASan + UBSan), RelWithDebInfo
  build-debug-asan/  --sanitize --debug

Container runs use: --rm --init --network host --security-opt label=disable
--cap-add NET_ADMIN --cap-add MKNOD, --device for /dev/kvm, /dev/net/tun and /dev/vhost-*
when present, the source tree mounted at its own path as the working
directory, the guest asset cache (NIMBUS_ASSETS_DIR) at its own path, and
for podman the runc runtime (plus --ulimit nofile/nproc at the current
limits when the host lacks CAP_SYS_RESOURCE, as nested sandboxes do). Files the container creates in the source tree
and the asset cache are chowned back to the owner of each (rootful engines);
rootless podman maps container root to you, so nothing needs fixing there.

Environment:
  NIMBUS_DEV_CLI_DRY_RUN=1   Print engine and build commands, run nothing
  NIMBUS_DEV_IMAGE           Same as --image
  NIMBUS_BASE_IMAGE          Base image for the Dockerfile (default
                             $DEFAULT_BASE_IMAGE)
  NIMBUS_APT_MIRROR, NIMBUS_APT_SECURITY_MIRROR
                             Debian mirrors for debootstrap and for apt in the
                             image build (default: read from the host's apt
                             sources)
  NIMBUS_PODMAN_RUNTIME      OCI runtime given to podman (default runc; set
                             it empty for podman's own default)
  NIMBUS_ASSETS_DIR          Guest asset cache of ci/guest-assets.sh (default
                             \$HOME/.cache/nimbus/assets); mounted into the
                             container at the same path so it is kept
  NIMBUS_CLOUD_IMAGE_DIR     Cloud image cache of ci/cloud-image.sh (default
                             \$HOME/.cache/nimbus/cloud-image); mounted like
                             NIMBUS_ASSETS_DIR
  NIMBUS_DEV_CLI_KVM_DEVICE  KVM device to check and pass (default /dev/kvm)
  NIMBUS_*, CI, GITHUB_ACTIONS, PYTEST_ADDOPTS, TERM, CC, CXX
                             Passed into the container
  CI=true                    Builds with -DNIMBUS_WERROR=ON
EOF
}

usage_build() {
    cat <<EOF
Usage: ./dev_cli.sh [GLOBAL OPTIONS] build [OPTIONS] [-- CMAKE_ARGS...]

Configure with 'cmake -G Ninja' and build with 'ninja'.

Options:
  --release          Optimised build with debug info in build/ (default)
  --debug            Debug build in build-debug/
  --sanitize         ASan + UBSan (-DNIMBUS_SANITIZE=ON) in build-asan/
                     (build-debug-asan/ with --debug)
  --werror           Warnings are errors (-DNIMBUS_WERROR=ON); also on when
                     CI=true
  --build-dir DIR    Use DIR instead of the directory chosen above (relative
                     to the source tree; must be inside it unless --local)
  -h, --help         Show this help
  -- CMAKE_ARGS      Extra arguments for the cmake configure step

/dev/kvm is not needed to build; a warning is printed when it is missing (guest tests
then run in the nested test host, QEMU TCG).
EOF
}

usage_tests() {
    cat <<EOF
Usage: ./dev_cli.sh [GLOBAL OPTIONS] tests [OPTIONS] [-- RUNNER_ARGS...]

Run test suites. Without a suite option, --unit is assumed.

Suites:
  --unit             Build, then 'ctest --test-dir DIR --output-on-failure'
  --integration      Build, then run ci/test-integration.sh with NIMBUS_BIN
                     set to the built nimbus unless already set (needs
                     /dev/kvm)
  --fuzz             Run 'ci/fuzz.sh --smoke' (short run of every target)
  --all              All three, in that order; stops at the first failure

Build options for --unit and --integration (same meaning as for 'build'):
  --release, --debug, --sanitize, --werror, --build-dir DIR

Other options:
  -h, --help         Show this help
  -- RUNNER_ARGS     Extra arguments for ctest, ci/test-integration.sh or
                     ci/fuzz.sh; only allowed when exactly one suite is
                     selected

The pytest integration suite honours PYTEST_ADDOPTS (for example
PYTEST_ADDOPTS='-k boot'), which is passed into the container.
EOF
}

usage_cloud_image() {
    cat <<EOF
Usage: ./dev_cli.sh [GLOBAL OPTIONS] cloud-image [OPTIONS] [-- PYTEST_ARGS...]

Build nimbus and the Debian 12 cloud image (ci/cloud-image.sh: debootstrap,
GPT, ext4 root with GRUB's generated grub.cfg, cloud-init; cached by package
versions), then boot the image with nothing but its disk and a NoCloud seed,
log in over SSH and check what the guest sees
(tests/integration/test_cloud_image.py, through ci/test-integration.sh: in the
nested test host where /dev/kvm cannot run Linux).

Options:
  --no-boot          Only build the image; print its directory
  --all-tests        Also boot the image with --kernel as in Cloud Hypervisor's
                     README (hvc0 and ttyS0); default: the disk-only boot
  --release, --debug, --sanitize, --werror, --build-dir DIR
                     As for 'build'
  -h, --help         Show this help
EOF
}

usage_fuzz() {
    cat <<EOF
Usage: ./dev_cli.sh [GLOBAL OPTIONS] fuzz [-h|--help] ARGS...
       ./dev_cli.sh [GLOBAL OPTIONS] fuzz -- ARGS...

Run ci/fuzz.sh with ARGS, unchanged. Everything after 'fuzz' (or after
'fuzz --') goes to ci/fuzz.sh, for example:
  ./dev_cli.sh fuzz --list
  ./dev_cli.sh fuzz TARGET --engine libfuzzer --duration 10m --jobs 2
  ./dev_cli.sh fuzz TARGET --engine afl --duration 10m
  ./dev_cli.sh fuzz --all --duration 5m
Note that 'fuzz --engine' is ci/fuzz.sh's fuzzing engine (libfuzzer|afl);
the container engine is the global --engine, given before 'fuzz'.

Options:
  -h, --help         Show this help and, when present, ci/fuzz.sh's help
                     ('fuzz -- --help' runs only ci/fuzz.sh --help)
EOF
}

# Our help, then the script's own (it is plain text, safe to run on the host).
usage_fuzz_with_script() {
    usage_fuzz
    if [[ -x $NIMBUS_ROOT/ci/fuzz.sh ]]; then
        printf '\nci/fuzz.sh --help:\n'
        "$NIMBUS_ROOT/ci/fuzz.sh" --help || true
    else
        printf '\n(ci/fuzz.sh is not in this source tree yet.)\n'
    fi
}

usage_shell() {
    cat <<EOF
Usage: ./dev_cli.sh [GLOBAL OPTIONS] shell [-- COMMAND [ARGS...]]

Open an interactive bash in the dev container, in the source tree, or run
COMMAND there and exit with its status. Same devices and capabilities as
the other subcommands. With --local, runs on the host.

Options:
  -h, --help         Show this help
  -- COMMAND ARGS    Command to run instead of an interactive shell
EOF
}

usage_clean() {
    cat <<EOF
Usage: ./dev_cli.sh [GLOBAL OPTIONS] clean [--images]

Remove build/, build-debug/, build-asan/ and build-debug-asan/ from the source
tree (on the host; no container is started). Other build-* directories are
left alone.

Options:
  --images           Also remove every $IMAGE_REPO:* image from the container
                     engine
  -h, --help         Show this help
EOF
}

usage_build_container() {
    cat <<EOF
Usage: ./dev_cli.sh [GLOBAL OPTIONS] build-container [OPTIONS]

Build the dev image from ./Dockerfile and tag it $IMAGE_REPO:<first 12 hex
digits of sha256(Dockerfile)> (or --image NAME). Nothing is done when that
tag already exists, so the image is rebuilt only when the Dockerfile changes.
After a build, the other $IMAGE_REPO:<hash> images (older Dockerfiles) are
removed. Other subcommands run this step on demand.

The base image (default $DEFAULT_BASE_IMAGE) is used when present locally, else
pulled. When it cannot be pulled (no registry access) and it is
debian:bookworm, it is bootstrapped from Debian packages instead:
  debootstrap --variant=minbase bookworm DIR MIRROR
  tar -C DIR -c . | ENGINE import - debian:bookworm
(about 30 s; as root, with debootstrap on the host). As a non-root user
(rootless podman) mmdebstrap is used instead, which needs no privileges:
  mmdebstrap --mode=unshare --variant=minbase bookworm - MIRROR | podman import

apt in the build uses the host's Debian mirror: the main and security mirror
URIs are read from /etc/apt/sources.list{,.d/*.list,.d/*.sources} and the
host's Acquire::*::Proxy and Acquire::Check-Valid-Until/Check-Date settings
are copied, all passed as build arguments (APT_MIRROR, APT_SECURITY_MIRROR,
HOST_APT_CONF). Without host apt sources the base image's own are used.

Options:
  --force            Rebuild even if the tag exists (no layer cache)
  --base IMAGE       Base image (default \$NIMBUS_BASE_IMAGE or
                     $DEFAULT_BASE_IMAGE)
  -h, --help         Show this help
EOF
}

usage_for() {
    case $1 in
    build) usage_build ;;
    tests) usage_tests ;;
    fuzz) usage_fuzz_with_script ;;
    cloud-image) usage_cloud_image ;;
    shell) usage_shell ;;
    clean) usage_clean ;;
    build-container) usage_build_container ;;
    *) die "unknown subcommand '$1' (expected one of: $SUBCOMMANDS)" ;;
    esac
}

# -------------------------------------------------------- subcommand parsing
# Each parser validates its arguments and fills P_* variables. On the host it
# runs before any container starts, so mistakes fail fast; the container's
# --local run parses the same arguments again.

P_BUILD_TYPE=release
P_SANITIZE=0
P_WERROR=0
P_BUILD_DIR=""
P_EXTRA=()
P_UNIT=0
P_INTEGRATION=0
P_FUZZ=0
P_IMAGES=0
P_FORCE=0
P_NO_BOOT=0
P_ALL_CLOUD=0
P_BASE="${NIMBUS_BASE_IMAGE:-$DEFAULT_BASE_IMAGE}"

# Parses options shared by build and tests. Returns 1 when $1 is not one.
# Sets SHIFT_BY to the number of words consumed.
parse_build_option() {
    SHIFT_BY=1
    case $1 in
    --release) P_BUILD_TYPE=release ;;
    --debug) P_BUILD_TYPE=debug ;;
    --sanitize) P_SANITIZE=1 ;;
    --werror) P_WERROR=1 ;;
    --build-dir | --build-dir=*)
        P_BUILD_DIR=$(option_value "$@")
        [[ $1 == *=* ]] || SHIFT_BY=2
        ;;
    *) return 1 ;;
    esac
}

parse_build() {
    while [[ $# -gt 0 ]]; do
        case $1 in
        -h | --help) usage_build; exit 0 ;;
        --) shift; P_EXTRA=("$@"); return 0 ;;
        *)
            parse_build_option "$@" || die "unknown option '$1' for 'build' (see ./dev_cli.sh build --help)"
            shift "$SHIFT_BY"
            ;;
        esac
    done
}

parse_tests() {
    local saw_dashdash=0
    while [[ $# -gt 0 ]]; do
        case $1 in
        -h | --help) usage_tests; exit 0 ;;
        --unit) P_UNIT=1 ;;
        --integration) P_INTEGRATION=1 ;;
        --fuzz) P_FUZZ=1 ;;
        --all) P_UNIT=1 P_INTEGRATION=1 P_FUZZ=1 ;;
        --) shift; P_EXTRA=("$@"); saw_dashdash=1; break ;;
        *)
            if parse_build_option "$@"; then
                shift "$SHIFT_BY"
                continue
            fi
            die "unknown option '$1' for 'tests' (see ./dev_cli.sh tests --help)"
            ;;
        esac
        shift
    done
    if ((P_UNIT + P_INTEGRATION + P_FUZZ == 0)); then
        P_UNIT=1
    fi
    if ((saw_dashdash && P_UNIT + P_INTEGRATION + P_FUZZ != 1)); then
        die "'tests -- ARGS' needs exactly one of --unit, --integration, --fuzz (the arguments go to that suite's runner)"
    fi
}

parse_fuzz() {
    # ci/fuzz.sh owns the argument syntax; only our own help is intercepted.
    if [[ $# -ge 1 && ($1 == -h || $1 == --help) ]]; then
        usage_fuzz_with_script
        exit 0
    fi
    if [[ $# -ge 1 && $1 == -- ]]; then
        shift
    fi
    P_EXTRA=("$@")
}

parse_shell() {
    while [[ $# -gt 0 ]]; do
        case $1 in
        -h | --help) usage_shell; exit 0 ;;
        --)
            shift
            [[ $# -ge 1 ]] || die "'shell --' needs a command after '--'"
            P_EXTRA=("$@")
            return 0
            ;;
        -*) die "unknown option '$1' for 'shell' (see ./dev_cli.sh shell --help)" ;;
        *) die "unexpected argument '$1' for 'shell': put the command after '--' (./dev_cli.sh shell -- $1 ...)" ;;
        esac
    done
}

parse_clean() {
    while [[ $# -gt 0 ]]; do
        case $1 in
        -h | --help) usage_clean; exit 0 ;;
        --images) P_IMAGES=1 ;;
        *) die "unknown option '$1' for 'clean' (see ./dev_cli.sh clean --help)" ;;
        esac
        shift
    done
}

parse_build_container() {
    while [[ $# -gt 0 ]]; do
        case $1 in
        -h | --help) usage_build_container; exit 0 ;;
        --force) P_FORCE=1 ;;
        --base | --base=*)
            P_BASE=$(option_value "$@")
            [[ $1 == *=* ]] || shift
            ;;
        *) die "unknown option '$1' for 'build-container' (see ./dev_cli.sh build-container --help)" ;;
        esac
        shift
    done
}

# ------------------------------------------------------------ local steps

parse_cloud_image() {
    while [[ $# -gt 0 ]]; do
        case $1 in
        -h | --help) usage_cloud_image; exit 0 ;;
        --no-boot) P_NO_BOOT=1 ;;
        --all-tests) P_ALL_CLOUD=1 ;;
        --) shift; P_EXTRA=("$@"); break ;;
        *)
            if parse_build_option "$@"; then
                shift "$SHIFT_BY"
                continue
            fi
            die "unknown option '$1' for 'cloud-image' (see ./dev_cli.sh cloud-image --help)"
            ;;
        esac
        shift
    done
}

build_dir_for_options() {
    if [[ -n $P_BUILD_DIR ]]; then
        case $P_BUILD_DIR in
        /*) printf '%s\n' "$P_BUILD_DIR" ;;
        *) printf '%s\n' "$NIMBUS_ROOT/$P_BUILD_DIR" ;;
        esac
        return
    fi
    local dir=build
    [[ $P_BUILD_TYPE == debug ]] && dir+=-debug
    ((P_SANITIZE)) && dir+=-asan
    printf '%s\n' "$NIMBUS_ROOT/$dir"
}

# Messages about /dev/kvm: $1 = "warn" or "error", $2 = what needs it.
check_kvm() {
    [[ -e $KVM_DEVICE ]] && return 0
    if [[ $1 == error ]]; then
        die "$KVM_DEVICE is missing: $2 needs KVM (load kvm_intel or kvm_amd, or use a machine with virtualisation enabled)"
    fi
    # Inside the container the host side has already warned.
    ((IN_CONTAINER)) || warn "$KVM_DEVICE is missing: $2 works, but unit tests that create VMs skip, and guests boot only in the nested test host (QEMU TCG, slow)"
}

require_helper() {
    local script="$NIMBUS_ROOT/$1"
    [[ -e $script ]] || die "$1 is missing from the source tree ($2 needs it)"
    [[ -x $script ]] || die "$1 is not executable (chmod +x $1)"
}

step_build() {
    local dir werror=OFF sanitize=OFF type=RelWithDebInfo
    dir=$(build_dir_for_options)
    [[ $P_WERROR == 1 || ${CI:-} == true ]] && werror=ON
    ((P_SANITIZE)) && sanitize=ON
    [[ $P_BUILD_TYPE == debug ]] && type=Debug
    run cmake -S "$NIMBUS_ROOT" -B "$dir" -G Ninja \
        -DCMAKE_BUILD_TYPE="$type" -DNIMBUS_WERROR="$werror" \
        -DNIMBUS_SANITIZE="$sanitize" ${P_EXTRA[@]+"${P_EXTRA[@]}"}
    run ninja -C "$dir"
}

local_build() {
    check_kvm warn "building"
    step_build
}

local_tests() {
    local runner_args=(${P_EXTRA[@]+"${P_EXTRA[@]}"})
    # Check every selected suite's prerequisites before spending time on any.
    check_test_prerequisites
    if ((P_INTEGRATION)) && ((IN_CONTAINER)); then
        refresh_apt_lists
    fi
    if ((P_UNIT)); then
        check_kvm warn "building"
        P_EXTRA=()
        step_build
        run ctest --test-dir "$(build_dir_for_options)" --output-on-failure \
            ${runner_args[@]+"${runner_args[@]}"}
    fi
    if ((P_INTEGRATION)); then
        # The tests boot the nimbus binary they find in $NIMBUS_BIN (default
        # build/nimbus): build it with this run's options and point there.
        if [[ -z ${NIMBUS_BIN:-} ]]; then
            if ((!P_UNIT)); then
                P_EXTRA=()
                step_build
            fi
            NIMBUS_BIN="$(build_dir_for_options)/nimbus"
            export NIMBUS_BIN
            ((DRY_RUN)) && echo "+ export NIMBUS_BIN=$NIMBUS_BIN"
        fi
        run "$NIMBUS_ROOT/ci/test-integration.sh" ${runner_args[@]+"${runner_args[@]}"}
    fi
    if ((P_FUZZ)); then
        run "$NIMBUS_ROOT/ci/fuzz.sh" --smoke ${runner_args[@]+"${runner_args[@]}"}
    fi
}

# Fails before any suite runs when a selected suite cannot run at all.
check_test_prerequisites() {
    if ((P_INTEGRATION)); then
        # Without /dev/kvm the guest tests run in the nested test host
        # (QEMU TCG, ci/vmrun.sh), which needs none.
        check_kvm warn "'tests --integration'"
        require_helper ci/test-integration.sh "'tests --integration'"
    fi
    if ((P_FUZZ)); then
        require_helper ci/fuzz.sh "'tests --fuzz'"
    fi
    return 0
}

# The image ships without apt lists (they would be stale and large), but
# ci/guest-assets.sh resolves and downloads guest kernels with apt.
refresh_apt_lists() {
    compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null && return 0
    info "fetching apt lists in the container for ci/guest-assets.sh"
    run apt-get update -qq || die "apt-get update failed in the container (ci/guest-assets.sh needs apt lists to fetch guest kernels)"
}

local_cloud_image() {
    require_helper ci/cloud-image.sh "'cloud-image'"
    ((IN_CONTAINER)) && refresh_apt_lists
    local dir
    if ((DRY_RUN)); then
        run "$NIMBUS_ROOT/ci/cloud-image.sh" --print-dir
        dir=/nonexistent/cloud-image
    else
        dir=$("$NIMBUS_ROOT/ci/cloud-image.sh" --print-dir) || die "ci/cloud-image.sh failed"
    fi
    if ((P_NO_BOOT)); then
        printf '%s\n' "$dir"
        return
    fi
    local pytest_args=(${P_EXTRA[@]+"${P_EXTRA[@]}"})
    P_EXTRA=()
    step_build
    NIMBUS_BIN="$(build_dir_for_options)/nimbus"
    NIMBUS_CLOUD_IMAGE=$dir
    export NIMBUS_BIN NIMBUS_CLOUD_IMAGE
    # -k, not a path: the runner collects test files itself, one nested
    # host each (a path would be run in every file's).
    local k=test_disk_only_boot_cloud_init_and_ssh
    ((P_ALL_CLOUD)) && k="$k or test_kernel_and_disk_as_in_cloud_hypervisors_readme or test_kernel_and_disk_on_the_serial_port"
    run "$NIMBUS_ROOT/ci/test-integration.sh" --guest-only -k "$k" \
        ${pytest_args[@]+"${pytest_args[@]}"}
}

local_fuzz() {
    require_helper ci/fuzz.sh "'fuzz'"
    run "$NIMBUS_ROOT/ci/fuzz.sh" ${P_EXTRA[@]+"${P_EXTRA[@]}"}
}

local_shell() {
    check_kvm warn "the shell"
    if ((${#P_EXTRA[@]})); then
        run "${P_EXTRA[@]}"
    else
        run "${SHELL:-/bin/bash}" -i
    fi
}

# Inside a rootful container every new file is root's. Give everything under
# the source tree and the asset cache back to the owner of that directory
# (NIMBUS_DEV_CLI_FIX_OWNERSHIP=1 is set by the host side for rootful
# engines). .git is left alone: the container never writes there.
fix_ownership() {
    [[ ${NIMBUS_DEV_CLI_FIX_OWNERSHIP:-0} == 1 && $EUID -eq 0 ]] || return 0
    local dir owner
    for dir in "$NIMBUS_ROOT" ${NIMBUS_ASSETS_DIR:+"$NIMBUS_ASSETS_DIR"} \
        ${NIMBUS_CLOUD_IMAGE_DIR:+"$NIMBUS_CLOUD_IMAGE_DIR"}; do
        [[ -d $dir ]] || continue
        owner=$(stat -c %u:%g "$dir")
        find "$dir" -xdev -path "$dir/.git" -prune -o \
            \( ! -uid "${owner%:*}" -o ! -gid "${owner#*:}" \) -print0 |
            xargs -0r chown -h "$owner" || warn "could not give the files in $dir back to $owner"
    done
}

# Runs subcommand $1, whose arguments are already parsed, on this machine.
run_local() {
    if ((IN_CONTAINER)); then
        trap fix_ownership EXIT
    fi
    case $1 in
    build) local_build ;;
    tests) local_tests ;;
    fuzz) local_fuzz ;;
    cloud-image) local_cloud_image ;;
    shell) local_shell ;;
    esac
}

# ------------------------------------------------------- container runs

# Rootless podman drops supplementary groups, so a /dev/kvm reachable only
# through the kvm group is unusable in the container unless the runtime can
# keep them (--group-add keep-groups works with crun only). Adds to cmd.
rootless_kvm_groups() {
    ((ENGINE_ROOTLESS)) && [[ $ENGINE == podman && -e $KVM_DEVICE ]] || return 0
    local mode
    mode=$(stat -c %a "$KVM_DEVICE")
    [[ ${mode: -1} == [67] ]] && return 0 # world read-write already
    local rt=${NIMBUS_PODMAN_RUNTIME-runc}
    if [[ $rt == crun ]]; then
        cmd+=(--group-add keep-groups)
    elif ((!IN_CONTAINER)); then
        warn "$KVM_DEVICE is not world-accessible and rootless podman with ${rt:-its default runtime} drops your supplementary groups: KVM will not work in the container (set NIMBUS_PODMAN_RUNTIME=crun to keep them, or run as root)"
    fi
    return 0
}

CONTAINER_NAME=""
cleanup_container() {
    [[ -n $CONTAINER_NAME ]] || return 0
    "$ENGINE" rm -f "$CONTAINER_NAME" >/dev/null 2>&1 || true
}

# Re-runs this script with --local inside the image.
# Add a host cache to SHARED_CACHES, mounted at its own path: $1 names the
# variable that sets it, $2 its directory under ~/.cache/nimbus by default, $3
# what it holds (for the error).
share_cache() {
    local var=$1 dir=${!1:-${HOME:+$HOME/.cache/nimbus/$2}}
    [[ -n $dir && $dir == /* ]] || return 0
    ((DRY_RUN)) || mkdir -p "$dir" || die "cannot create the $3 $dir (set $var)"
    SHARED_CACHES+=(--volume "$dir:$dir" --env "$var=$dir")
}

run_in_container() {
    local sub=$1
    shift
    ensure_image "$IMAGE"
    engine_cmd
    CONTAINER_NAME="nimbus-dev-$$"
    local cmd=("${ENGINE_CMD[@]}" run --rm --init --name "$CONTAINER_NAME"
        --network host --security-opt label=disable --cap-add NET_ADMIN
        --cap-add MKNOD) # debootstrap (cloud-image) makes device nodes in its tree
    local dev
    for dev in "$KVM_DEVICE" /dev/net/tun /dev/vhost-net /dev/vhost-vsock; do
        [[ -e $dev ]] && cmd+=(--device "$dev")
    done
    cmd+=(--volume "$NIMBUS_ROOT:$NIMBUS_ROOT" --workdir "$NIMBUS_ROOT")
    # Guest kernels and initramfs, and the cloud image, take minutes to build
    # (debootstrap); keep them across containers by sharing the host's caches
    # at the same paths.
    SHARED_CACHES=()
    share_cache NIMBUS_ASSETS_DIR assets "guest asset cache"
    share_cache NIMBUS_CLOUD_IMAGE_DIR cloud-image "cloud image cache"
    cmd+=(${SHARED_CACHES[@]+"${SHARED_CACHES[@]}"})
    rootless_kvm_groups
    local limits
    limits=$(podman_ulimits)
    # shellcheck disable=SC2206 # "--ulimit type=soft:hard" words, no globs
    [[ -n $limits ]] && cmd+=($limits)
    local var
    while read -r var; do
        case $var in
        NIMBUS_DEV_CLI_* | NIMBUS_ASSETS_DIR | NIMBUS_CLOUD_IMAGE_DIR) ;; # set explicitly
        NIMBUS_* | CI | GITHUB_ACTIONS | PYTEST_ADDOPTS | TERM | CC | CXX) cmd+=(--env "$var") ;;
        esac
    done < <(compgen -e)
    cmd+=(--env NIMBUS_DEV_CLI_IN_CONTAINER=1)
    [[ $KVM_DEVICE != /dev/kvm ]] && cmd+=(--env "NIMBUS_DEV_CLI_KVM_DEVICE=$KVM_DEVICE")
    ((ENGINE_ROOTLESS)) || cmd+=(--env NIMBUS_DEV_CLI_FIX_OWNERSHIP=1)
    # stdin always reaches the command, as on the host; a terminal only
    # when there is one at both ends.
    cmd+=(--interactive)
    [[ -t 0 && -t 1 ]] && cmd+=(--tty)
    cmd+=("$IMAGE" "$SELF" --local "$sub" "$@")
    if ((DRY_RUN)); then
        run "${cmd[@]}"
        return 0
    fi
    trap cleanup_container EXIT
    trap 'cleanup_container; exit 130' INT
    trap 'cleanup_container; exit 143' TERM HUP
    # bash runs traps only once a foreground child exits, so a signal would
    # leave the container running until its command ends. Waiting on a
    # background engine lets the traps fire at once; the explicit <&0 keeps
    # stdin, which bash would otherwise point at /dev/null.
    local rc=0
    "${cmd[@]}" <&0 &
    wait "$!" || rc=$?
    CONTAINER_NAME=""
    return "$rc"
}

# ---------------------------------------------------------- host-only steps

do_clean() {
    local d
    for d in build build-debug build-asan build-debug-asan; do
        if [[ -e $NIMBUS_ROOT/$d ]]; then
            run rm -rf -- "${NIMBUS_ROOT:?}/$d" || die "could not remove $NIMBUS_ROOT/$d (files owned by another user? try: sudo rm -rf $NIMBUS_ROOT/$d)"
        fi
    done
    if ((P_IMAGES)); then
        select_engine
        local images
        if ((DRY_RUN)); then
            run "$ENGINE" rmi "$IMAGE_REPO:*"
            return 0
        fi
        images=$("$ENGINE" images --format '{{.Repository}}:{{.Tag}}' | grep -E "(^|/)$IMAGE_REPO:" || true)
        if [[ -n $images ]]; then
            # shellcheck disable=SC2086 # one image name per word
            run "$ENGINE" rmi $images
        fi
    fi
}

do_build_container() {
    ((OPT_LOCAL)) && die "'build-container' builds the container image; it cannot be combined with --local"
    select_engine
    IMAGE=${OPT_IMAGE:-$(default_image)}
    if ((!P_FORCE && !DRY_RUN)) && image_exists "$IMAGE"; then
        info "image $IMAGE is up to date with the Dockerfile; nothing to do (--force rebuilds it)"
        return 0
    fi
    build_image "$IMAGE" "$P_FORCE"
}

# ------------------------------------------------------------------- main

main() {
    while [[ $# -gt 0 ]]; do
        case $1 in
        --local) OPT_LOCAL=1 ;;
        --engine | --engine=*)
            OPT_ENGINE=$(option_value "$@")
            [[ $1 == *=* ]] || shift
            case $OPT_ENGINE in
            podman | docker) ;;
            *) die "unknown container engine '$OPT_ENGINE' for --engine (expected podman or docker)" ;;
            esac
            ;;
        --image | --image=*)
            OPT_IMAGE=$(option_value "$@")
            [[ $1 == *=* ]] || shift
            ;;
        -h | --help) usage_main; exit 0 ;;
        -*) die "unknown global option '$1' (see ./dev_cli.sh --help)" ;;
        *) break ;;
        esac
        shift
    done
    [[ $# -gt 0 ]] || { usage_main >&2; die "no subcommand given (expected one of: $SUBCOMMANDS)"; }
    local sub=$1
    shift
    case $sub in
    help)
        if [[ $# -eq 0 ]]; then usage_main; else usage_for "$1"; fi
        exit 0
        ;;
    build | tests | fuzz | cloud-image | shell | clean | build-container) ;;
    *) die "unknown subcommand '$sub' (expected one of: $SUBCOMMANDS; see ./dev_cli.sh --help)" ;;
    esac

    # Validate (and answer --help) on the host before anything starts.
    case $sub in
    build) parse_build "$@" ;;
    tests) parse_tests "$@" ;;
    fuzz) parse_fuzz "$@" ;;
    cloud-image) parse_cloud_image "$@" ;;
    shell) parse_shell "$@" ;;
    clean) parse_clean "$@"; do_clean; return ;;
    build-container) parse_build_container "$@"; do_build_container; return ;;
    esac

    if ((OPT_LOCAL)); then
        run_local "$sub"
        return
    fi
    # Host-side checks that must fail before a container is started.
    if [[ $P_BUILD_DIR == /* && $P_BUILD_DIR != "$NIMBUS_ROOT"/* ]]; then
        die "--build-dir '$P_BUILD_DIR' is outside the source tree, which is all the container sees (use a path inside $NIMBUS_ROOT, or --local)"
    fi
    case $sub in
    build) check_kvm warn "building" ;;
    tests)
        check_test_prerequisites
        ((P_UNIT)) && check_kvm warn "building"
        ;;
    fuzz) require_helper ci/fuzz.sh "'fuzz'" ;;
    cloud-image) require_helper ci/cloud-image.sh "'cloud-image'" ;;
    shell) check_kvm warn "the shell" ;;
    esac
    select_engine
    IMAGE=${OPT_IMAGE:-$(default_image)}
    run_in_container "$sub" "$@"
}

main "$@"
