# Sourced by demo.sh and conformance.sh.
#
# sandbox_inventory BUNDLE SANDBOX_DIR STATE_DIR: prints inventory.toml with what it cannot know
# about sandbox machines set, nothing else changed: the bundle directory (which decides the etcd
# and containerd versions), the sandbox's SSH key and known_hosts, that the hosts are containers
# ([nodes] containers), that the test subnet has no DNS server for the cluster DNS to forward to
# ([addons] dns_upstreams = []), (on hosts that only offer cgroup v1) [kubelet] allow_cgroup_v1,
# and the state directory.
sandbox_inventory() {
    local bundle=$1 sandbox=$2 state=$3 cgroup_v1=false
    [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || cgroup_v1=true
    sed -e "s|^# bundle = .*|bundle = \"$bundle\"|" \
        -e "s|^identity_file = .*|identity_file = \"$sandbox/id_ed25519\"|" \
        -e "s|^known_hosts = .*|known_hosts = \"$sandbox/known_hosts\"|" \
        -e "s|^# allow_cgroup_v1 = .*|allow_cgroup_v1 = $cgroup_v1|" \
        -e "s|^# containers = .*|containers = true|" \
        -e "s|^# dns_upstreams = .*|dns_upstreams = []|" \
        -e "s|^state_dir = .*|state_dir = \"$state\"|" \
        inventory.toml
}
