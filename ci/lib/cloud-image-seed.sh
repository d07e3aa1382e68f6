# shellcheck shell=bash
# NoCloud seed images for the Debian cloud image, sourced by ci/cloud-image.sh
# (`ci/cloud-image.sh seed ...`). Every value lands in YAML, so each is checked
# against a strict pattern first: nothing here quotes or escapes.

seed_usage() {
    cat <<'EOF'
Usage: ci/cloud-image.sh seed --hostname NAME --user NAME --ssh-key PUBKEYFILE
                             [--net-tap-ip IP/PREFIX --gateway IP] [--mac MAC]
                             -o SEED.img
A NoCloud seed (vfat, label cidata, made by cloud-localds): the user with the
key and passwordless sudo, the hostname, and network-config v2 for the first
NIC (virtio_net): a static address with --net-tap-ip/--gateway, else DHCP.
--mac matches that NIC by MAC address instead of by driver.
EOF
}

seed_die() {
    printf 'cloud-image seed: error: %s\n' "$*" >&2
    exit 2
}

is_ipv4() {
    local ip=$1 o
    [[ $ip =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || return 1
    for o in "${BASH_REMATCH[@]:1}"; do
        ((10#$o <= 255)) || return 1
    done
}

seed_main() {
    local hostname="" user="" keyfile="" cidr="" gateway="" mac="" out=""
    while (($#)); do
        case $1 in
        --hostname | --user | --ssh-key | --net-tap-ip | --gateway | --mac | -o)
            (($# >= 2)) || seed_die "$1 needs a value"
            case $1 in
            --hostname) hostname=$2 ;;
            --user) user=$2 ;;
            --ssh-key) keyfile=$2 ;;
            --net-tap-ip) cidr=$2 ;;
            --gateway) gateway=$2 ;;
            --mac) mac=$2 ;;
            -o) out=$2 ;;
            esac
            shift
            ;;
        -h | --help) seed_usage; exit 0 ;;
        *) seed_die "unknown argument '$1' (see seed --help)" ;;
        esac
        shift
    done
    [[ -n $hostname && -n $user && -n $keyfile && -n $out ]] ||
        seed_die "--hostname, --user, --ssh-key and -o are required (see seed --help)"
    # RFC 1123 host name (one label or dotted), as cloud-init's set_hostname takes it.
    [[ ${#hostname} -le 253 &&
        $hostname =~ ^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$ ]] ||
        seed_die "bad host name '$hostname'"
    # Debian's adduser default NAME_REGEX, and not a system account's name.
    [[ $user =~ ^[a-z][-a-z0-9_]{0,31}$ && $user != root ]] || seed_die "bad user name '$user'"
    [[ -f $keyfile && -r $keyfile ]] || seed_die "cannot read the ssh key '$keyfile'"
    local -a keys=()
    local line
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line%$'\r'}
        [[ -z $line || $line == \#* ]] && continue
        # "type base64 [comment]"; the comment may not carry YAML quoting.
        [[ $line =~ ^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)\ [A-Za-z0-9+/]+={0,3}(\ [^\"\\]*)?$ ]] ||
            seed_die "'$keyfile' holds a line that is not an OpenSSH public key"
        keys+=("$line")
    done <"$keyfile"
    ((${#keys[@]})) || seed_die "'$keyfile' holds no public key"
    ((${#keys[@]} <= 64)) || seed_die "'$keyfile' holds more than 64 keys"
    if [[ -n $cidr || -n $gateway ]]; then
        [[ -n $cidr && -n $gateway ]] || seed_die "--net-tap-ip and --gateway go together"
        if ! [[ $cidr == */* && ${cidr#*/} =~ ^[0-9]{1,2}$ ]] || ! is_ipv4 "${cidr%/*}" ||
            ((10#${cidr#*/} < 1 || 10#${cidr#*/} > 32)); then
            seed_die "bad --net-tap-ip '$cidr' (want IPv4/PREFIX)"
        fi
        is_ipv4 "$gateway" || seed_die "bad --gateway '$gateway'"
    fi
    if [[ -n $mac ]]; then
        [[ $mac =~ ^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$ ]] || seed_die "bad --mac '$mac'"
        mac=${mac,,}
    fi
    command -v cloud-localds >/dev/null ||
        seed_die "cloud-localds is missing (package cloud-image-utils; ci/install-deps.sh installs it)"

    local dir
    dir=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: dir is local
    trap "rm -rf '$dir'" EXIT

    {
        printf '#cloud-config\n'
        printf 'hostname: %s\n' "${hostname%%.*}"
        [[ $hostname == *.* ]] && printf 'fqdn: %s\n' "$hostname"
        printf 'manage_etc_hosts: true\n'
        printf 'ssh_pwauth: false\n'
        printf 'disable_root: true\n'
        printf 'users:\n'
        printf '  - name: %s\n' "$user"
        printf '    shell: /bin/bash\n'
        printf '    lock_passwd: true\n'
        printf '    sudo: "ALL=(ALL) NOPASSWD:ALL"\n'
        printf '    ssh_authorized_keys:\n'
        for line in "${keys[@]}"; do
            printf '      - "%s"\n' "$line"
        done
    } >"$dir/user-data"

    # A new instance-id whenever the seed's content changes, so cloud-init
    # applies it again on an image that already booted with an older seed.
    local iid
    # No process substitution: the nested test host has no /dev/fd.
    iid=$( { cat "$dir/user-data"; printf '%s %s %s' "$cidr" "$gateway" "$mac"; } | sha256sum | cut -c1-16)
    printf 'instance-id: iid-%s-%s\nlocal-hostname: %s\n' "${hostname%%.*}" "$iid" "${hostname%%.*}" \
        >"$dir/meta-data"

    {
        printf 'version: 2\n'
        printf 'ethernets:\n'
        printf '  nic0:\n'
        printf '    match:\n'
        if [[ -n $mac ]]; then
            printf '      macaddress: "%s"\n' "$mac"
        else
            printf '      driver: virtio_net\n'
        fi
        if [[ -n $cidr ]]; then
            printf '    dhcp4: false\n'
            printf '    addresses: [ "%s" ]\n' "$cidr"
            printf '    routes:\n'
            printf '      - to: default\n'
            printf '        via: %s\n' "$gateway"
        else
            printf '    dhcp4: true\n'
        fi
    } >"$dir/network-config"

    mkdir -p "$(dirname "$out")"
    rm -f "$out"
    cloud-localds --filesystem vfat --network-config "$dir/network-config" \
        "$out" "$dir/user-data" "$dir/meta-data" ||
        seed_die "cloud-localds failed"
    local net=dhcp
    [[ -n $cidr ]] && net="static $cidr via $gateway"
    printf 'cloud-image seed: wrote %s (hostname %s, user %s, %s)\n' "$out" "$hostname" "$user" "$net" >&2
}
