#!/usr/bin/env bash
# demo.sh: the main job on one Linux machine. Builds the test bundle (the real Kubernetes, etcd,
# containerd, runc and CNI programs, built from their Go modules by tests/testbed/upstream/build.sh),
# starts sandbox machines named and addressed as in inventory.toml, applies inventory.toml to them
# and checks the result with the bundle's etcdctl and kubectl. Needs root, systemd-nspawn
# (systemd-container), debootstrap, and what build.sh needs (see tests/testbed/upstream/README.md).
#
# The sandbox machines need what the example inventory cannot know: the sandbox's SSH key and
# known_hosts, the bundle directory (which decides the etcd and containerd versions), that the
# hosts are containers ([nodes] containers), that the test subnet has no DNS server for the
# cluster DNS to forward to ([addons] dns_upstreams = []), and (on hosts that only offer cgroup
# v1) [kubelet] allow_cgroup_v1. The script writes target/demo/inventory.toml: the example with those
# keys set, nothing else changed (sandbox-inventory.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=sandbox-inventory.sh
source tests/testbed/sandbox-inventory.sh
# sudo resets PATH to its secure_path: find the toolchains where their installers put them.
for dir in "${CARGO_HOME:-$HOME/.cargo}/bin" /usr/local/go/bin; do
    [ -d "$dir" ] && PATH=$PATH:$dir
done
command -v cargo >/dev/null || { echo "error: cargo not found (install Rust, or run with PATH including it)" >&2; exit 1; }
command -v go >/dev/null || { echo "error: go not found; the test bundle's programs are built with Go 1.26" >&2; exit 1; }
repo=$PWD
work=$repo/target/demo
bundle=$repo/target/test-bundle
mkdir -p "$work"

echo "==> building provisioner"
cargo build --release -p provisioner
bin=$repo/target/release/provisioner

echo "==> assembling the test bundle in $bundle"
bash tests/testbed/make-test-bundle.sh "$bundle"
bundle_version=$(sed -n 's/^kubernetes_version = "\(.*\)"$/\1/p' "$bundle/manifest.toml")
inventory_version=$(sed -n 's/^kubernetes_version = "\(.*\)"$/\1/p' inventory.toml)
if [ "$bundle_version" != "$inventory_version" ]; then
    echo "error: inventory.toml asks for Kubernetes $inventory_version but the bundle has $bundle_version" >&2
    exit 1
fi
kubectl=$bundle/bin/kubectl

names=$(sed -n 's/^name = "\(.*\)"$/\1/p' inventory.toml | tail -n +2 | paste -sd, -)
echo "==> starting sandbox machines: $names"
"$bin" sandbox up --names "$names"
sandbox=/var/lib/provisioner-sandbox/run

sandbox_inventory "$bundle" "$sandbox" "$work/state" >"$work/inventory.toml"

echo "==> provisioner apply $work/inventory.toml"
"$bin" apply "$work/inventory.toml"

echo "==> checking with the bundle's etcdctl and kubectl"
pki=$work/state/pki
first=$(sed -n 's/^address = "\(.*\)"$/\1/p' inventory.toml | head -n1)
"$bundle/bin/etcdctl" --endpoints "https://$first:2379" --cacert "$pki/etcd/ca.crt" \
    --cert "$pki/etcd/healthcheck-client.crt" --key "$pki/etcd/healthcheck-client.key" endpoint health --cluster
"$bin" kubeconfig "$work/inventory.toml" > "$work/admin.kubeconfig"
chmod 600 "$work/admin.kubeconfig"
"$kubectl" --kubeconfig "$work/admin.kubeconfig" get --raw /readyz; echo
"$kubectl" --kubeconfig "$work/admin.kubeconfig" get nodes -o wide
"$kubectl" --kubeconfig "$work/admin.kubeconfig" -n kube-system get deployment,pods,service -l k8s-app=kube-dns -o wide
echo "The machines keep running: \`$bin sandbox status\`, \`$bin sandbox down\` to remove them."
