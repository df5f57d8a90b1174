#!/usr/bin/env bash
# Builds the real Kubernetes programs (and the node programs the test bed runs beside them)
# from their published Go modules, with upstream's build recipe, into a cache outside the
# checkout. A second run with the same recipe builds nothing and needs no network.
#
#   tests/testbed/upstream/build.sh [--version 1.37.2] [--only GROUPS] [--print-manifest]
#                                   [--all-static] [--regen-gomod]
#
#   --version V       Kubernetes release (default: $KUBERNETES_VERSION or 1.37.2). etcd, containerd,
#                     runc, the CNI plugins and CoreDNS follow versions.tsv for that minor; caddy
#                     (with its layer4 app) and kube-router follow caddy/go.mod and
#                     kube-router/go.mod, whatever the minor.
#   --only GROUPS     comma-separated subset of: kubernetes,etcd,containerd,runc,cni,coredns,pause,caddy,
#                     kube-router
#                     (the default), or conformance: e2e.test, ginkgo, agnhost and sample-apiserver,
#                     built only on request
#   --print-manifest  print only the manifest on standard output, one line per program:
#                     program<TAB>group<TAB>version<TAB>path<TAB>source-module@version
#   --all-static      build the kubelet with CGO_ENABLED=0 too, so all Kubernetes programs come
#                     from one `go build` (upstream builds the kubelet with cgo up to 1.37)
#   --download-only   only prepare the modules and download their sources (for a later offline build)
#   --regen-gomod     rewrite the module's go.mod/go.sum from upstream's (the committed ones for
#                     the default version)
#
# Binaries: ${XDG_CACHE_HOME:-~/.cache}/provisioner/programs/<program>/<version>/<recipe-hash>/<program>
# (PROVISIONER_CACHE overrides ${XDG_CACHE_HOME:-~/.cache}/provisioner).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

version=${KUBERNETES_VERSION:-$DEFAULT_KUBERNETES_VERSION}
only=kubernetes,etcd,containerd,runc,cni,coredns,pause,caddy,kube-router
print_manifest=0 all_static=0 regen=0 download_only=0
while (($#)); do
  case $1 in
    --version) version=${2:?--version needs a value}; shift 2 ;;
    --version=*) version=${1#*=}; shift ;;
    --only) only=${2:?--only needs a value}; shift 2 ;;
    --only=*) only=${1#*=}; shift ;;
    --print-manifest) print_manifest=1; shift ;;
    --all-static) all_static=1; shift ;;
    --regen-gomod) regen=1; shift ;;
    --download-only) download_only=1; shift ;;
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

cc_version() { local v; v=$(gcc --version) || die "gcc is needed"; printf '%s\n' "${v%%$'\n'*}"; }

cached_path() { printf '%s\n' "$CACHE_ROOT/programs/$1/$2/$3/$1"; }

# recipe_hash MODDIR PACKAGES TEXT... : hash of the build recipe: toolchain, platform, flags, the
# mains' sources, and every module (path and version; go.sum pins their content) the packages link.
recipe_hash() {
  local moddir=$1 pkgs=$2; shift 2
  local deps
  # shellcheck disable=SC2086
  deps=$(cd "$moddir" && go list -deps -f '{{with .Module}}{{.Path}} {{.Version}}{{with .Replace}} => {{.Path}} {{.Version}}{{end}}{{end}}' $pkgs | sort -u) ||
    die "go list failed in $moddir"
  {
    printf '%s\n' "$gover" "$goos/$goarch" "$@" "$deps"
    # shellcheck disable=SC2086
    (cd "$moddir" && go list -f '{{range .GoFiles}}{{$.Dir}}/{{.}} {{end}}' $pkgs) | xargs cat
  } | sha256_of_text
}

# ---------------------------------------------------------------- Kubernetes
KUBERNETES_TAGS=selinux,notest,grpcnotrace

# kubernetes_recipe MODDIR -> go build's flags for the release, one per line: hack/lib/version.sh's
# values under component-base and client-go, and upstream's tags. The build date is the release's
# commit time from the module proxy, so the recipe (and its hash) is stable.
kubernetes_recipe() {
  local modinfo date ldflags="-s -w" kv
  modinfo=$(cd "$1" && go list -m -f '{{.Time}}' k8s.io/kubernetes) || die "cannot read k8s.io/kubernetes's time"
  date=$(date -u -d "${modinfo% UTC}" +%Y-%m-%dT%H:%M:%SZ)
  for kv in "gitVersion=v$version" "gitMajor=${version%%.*}" "gitMinor=$(cut -d. -f2 <<<"$version")" \
            "gitCommit=" "gitTreeState=archive" "buildDate=$date"; do
    ldflags+=" -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
  done
  printf '%s\n' -trimpath "-ldflags=$ldflags" "-tags=$KUBERNETES_TAGS"
}

build_kubernetes() {
  local moddir kdir statics=() cgo=() p hash_static hash_cgo tags=$KUBERNETES_TAGS
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

  # Which programs upstream links statically (CGO_ENABLED=0) at this version: KUBE_STATIC_BINARIES
  # in the module's hack/lib/golang.sh. Everything else is built with cgo on linux/amd64.
  local upstream_static
  upstream_static=$(awk '/^readonly KUBE_STATIC_BINARIES=\(/ {f=1; next} f && /^\)/ {f=0} f {print $1}' \
    "$kdir/hack/lib/golang.sh")
  [[ -n $upstream_static ]] || die "cannot read KUBE_STATIC_BINARIES from $kdir/hack/lib/golang.sh"
  for p in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl kubelet; do
    if ((all_static)) || grep -qx "$p" <<<"$upstream_static"; then statics+=("$p"); else cgo+=("$p"); fi
  done

  local recipe=() recipe_text
  recipe_text=$(kubernetes_recipe "$moddir")
  mapfile -t recipe <<<"$recipe_text"
  hash_static=$(recipe_hash "$moddir" "${statics[*]/#/./cmd/}" "${recipe[@]}" CGO_ENABLED=0)
  hash_cgo=
  if ((${#cgo[@]})); then
    hash_cgo=$(recipe_hash "$moddir" "${cgo[*]/#/./cmd/}" "${recipe[@]}" CGO_ENABLED=1 "$(cc_version)")
  fi

  local group cgo_enabled hash todo out pkgs t0
  for group in static cgo; do
    if [[ $group == static ]]; then set -- "${statics[@]}"; cgo_enabled=0; hash=$hash_static
    else set -- "${cgo[@]}"; cgo_enabled=1; hash=$hash_cgo; fi
    todo=() pkgs=()
    (($#)) || continue
    if ((download_only)); then
      (cd "$moddir" && go list -deps -tags "$tags" "${@/#/./cmd/}" >/dev/null) || die "cannot download the sources"
      continue
    fi
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

# ---------------------------------------------------------------- etcd, containerd, runc, CNI, CoreDNS
# Their programs are upstream's own main packages, built from the published modules (listed as
# `tool` dependencies of a small module per group, so go.sum pins everything they link).

# component_version GROUP -> version from versions.tsv for this Kubernetes minor
component_version() {
  local v
  v=$(awk -F'\t' -v m="$minor" -v c="$1" '$1 == m && $2 == c { print $3 }' "$UPSTREAM_DIR/versions.tsv")
  [[ -n $v ]] || die "versions.tsv has no $1 version for Kubernetes $minor"
  printf '%s\n' "$v"
}

# component_packages GROUP VERSION -> lines program=package@version
component_packages() {
  local v=v$2
  case $1 in
    etcd) printf '%s\n' "etcd=go.etcd.io/etcd/server/v3@$v" "etcdctl=go.etcd.io/etcd/etcdctl/v3@$v" \
                        "etcdutl=go.etcd.io/etcd/etcdutl/v3@$v" ;;
    containerd) printf '%s\n' "containerd=github.com/containerd/containerd/v2/cmd/containerd@$v" \
                              "ctr=github.com/containerd/containerd/v2/cmd/ctr@$v" \
                              "containerd-shim-runc-v2=github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$v" ;;
    runc) printf '%s\n' "runc=github.com/opencontainers/runc@$v" ;;
    cni) local p
         for p in main/bridge main/loopback ipam/host-local meta/portmap meta/bandwidth meta/firewall meta/tuning; do
           printf '%s=github.com/containernetworking/plugins/plugins/%s@%s\n' "${p#*/}" "$p" "$v"
         done ;;
    coredns) printf '%s\n' "coredns=github.com/coredns/coredns@$v" ;;
  esac
}

# component_module_dir GROUP VERSION -> module directory (committed for the default minor when it
# matches, generated under the cache otherwise)
component_module_dir() {
  local group=$1 cversion=$2 dir spec pkgs=() s
  mapfile -t spec < <(component_packages "$group" "$cversion")
  if [[ $minor == "$(minor_of "$DEFAULT_KUBERNETES_VERSION")" ]]; then
    dir=$UPSTREAM_DIR/$group
  else
    dir=$CACHE_ROOT/modules/$group/v$cversion
  fi
  local stale=0 helper
  if [[ $dir != "$UPSTREAM_DIR/$group" ]]; then
    for helper in "$UPSTREAM_DIR/$group"/*/; do
      [[ -d $helper ]] && ! diff -rq "$helper" "$dir/$(basename "$helper")" >/dev/null 2>&1 && stale=1
    done
  fi
  if ((regen || stale)) || [[ ! -f $dir/go.sum ]] || ! grep -qE " v$cversion( // indirect)?$" "$dir/go.mod"; then
    log "generating the Go module for $group v$cversion in $dir"
    mkdir -p "$dir" && rm -f "$dir/go.mod" "$dir/go.sum"
    printf '// Generated by tests/testbed/upstream/build.sh --regen-gomod: upstream'"'"'s %s v%s main packages.\n\nmodule provisioner.test/testbed/upstream/%s\n\ngo 1.26.0\n' \
      "$group" "$cversion" "$group" >"$dir/go.mod"
    for s in "${spec[@]}"; do pkgs+=("${s#*=}"); done
    # the fixture helpers (containerd/fieldlist, etcd/flagtypes) go along for gen-fixtures.sh
    if [[ $dir != "$UPSTREAM_DIR/$group" ]]; then
      for helper in "$UPSTREAM_DIR/$group"/*/; do
        [[ -d $helper ]] && rm -rf "${dir:?}/$(basename "$helper")" && cp -r "$helper" "$dir/"
      done
    fi
    (cd "$dir" && GOFLAGS=-mod=mod go get -tool "${pkgs[@]}" && GOFLAGS=-mod=mod go mod tidy) >&2 ||
      die "cannot generate the module for $group v$cversion"
  fi
  printf '%s\n' "$dir"
}

# build_set GROUP VERSION MODDIR CGO_ENABLED FLAGS -- PROGRAM=PACKAGE...
build_set() {
  local group=$1 cversion=$2 moddir=$3 cgo_enabled=$4; shift 4
  local flags=() progs=() p hash todo=() pkgs=() out name pkg src
  while [[ $1 != -- ]]; do flags+=("$1"); shift; done; shift
  progs=("$@")
  local pkglist=()
  for p in "${progs[@]}"; do pkg=${p#*=}; pkglist+=("${pkg%@*}"); done
  local cc=
  ((cgo_enabled)) && cc=$(cc_version)
  hash=$(recipe_hash "$moddir" "${pkglist[*]}" "${flags[@]}" "CGO_ENABLED=$cgo_enabled" "$cc")
  if ((download_only)); then
    for p in "${progs[@]}"; do pkg=${p#*=}; pkgs+=("${pkg%@*}"); done
    (cd "$moddir" && CGO_ENABLED=$cgo_enabled go list -deps "${flags[@]}" "${pkgs[@]}" >/dev/null) ||
      die "cannot download the sources of $group"
    return
  fi
  for p in "${progs[@]}"; do
    name=${p%%=*} pkg=${p#*=}; pkg=${pkg%@*}
    [[ -x $(cached_path "$name" "v$cversion" "$hash") ]] || { todo+=("$name"); pkgs+=("$pkg"); }
  done
  if ((${#todo[@]})); then
    out=$(mktemp -d "$CACHE_ROOT/build.XXXXXX")
    log "building ${todo[*]} v$cversion (CGO_ENABLED=$cgo_enabled ${flags[*]})"
    local t0=$SECONDS i
    (cd "$moddir" && CGO_ENABLED=$cgo_enabled go build "${flags[@]}" -o "$out/" "${pkgs[@]}") ||
      { rm -rf "$out"; die "go build failed for $group"; }
    log "built ${todo[*]} in $((SECONDS - t0))s"
    for i in "${!todo[@]}"; do
      # go build names a binary after the package's last path element, without a /vN suffix
      pkg=${pkgs[$i]}; [[ $pkg =~ /v[0-9]+$ ]] && pkg=${pkg%/v*}
      install_binary "$out/${pkg##*/}" "${todo[$i]}" "v$cversion" "$hash" >/dev/null
      built+=("${todo[$i]}")
    done
    rm -rf "$out"
  fi
  for p in "${progs[@]}"; do
    name=${p%%=*} pkg=${p#*=}; pkg=${pkg%@*}
    src=$(cd "$moddir" && go list -f '{{.Module.Path}}@{{.Module.Version}}' "$pkg")
    manifest+=("$name	$group	v$cversion	$(cached_path "$name" "v$cversion" "$hash")	$src")
  done
}

build_component() {
  local group=$1 cversion moddir spec
  cversion=$(component_version "$group")
  moddir=$(component_module_dir "$group" "$cversion")
  mapfile -t spec < <(component_packages "$group" "$cversion")
  case $group in
    etcd) # scripts/build_lib.sh of go.etcd.io/etcd/v3
      build_set etcd "$cversion" "$moddir" 0 -trimpath -installsuffix=cgo -- "${spec[@]}" ;;
    containerd) # Makefile and Makefile.linux of the containerd module (release, not STATIC)
      local pkg=github.com/containerd/containerd/v2
      local ld="-X $pkg/version.Version=v$cversion -X $pkg/version.Revision= -X $pkg/version.Package=$pkg"
      build_set containerd "$cversion" "$moddir" 1 -buildmode=pie -tags urfave_cli_no_docs "-ldflags=$ld -s -w" \
        -- "${spec[@]:0:2}"
      build_set containerd "$cversion" "$moddir" 0 -tags "urfave_cli_no_docs no_grpc" \
        "-ldflags=$ld -extldflags \"-static\" -s -w" -- "${spec[@]:2}" ;;
    runc) # runc's Makefile (`make runc`), without the libpathrs tag: Debian 12 has no libpathrs
      build_set runc "$cversion" "$moddir" 1 -trimpath -buildmode=pie -tags "seccomp urfave_cli_no_docs" \
        "-ldflags=-X main.gitCommit=" -- "${spec[@]}" ;;
    cni) # the plugins' release build: static, version in pkg/utils/buildversion
      build_set cni "$cversion" "$moddir" 0 \
        "-ldflags=-extldflags -static -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=v$cversion" \
        -- "${spec[@]}" ;;
    coredns) # CoreDNS's Makefile
      build_set coredns "$cversion" "$moddir" 0 "-ldflags=-s -w -X github.com/coredns/coredns/coremain.GitCommit=" \
        -- "${spec[@]}" ;;
  esac
}

# ---------------------------------------------------------------- pause
# build/pause/linux/pause.c of the k8s.io/kubernetes module, with build/pause/Makefile's CFLAGS.
build_pause() {
  local pversion moddir kdir hash out
  pversion=$(component_version pause)
  moddir=$(kubernetes_module_dir "$version")
  kdir=$(cd "$moddir" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
  [[ -f $kdir/build/pause/linux/pause.c ]] || die "no build/pause/linux/pause.c in $kdir"
  local cflags=(-Os -Wall -Werror -static "-DVERSION=v$pversion")
  hash=$({ cc_version; printf '%s\n' "${cflags[@]}"; cat "$kdir/build/pause/linux/pause.c"; } | sha256_of_text)
  ((download_only)) && return
  if [[ ! -x $(cached_path pause "v$pversion" "$hash") ]]; then
    out=$(mktemp -d "$CACHE_ROOT/build.XXXXXX")
    gcc "${cflags[@]}" -o "$out/pause" "$kdir/build/pause/linux/pause.c" || die "gcc failed for pause"
    strip "$out/pause"
    install_binary "$out/pause" pause "v$pversion" "$hash" >/dev/null
    rm -rf "$out"; built+=(pause)
  fi
  manifest+=("pause	pause	v$pversion	$(cached_path pause "v$pversion" "$hash")	k8s.io/kubernetes@v$version")
}

# ---------------------------------------------------------------- conformance
# The conformance suite as upstream builds it (hack/lib/golang.sh), from the same module and with
# the same recipe as the programs: e2e.test (`go test -c` of test/e2e), ginkgo at the version
# k8s.io/kubernetes pins, and agnhost (test/images/agnhost), the image most specs run. Only on
# request (--only conformance): tests/testbed/conformance.sh.
build_conformance() {
  local moddir recipe=() recipe_text hash out t0 p todo=() manifest_src
  # Only the committed module lists the suite's packages (kubernetes/tools.go).
  [[ $version == "$DEFAULT_KUBERNETES_VERSION" ]] ||
    die "the conformance suite is built for Kubernetes $DEFAULT_KUBERNETES_VERSION only, not $version"
  moddir=$(kubernetes_module_dir "$version")
  recipe_text=$(kubernetes_recipe "$moddir")
  mapfile -t recipe <<<"$recipe_text"
  local e2e=k8s.io/kubernetes/test/e2e agnhost=k8s.io/kubernetes/test/images/agnhost
  local ginkgo=github.com/onsi/ginkgo/v2/ginkgo
  hash=$(recipe_hash "$moddir" "$e2e $agnhost $ginkgo" "${recipe[@]}" CGO_ENABLED=0 "go test -c $e2e")
  if ((download_only)); then
    (cd "$moddir" && go list -deps -test -tags "$KUBERNETES_TAGS" "$e2e" "$agnhost" "$ginkgo" >/dev/null) ||
      die "cannot download the conformance suite's sources"
    return
  fi
  for p in e2e.test ginkgo agnhost; do
    [[ -x $(cached_path "$p" "v$version" "$hash") ]] || todo+=("$p")
  done
  if ((${#todo[@]})); then
    out=$(mktemp -d "$CACHE_ROOT/build.XXXXXX")
    log "building ${todo[*]} v$version (CGO_ENABLED=0, tags $KUBERNETES_TAGS) in $moddir"
    t0=$SECONDS
    (cd "$moddir" && export CGO_ENABLED=0 &&
      go build "${recipe[@]}" -o "$out/" "$ginkgo" "$agnhost" &&
      go test -c "${recipe[@]}" -o "$out/e2e.test" "$e2e") ||
      { rm -rf "$out"; die "building the conformance suite failed"; }
    log "built ${todo[*]} in $((SECONDS - t0))s"
    for p in "${todo[@]}"; do install_binary "$out/$p" "$p" "v$version" "$hash" >/dev/null; built+=("$p"); done
    rm -rf "$out"
  fi
  for p in e2e.test ginkgo agnhost; do
    manifest_src=k8s.io/kubernetes@v$version
    [[ $p == ginkgo ]] && manifest_src=$(cd "$moddir" && go list -f '{{.Module.Path}}@{{.Module.Version}}' "$ginkgo")
    manifest+=("$p	conformance	v$version	$(cached_path "$p" "v$version" "$hash")	$manifest_src")
  done
  # The Aggregator spec's sample-apiserver image: its own module, at the release of the image's
  # tag (test/images/sample-apiserver/VERSION), static as its Dockerfile's base needs.
  local sample
  sample=$(cd "$UPSTREAM_DIR/sample-apiserver" && go list -m -f '{{.Version}}' k8s.io/sample-apiserver) ||
    die "cannot read k8s.io/sample-apiserver's version"
  build_set conformance "1.${sample#v0.}" "$UPSTREAM_DIR/sample-apiserver" 0 -trimpath "-ldflags=-s -w" \
    -- "sample-apiserver=k8s.io/sample-apiserver"
}

# ---------------------------------------------------------------- caddy
# The node-local API load balancer: upstream's caddy command with the layer4 app (github.com/mholt/
# caddy-l4) compiled in, as xcaddy builds it (caddy/main.go), static as caddy's releases are.
build_caddy() {
  local moddir=$UPSTREAM_DIR/caddy cversion last
  cversion=$(cd "$moddir" && go list -m -f '{{.Version}}' github.com/caddyserver/caddy/v2) ||
    die "cannot read caddy's version from $moddir/go.mod"
  cversion=${cversion#v}
  build_set caddy "$cversion" "$moddir" 0 -trimpath "-ldflags=-s -w" -- "caddy=provisioner.test/testbed/upstream/caddy"
  # The program is caddy's own command: name its module, not the one wrapping it.
  last=${manifest[-1]}
  manifest[-1]="${last%$'\t'*}	github.com/caddyserver/caddy/v2@v$cversion"
}

# ---------------------------------------------------------------- kube-router
# The network policy engine: kube-router's own command (kube-router/go.mod lists it as a tool),
# with its Makefile's recipe (static, version and build date in pkg/version; the date is the
# release's commit time from the proxy, so the recipe is stable).
build_kube_router() {
  local moddir=$UPSTREAM_DIR/kube-router mod=github.com/cloudnativelabs/kube-router/v2 kversion when date
  kversion=$(cd "$moddir" && go list -m -f '{{.Version}}' "$mod") ||
    die "cannot read kube-router's version from $moddir/go.mod"
  when=$(cd "$moddir" && go list -m -f '{{.Time}}' "$mod") || die "cannot read $mod's time"
  date=$(date -u -d "${when% UTC}" +%Y-%m-%dT%H:%M:%S%z)
  build_set kube-router "${kversion#v}" "$moddir" 0 \
    "-ldflags=-X $mod/pkg/version.Version=$kversion -X $mod/pkg/version.BuildDate=$date" \
    -- "kube-router=$mod/cmd/kube-router"
}

mkdir -p "$CACHE_ROOT/programs"
IFS=, read -ra groups <<<"$only"
for g in "${groups[@]}"; do
  case $g in
    kubernetes) build_kubernetes ;;
    etcd|containerd|runc|cni|coredns) build_component "$g" ;;
    pause) build_pause ;;
    caddy) build_caddy ;;
    kube-router) build_kube_router ;;
    conformance) build_conformance ;;
    *) die "unknown group: $g" ;;
  esac
done

if ((download_only)); then
  :
elif ((print_manifest)); then
  printf '%s\n' "${manifest[@]}"
else
  printf '%s\n' "${manifest[@]}" | awk -F'\t' '{ printf "%-26s %-10s %s\n", $1, $3, $4 }'
fi
log "build took $((SECONDS - started))s (built: ${built[*]:-nothing, all cached})"
