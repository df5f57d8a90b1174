# Managed by provisioner: changes are overwritten on the next apply.
# Routes to the other workers' pod ranges (the bridge CNI plugin only knows the local range).
# "sync" adds or replaces each of them, then deletes any other route into the pod network
# through a gateway (a worker that left the cluster); "clear" deletes them all. A change is
# applied by sync alone, so the routes that stay are never missing meanwhile.
# On a worker, also the masquerading of its pods' traffic that leaves the pod network: traffic
# between pods keeps its source address, which NetworkPolicy rules match on (the CNI bridge
# plugin's own ipMasq would hide it behind the node's address).
set -eu
pod_cidr=10.200.0.0/16
routes=''
vx=pods.vxlan
vx_chain=PROVISIONER-VXLAN
vx_table=4789

# The pods' packets must fit the interface that carries them.
if [ "$1" = sync ]; then
    underlay=$(ip -4 -o addr show to 192.168.50.10 | { read -r _ dev _ && echo "$dev"; } || true)
    if [ -z "$underlay" ]; then
        echo "no interface holds this host's internal_ip 192.168.50.10" >&2
        exit 1
    fi
    # From ip, not /sys/class/net: a host that is a container may see another namespace there.
    have=$(ip -o link show dev "$underlay" | sed -n 's/.* mtu \([0-9]*\) .*/\1/p')
    if [ "$have" -lt 1500 ]; then
        echo "$underlay's MTU is $have, less than network.mtu 1500: set network.mtu = $have in the inventory" >&2
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
if [ "$1" = sync ]; then
    printf '%s' "$routes" | while read -r cidr via; do
        ip route replace "$cidr" via "$via" || {
            echo "cannot route $cidr via $via: hosts that are not on one L2 segment need network.mode = \"vxlan\"" >&2
            exit 1
        }
    done
fi
ip -4 route show root "$pod_cidr" | while read -r dst kw gw _; do
    [ "$kw" = via ] || continue
    if [ "$1" = clear ] || ! printf '%s' "$routes" | grep -qx "$dst $gw"; then
        ip route del "$dst" via "$gw"
    fi
done
# What vxlan mode left, once the routes above no longer go through it.
overlay_clear
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
