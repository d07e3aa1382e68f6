# shellcheck shell=bash
# Container engine plumbing for dev_cli.sh (sourced, not run): choosing the
# engine, naming the image after the Dockerfile, bootstrapping the base image
# without a registry, building the image with the host's apt mirror, and the
# engine's quirks on sandboxed hosts.
#
# Uses from dev_cli.sh: die, warn, info, run; DRY_RUN, OPT_ENGINE, OPT_IMAGE,
# DOCKERFILE, IMAGE_REPO, DEFAULT_BASE_IMAGE, BOOTSTRAPPABLE_BASES, P_BASE.
# Sets ENGINE, ENGINE_ROOTLESS and ENGINE_CMD.

ENGINE=""        # podman or docker, once select_engine ran
ENGINE_ROOTLESS=0 # 1: container root is the invoking user
ENGINE_CMD=()    # the engine with its global options (engine_cmd)

engine_works() {
    case $1 in
    podman) return 0 ;;
    docker) ((DRY_RUN)) || docker info >/dev/null 2>&1 ;;
    esac
}

select_engine() {
    if [[ -n $OPT_ENGINE ]]; then
        command -v "$OPT_ENGINE" >/dev/null 2>&1 ||
            die "container engine '$OPT_ENGINE' (--engine) is not installed or not in PATH"
        engine_works "$OPT_ENGINE" ||
            die "docker is installed but its daemon does not answer ('docker info' failed); start it or use --engine podman"
        ENGINE=$OPT_ENGINE
    elif command -v podman >/dev/null 2>&1; then
        ENGINE=podman
    elif command -v docker >/dev/null 2>&1; then
        engine_works docker ||
            die "no container engine found: podman is not installed and docker's daemon does not answer ('docker info' failed). Install podman, start docker, or use --local"
        ENGINE=docker
    else
        die "no container engine found: install podman (preferred) or docker, or use --local to run on the host"
    fi
    # Rootless engines map container root to the invoking user already.
    if [[ $ENGINE == podman ]]; then
        ((EUID == 0)) || ENGINE_ROOTLESS=1
    elif ((!DRY_RUN)) && docker info --format '{{.SecurityOptions}}' 2>/dev/null | grep -q rootless; then
        ENGINE_ROOTLESS=1
    fi
}

# The engine command with its global options.
engine_cmd() {
    ENGINE_CMD=("$ENGINE")
    if [[ $ENGINE == podman ]]; then
        # crun needs CAP_SYS_RESOURCE for its setrlimit calls, which some
        # hosts (nested sandboxes) do not grant; runc does not.
        local rt=${NIMBUS_PODMAN_RUNTIME-runc}
        [[ -n $rt ]] && ENGINE_CMD+=(--runtime "$rt")
    fi
    return 0
}

default_image() {
    [[ -f $DOCKERFILE ]] || die "Dockerfile not found at $DOCKERFILE"
    local sum
    sum=$(sha256sum "$DOCKERFILE")
    printf '%s:%s\n' "$IMAGE_REPO" "${sum:0:12}"
}

image_exists() {
    if [[ $ENGINE == podman ]]; then
        podman image exists "$1"
    else
        docker image inspect "$1" >/dev/null 2>&1
    fi
}

# Prints "URI SUITE" for every enabled binary (deb) source on the host.
host_apt_entries() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && NF >= 3 { print $2, $3 }'
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        # deb822: blank-line separated stanzas of "Key: value" fields.
        awk 'BEGIN { RS = ""; FS = "\n" }
        {
            types = ""; uris = ""; suites = ""; enabled = "yes"
            for (i = 1; i <= NF; i++) {
                line = $i
                if (line ~ /^#/) continue
                k = tolower(line); sub(/:.*/, "", k)
                v = line; sub(/^[^:]*:[ \t]*/, "", v)
                if (k == "types") types = v
                else if (k == "uris") uris = v
                else if (k == "suites") suites = v
                else if (k == "enabled") enabled = tolower(v)
            }
            if (enabled == "no" || (" " types " ") !~ / deb /) next
            nu = split(uris, u, /[ \t]+/); ns = split(suites, s, /[ \t]+/)
            for (a = 1; a <= nu; a++) for (b = 1; b <= ns; b++)
                if (u[a] != "" && s[b] != "") print u[a], s[b]
        }' "$f"
    done
}

# Sets APT_MIRROR and APT_SECURITY_MIRROR from the environment or the host's
# Debian entries (third-party repositories are recognised by their suite
# names not being Debian releases and are skipped).
find_apt_mirrors() {
    APT_MIRROR=${NIMBUS_APT_MIRROR:-}
    APT_SECURITY_MIRROR=${NIMBUS_APT_SECURITY_MIRROR:-}
    local uri suite base releases=" buster bullseye bookworm trixie forky sid oldoldstable oldstable stable testing unstable "
    while read -r uri suite; do
        base=${suite%%[-/]*}
        [[ $releases == *" $base "* ]] || continue
        if [[ $suite == *-security || $suite == */updates ]]; then
            [[ -n $APT_SECURITY_MIRROR ]] || APT_SECURITY_MIRROR=$uri
        else
            [[ -n $APT_MIRROR ]] || APT_MIRROR=$uri
        fi
    done < <(host_apt_entries 2>/dev/null || true)
    return 0
}

# apt settings the build must share with the host: proxies and the snapshot
# mirror relaxations. One line of apt.conf statements.
host_apt_conf() {
    command -v apt-config >/dev/null 2>&1 || return 0
    apt-config dump 2>/dev/null |
        grep -E '^Acquire::((http|https|ftp)::Proxy|Check-Valid-Until|Check-Date)' |
        tr '\n' ' ' || true
}

# Creates $1 (a debian:bookworm name) from Debian packages: debootstrap as
# root; as a non-root user (rootless podman) mmdebstrap, whose unshare mode
# needs no privileges (debootstrap cannot mknod in a user namespace).
bootstrap_base() {
    local name=$1 rc=0 tool
    find_apt_mirrors
    local mirror=${APT_MIRROR:-http://deb.debian.org/debian}
    local start=$SECONDS
    if ((EUID != 0)); then
        [[ $ENGINE == podman ]] ||
            die "bootstrapping '$name' as a non-root user needs rootless podman; run 'sudo ./dev_cli.sh build-container' or make '$name' available to docker"
        tool=$(PATH=$PATH:/usr/sbin:/sbin command -v mmdebstrap) ||
            die "base image '$name' cannot be pulled, and bootstrapping it as a non-root user needs mmdebstrap (apt-get install mmdebstrap); or build the image as root and copy it: sudo podman save IMAGE | podman load"
        info "base image '$name' is not available and cannot be pulled: bootstrapping it with 'mmdebstrap --mode=unshare --variant=minbase bookworm' from $mirror and 'podman import' (1-2 minutes)"
        if ((DRY_RUN)); then
            printf '+ %q --mode=unshare --variant=minbase bookworm - %q | podman import - %q\n' "$tool" "$mirror" "$name"
            return 0
        fi
        local log
        log=$(mktemp)
        # pipefail: a failing mmdebstrap fails the pipeline.
        "$tool" --mode=unshare --variant=minbase bookworm - "$mirror" 2>"$log" |
            podman import - "$name" >/dev/null || rc=$?
        ((rc == 0)) || tail -n 20 "$log" >&2
        rm -f "$log"
    else
        # Non-root PATHs usually lack /usr/sbin, where Debian installs it.
        tool=$(PATH=$PATH:/usr/sbin:/sbin command -v debootstrap) ||
            die "base image '$name' cannot be pulled and debootstrap is not installed to create it (apt-get install debootstrap, or make '$name' available to $ENGINE)"
        info "base image '$name' is not available and cannot be pulled: bootstrapping it with 'debootstrap --variant=minbase bookworm' from $mirror and '$ENGINE import' (about 30 s)"
        if ((DRY_RUN)); then
            run "$tool" --variant=minbase bookworm DIR "$mirror"
            printf '+ tar -C DIR -c . | %s import - %q\n' "$ENGINE" "$name"
            return 0
        fi
        local dir
        dir=$(mktemp -d /var/tmp/nimbus-debootstrap.XXXXXX)
        "$tool" --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1 || rc=$?
        if ((rc == 0)); then
            tar -C "$dir" -c . | "$ENGINE" import - "$name" >/dev/null || rc=$?
        else
            tail -n 20 "$dir.log" >&2
        fi
        rm -rf "$dir" "$dir.log"
    fi
    ((rc == 0)) || die "bootstrapping base image '$name' failed (from $mirror, see above)"
    info "bootstrapped '$name' in $((SECONDS - start)) s"
}

ensure_base_image() {
    local base=$1
    ((DRY_RUN)) && return 0
    image_exists "$base" && return 0
    info "base image '$base' is not present locally; trying to pull it"
    if timeout 300 "$ENGINE" pull "$base" >/dev/null 2>&1; then
        return 0
    fi
    [[ $BOOTSTRAPPABLE_BASES == *" $base "* ]] ||
        die "base image '$base' is not present locally and could not be pulled (only $DEFAULT_BASE_IMAGE can be bootstrapped from Debian packages)"
    bootstrap_base "$base"
}

# Builds image $1 from the Dockerfile.
build_image() {
    local image=$1 no_cache=$2 ctx rc=0
    ensure_base_image "$P_BASE"
    find_apt_mirrors
    local apt_conf
    apt_conf=$(host_apt_conf)
    engine_cmd
    local cmd=("${ENGINE_CMD[@]}" build --network host -t "$image"
        --build-arg "BASE_IMAGE=$P_BASE"
        --build-arg "APT_MIRROR=$APT_MIRROR"
        --build-arg "APT_SECURITY_MIRROR=$APT_SECURITY_MIRROR"
        --build-arg "HOST_APT_CONF=$apt_conf")
    ((no_cache)) && cmd+=(--no-cache)
    if ((DRY_RUN)); then
        run "${cmd[@]}" -f Dockerfile CONTEXT
        return 0
    fi
    info "building image $image from $DOCKERFILE (base $P_BASE, apt mirror ${APT_MIRROR:-from the base image})"
    # An empty context: the Dockerfile copies nothing, and sending the source
    # tree (with build outputs) would only slow the build down.
    ctx=$(mktemp -d)
    cp "$DOCKERFILE" "$ctx/Dockerfile"
    local start=$SECONDS
    "${cmd[@]}" -f "$ctx/Dockerfile" "$ctx" || rc=$?
    rm -rf "$ctx"
    ((rc == 0)) || die "building image $image failed ($ENGINE build exited with $rc, see its output above)"
    info "built image $image in $((SECONDS - start)) s"
    [[ -z $OPT_IMAGE ]] && prune_stale_images "$image"
    return 0
}

# Each Dockerfile change leaves a >1 GB image behind; drop the other
# $IMAGE_REPO:<hash> tags. Best effort: images in use stay.
prune_stale_images() {
    local keep=$1 img
    while read -r img; do
        img=${img#localhost/}
        [[ $img == "$keep" ]] && continue
        if [[ $img =~ ^$IMAGE_REPO:[0-9a-f]{12}$ ]]; then
            "$ENGINE" rmi "$img" >/dev/null 2>&1 && info "removed stale image $img"
        fi
    done < <("$ENGINE" images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null || true)
    return 0
}

# Builds image $1 unless it exists.
ensure_image() {
    if ((DRY_RUN)); then
        printf '# image %s is built from Dockerfile first if it does not exist\n' "$1"
        return 0
    fi
    image_exists "$1" || build_image "$1" 0
}

# Rootful podman gives containers nofile and nproc limits of 1048576, which
# the runtime can only set with CAP_SYS_RESOURCE. Sandboxed hosts (nested
# containers, some CI runners) drop that capability, so there we ask for the
# limits we already have. nproc is also capped at 32768 because podman lowers
# its own RLIMIT_NPROC to that before starting the runtime, and a container
# cannot get more than its parent. Prints the options, or nothing.
podman_ulimits() {
    [[ $ENGINE == podman ]] && ((!ENGINE_ROOTLESS)) || return 0
    local capeff
    capeff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status 2>/dev/null || true)
    [[ -n $capeff ]] || return 0
    # CAP_SYS_RESOURCE is capability 24.
    (((16#$capeff >> 24) & 1)) && return 0
    local nofile nproc
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    [[ $nofile == unlimited || $nofile -gt 1048576 ]] && nofile=1048576
    [[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
    printf -- '--ulimit nofile=%s:%s --ulimit nproc=%s:%s\n' "$nofile" "$nofile" "$nproc" "$nproc"
}
