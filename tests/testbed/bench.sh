#!/usr/bin/env bash
# bench.sh: apply timings on sandbox machines (figures, not a test). Prints the cold apply time for
# 3 control-plane + 2 workers with its split between transfer and starting/waiting, the no-op
# re-apply time, and the no-op time for 1, 5 and 10 hosts. Needs root, systemd-nspawn, debootstrap.
# The programs are the test bundle's: the real ones, built by tests/testbed/upstream/build.sh.
# PROVISIONER_TEST_BUNDLE names an existing bundle; without it target/test-bundle is made again
# (seconds when build.sh has the programs in its cache).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
work=$repo/target/bench
bundle=${PROVISIONER_TEST_BUNDLE:-}
sandbox=/var/lib/provisioner-sandbox/bench
mkdir -p "$work"

cargo build --release -p provisioner >&2
bin=$repo/target/release/provisioner
if [ -z "$bundle" ]; then
    bundle=$repo/target/test-bundle
    bash tests/testbed/make-test-bundle.sh "$bundle" >&2
fi
[ -f "$bundle/manifest.toml" ] || { echo "error: $bundle holds no manifest.toml" >&2; exit 1; }
kubernetes_version=$(sed -n 's/^kubernetes_version = "\(.*\)"$/\1/p' "$bundle/manifest.toml")

cgroup_v1=false
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || cgroup_v1=true

# cluster N: N machines; the first three (or the only one) run etcd and the control plane.
cluster() {
    local n=$1 names=() i
    for i in $(seq 1 "$n"); do names+=("h-$i"); done
    "$bin" sandbox down --state-dir "$sandbox" >/dev/null 2>&1 || true
    "$bin" sandbox up --names "$(IFS=,; echo "${names[*]}")" --state-dir "$sandbox" >/dev/null
    rm -rf "$work/state"
    {
        printf '[cluster]\nname = "bench"\nkubernetes_version = "%s"\nbundle = "%s"\nstate_dir = "%s"\n\n' "$kubernetes_version" "$bundle" "$work/state"
        printf '[kubelet]\nallow_cgroup_v1 = %s\n\n' "$cgroup_v1"
        # The machines are containers, on a test subnet without a DNS server.
        printf '[nodes]\ncontainers = true\n\n[addons]\ndns_upstreams = []\n\n'
        printf '[ssh]\nidentity_file = "%s/id_ed25519"\nknown_hosts = "%s/known_hosts"\n\n' "$sandbox" "$sandbox"
        for i in $(seq 1 "$n"); do
            if [ "$n" -eq 1 ]; then roles='"etcd", "control-plane", "worker"'
            elif [ "$i" -le 3 ]; then roles='"etcd", "control-plane"'
            else roles='"worker"'; fi
            printf '[[hosts]]\nname = "h-%s"\naddress = "10.88.0.%s"\nroles = [%s]\n\n' "$i" "$((10 + i))" "$roles"
        done
    } > "$work/inventory.toml"
}

# apply: prints "wall transfer wait" seconds.
apply() {
    local start end summary
    start=$(date +%s.%N)
    summary=$("$bin" apply "$work/inventory.toml" --output json | grep '"summary"')
    end=$(date +%s.%N)
    python3 -c 'import json,sys; s=json.loads(sys.argv[1])["summary"]; print("%.2f %.2f %.2f" % (float(sys.argv[3]) - float(sys.argv[2]), s["transfer_seconds"], s["wait_seconds"]))' "$summary" "$start" "$end"
}

cluster 5
read -r cold transfer wait <<<"$(apply)"
read -r noop _ _ <<<"$(apply)"
echo "cold apply, 3 control-plane + 2 workers: ${cold} s (transfer ${transfer} s, starting services and waiting ${wait} s)"
echo "no-op re-apply, 5 hosts:                 ${noop} s"
# status reads every host of every cluster at once: three inventories of these 5 hosts.
for c in a b c; do cp "$work/inventory.toml" "$work/status-$c.toml"; done
start=$(date +%s.%N)
"$bin" status "$work"/status-{a,b,c}.toml >/dev/null
end=$(date +%s.%N)
echo "status, 3 clusters of 5 hosts at once:   $(python3 -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$start" "$end") s"
for n in 1 10; do
    cluster "$n"
    apply >/dev/null
    read -r noop _ _ <<<"$(apply)"
    echo "no-op re-apply, $n host(s):               ${noop} s"
done
"$bin" sandbox down --state-dir "$sandbox" >/dev/null
