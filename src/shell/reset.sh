# Returns a host to what it was before provisioner: stops and disables the units it installed,
# kills the pods' containers, removes the network state they leave behind (kube-proxy's,
# kube-router's and the CNI plugins' rules, kube-router's ipsets, the pods' network namespaces,
# the bridge, the overlay), then every path given, and the system users its sysusers.d files
# declared.
# Positional parameters:
#   KUBE_PROXY   kube-proxy's binary, run with --cleanup for its rules ("" when not installed)
#   RUNTIME      the container runtime's unit when it ran pods here ("" otherwise)
# Units are named by their file names (kubelet.service).
#   KEEP_IMAGES  "yes" keeps the runtime's image store (its containers are removed either way)
#   BRIDGE       the CNI bridge's name
#   OVERLAY      the pod overlay's VXLAN device
#   TABLE        its routing table of both families, also the priority of the rules that use it
#   UNITS...     in stop order, then "--", then PATHS... to remove, in order (deepest first)
set -u
kube_proxy=$1 runtime=$2 keep_images=$3 bridge=$4 overlay=$5 table=$6
shift 6
units=
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    units="$units $1"
    shift
done
[ $# -gt 0 ] && shift
failed=0
fail() {
    echo "$*" >&2
    failed=1
}

for u in $units; do
    if [ "$u" = "$runtime" ]; then
        # The kubelet stopped first (units stop in reverse start order), but its pods still run:
        # with the systemd cgroup driver they are all under kubepods.slice. A container's
        # process 1 ignores SIGTERM unless it handles it, so stopping the slice alone waits out
        # systemd's 90 s: they get a moment to finish, then SIGKILL.
        if systemctl -q is-active kubepods.slice; then
            systemctl kill --signal=TERM kubepods.slice
            sleep 2
            systemctl kill --signal=KILL kubepods.slice
            systemctl stop kubepods.slice
        fi
        if [ "$keep_images" = yes ] && systemctl -q is-active "$u"; then
            ctr="ctr --address /run/containerd/containerd.sock -n k8s.io"
            for id in $($ctr containers ls -q); do
                $ctr tasks delete --force "$id" >/dev/null 2>&1
                $ctr containers delete "$id" >/dev/null 2>&1 || fail "cannot remove container $id"
            done
        fi
        # Its unit stops only the daemon (KillMode=process): this also kills the shims.
        systemctl kill --signal=KILL "$u" 2>/dev/null
    fi
    systemctl disable --now --quiet "$u" 2>/dev/null
    if systemctl -q is-active "$u"; then
        fail "$u is still running"
    fi
done

# Rules: kube-proxy's own cleanup, then whatever still names its chains, kube-router's, the CNI
# plugins' (a pod killed without the CNI plugins' DEL leaves its rules) or provisioner's own.
if [ -n "$kube_proxy" ] && [ -x "$kube_proxy" ]; then
    "$kube_proxy" --cleanup >/dev/null 2>&1
fi
for t in iptables ip6tables; do
    command -v "$t-save" >/dev/null || continue
    if "$t-save" | grep -q -e KUBE- -e CNI- -e PROVISIONER-; then
        "$t-save" | grep -v -e KUBE- -e CNI- -e PROVISIONER- | "$t-restore" || fail "cannot remove the $t rules"
    fi
done
# kube-router's ipsets (KUBE-SRC-*, KUBE-DST-*; inet6:KUBE-* for IPv6), free once no rule names them.
if command -v ipset >/dev/null; then
    for s in $(ipset list -n 2>/dev/null | grep -e '^KUBE-' -e '^inet6:KUBE-'); do
        ipset destroy "$s" || fail "cannot remove the ipset $s"
    done
fi
if command -v nft >/dev/null; then
    for family in ip ip6; do
        nft list table "$family" kube-proxy >/dev/null 2>&1 && nft delete table "$family" kube-proxy
    done
fi

# The pods' network namespaces (containerd names them cni-*), then the bridge they hung from.
for ns in /run/netns/cni-*; do
    [ -e "$ns" ] || continue
    ip netns delete "${ns##*/}" 2>/dev/null || { umount "$ns" 2>/dev/null; rm -f "$ns"; }
done
rmdir /run/netns 2>/dev/null
if ip link show "$bridge" >/dev/null 2>&1; then
    ip link delete "$bridge" || fail "cannot remove the bridge $bridge"
fi
# The overlay, when its unit's stop did not remove it.
for f in -4 -6; do
    while ip "$f" rule del pref "$table" 2>/dev/null; do :; done
    ip "$f" route flush table "$table" 2>/dev/null
done
if ip link show "$overlay" >/dev/null 2>&1; then
    ip link delete "$overlay" || fail "cannot remove the overlay device $overlay"
fi

# The system users the recorded sysusers.d files declare go once their files are gone.
users=
for p in "$@"; do
    case "$p" in
    /etc/sysusers.d/*.conf)
        [ -f "$p" ] && users="$users $(awk '$1 == "u" { print $2 }' "$p")"
        ;;
    esac
done

# Paths: the mounts below each first (pod volumes, container root filesystems), deepest first;
# rm never crosses into a file system that stayed mounted. A path that is itself a mount point
# (a disk for containerd's or etcd's data) is emptied and stays, as its mount does.
for p in "$@"; do
    awk -v p="$p" 'index($2, p "/") == 1 { print $2 }' /proc/self/mounts |
        sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
    if awk -v p="$p" '$2 == p { found = 1 } END { exit !found }' /proc/self/mounts; then
        find "$p" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system -- {} + ||
            fail "cannot empty $p"
    else
        rm -rf --one-file-system -- "$p" || fail "cannot remove $p"
    fi
done

for u in $users; do
    if getent passwd "$u" >/dev/null; then
        userdel "$u" || fail "cannot remove the user $u"
    fi
    if getent group "$u" >/dev/null; then
        groupdel "$u" || fail "cannot remove the group $u"
    fi
done

systemctl daemon-reload
systemctl reset-failed 2>/dev/null
exit $failed
