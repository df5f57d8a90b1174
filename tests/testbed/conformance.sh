#!/usr/bin/env bash
# conformance.sh [--focus REGEX] [--skip REGEX] [--procs N] [--dual-stack] [--keep]
#
# Upstream's conformance suite against the cluster `apply` builds, run as a certification run
# would, offline: sandbox machines in the demo topology (3 control-plane + 2 workers, as
# inventory.toml names them), `provisioner apply` from the test bundle, the images the specs run
# (conformance-images.sh) imported on every worker, then e2e.test (build.sh --only conformance)
# through ginkgo: every [Conformance] spec, nothing skipped, first the parallel ones on --procs
# processes (default 3), then the [Serial] ones on one, the cluster's DNS domain passed with
# --dns-domain. --focus and --skip replace the focus and add a skip, to rerun single specs.
# --dual-stack gives the machines IPv6 addresses and the cluster IPv6 pod and Service ranges
# too (for the [Feature:IPv6DualStack] specs).
#
# Progress every minute (specs done of total, failures so far, elapsed). Results in
# target/conformance/: junit_parallel01.xml and junit_serial01.xml (the JUnit reports of the two
# runs), e2e.log (ginkgo's whole output), and summary.txt, one line: N passed, N failed, N skipped. Exit 0 when nothing
# failed. The machines are removed at the end unless --keep.
#
# Needs root and what demo.sh needs; not while the end-to-end tests run (same subnet and names).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=sandbox-inventory.sh
source tests/testbed/sandbox-inventory.sh
for dir in "${CARGO_HOME:-$HOME/.cargo}/bin" /usr/local/go/bin; do
  [[ -d $dir ]] && PATH=$PATH:$dir
done

focus='\[Conformance\]' skip='' procs=3 keep=0 dual_stack=0
while (($#)); do
  case $1 in
    --focus) focus=${2:?--focus needs a value}; shift 2 ;;
    --skip) skip=${2:?--skip needs a value}; shift 2 ;;
    --procs) procs=${2:?--procs needs a value}; shift 2 ;;
    --keep) keep=1; shift ;;
    --dual-stack) dual_stack=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

repo=$PWD
work=$repo/target/conformance
bundle=$repo/target/test-bundle
sandbox=/var/lib/provisioner-sandbox/conformance
mkdir -p "$work"
rm -f "$work"/junit_*.xml "$work/e2e.log" "$work/summary.txt"

echo "==> building provisioner, the test bundle, the suite and its images"
cargo build --release -p provisioner
bin=$repo/target/release/provisioner
bash tests/testbed/make-test-bundle.sh "$bundle"
bash tests/testbed/upstream/build.sh --only conformance --print-manifest >"$work/programs.tsv"
e2e=$(awk -F'\t' '$1 == "e2e.test" { print $4 }' "$work/programs.tsv")
ginkgo=$(awk -F'\t' '$1 == "ginkgo" { print $4 }' "$work/programs.tsv")
bash tests/testbed/conformance-images.sh "$work/images"

names=$(sed -n 's/^name = "\(.*\)"$/\1/p' inventory.toml | tail -n +2 | paste -sd, -)
workers=$(awk '/^\[\[hosts\]\]/ { name = "" } /^name = / { gsub(/"/, "", $3); name = $3 }
               /^roles = .*worker/ { print name }' inventory.toml)
echo "==> starting sandbox machines: $names"
ipv6=()
((dual_stack)) && ipv6=(--ipv6)
"$bin" sandbox up --names "$names" --state-dir "$sandbox" "${ipv6[@]}"
cleanup() {
  [[ -n ${REGISTRY_PID:-} ]] && kill "$REGISTRY_PID" 2>/dev/null
  ((keep)) || "$bin" sandbox down --state-dir "$sandbox" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# The site's registry mirror for registry.k8s.io, as an air-gapped site runs one: the specs that
# pull with imagePullPolicy: Always resolve their image there. go-containerregistry's registry
# (tests/testbed/upstream/registry), read-only, over HTTPS with a certificate from a CA of its
# own, on the sandbox subnet's host address, serving the same archives the workers import.
echo "==> starting the registry mirror"
mirror=$(sed -n 's/^address = "\(.*\)\.[0-9]*"$/\1.1/p' inventory.toml | head -1)
(cd tests/testbed/upstream/registry &&
  CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN=local go build -trimpath -o "$work/registry" .)
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -days 7 -subj "/CN=conformance registry CA" \
  -keyout "$work/registry-ca.key" -out "$work/registry-ca.pem" 2>/dev/null
openssl req "${ec[@]}" -subj "/CN=conformance registry" \
  -keyout "$work/registry.key" -out "$work/registry.csr" 2>/dev/null
openssl x509 -req -days 7 -in "$work/registry.csr" -CA "$work/registry-ca.pem" -CAkey "$work/registry-ca.key" \
  -extfile <(echo "subjectAltName=IP:$mirror") -out "$work/registry.pem" 2>/dev/null
served=()
while IFS=$'\t' read -r ref _ file; do
  [[ $ref == registry.k8s.io/* ]] && served+=("${ref#registry.k8s.io/}=$work/images/$file")
done <"$work/images/images.tsv"
coproc REGISTRY { exec "$work/registry" --listen "$mirror:5443" --cert "$work/registry.pem" \
  --key "$work/registry.key" "${served[@]}" 2>"$work/registry.log"; }
read -r ready <&"${REGISTRY[0]}" || true
[[ $ready == ready ]] || { echo "the registry mirror did not start:" >&2; cat "$work/registry.log" >&2; exit 1; }
echo "    https://$mirror:5443: ${#served[@]} images"

sandbox_inventory "$bundle" "$sandbox" "$work/state" >"$work/inventory.toml"
if ((dual_stack)); then
  # The sandbox's IPv6 addresses read like the IPv4 ones: 10.88.0.11 is fd00:10:88:0::11.
  sed -i -e 's|^pod_cidr = "\(.*\)"$|pod_cidr = ["\1", "fd00:200::/56"]|' \
    -e 's|^service_cidr = "\(.*\)"$|service_cidr = ["\1", "fd00:32::/112"]|' \
    -e 's|^address = "\([0-9]*\)\.\([0-9]*\)\.\([0-9]*\)\.\([0-9]*\)"$|&\ninternal_ipv6 = "fd00:\1:\2:\3::\4"|' \
    "$work/inventory.toml"
fi
cat >>"$work/inventory.toml" <<EOF

[[registries]]
name = "registry.k8s.io"
mirrors = ["https://$mirror:5443"]
ca_file = "$work/registry-ca.pem"
EOF
rm -rf "$work/state"
echo "==> provisioner apply"
"$bin" apply "$work/inventory.toml"
"$bin" kubeconfig "$work/inventory.toml" >"$work/admin.kubeconfig"
chmod 600 "$work/admin.kubeconfig"
domain=$(sed -n 's/^cluster_domain = "\(.*\)"$/\1/p' "$work/inventory.toml")

echo "==> importing the suite's images on every worker"
ssh_to() { # HOST COMMAND
  local address
  address=$(awk -v n="$1" '/^name = / { gsub(/"/, "", $3); cur = $3 } /^address = / && cur == n { gsub(/"/, "", $3); print $3 }' \
    "$work/inventory.toml")
  ssh -i "$sandbox/id_ed25519" -o UserKnownHostsFile="$sandbox/known_hosts" -o StrictHostKeyChecking=yes \
    -o BatchMode=yes "root@$address" "$2"
}
ctr="ctr --address /run/containerd/containerd.sock -n k8s.io"
for w in $workers; do
  while IFS=$'\t' read -r ref _ file; do
    # Pinned, as provisioner pins the bundle's images: an air-gapped node could not pull them back.
    ssh_to "$w" "cat >/tmp/image.tar && $ctr images import /tmp/image.tar >/dev/null &&
                 $ctr images label '$ref' io.cri-containerd.pinned=pinned >/dev/null; rc=\$?; rm -f /tmp/image.tar; exit \$rc" \
      <"$work/images/$file" || { echo "importing $ref on $w failed" >&2; exit 1; }
  done <"$work/images/images.tsv"
  echo "    $w: $(wc -l <"$work/images/images.tsv") images"
done

# run NAME FOCUS SKIP PROCS: one ginkgo run, its output in e2e.log, a line of progress a minute.
run() {
  local name=$1 f=$2 s=$3 n=$4 total started=$SECONDS
  # --num-nodes: the schedulable nodes, which specs that need two or more check (-1 skips them).
  local args=(--kubeconfig="$work/admin.kubeconfig" --provider=skeleton --dns-domain="$domain"
              --num-nodes="$(wc -w <<<"$workers")"
              --report-dir="$work" --report-prefix="$name" --disable-log-dump)
  total=$("$e2e" --ginkgo.dry-run --ginkgo.no-color --ginkgo.focus="$f" ${s:+--ginkgo.skip="$s"} 2>/dev/null |
          sed -n 's/^Ran \([0-9]*\) of .*/\1/p')
  ((total > 0)) || { echo "$name: no spec matches the focus $f" >&2; return 1; }
  echo "==> $name: $total specs on $n process(es)"
  local offset
  offset=$(stat -c %s "$work/e2e.log" 2>/dev/null || echo 0)
  "$ginkgo" --procs="$n" --timeout=24h --no-color --focus="$f" ${s:+--skip="$s"} "$e2e" -- "${args[@]}" \
    >>"$work/e2e.log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 60
    # ginkgo prints a • for each spec that ends, followed by [FAILED] (or [PANICKED], [TIMEDOUT])
    # when it did not pass. e2e.log holds the earlier runs too: count from this run's start.
    local done failed
    done=$(tail -c +"$((offset + 1))" "$work/e2e.log" | grep -o '•' | wc -l)
    failed=$(tail -c +"$((offset + 1))" "$work/e2e.log" | grep -cE '• \[(FAILED|PANICKED|TIMEDOUT)\]' || true)
    echo "    $name: $done of $total done, $failed failed so far, $(( (SECONDS - started) / 60 )) min"
  done
  wait "$pid"
}

status=0
if [[ $focus == '\[Conformance\]' ]]; then
  run parallel "$focus" "\\[Serial\\]${skip:+|$skip}" "$procs" || status=1
  # The spec texts put [Conformance] before [Serial] in 1.37; either order is matched.
  run serial '\[Conformance\].*\[Serial\]|\[Serial\].*\[Conformance\]' "$skip" 1 || status=1
else
  run focused "$focus" "$skip" "$procs" || status=1
fi

python3 - "$work" "$focus" <<'PY' | tee "$work/summary.txt"
import glob, re, sys, xml.etree.ElementTree as ET
# Each run's report lists every spec of e2e.test, the other run's as skipped: a spec counts once,
# by its outcome where it ran. Only the specs the focus selects count.
rank = {"skipped": 0, "passed": 1, "failed": 2}
outcome = {}
focus = re.compile(sys.argv[2])
for f in glob.glob(sys.argv[1] + "/junit_*.xml"):
    for case in ET.parse(f).iter("testcase"):
        name = case.get("name", "")
        if not focus.search(name):
            continue
        if case.get("status") == "skipped" or case.find("skipped") is not None:
            this = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            this = "failed"
        else:
            this = "passed"
        if rank[this] > rank[outcome.get(name, "skipped")] or name not in outcome:
            outcome[name] = this
counts = {k: sum(1 for v in outcome.values() if v == k) for k in rank}
print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
PY
exit "$status"
