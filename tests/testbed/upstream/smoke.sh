#!/usr/bin/env bash
# Starts the built etcd and kube-apiserver of a release on loopback ports, then uses the built
# kubectl and etcdctl against them: the programs do more than print their version.
#
#   tests/testbed/upstream/smoke.sh [VERSION]      (default: $KUBERNETES_VERSION or 1.37.2)
#
# Ports: SMOKE_ETCD_PORT (23791, peer port +10) and SMOKE_APISERVER_PORT (16443). Needs openssl.
# Everything runs as the current user in a temporary directory, removed at exit.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

version=$(normalize_version "${1:-${KUBERNETES_VERSION:-$DEFAULT_KUBERNETES_VERSION}}")
etcd_port=${SMOKE_ETCD_PORT:-23791}
api_port=${SMOKE_APISERVER_PORT:-16443}
manifest=$("$UPSTREAM_DIR/build.sh" --version "$version" --only kubernetes,etcd --print-manifest)
bin() { awk -F'\t' -v p="$1" '$1 == p { print $4 }' <<<"$manifest"; }

dir=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

etcd_url=http://127.0.0.1:$etcd_port
"$(bin etcd)" --data-dir "$dir/etcd" --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
  --listen-peer-urls "http://127.0.0.1:$((etcd_port + 10))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 10))" \
  --initial-cluster "default=http://127.0.0.1:$((etcd_port + 10))" >"$dir/etcd.log" 2>&1 &
pids+=($!)

openssl ecparam -name prime256v1 -genkey -noout -out "$dir/sa.key" 2>/dev/null
openssl ec -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
token=$(openssl rand -hex 16)
printf '%s,smoke,smoke,"system:masters"\n' "$token" >"$dir/tokens.csv"
"$(bin kube-apiserver)" --etcd-servers="$etcd_url" --secure-port="$api_port" --bind-address=127.0.0.1 \
  --cert-dir="$dir/certs" --token-auth-file="$dir/tokens.csv" --authorization-mode=RBAC \
  --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$dir/sa.pub" \
  --service-account-signing-key-file="$dir/sa.key" --service-cluster-ip-range=10.96.0.0/12 \
  >"$dir/apiserver.log" 2>&1 &
pids+=($!)

kubectl=("$(bin kubectl)" --server "https://127.0.0.1:$api_port" --insecure-skip-tls-verify --token "$token")
for _ in $(seq 1 90); do
  "${kubectl[@]}" get --raw /readyz >/dev/null 2>&1 && break
  sleep 2
done
"${kubectl[@]}" get --raw /readyz >/dev/null || { tail -20 "$dir/apiserver.log" >&2; die "kube-apiserver is not ready"; }
"${kubectl[@]}" version
"${kubectl[@]}" create configmap smoke --from-literal=hello=world >/dev/null
[[ $("${kubectl[@]}" get configmap smoke -o 'jsonpath={.data.hello}') == world ]] || die "configmap not read back"
"$(bin etcdctl)" --endpoints "$etcd_url" get /registry/configmaps/default/smoke --keys-only | grep -q smoke ||
  die "configmap not stored in etcd"
"$(bin etcdctl)" --endpoints "$etcd_url" endpoint status -w table
log "smoke test passed: etcd and kube-apiserver v$version serve, kubectl and etcdctl talk to them"
