# Managed by provisioner: changes are overwritten on the next apply.
# Routes to the other workers' pod ranges through the VXLAN device pods.vxlan: a static
# forwarding entry and neighbour for every other host (the inventory names them all, so nothing
# is learned and nothing is multicast), UDP port 4789 accepted from those hosts only
# (VXLAN carries no authentication). A worker's pods' replies to hosts without pods go back
# through the overlay too, which is where those hosts route the pods (and check replies come).
# "sync" adds or replaces each of them, then deletes any other route into the pod network
# through a gateway (a worker that left the cluster); "clear" deletes them all. A change is
# applied by sync alone, so the routes that stay are never missing meanwhile.
# On a worker, also the masquerading of its pods' traffic that leaves the pod network: traffic
# between pods keeps its source address, which NetworkPolicy rules match on (the CNI bridge
# plugin's own ipMasq would hide it behind the node's address).
set -eu
action=$1
vx=pods.vxlan
vx_chain=PROVISIONER-VXLAN
vx_table=4789

# The pods' packets must fit the interface that carries them.
if [ "$action" = sync ]; then
    underlay=$(ip -4 -o addr show to 192.168.70.21 | { read -r _ dev _ && echo "$dev"; } || true)
    if [ -z "$underlay" ]; then
        echo "no interface holds this host's internal_ip 192.168.70.21" >&2
        exit 1
    fi
    # From ip, not /sys/class/net: a host that is a container may see another namespace there.
    have=$(ip -o link show dev "$underlay" | sed -n 's/.* mtu \([0-9]*\) .*/\1/p')
    if [ "$have" -lt 9000 ]; then
        echo "$underlay's MTU is $have, less than network.mtu 9000: set network.mtu = $have in the inventory" >&2
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

# One address family on the device, for ip's family $1: this host's address $2 (none without
# pods), the "ADDRESS MAC" neighbours $3 routes name the other hosts by, and the replies from
# this worker's pod range $4 to the hosts without pods $5, sent back through the overlay.
overlay_family() {
    [ -z "$2" ] || ip "$1" addr replace "$2" dev "$vx"
    ip "$1" -o addr show dev "$vx" scope global | while read -r _ _ _ a _; do
        [ "$a" = "$2" ] || ip "$1" addr del "$a" dev "$vx"
    done
    printf '%s' "$3" | while read -r addr mac; do
        ip "$1" neigh replace "$addr" lladdr "$mac" dev "$vx" nud permanent
    done
    ip "$1" neigh show dev "$vx" | while read -r addr _; do
        listed "$3" 1 "$addr" || ip "$1" neigh del "$addr" dev "$vx"
    done
    printf '%s' "$5" | while read -r ip; do
        ip "$1" route replace "$ip" dev "$vx" table "$vx_table"
    done
    ip "$1" route show table "$vx_table" 2>/dev/null | while read -r dst _; do
        listed "$5" 1 "$dst" || ip "$1" route del "$dst" table "$vx_table"
    done
    rule="from $4 lookup $vx_table"
    if [ -z "$4" ] || [ -z "$5" ]; then
        while ip "$1" rule del pref "$vx_table" 2>/dev/null; do :; done
    elif [ "$(ip "$1" rule show pref "$vx_table" | sed 's/^[0-9]*:[[:space:]]*//')" != "$rule" ]; then
        while ip "$1" rule del pref "$vx_table" 2>/dev/null; do :; done
        # shellcheck disable=SC2086
        ip "$1" rule add pref "$vx_table" $rule
    fi
}

# "MAC ADDRESS" of every other host's device.
peers='0e:76:c0:a8:46:0b 192.168.70.11
0e:76:c0:a8:47:0c 192.168.71.12
'
if [ "$action" = sync ]; then
    if ! ip -d -o link show "$vx" 2>/dev/null |
        grep -q "link/ether 0e:76:c0:a8:46:15 .*vxlan id 1 local 192.168.70.21 dev $underlay .*dstport 4789 nolearning"; then
        ip link del "$vx" 2>/dev/null || true
        ip link add "$vx" address 0e:76:c0:a8:46:15 type vxlan id 1 \
            local 192.168.70.21 dev "$underlay" dstport 4789 nolearning
    fi
    ip link set "$vx" mtu 8950 up
    # Whatever link-local address the kernel made: the others' IPv6 routes name this one.
    ip -6 addr replace fe80::c76:c0ff:fea8:4615/64 dev "$vx" nodad

    # One restore replaces the chain's rules at once.
    {
        printf '*filter\n:%s - [0:0]\n' "$vx_chain"
        printf '%s' "$peers" | while read -r _ ip; do
            printf -- '-A %s -s %s/32 -j RETURN\n' "$vx_chain" "$ip"
        done
        printf -- '-A %s -j DROP\nCOMMIT\n' "$vx_chain"
    } | iptables-restore -w 5 --noflush
    iptables -w 5 -C INPUT -p udp --dport 4789 -j "$vx_chain" 2>/dev/null ||
        iptables -w 5 -I INPUT -p udp --dport 4789 -j "$vx_chain"

    printf '%s' "$peers" | while read -r mac ip; do
        bridge fdb replace "$mac" dev "$vx" dst "$ip" self permanent
    done
    bridge fdb show dev "$vx" | while read -r mac kw ip _; do
        [ "$kw" = dst ] || continue
        listed "$peers" 1 "$mac" 2 "$ip" || bridge fdb del "$mac" dev "$vx" dst "$ip" self
    done
    overlay_family -4 '10.244.1.0/32' '10.244.0.0 0e:76:c0:a8:46:0b
192.168.71.12 0e:76:c0:a8:47:0c
' '10.244.1.0/24' '192.168.71.12
'
    overlay_family -6 'fd00:10:244:1::/128' 'fe80::c76:c0ff:fea8:460b 0e:76:c0:a8:46:0b
fd00:71::12 0e:76:c0:a8:47:0c
' 'fd00:10:244:1::/64' 'fd00:71::12
'
fi
# The IPv4 gateways are addresses inside the pod ranges, the IPv6 ones link-local.
via_overlay="dev $vx onlink"
via_overlay6="dev $vx"
routes -4 10.244.0.0/16 '10.244.0.0/24 10.244.0.0
' "$via_overlay"
routes -6 fd00:10:244::/56 'fd00:10:244::/64 fe80::c76:c0ff:fea8:460b
' "$via_overlay6"
[ "$action" = sync ] || overlay_clear

# Masquerades, with $1 (iptables or ip6tables), the traffic from the pod network $2 that leaves
# it, multicast ($3) aside.
masquerade() {
    chain=PROVISIONER-POD-EGRESS
    if [ "$action" = sync ]; then
        # One restore replaces the chain's rules at once: no packet ever sees it half written.
        printf '*nat\n:%s - [0:0]\n-A %s -d %s -j RETURN\n-A %s ! -d %s -j MASQUERADE\nCOMMIT\n' \
            "$chain" "$chain" "$2" "$chain" "$3" | "$1-restore" -w 5 --noflush
        "$1" -w 5 -t nat -C POSTROUTING -s "$2" -j "$chain" 2>/dev/null ||
            "$1" -w 5 -t nat -A POSTROUTING -s "$2" -j "$chain"
    else
        "$1" -w 5 -t nat -D POSTROUTING -s "$2" -j "$chain" 2>/dev/null || true
        "$1" -w 5 -t nat -F "$chain" 2>/dev/null || true
        "$1" -w 5 -t nat -X "$chain" 2>/dev/null || true
    fi
}
masquerade iptables 10.244.0.0/16 224.0.0.0/4
masquerade ip6tables fd00:10:244::/56 ff00::/8
