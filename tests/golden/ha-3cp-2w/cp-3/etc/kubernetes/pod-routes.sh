# Managed by provisioner: changes are overwritten on the next apply.
# Routes to the other workers' pod ranges (the bridge CNI plugin only knows the local range).
# "sync" adds or replaces each of them, then deletes any other route into the pod network
# through a gateway (a worker that left the cluster); "clear" deletes them all. A change is
# applied by sync alone, so the routes that stay are never missing meanwhile.
set -eu
pod_cidr=10.200.0.0/16
routes='10.200.0.0/24 10.88.0.14
10.200.1.0/24 10.88.0.15
'
if [ "$1" = sync ]; then
    printf '%s' "$routes" | while read -r cidr via; do
        ip route replace "$cidr" via "$via"
    done
fi
ip -4 route show root "$pod_cidr" | while read -r dst kw gw _; do
    [ "$kw" = via ] || continue
    if [ "$1" = clear ] || ! printf '%s' "$routes" | grep -qx "$dst $gw"; then
        ip route del "$dst" via "$gw"
    fi
done
