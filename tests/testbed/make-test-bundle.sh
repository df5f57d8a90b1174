#!/usr/bin/env bash
# make-test-bundle.sh OUT_DIR
#
# Assembles a provisioner *test* bundle (amd64) in OUT_DIR from the real upstream programs:
# Kubernetes, etcd, containerd, runc, the CNI plugins, CoreDNS and pause, all built from their Go
# modules by tests/testbed/upstream/build.sh (which keeps them in its cache; a release already
# built there takes seconds, one that is not takes 20 minutes or more). The only other download is
# Debian's busybox-static, for the test web image. Nothing is committed to git: binaries only ever
# land in OUT_DIR and in the caches.
#
# Re-running into the same OUT_DIR replaces it (it is built in a sibling temp dir, then swapped
# in). An existing non-empty OUT_DIR that has no manifest.toml is refused, never deleted.
#
# Layout of OUT_DIR:
#   manifest.toml          described below
#   bin/kube-apiserver bin/kube-controller-manager bin/kube-scheduler bin/kubelet bin/kube-proxy
#   bin/kubectl
#   bin/etcd bin/etcdctl bin/etcdutl
#   bin/containerd bin/containerd-shim-runc-v2 bin/ctr bin/runc
#   bin/caddy              with the layer4 app: the node-local API load balancer
#   bin/kube-router        the network policy engine
#   cni/bridge cni/host-local cni/loopback cni/portmap cni/bandwidth cni/firewall cni/tuning
#   images/pause.tar       OCI image archives (an OCI image layout in a tar, one gzip layer each):
#   images/coredns.tar       pause:   /pause (upstream's pause program), entrypoint ["/pause"],
#   images/web.tar                    user 65535:65535, as upstream's registry.k8s.io/pause
#                            coredns: /coredns, entrypoint ["/coredns"]. Unlike upstream's image
#                                     (user nonroot, 65532) no user is set, so it runs as root:
#                                     binding port 53 as nonroot needs NET_BIND_SERVICE, which
#                                     upstream grants with a file capability this archive has not.
#                            web:     Debian's static busybox at /bin/busybox and /www/index.html
#                                     ("provisioner test web server"), entrypoint
#                                     ["/bin/busybox", "httpd", "-f", "-v", "-p", "8080", "-h", "/www"]:
#                                     serves HTTP on port 8080
#                          Every tar member has mtime 0 and uid/gid 0, so the archives, and their
#                          sha256, are the same on every run.
#
# manifest.toml format (plain TOML, written by this script, read by provisioner / tests):
#
#   [bundle]
#   format = 1                        manifest format version (bump on incompatible change)
#   arch = "amd64"                    architecture of every binary in the bundle
#   kubernetes_version = "1.37.2"     Kubernetes version of the kubernetes component (no leading "v")
#   components = ["etcd", ...]        components that have at least one file in the bundle:
#                                     etcd, containerd, runc, cni-plugins, kubernetes, caddy,
#                                     kube-router
#
#   [[files]]                         one entry per file of the bundle (manifest.toml excluded)
#   name = "etcd"                     file name, unique within the bundle
#   component = "etcd"                one of: etcd, containerd, runc, cni-plugins, kubernetes,
#                                     caddy, kube-router (kubectl is part of kubernetes)
#   version = "3.7.0"                 upstream version of the program (no leading "v")
#   path = "bin/etcd"                 path relative to OUT_DIR ("bin/..." or "cni/...")
#   sha256 = "hex"                    sha256 of the file's content
#   size = 23568384                   size in bytes
#   mode = "0755"                     octal permission bits to install it with
#   source = "go.etcd.io/etcd/server/v3@v3.7.0"
#                                     the Go module (at its version) the program was built from
#
#   [[images]]                        one entry per OCI image archive, imported into containerd
#   name = "pause"                    "pause": the sandbox image containerd is pointed at;
#                                     "coredns", "web": images for workloads
#   reference = "localhost/provisioner-test/pause:3.10.2"
#                                     image name containerd lists it under; the tag is the
#                                     upstream version (no leading "v") of the program inside
#                                     (for web: of busybox)
#   digest = "sha256:..."             digest of the image manifest (as `ctr images ls` shows it)
#   path, sha256, size                as for files
#
#   [[sources]]                       informational provenance: one entry per Go module a program
#                                     came from, and one for the busybox-static package
#   component = "etcd"                component of the files built from it; "coredns-image" /
#                                     "web-image" for a source used only by that image
#   kind = "go-module" | "deb"
#   package = "go.etcd.io/etcd/server/v3"    Go module path / Debian package name
#   version = "v3.7.0"                exact module version (with "v") / exact package version
#   programs = ["etcd"]               (go-module) the programs built from it, pause included
#   file = "busybox-static_..._amd64.deb"    (deb) artifact file name, as kept in the cache
#   sha256 = "hex"                    (deb) sha256 of that artifact
#
# Environment (all optional):
#   KUBERNETES_VERSION  Kubernetes release to bundle, e.g. 1.36.3 (a leading "v" is accepted).
#                       Default: DEFAULT_KUBERNETES in src/inventory/version.rs. The minor must be
#                       listed in tests/testbed/upstream/versions.tsv, which picks the versions of
#                       etcd, containerd, runc, the CNI plugins, CoreDNS and pause.
#   PROVISIONER_CACHE   passed on to build.sh: where it keeps the binaries it builds
#                       (default ${XDG_CACHE_HOME:-$HOME/.cache}/provisioner).
#   BUNDLE_CACHE        download cache for the busybox-static .deb; default
#                       ${XDG_CACHE_HOME:-$HOME/.cache}/provisioner/test-bundle.
#   BUNDLE_REFRESH=1    ignore the cached .deb and ask apt for the current candidate again.
#   BUSYBOX_DEB_VERSION exact Debian version of busybox-static to fetch (apt `pkg=version`).
#                       Unset: a cached .deb is reused if present, else apt's candidate is
#                       downloaded. The version obtained is recorded in the manifest.
#
# Needs: bash, python3, apt-get + dpkg-deb (Debian), coreutils, and what build.sh needs (Go,
# gcc, libc6-dev, libseccomp-dev, libbtrfs-dev, pkg-config; see tests/testbed/upstream/README.md).

set -euo pipefail
shopt -s nullglob

# ---- defaults -------------------------------------------------------------------------------
ARCH="amd64"
BIN_PROGRAMS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
              etcd etcdctl etcdutl containerd containerd-shim-runc-v2 ctr runc caddy kube-router)
CNI_PROGRAMS=(bridge host-local loopback portmap bandwidth firewall tuning)
IMAGE_PROGRAMS=(pause coredns)
COMPONENT_ORDER=(etcd containerd runc cni-plugins kubernetes caddy kube-router)
WEB_INDEX_LINE="provisioner test web server"

BUNDLE_CACHE="${BUNDLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/provisioner/test-bundle}"
BUNDLE_REFRESH="${BUNDLE_REFRESH:-0}"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
UPSTREAM_DIR="$SCRIPT_DIR/upstream"

# ---- helpers --------------------------------------------------------------------------------
log() { printf '[make-test-bundle] %s\n' "$*" >&2; }
die() { printf '[make-test-bundle] ERROR: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "required command '$1' not found${2:+ ($2)}"; }
sha256_of() { sha256sum "$1" | awk '{print $1}'; }

# Upstream part of a Debian version: drop epoch, Debian revision and +ds/~ds repack suffix.
upstream_version() {
    local v="$1"
    v="${v#*:}"                                   # epoch
    [[ "$v" == *-* ]] && v="${v%-*}"              # Debian revision
    v="$(sed -E 's/[~+]ds[0-9]*.*$//' <<<"$v")"    # repack suffix
    printf '%s' "$v"
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

# ---- arguments and output dir ---------------------------------------------------------------
if [[ $# -eq 1 && ( "$1" == -h || "$1" == --help ) ]]; then
    usage
    exit 0
fi
if [[ $# -ne 1 ]]; then
    usage >&2
    exit 2
fi
OUT_ARG="$1"
[[ -n "$OUT_ARG" ]] || die "OUT_DIR must not be empty"
case "$(basename "$OUT_ARG")" in
    . | ..) die "name OUT_DIR by its own name, not '$OUT_ARG'" ;;
esac

need python3
need sha256sum
need dpkg-deb "Debian's dpkg"
need apt-get "Debian's apt"
need apt-cache "Debian's apt"
need go "build.sh builds the programs with Go; see tests/testbed/upstream/README.md"

host_arch="$(dpkg --print-architecture)"
[[ "$host_arch" == "$ARCH" ]] || die "this script bundles $ARCH programs built on this host; host arch is '$host_arch'"

# Kubernetes release: the environment, else the inventory's default.
if [[ -n "${KUBERNETES_VERSION-}" ]]; then
    KV="${KUBERNETES_VERSION#v}"
else
    KV="$(sed -nE 's/^pub const DEFAULT_KUBERNETES: &str = "v?([^"]+)";.*/\1/p' "$REPO_ROOT/src/inventory/version.rs")"
    [[ -n "$KV" ]] || die "cannot read DEFAULT_KUBERNETES from src/inventory/version.rs; set KUBERNETES_VERSION"
fi
[[ "$KV" =~ ^1\.[0-9]+\.[0-9]+$ ]] || die "'$KV' is not a Kubernetes release version (e.g. 1.37.2)"
KMINOR="${KV%.*}"
# Checked here because build.sh finds out only after building Kubernetes.
awk -F'\t' -v m="$KMINOR" '$1 == m { found = 1 } END { exit !found }' "$UPSTREAM_DIR/versions.tsv" \
    || die "Kubernetes $KMINOR is not supported: tests/testbed/upstream/versions.tsv lists no versions for it (has: $(awk -F'\t' '!/^#/ && NF { print $1 }' "$UPSTREAM_DIR/versions.tsv" | sort -u | paste -sd' ' -))"

mkdir -p "$(dirname "$OUT_ARG")"
OUT_PARENT="$(cd "$(dirname "$OUT_ARG")" && pwd)"
OUT_DIR="$OUT_PARENT/$(basename "$OUT_ARG")"
case "$OUT_DIR" in
    / | "$HOME" | "$REPO_ROOT" | "$REPO_ROOT/tests" | "$SCRIPT_DIR") die "refusing to use '$OUT_DIR' as OUT_DIR" ;;
esac
if [[ -e "$OUT_DIR" ]]; then
    [[ -d "$OUT_DIR" ]] || die "OUT_DIR '$OUT_DIR' exists and is not a directory"
    if [[ -n "$(ls -A "$OUT_DIR")" && ! -f "$OUT_DIR/manifest.toml" ]]; then
        die "OUT_DIR '$OUT_DIR' is not empty and holds no manifest.toml (not a previous bundle); refusing to replace it"
    fi
fi

start=$SECONDS
mkdir -p "$BUNDLE_CACHE/deb"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/make-test-bundle.XXXXXX")"
STAGE="$(mktemp -d "$OUT_PARENT/.$(basename "$OUT_DIR").new.XXXXXX")"
cleanup() { rm -rf "$WORK" "$STAGE"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$STAGE/bin" "$STAGE/cni" "$STAGE/images"

FILES_TOML="$WORK/files.toml"
IMAGES_TOML="$WORK/images.toml"
SOURCES_TOML="$WORK/sources.toml"
: >"$FILES_TOML"
: >"$IMAGES_TOML"
: >"$SOURCES_TOML"

# ---- the programs, from build.sh ------------------------------------------------------------
declare -A PROG_PATH=() PROG_VERSION=() PROG_GROUP=() PROG_SOURCE=() SOURCE_PROGRAMS=()
SOURCE_ORDER=()

# component_of GROUP: the bundle component of a build.sh group (empty: image-only programs).
component_of() {
    case "$1" in
        kubernetes | etcd | containerd | runc | caddy | kube-router) printf '%s' "$1" ;;
        cni) printf 'cni-plugins' ;;
        *) printf '' ;;
    esac
}

build_programs() {
    local t0=$SECONDS out prog group version path src
    log "Kubernetes $KV: asking tests/testbed/upstream/build.sh for the programs (builds what its cache lacks)"
    out="$(bash "$UPSTREAM_DIR/build.sh" --version "$KV" --print-manifest)" \
        || die "tests/testbed/upstream/build.sh --version $KV failed"
    while IFS=$'\t' read -r prog group version path src; do
        [[ -n "$prog" ]] || continue
        [[ -n "$src" && "$src" == *@v* ]] || die "build.sh printed an unexpected manifest line for '$prog'"
        [[ -x "$path" ]] || die "build.sh names '$path' for $prog, which is not an executable file"
        PROG_PATH[$prog]="$path"
        PROG_VERSION[$prog]="${version#v}"
        PROG_GROUP[$prog]="$group"
        PROG_SOURCE[$prog]="$src"
        if [[ -z "${SOURCE_PROGRAMS[$src]+x}" ]]; then
            SOURCE_ORDER+=("$src")
            SOURCE_PROGRAMS[$src]="$prog"
        else
            SOURCE_PROGRAMS[$src]+=" $prog"
        fi
    done <<<"$out"
    local p missing=()
    for p in "${BIN_PROGRAMS[@]}" "${CNI_PROGRAMS[@]}" "${IMAGE_PROGRAMS[@]}"; do
        [[ -n "${PROG_PATH[$p]+x}" ]] || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] || die "build.sh did not provide: ${missing[*]}"
    [[ "${PROG_VERSION[kube-apiserver]}" == "$KV" ]] \
        || die "build.sh gave kube-apiserver ${PROG_VERSION[kube-apiserver]}, not $KV"
    log "programs ready ($((SECONDS - t0))s)"
}

# add_file PROGRAM RELDIR: copy a program into the stage and record its [[files]] entry.
add_file() {
    local prog="$1" rel="$2/$1" component sum size
    component="$(component_of "${PROG_GROUP[$prog]}")"
    [[ -n "$component" ]] || die "internal error: $prog (group ${PROG_GROUP[$prog]}) has no bundle component"
    install -m 0755 "${PROG_PATH[$prog]}" "$STAGE/$rel"
    sum="$(sha256_of "$STAGE/$rel")"
    size="$(stat -c %s "$STAGE/$rel")"
    cat >>"$FILES_TOML" <<EOF

[[files]]
name = "$prog"
component = "$component"
version = "${PROG_VERSION[$prog]}"
path = "$rel"
sha256 = "$sum"
size = $size
mode = "0755"
source = "${PROG_SOURCE[$prog]}"
EOF
}

add_files() {
    local c p
    # in component order, so related files sit together in the manifest
    for c in "${COMPONENT_ORDER[@]}"; do
        for p in "${BIN_PROGRAMS[@]}"; do
            [[ "$(component_of "${PROG_GROUP[$p]}")" == "$c" ]] && add_file "$p" bin
        done
        for p in "${CNI_PROGRAMS[@]}"; do
            [[ "$(component_of "${PROG_GROUP[$p]}")" == "$c" ]] && add_file "$p" cni
        done
    done
    return 0
}

add_go_sources() {
    local src prog component programs first
    for src in "${SOURCE_ORDER[@]}"; do
        component="" programs=""
        for prog in ${SOURCE_PROGRAMS[$src]}; do
            [[ -n "$component" ]] || component="$(component_of "${PROG_GROUP[$prog]}")"
            programs+="${programs:+, }\"$prog\""
        done
        if [[ -z "$component" ]]; then
            first="${SOURCE_PROGRAMS[$src]%% *}"
            component="$first-image"
        fi
        cat >>"$SOURCES_TOML" <<EOF

[[sources]]
component = "$component"
kind = "go-module"
package = "${src%@*}"
version = "${src##*@}"
programs = [$programs]
EOF
    done
}

# ---- busybox-static from Debian (for the web image) -----------------------------------------
APT_UPDATED=0
# apt-cache show exits 0 for an unknown pkg=version, so look for a stanza instead.
apt_has() { [[ "$(apt-cache show "$1" 2>/dev/null || true)" == *"Package: "* ]]; }
ensure_apt_knows() { # PKG [VERSION]
    local spec="$1${2:+=$2}"
    if ! apt_has "$spec"; then
        if [[ $APT_UPDATED -eq 0 && $(id -u) -eq 0 ]]; then
            log "apt does not know '$spec'; running apt-get update"
            apt-get update -qq >&2 || die "apt-get update failed"
            APT_UPDATED=1
        fi
        apt_has "$spec" \
            || die "apt cannot find '$spec' (run 'apt-get update' as root; check the pinned version with 'apt-cache policy $1')"
    fi
}

# newest cached .deb of PKG (optionally exactly VERSION), or empty
cached_deb() {
    local pkg="$1" want="${2-}" best="" bestv="" f v
    for f in "$BUNDLE_CACHE/deb/${pkg}_"*"_${ARCH}.deb"; do
        v="$(dpkg-deb -f "$f" Version 2>/dev/null)" || continue
        [[ "$(dpkg-deb -f "$f" Package)" == "$pkg" ]] || continue
        if [[ -n "$want" ]]; then
            [[ "$v" == "$want" ]] && { best="$f"; break; }
        elif [[ -z "$best" ]] || dpkg --compare-versions "$v" gt "$bestv"; then
            best="$f"; bestv="$v"
        fi
    done
    printf '%s' "$best"
}

# fetch_deb PKG [VERSION]: sets DEB to the path of the verified .deb in the cache.
DEB=""
fetch_deb() {
    local pkg="$1" want="${2-}" deb=""
    if [[ -n "$want" || "$BUNDLE_REFRESH" != 1 ]]; then
        deb="$(cached_deb "$pkg" "$want")"
    fi
    if [[ -z "$deb" ]]; then
        ensure_apt_knows "$pkg" "$want"
        log "downloading Debian package ${pkg}${want:+=$want} with apt-get download"
        local dl="$WORK/apt-dl-$pkg"
        mkdir -p "$dl"
        # apt warns when its _apt sandbox user cannot write the directory (e.g. in root's home); harmless.
        (cd "$dl" && apt-get download -q "${pkg}${want:+=$want}" 2> >(grep -v 'Download is performed unsandboxed' >&2)) >&2 \
            || die "apt-get download ${pkg}${want:+=$want} failed"
        local got=("$dl"/*.deb)
        [[ ${#got[@]} -eq 1 ]] || die "expected one .deb for $pkg, got ${#got[@]}"
        mv "${got[0]}" "$BUNDLE_CACHE/deb/"
        deb="$BUNDLE_CACHE/deb/$(basename "${got[0]}")"
    fi
    dpkg-deb --info "$deb" >/dev/null 2>&1 || die "cached package '$deb' is corrupt; delete it and re-run"
    # Cross-check against apt's (signed) index when it still lists this version.
    local v sum idx
    v="$(dpkg-deb -f "$deb" Version)"
    sum="$(sha256_of "$deb")"
    idx="$(apt-cache show "$pkg=$v" 2>/dev/null | awk '/^SHA256:/ {print $2}' | sort -u || true)"
    if [[ -n "$idx" ]]; then
        grep -qx "$sum" <<<"$idx" || die "$(basename "$deb"): sha256 $sum is not the one apt's index lists for $pkg=$v"
    else
        log "note: apt's index no longer lists $pkg=$v; using the cached file unverified against it"
    fi
    DEB="$deb"
}

# ---- images ---------------------------------------------------------------------------------
# make_image NAME REFERENCE CONFIG_JSON IMAGE_PATH=SOURCE_FILE...
# Writes images/NAME.tar (oci-image.py: one layer holding the given files, CONFIG_JSON as the
# image config's "config", the same bytes on every run) and records its [[images]] entry.
make_image() {
    local name="$1" ref="$2" config="$3" digest
    shift 3
    local out="$STAGE/images/$name.tar"
    local files=() f
    for f; do files+=(--file "$f"); done
    digest="$(python3 "$SCRIPT_DIR/oci-image.py" "$out" "$ref" "$config" "${files[@]}")" ||
        die "building the $name image failed"
    chmod 0644 "$out"
    cat >>"$IMAGES_TOML" <<EOF

[[images]]
name = "$name"
reference = "$ref"
digest = "$digest"
path = "images/$name.tar"
sha256 = "$(sha256_of "$out")"
size = $(stat -c %s "$out")
EOF
    log "image $name: $ref ($digest)"
}

make_images() {
    local v ref deb bbv
    # pause: upstream's build/pause/Dockerfile (USER 65535:65535, ENTRYPOINT ["/pause"]).
    v="${PROG_VERSION[pause]}"
    make_image pause "localhost/provisioner-test/pause:$v" \
        '{"Entrypoint": ["/pause"], "User": "65535:65535"}' \
        "/pause=${PROG_PATH[pause]}"

    # coredns: as upstream's Dockerfile, but running as root (see the header).
    v="${PROG_VERSION[coredns]}"
    make_image coredns "localhost/provisioner-test/coredns:$v" \
        '{"Entrypoint": ["/coredns"], "ExposedPorts": {"53/tcp": {}, "53/udp": {}}, "WorkingDir": "/"}' \
        "/coredns=${PROG_PATH[coredns]}"

    # web: busybox httpd on port 8080.
    fetch_deb busybox-static "${BUSYBOX_DEB_VERSION-}"; deb="$DEB"
    bbv="$(dpkg-deb -f "$deb" Version)"
    mkdir -p "$WORK/busybox"
    dpkg-deb -x "$deb" "$WORK/busybox"
    [[ -x "$WORK/busybox/bin/busybox" ]] || die "busybox-static $bbv has no bin/busybox"
    grep -qx httpd <<<"$("$WORK/busybox/bin/busybox" --list)" || die "busybox-static $bbv has no httpd applet"
    printf '%s\n' "$WEB_INDEX_LINE" >"$WORK/index.html"
    chmod 0644 "$WORK/index.html"
    ref="localhost/provisioner-test/web:$(upstream_version "$bbv")"
    make_image web "$ref" \
        '{"Entrypoint": ["/bin/busybox", "httpd", "-f", "-v", "-p", "8080", "-h", "/www"], "ExposedPorts": {"8080/tcp": {}}}' \
        "/bin/busybox=$WORK/busybox/bin/busybox" "/www/index.html=$WORK/index.html"
    cat >>"$SOURCES_TOML" <<EOF

[[sources]]
component = "web-image"
kind = "deb"
package = "busybox-static"
version = "$bbv"
file = "$(basename "$deb")"
sha256 = "$(sha256_of "$deb")"
EOF
}

# ---- main -----------------------------------------------------------------------------------
build_programs
add_files
add_go_sources
make_images

components_toml="$(printf '"%s", ' "${COMPONENT_ORDER[@]}")"
{
    printf '# provisioner test bundle, generated by tests/testbed/make-test-bundle.sh\n'
    printf '# (field meanings: see the header of that script). Do not edit by hand.\n\n'
    printf '[bundle]\nformat = 1\narch = "%s"\nkubernetes_version = "%s"\ncomponents = [%s]\n' \
        "$ARCH" "$KV" "${components_toml%, }"
    cat "$FILES_TOML" "$IMAGES_TOML" "$SOURCES_TOML"
} >"$STAGE/manifest.toml"

# Self-check: every file on disk is in the manifest and vice versa, with the listed sha256
# (cheap; catches script bugs).
listed="$(sed -nE 's/^path = "(.*)"$/\1/p' "$STAGE/manifest.toml" | sort)"
present="$(cd "$STAGE" && find . -type f ! -name manifest.toml -printf '%P\n' | sort)"
[[ "$listed" == "$present" ]] || die "internal error: manifest and staged files differ"
python3 - "$STAGE" <<'PY' || die "internal error: a staged file does not match its manifest entry"
import hashlib, os, sys, tomllib
root = sys.argv[1]
with open(os.path.join(root, "manifest.toml"), "rb") as f:
    m = tomllib.load(f)
for e in m["files"] + m["images"]:
    with open(os.path.join(root, e["path"]), "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != e["sha256"] or len(data) != e["size"]:
        sys.exit(f"{e['path']}: sha256 or size differs from the manifest")
PY

chmod 0755 "$STAGE"
rm -rf "$OUT_DIR"
mv "$STAGE" "$OUT_DIR"
log "bundle ready in $OUT_DIR: Kubernetes $KV ($(grep -c '^\[\[files\]\]' "$OUT_DIR/manifest.toml") files:" \
    "etcd ${PROG_VERSION[etcd]}, containerd ${PROG_VERSION[containerd]}, runc ${PROG_VERSION[runc]}," \
    "CNI plugins ${PROG_VERSION[bridge]}; images pause ${PROG_VERSION[pause]}, coredns ${PROG_VERSION[coredns]}," \
    "web), $(du -sh "$OUT_DIR" | cut -f1), took $((SECONDS - start))s"
