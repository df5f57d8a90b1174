# Managed by provisioner: changes are overwritten on the next apply.
# Routes to the other workers' pod ranges (the bridge CNI plugin only knows the local range).
# "sync" adds or replaces each of them, then deletes any other route into the pod network
# through a gateway (a worker that left the cluster); "clear" deletes them all. A change is
# applied by sync alone, so the routes that stay are never missing meanwhile.
set -eu
action=$1
vx=pods.vxlan
vx_chain=PROVISIONER-VXLAN
vx_table=4789

# The pods' packets must fit the interface that carries them.
if [ "$action" = sync ]; then
    underlay=$(ip -4 -o addr show to 10.88.0.11 | { read -r _ dev _ && echo "$dev"; } || true)
    if [ -z "$underlay" ]; then
        echo "no interface holds this host's internal_ip 10.88.0.11" >&2
        exit 1
    fi
    # From ip, not /sys/class/net: a host that is a container may see another namespace there.
    have=$(ip -o link show dev "$underlay" | sed -n 's/.* mtu \([0-9]*\) .*/\1/p')
    if [ "$have" -lt 1500 ]; then
        echo "$underlay's MTU is $have, less than network.mtu 1500: set network.mtu = $have in the inventory" >&2
        exit 1
    fi
fi

# Whether a line of the list $1 has $3 in field $2 (and $5 in field $4).
listed() {
    printf '%s' "$1" | awk -v f="$2" -v v="$3" -v g="${4:-0}" -v w="${5:-}" \
        '$f == v && (g == 0 || $g == w) { found = 1 } END { exit !found }'
}

# Keeps the routes of ip's family $1 into the pod network $2 to the list $3 of "CIDR GATEWAY"
# lines (sync; $4 is what each route adds), or removes them all (clear).
routes() {
    if [ "$action" = sync ]; then
        printf '%s' "$3" | while read -r cidr via; do
            # shellcheck disable=SC2086
            ip "$1" route replace "$cidr" via "$via" $4 || {
                echo "cannot route $cidr via $via: hosts that are not on one L2 segment need network.mode = \"vxlan\"" >&2
                exit 1
            }
        done
    fi
    ip "$1" route show root "$2" | while read -r dst kw gw _; do
        [ "$kw" = via ] || continue
        if [ "$action" = clear ] || ! listed "$3" 1 "$dst" 2 "$gw"; then
            ip "$1" route del "$dst" via "$gw"
        fi
    done
}

# Removes the overlay: its firewall, reply rules and tables, and the device with its entries.
overlay_clear() {
    iptables -w 5 -D INPUT -p udp --dport 4789 -j "$vx_chain" 2>/dev/null || true
    iptables -w 5 -F "$vx_chain" 2>/dev/null || true
    iptables -w 5 -X "$vx_chain" 2>/dev/null || true
    for f in -4 -6; do
        while ip "$f" rule del pref "$vx_table" 2>/dev/null; do :; done
        ip "$f" route flush table "$vx_table" 2>/dev/null || true
    done
    ip link del "$vx" 2>/dev/null || true
}
via_overlay=
via_overlay6=
routes -4 10.200.0.0/16 '10.200.0.0/24 10.88.0.14
10.200.1.0/24 10.88.0.15
' "$via_overlay"
# What vxlan mode left, once the routes above no longer go through it.
overlay_clear
