# nimbus development image: everything needed to build, unit-test, fuzz and
# run the integration tests (including the nested QEMU test host).
#
# Build it with `./dev_cli.sh build-container`, which also:
#   - bootstraps BASE_IMAGE from Debian packages (debootstrap as root,
#     mmdebstrap for rootless podman) when it cannot be pulled, and
#   - passes the host's Debian mirrors (APT_MIRROR, APT_SECURITY_MIRROR) and
#     its apt proxy / Check-Valid-Until settings (HOST_APT_CONF, apt.conf
#     statements on one line), so apt inside the build uses the same mirror
#     as the host. Left empty, the base image's own sources are used, so a
#     plain `podman build .` works wherever the default Debian mirrors are
#     reachable.
# The image is tagged nimbus-dev:<sha256 prefix of this file>; editing this
# file is what triggers a rebuild.

ARG BASE_IMAGE=debian:bookworm
FROM ${BASE_IMAGE}

ARG APT_MIRROR=""
ARG APT_SECURITY_MIRROR=""
ARG HOST_APT_CONF=""

ENV LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive

# One layer: apt lists are fetched and deleted in the same RUN so they never
# end up in the image. The package list is sorted; keep it that way.
RUN set -eu; \
    if [ -n "$APT_MIRROR" ]; then \
        rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*; \
        echo "deb $APT_MIRROR bookworm main" > /etc/apt/sources.list; \
        echo "deb $APT_MIRROR bookworm-updates main" >> /etc/apt/sources.list; \
        if [ -n "$APT_SECURITY_MIRROR" ]; then \
            echo "deb $APT_SECURITY_MIRROR bookworm-security main" >> /etc/apt/sources.list; \
        fi; \
    fi; \
    if [ -n "$HOST_APT_CONF" ]; then \
        echo "$HOST_APT_CONF" > /etc/apt/apt.conf.d/90host-acquire; \
    fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        acpica-tools \
        afl++ \
        build-essential \
        busybox-static \
        ca-certificates \
        clang-14 \
        cloud-image-utils \
        cmake \
        cpio \
        debootstrap \
        dosfstools \
        e2fsprogs \
        ethtool \
        fdisk \
        file \
        gcc \
        git \
        iproute2 \
        kmod \
        libclang-rt-14-dev \
        libcjson-dev \
        libcmocka-dev \
        libmnl-dev \
        libhttp-parser-dev \
        liburing-dev \
        libseccomp-dev \
        libslirp-dev \
        libext2fs-dev \
        libzstd-dev \
        lld-14 \
        llvm-14 \
        mtools \
        ninja-build \
        openssh-client \
        pkg-config \
        procps \
        python3 \
        python3-pytest \
        qemu-system-x86 \
        qemu-utils \
        strace \
        xz-utils \
        zlib1g-dev \
        zstd; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*

CMD ["/bin/bash"]
