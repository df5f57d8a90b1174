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
pod_cidr=10.244.0.0/16
routes='10.244.0.0/24 10.244.0.0
'
vx=pods.vxlan
vx_chain=PROVISIONER-VXLAN
vx_table=4789

# The pods' packets must fit the interface that carries them.
if [ "$1" = sync ]; then
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

# The overlay's device, forwarding entries, neighbours, reply routes and firewall.
overlay_clear() {
    iptables -w 5 -D INPUT -p udp --dport 4789 -j "$vx_chain" 2>/dev/null || true
    iptables -w 5 -F "$vx_chain" 2>/dev/null || true
    iptables -w 5 -X "$vx_chain" 2>/dev/null || true
    while ip rule del pref "$vx_table" 2>/dev/null; do :; done
    ip route flush table "$vx_table" 2>/dev/null || true
    ip link del "$vx" 2>/dev/null || true
}
# Whether a line of the list $1 has $3 in field $2 (and $5 in field $4).
listed() {
    printf '%s' "$1" | awk -v f="$2" -v v="$3" -v g="${4:-0}" -v w="${5:-}" \
        '$f == v && (g == 0 || $g == w) { found = 1 } END { exit !found }'
}
# "MAC ADDRESS NEIGHBOUR" of every other host's device; the addresses of those without pods.
peers='0e:76:c0:a8:46:0b 192.168.70.11 10.244.0.0
0e:76:c0:a8:47:0c 192.168.71.12 192.168.71.12
'
podless='192.168.71.12
'
if [ "$1" = sync ]; then
    if ! ip -d -o link show "$vx" 2>/dev/null |
        grep -q "link/ether 0e:76:c0:a8:46:15 .*vxlan id 1 local 192.168.70.21 dev $underlay .*dstport 4789 nolearning"; then
        ip link del "$vx" 2>/dev/null || true
        ip link add "$vx" address 0e:76:c0:a8:46:15 type vxlan id 1 \
            local 192.168.70.21 dev "$underlay" dstport 4789 nolearning
    fi
    ip link set "$vx" mtu 8950 up
    address=10.244.1.0/32
    [ -z "$address" ] || ip addr replace "$address" dev "$vx"
    ip -4 -o addr show dev "$vx" | while read -r _ _ _ a _; do
        [ "$a" = "$address" ] || ip addr del "$a" dev "$vx"
    done

    # One restore replaces the chain's rules at once.
    {
        printf '*filter\n:%s - [0:0]\n' "$vx_chain"
        printf '%s' "$peers" | while read -r _ ip _; do
            printf -- '-A %s -s %s/32 -j RETURN\n' "$vx_chain" "$ip"
        done
        printf -- '-A %s -j DROP\nCOMMIT\n' "$vx_chain"
    } | iptables-restore -w 5 --noflush
    iptables -w 5 -C INPUT -p udp --dport 4789 -j "$vx_chain" 2>/dev/null ||
        iptables -w 5 -I INPUT -p udp --dport 4789 -j "$vx_chain"

    printf '%s' "$peers" | while read -r mac ip neighbour; do
        bridge fdb replace "$mac" dev "$vx" dst "$ip" self permanent
        ip neigh replace "$neighbour" lladdr "$mac" dev "$vx" nud permanent
    done
    bridge fdb show dev "$vx" | while read -r mac kw ip _; do
        [ "$kw" = dst ] || continue
        listed "$peers" 1 "$mac" 2 "$ip" || bridge fdb del "$mac" dev "$vx" dst "$ip" self
    done
    ip -4 neigh show dev "$vx" | while read -r neighbour _; do
        listed "$peers" 3 "$neighbour" || ip neigh del "$neighbour" dev "$vx"
    done

    printf '%s' "$podless" | while read -r ip; do
        ip route replace "$ip" dev "$vx" table "$vx_table"
    done
    ip route show table "$vx_table" 2>/dev/null | while read -r dst _; do
        listed "$podless" 1 "$dst" || ip route del "$dst" table "$vx_table"
    done
    rule="from 10.244.1.0/24 lookup $vx_table"
    if [ -z "$podless" ]; then
        while ip rule del pref "$vx_table" 2>/dev/null; do :; done
    elif [ "$(ip rule show pref "$vx_table" | sed 's/^[0-9]*:[[:space:]]*//')" != "$rule" ]; then
        while ip rule del pref "$vx_table" 2>/dev/null; do :; done
        ip rule add pref "$vx_table" $rule
    fi

    printf '%s' "$routes" | while read -r cidr via; do
        ip route replace "$cidr" via "$via" dev "$vx" onlink
    done
fi
ip -4 route show root "$pod_cidr" | while read -r dst kw gw _; do
    [ "$kw" = via ] || continue
    if [ "$1" = clear ] || ! printf '%s' "$routes" | grep -qx "$dst $gw"; then
        ip route del "$dst" via "$gw"
    fi
done
[ "$1" = sync ] || overlay_clear
chain=PROVISIONER-POD-EGRESS
if [ "$1" = sync ]; then
    # One restore replaces the chain's rules at once: no packet ever sees it half written.
    printf '*nat\n:%s - [0:0]\n-A %s -d %s -j RETURN\n-A %s ! -d 224.0.0.0/4 -j MASQUERADE\nCOMMIT\n' \
        "$chain" "$chain" "$pod_cidr" "$chain" | iptables-restore -w 5 --noflush
    iptables -w 5 -t nat -C POSTROUTING -s "$pod_cidr" -j "$chain" 2>/dev/null ||
        iptables -w 5 -t nat -A POSTROUTING -s "$pod_cidr" -j "$chain"
else
    iptables -w 5 -t nat -D POSTROUTING -s "$pod_cidr" -j "$chain" 2>/dev/null || true
    iptables -w 5 -t nat -F "$chain" 2>/dev/null || true
    iptables -w 5 -t nat -X "$chain" 2>/dev/null || true
fi
