# shellcheck shell=bash
# Kernel-module closure for initramfs building, sourced by ci/guest-assets.sh.
#
# Works on an unpacked Debian linux-image package without kmod installed on the
# host and without running depmod: dependencies are read from each module's own
# .modinfo section, so the result always matches the exact kernel being packed.

# Module names are compared with '-' folded to '_', as the kernel does.
kmod_norm() {
    local n=${1##*/}
    n=${n%%.ko*}
    printf '%s\n' "${n//-/_}"
}

# kmod_field FILE FIELD: print FIELD (e.g. depends) of an uncompressed module.
kmod_field() {
    local file=$1 field=$2
    if command -v modinfo >/dev/null 2>&1; then
        modinfo -F "$field" "$file"
        return
    fi
    # .modinfo is a sequence of NUL-terminated "key=value" strings.
    local tmp
    tmp=$(mktemp)
    if ! objcopy -O binary -j .modinfo "$file" "$tmp"; then
        rm -f "$tmp"
        return 1
    fi
    tr '\0' '\n' <"$tmp" | sed -n "s/^${field}=//p"
    rm -f "$tmp"
}

# kmod_decompress SRC DST: copy a .ko, .ko.xz, .ko.zst or .ko.gz as plain .ko.
kmod_decompress() {
    case $1 in
    *.ko) cp "$1" "$2" ;;
    *.ko.xz) xz -dc "$1" >"$2" ;;
    *.ko.zst) zstd -qdc "$1" >"$2" ;;
    *.ko.gz) gzip -dc "$1" >"$2" ;;
    *) return 1 ;;
    esac
}

# kmod_closure MODDIR OUTDIR NAME...
#   MODDIR: lib/modules/<kver> of an unpacked kernel package.
#   NAME:   module name; a trailing '?' marks it optional (absent is fine).
# Copies every needed module, uncompressed, into OUTDIR and writes
# OUTDIR/load.order: one file name per line, dependencies first. Names that are
# built into the kernel are skipped. Fails if a required module is missing.
kmod_closure() {
    local moddir=$1 outdir=$2
    shift 2
    local -A path_of=() builtin=() state=()
    local f n
    while IFS= read -r f; do
        path_of[$(kmod_norm "$f")]=$f
    done < <(find "$moddir/kernel" -type f -name '*.ko*')
    if [[ -f $moddir/modules.builtin ]]; then
        while IFS= read -r f; do
            builtin[$(kmod_norm "$f")]=1
        done <"$moddir/modules.builtin"
    fi
    : >"$outdir/load.order"

    # Depth-first, post-order: a module is listed after all it depends on.
    # state: 1 = being visited (cycle guard), 2 = done.
    _kmod_visit() {
        local name optional=0 dep deps
        name=$(kmod_norm "$1")
        [[ $name == *'?' ]] && { optional=1; name=${name%'?'}; }
        [[ -n ${state[$name]:-} ]] && return 0
        if [[ -n ${builtin[$name]:-} ]]; then
            state[$name]=2
            printf 'guest-assets:   %s: built in\n' "$name" >&2
            return 0
        fi
        if [[ -z ${path_of[$name]:-} ]]; then
            if ((optional)); then
                printf 'guest-assets:   %s: not in this kernel, skipped\n' "$name" >&2
                state[$name]=2
                return 0
            fi
            printf 'guest-assets: error: module %s not found under %s\n' "$name" "$moddir" >&2
            return 1
        fi
        state[$name]=1
        local out="$outdir/$name.ko"
        kmod_decompress "${path_of[$name]}" "$out" || return 1
        deps=$(kmod_field "$out" depends) || return 1
        local IFS=,
        for dep in $deps; do
            [[ -n $dep ]] || continue
            # A dependency of an optional module is still needed by it.
            _kmod_visit "$dep" || return 1
        done
        # softdep "pre:" modules must be loaded before; best effort.
        local soft
        soft=$(kmod_field "$out" softdep | sed -n 's/.*pre: *\([^:]*\)\( post:.*\)\{0,1\}$/\1/p')
        IFS=' '
        for dep in $soft; do
            _kmod_visit "$dep?" || return 1
        done
        state[$name]=2
        printf '%s.ko\n' "$name" >>"$outdir/load.order"
    }

    for n in "$@"; do
        _kmod_visit "$n" || return 1
    done
}
