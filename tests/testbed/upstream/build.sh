#!/usr/bin/env bash
# Builds the real Kubernetes programs (and the node programs the test bed runs beside them)
# from their published Go modules, with upstream's build recipe, into a cache outside the
# checkout. A second run with the same recipe builds nothing and needs no network.
#
#   tests/testbed/upstream/build.sh [--version 1.37.2] [--only GROUPS] [--print-manifest]
#                                   [--all-static] [--regen-gomod]
#
#   --version V       Kubernetes release (default: $KUBERNETES_VERSION or 1.37.2). etcd, containerd,
#                     runc, the CNI plugins and CoreDNS follow versions.tsv for that minor.
#   --only GROUPS     comma-separated subset of: kubernetes,etcd,containerd,runc,cni,coredns
#   --print-manifest  print only the manifest on standard output, one line per program:
#                     program<TAB>group<TAB>version<TAB>path<TAB>source-module@version
#   --all-static      build the kubelet with CGO_ENABLED=0 too, so all Kubernetes programs come
#                     from one `go build` (upstream builds the kubelet with cgo up to 1.37)
#   --regen-gomod     rewrite the module's go.mod/go.sum from upstream's (the committed ones for
#                     the default version)
#
# Binaries: ${XDG_CACHE_HOME:-~/.cache}/provisioner/programs/<program>/<version>/<recipe-hash>/<program>
# (PROVISIONER_CACHE overrides ${XDG_CACHE_HOME:-~/.cache}/provisioner).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

version=${KUBERNETES_VERSION:-$DEFAULT_KUBERNETES_VERSION}
only=kubernetes,etcd,containerd,runc,cni,coredns
print_manifest=0 all_static=0 regen=0
while (($#)); do
  case $1 in
    --version) version=${2:?--version needs a value}; shift 2 ;;
    --version=*) version=${1#*=}; shift ;;
    --only) only=${2:?--only needs a value}; shift 2 ;;
    --only=*) only=${1#*=}; shift ;;
    --print-manifest) print_manifest=1; shift ;;
    --all-static) all_static=1; shift ;;
    --regen-gomod) regen=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
version=$(normalize_version "$version")
minor=$(minor_of "$version")
command -v go >/dev/null || die "go is not installed"

export GOTOOLCHAIN=local GOFLAGS=-mod=readonly
goos=$(go env GOOS) goarch=$(go env GOARCH) gover=$(go env GOVERSION)
manifest=()
built=()
started=$SECONDS

# A directory is only put in place once every binary in it is complete.
install_binary() { # SRC PROGRAM VERSION HASH -> prints the installed path
  local dst=$CACHE_ROOT/programs/$2/$3/$4
  mkdir -p "$dst.tmp.$$"
  mv "$1" "$dst.tmp.$$/$2"
  rm -rf "$dst" && mv "$dst.tmp.$$" "$dst"
  printf '%s\n' "$dst/$2"
}

cached_path() { printf '%s\n' "$CACHE_ROOT/programs/$1/$2/$3/$1"; }

# recipe_hash TEXT... : hash of the build recipe (toolchain, platform, flags, module files, mains)
recipe_hash() {
  local moddir=$1; shift
  {
    printf '%s\n' "$gover" "$goos/$goarch" "$@"
    cat "$moddir/go.mod" "$moddir/go.sum"
    find "$moddir" -name '*.go' -not -path '*/fieldlist/*' -print0 | sort -z | xargs -0 cat
  } | sha256_of_text
}

# ---------------------------------------------------------------- Kubernetes
build_kubernetes() {
  local moddir kdir statics=() cgo=() p ldflags tags hash_static hash_cgo date modinfo
  moddir=$(kubernetes_module_dir "$version")
  if ((regen)) && [[ $moddir == "$UPSTREAM_DIR/kubernetes" ]]; then
    write_kubernetes_gomod "$moddir" "$version"
    (cd "$moddir" && GOFLAGS=-mod=mod go mod tidy) || die "go mod tidy failed"
  fi
  grep -q "^require k8s.io/kubernetes v$version\$\|^[[:space:]]k8s.io/kubernetes v$version\$" "$moddir/go.mod" ||
    die "$moddir/go.mod does not require k8s.io/kubernetes v$version (run with --regen-gomod)"
  kdir=$(cd "$moddir" && go list -m -f '{{.Dir}}' k8s.io/kubernetes 2>/dev/null) || true
  if [[ -z $kdir || ! -d $kdir ]]; then
    (cd "$moddir" && go mod download k8s.io/kubernetes) || die "cannot download k8s.io/kubernetes@v$version"
    kdir=$(cd "$moddir" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
  fi
  modinfo=$(cd "$moddir" && go list -m -f '{{.Time}}' k8s.io/kubernetes)

  # Which programs upstream links statically (CGO_ENABLED=0) at this version: KUBE_STATIC_BINARIES
  # in the module's hack/lib/golang.sh. Everything else is built with cgo on linux/amd64.
  local upstream_static
  upstream_static=$(awk '/^readonly KUBE_STATIC_BINARIES=\(/ {f=1; next} f && /^\)/ {f=0} f {print $1}' \
    "$kdir/hack/lib/golang.sh")
  [[ -n $upstream_static ]] || die "cannot read KUBE_STATIC_BINARIES from $kdir/hack/lib/golang.sh"
  for p in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl kubelet; do
    if ((all_static)) || grep -qx "$p" <<<"$upstream_static"; then statics+=("$p"); else cgo+=("$p"); fi
  done

  # hack/lib/version.sh: the same values under component-base and client-go. The build date is
  # the release's commit time from the module proxy, so the recipe (and its hash) is stable.
  date=$(date -u -d "${modinfo% UTC}" +%Y-%m-%dT%H:%M:%SZ)
  ldflags="-s -w"
  local kv
  for kv in "gitVersion=v$version" "gitMajor=${version%%.*}" "gitMinor=$(cut -d. -f2 <<<"$version")" \
            "gitCommit=" "gitTreeState=archive" "buildDate=$date"; do
    ldflags+=" -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
  done
  tags=selinux,notest,grpcnotrace
  local recipe=(-trimpath "-ldflags=$ldflags" "-tags=$tags")
  hash_static=$(recipe_hash "$moddir" "${recipe[@]}" CGO_ENABLED=0)
  hash_cgo=$(recipe_hash "$moddir" "${recipe[@]}" CGO_ENABLED=1 "$(gcc --version 2>/dev/null | head -1)")

  local group cgo_enabled hash todo out pkgs t0
  for group in static cgo; do
    if [[ $group == static ]]; then set -- "${statics[@]}"; cgo_enabled=0; hash=$hash_static
    else set -- "${cgo[@]}"; cgo_enabled=1; hash=$hash_cgo; fi
    todo=() pkgs=()
    for p; do
      [[ -x $(cached_path "$p" "v$version" "$hash") ]] || { todo+=("$p"); pkgs+=("./cmd/$p"); }
    done
    if ((${#todo[@]})); then
      out=$(mktemp -d "$CACHE_ROOT/build.XXXXXX")
      log "building ${todo[*]} v$version (CGO_ENABLED=$cgo_enabled, tags $tags) in $moddir"
      t0=$SECONDS
      (cd "$moddir" && CGO_ENABLED=$cgo_enabled go build "${recipe[@]}" -o "$out/" "${pkgs[@]}") ||
        { rm -rf "$out"; die "go build failed"; }
      log "built ${todo[*]} in $((SECONDS - t0))s"
      for p in "${todo[@]}"; do install_binary "$out/$p" "$p" "v$version" "$hash" >/dev/null; built+=("$p"); done
      rm -rf "$out"
    fi
    for p; do
      manifest+=("$p	kubernetes	v$version	$(cached_path "$p" "v$version" "$hash")	k8s.io/kubernetes@v$version")
    done
  done
}

mkdir -p "$CACHE_ROOT/programs"
IFS=, read -ra groups <<<"$only"
for g in "${groups[@]}"; do
  case $g in
    kubernetes) build_kubernetes ;;
    etcd|containerd|runc|cni|coredns) build_component "$g" ;;
    *) die "unknown group: $g" ;;
  esac
done

if ((print_manifest)); then
  printf '%s\n' "${manifest[@]}"
else
  printf '%s\n' "${manifest[@]}" | awk -F'\t' '{ printf "%-26s %-10s %s\n", $1, $3, $4 }'
fi
log "build took $((SECONDS - started))s (built: ${built[*]:-nothing, all cached})"
