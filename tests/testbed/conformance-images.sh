#!/usr/bin/env bash
# conformance-images.sh OUT_DIR
#
# Builds, offline from upstream's sources, the container images the [Conformance] specs of the
# cluster's e2e.test run, each under the exact reference e2e.test expects (read from its
# --list-images), as OCI archives in OUT_DIR (NAME.tar, and images.tsv: reference, digest, file).
# Nothing is pulled from a registry: the programs come from the Go modules build.sh builds (agnhost,
# etcd, pause, CoreDNS, sample-apiserver, nnp), the rest from Debian packages, verified by apt.
#
#   agnhost           (both tags) Debian 12 packages for what upstream's alpine image installs (dig,
#                     curl, nc, ip, iperf, bash, ipcs, socat) and what alpine's base has (a shell,
#                     coreutils, getent, hostname, awk), CoreDNS, and agnhost
#                     with its porter certificate, /uploads, agnhost-2 and the user and group the
#                     SupplementalGroups spec expects (1000 in 50000)
#   nautilus, kitten  Alpine's minirootfs (from the Go module of alpinelinux/docker-alpine),
#                     agnhost and the images' pages from the module, CMD test-webserver
#   glibc-dns-testing Debian 12 with dnsutils and CoreDNS, as upstream's (bookworm-slim)
#   busybox           upstream's busybox 1.37.0 (the release tarball of Debian 13's source
#                     package), static, with its defconfig as upstream's image; its applets as
#                     links in /bin. Debian's own builds revert upstream's passing on of
#                     environment variables whose names are not identifiers (`data-1`), which
#                     the envFrom specs read
#   nginx, nginx-new  Debian 12's nginx (1.22; upstream's are 1.27 and 1.28 on alpine), listening on
#                     port 80, logging to the container's output
#   nonewprivs        nnp (test/images/nonewprivs) setuid root on the busybox image
#   pause             the bundle's pause program as registry.k8s.io/pause
#   etcd              etcd, etcdctl and etcdutl at the cluster's etcd version in /usr/local/bin
#   sample-apiserver  k8s.io/sample-apiserver at the version of the image's tag
#
# Needs what make-test-bundle.sh needs, and root (apt downloads into its own directories).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
UPSTREAM_DIR="$SCRIPT_DIR/upstream"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/provisioner/conformance-images"

log() { printf '[conformance-images] %s\n' "$*" >&2; }
die() { printf '[conformance-images] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 1 && $1 != -h && $1 != --help ]] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
OUT=$1
mkdir -p "$OUT" "$CACHE"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/conformance-images.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
started=$SECONDS

# ---- the programs ---------------------------------------------------------------------------
program() { # NAME -> path of the program build.sh built
  awk -F'\t' -v p="$1" '$1 == p { print $4 }' "$WORK/programs.tsv"
}
{
  bash "$UPSTREAM_DIR/build.sh" --print-manifest --only etcd,pause,coredns
  bash "$UPSTREAM_DIR/build.sh" --print-manifest --only conformance
} >"$WORK/programs.tsv" || die "build.sh failed"
E2E=$(program e2e.test)
KDIR=$(cd "$UPSTREAM_DIR/kubernetes" && GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' k8s.io/kubernetes)
"$E2E" --list-images >"$WORK/references" 2>/dev/null || die "$E2E --list-images failed"
references() { # REPOSITORY (after the registry) -> the references e2e.test names for it, oldest first
  local r
  r=$(grep -E "^[^/]+/(e2e-test-images/)?$1:" "$WORK/references" | sort -V)
  [[ -n $r ]] || die "e2e.test lists no image $1"
  printf '%s\n' "$r"
}
reference() { references "$1" | tail -1; } # the newest

# ---- Debian packages ------------------------------------------------------------------------
# apt_setup DIR TYPE SUITE: an apt of our own in DIR for Debian SUITE's main (TYPE deb or
# deb-src), its lists updated once a day; its options in APT_OPTS.
apt_setup() {
  local apt=$1 type=$2 suite=$3
  mkdir -p "$apt/lists/partial" "$apt/archives/partial"
  : >"$WORK/status"
  printf '%s [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian %s main\n' \
    "$type" "$suite" >"$apt/sources.list"
  APT_OPTS=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache::Archives=$apt/archives"
            -o "Dir::Cache=$apt" -o "Dir::State::status=$WORK/status" -o Debug::NoLocking=1
            -o APT::Sandbox::User=root)
  if [[ ! -f $apt/updated ]] || (( $(date +%s) - $(stat -c %Y "$apt/updated") > 86400 )); then
    apt-get -qq "${APT_OPTS[@]}" update >&2 || die "apt-get update of Debian $suite ($type) failed"
    touch "$apt/updated"
  fi
}

# rootfs DIR SUITE PACKAGE...: the packages and everything they depend on, as apt resolves them
# for an empty system, unpacked into DIR (no maintainer scripts run: alternatives() makes the
# links their update-alternatives calls would).
rootfs() {
  local dir=$1 suite=$2; shift 2
  local apt="$CACHE/apt-$suite"
  mkdir -p "$dir"
  apt_setup "$apt" deb "$suite"
  apt-get -qq "${APT_OPTS[@]}" --download-only --no-install-recommends -y install "$@" >&2 ||
    die "apt cannot download $* from Debian $suite"
  # The packages apt chose, as it would install them.
  apt-get -s "${APT_OPTS[@]}" --no-install-recommends install "$@" 2>/dev/null |
    awk '/^Inst / { print $2, substr($3, 2) }' >"$WORK/chosen"
  local pkg version deb f
  while read -r pkg version; do
    deb=
    for f in "$apt/archives/${pkg}_"*.deb; do
      [[ -f $f && $(dpkg-deb -f "$f" Package) == "$pkg" && $(dpkg-deb -f "$f" Version) == "$version" ]] &&
        { deb=$f; break; }
    done
    [[ -n $deb ]] || die "apt chose $pkg $version but did not download it"
    dpkg-deb -x "$deb" "$dir"
    printf '%s\t%s\t%s\n' "$suite" "$pkg" "$version" >>"$OUT/packages.tsv"
  done <"$WORK/chosen"
}

# alpine_rootfs: a directory holding Alpine's minirootfs for x86_64, from the Go module of
# alpinelinux/docker-alpine (the repository Docker's alpine images are built from) at a pinned
# commit: the Go checksum database vouches for the module, and the tarball is checked against
# the repository's checksums.sha512.
ALPINE_MODULE=github.com/alpinelinux/docker-alpine@v0.0.0-20260806101352-410e6fcf56b6
alpine_rootfs() {
  local mod dir=$WORK/alpine tarball
  mod=$(cd "$UPSTREAM_DIR" && GOFLAGS=-mod=mod go mod download -json "$ALPINE_MODULE" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])') ||
    die "go mod download $ALPINE_MODULE failed"
  tarball=$(cd "$mod" && ls x86_64/alpine-minirootfs-*-x86_64.tar.gz) || die "no x86_64 minirootfs in $mod"
  (cd "$mod" && grep -F "  $tarball" checksums.sha512 | sha512sum -c --quiet -) >&2 ||
    die "$tarball does not match $mod/checksums.sha512"
  mkdir -p "$dir"
  tar -xzf "$mod/$tarball" -C "$dir" --numeric-owner || die "unpacking $tarball failed"
  printf '%s\n' "$dir"
}

# upstream_busybox: the path of busybox 1.37.0 built from upstream's release tarball, which
# Debian's source package carries (apt checks it against the .dsc), static, with upstream's
# defconfig; built once into the cache (about 2 minutes).
upstream_busybox() {
  local version=1.37.0 apt="$CACHE/apt-trixie-src" out="$CACHE/busybox-1.37.0/busybox" src
  if [[ ! -x $out ]]; then
    apt_setup "$apt" deb-src trixie
    (cd "$WORK" && apt-get -qq "${APT_OPTS[@]}" source --download-only busybox >&2) ||
      die "apt cannot download busybox's source package"
    [[ -f $WORK/busybox_$version.orig.tar.bz2 ]] ||
      die "Debian trixie's busybox source package is no longer busybox $version: update this script"
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' \
      "$WORK/busybox_$version.orig.tar.bz2" "$WORK" || die "unpacking busybox's source failed"
    src=$WORK/busybox-$version
    make -C "$src" defconfig >/dev/null || die "busybox's defconfig failed"
    sed -i 's/^# CONFIG_STATIC is not set$/CONFIG_STATIC=y/' "$src/.config"
    log "building busybox $version"
    KCONFIG_NOTIMESTAMP=1 make -C "$src" -j"$(nproc)" busybox >"$WORK/busybox-build.log" 2>&1 ||
      die "building busybox failed: $(tail -5 "$WORK/busybox-build.log")"
    mkdir -p "$(dirname "$out")"
    install -m 0755 "$src/busybox" "$out"
  fi
  printf '%s\n' "$out"
}

# alternatives DIR: the commands Debian's maintainer scripts link with update-alternatives (nc
# from netcat-openbsd, awk, which, w), for the packages unpacked in DIR.
alternatives() {
  local dir=$1 link target
  for link in bin/nc:nc.openbsd bin/netcat:nc.openbsd usr/bin/awk:mawk usr/bin/which:which.debianutils \
              usr/bin/w:w.procps; do
    target=${link#*:} link=${link%%:*}
    [[ -e $dir/$(dirname "$link")/$target && ! -e $dir/$link ]] && ln -s "$target" "$dir/$link"
  done
  return 0
}

# users DIR LINE...: /etc/passwd and /etc/group from Debian's base-passwd masters, plus LINES
# ("passwd:..." or "group:...").
users() {
  local dir=$1; shift
  mkdir -p "$dir/etc"
  cp "$dir/usr/share/base-passwd/passwd.master" "$dir/etc/passwd"
  cp "$dir/usr/share/base-passwd/group.master" "$dir/etc/group"
  local l
  for l; do printf '%s\n' "${l#*:}" >>"$dir/etc/${l%%:*}"; done
}

# ---- images ---------------------------------------------------------------------------------
: >"$OUT/images.tsv"
: >"$OUT/packages.tsv"
image() { # NAME REFERENCE CONFIG_JSON ARG... (oci-image.py's layer arguments)
  local name=$1 ref=$2 config=$3 digest; shift 3
  digest=$(python3 "$SCRIPT_DIR/oci-image.py" "$OUT/$name.tar" "$ref" "$config" "$@") ||
    die "writing the $name image failed"
  printf '%s\t%s\t%s\n' "$ref" "$digest" "$name.tar" >>"$OUT/images.tsv"
  log "$name: $ref ($digest, $(du -h "$OUT/$name.tar" | cut -f1))"
}

# agnhost: test/images/agnhost/Dockerfile, on Debian instead of alpine.
a=$WORK/agnhost
rootfs "$a" bookworm base-files base-passwd dash bash coreutils grep sed findutils procps \
  bind9-dnsutils curl wget netcat-openbsd iproute2 iputils-ping iperf util-linux socat libc-bin hostname mawk
ln -sf dash "$a/bin/sh"
alternatives "$a"
[[ -x $a/bin/nc ]] || die "the agnhost image has no nc (the Service specs run it)"
mkdir -p "$a/usr/local/bin"
ln -sf /usr/bin/iperf "$a/usr/local/bin/iperf"
install -m 0755 "$(program agnhost)" "$a/agnhost"
ln -s agnhost "$a/agnhost-2"
install -m 0755 "$(program coredns)" "$a/coredns"
install -m 0644 "$KDIR/test/images/agnhost/porter/localhost.crt" "$a/localhost.crt"
install -m 0644 "$KDIR/test/images/agnhost/porter/localhost.key" "$a/localhost.key"
mkdir -p "$a/uploads" "$a/home/user-defined-in-image" "$a/tmp"
chmod 1777 "$a/tmp"
users "$a" "passwd:user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh" \
  "group:user-defined-in-image:x:1000:" "group:group-defined-in-image:x:50000:user-defined-in-image"
agnhost_config='{"Entrypoint": ["/agnhost"], "Cmd": ["pause"], "WorkingDir": "/",
  "ExposedPorts": {"80/tcp": {}, "8080/tcp": {}, "8081/tcp": {}, "9376/tcp": {}, "5000/tcp": {}}}'
# Under each tag e2e.test names (the pods spec and the StatefulSet fixtures run the previous one).
mapfile -t agnhost_refs < <(references agnhost)
for i in "${!agnhost_refs[@]}"; do
  image "agnhost-$i" "${agnhost_refs[$i]}" "$agnhost_config" --dir "$a"
done
# nautilus, kitten: upstream's are agnhost's image (alpine) with a page; the ImageVolume spec
# reads alpine's /etc/os-release through kitten. Alpine's own minirootfs, then agnhost (static)
# and the page.
al=$(alpine_rootfs)
mkdir -p "$WORK/agnhost-bin"
install -m 0755 "$(program agnhost)" "$WORK/agnhost-bin/agnhost"
for pet in nautilus kitten; do
  mkdir -p "$WORK/$pet"
  cp "$KDIR/test/images/$pet/html/$pet.jpg" "$KDIR/test/images/$pet/html/data.json" "$WORK/$pet/"
  image "$pet" "$(reference "$pet")" \
    '{"Entrypoint": ["/agnhost"], "Cmd": ["test-webserver"], "WorkingDir": "/", "ExposedPorts": {"80/tcp": {}}}' \
    --dir "$al" --dir "$WORK/agnhost-bin" --dir "$WORK/$pet"
done

# glibc-dns-testing: test/images/glibc-dns-testing, Debian 12 with dnsutils (dig) and CoreDNS
# (upstream's adds CoreDNS 1.5.0; ours is the module's). The DNS specs' glibc prober runs in it.
d=$WORK/glibc-dns-testing
rootfs "$d" bookworm base-files base-passwd dash bash coreutils grep sed mawk findutils libc-bin \
  hostname bind9-dnsutils
ln -sf dash "$d/bin/sh"
alternatives "$d"
install -m 0755 "$(program coredns)" "$d/coredns"
image glibc-dns-testing "$(reference glibc-dns-testing)" '{"Cmd": ["bash"]}' --dir "$d"

# busybox: upstream's is busybox:1.37.0 with its applets in /bin.
b=$WORK/busybox
mkdir -p "$b/bin" "$b/tmp" "$b/etc" "$b/root"
chmod 1777 "$b/tmp"
install -m 0755 "$(upstream_busybox)" "$b/bin/busybox"
for applet in $("$b/bin/busybox" --list); do
  [[ $applet == busybox ]] || ln -s busybox "$b/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$b/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$b/etc/group"
mapfile -t busybox_refs < <(references busybox)
for i in "${!busybox_refs[@]}"; do
  image "busybox-$i" "${busybox_refs[$i]}" '{"Cmd": ["sh"]}' --dir "$b"
done

# nonewprivs: nnp, setuid root, printing its effective uid.
n=$WORK/nonewprivs
mkdir -p "$n/usr/local/bin"
(cd "$UPSTREAM_DIR/kubernetes" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$n/usr/local/bin/nnp" \
  k8s.io/kubernetes/test/images/nonewprivs) || die "building nnp failed"
chmod 4755 "$n/usr/local/bin/nnp"
image nonewprivs "$(reference nonewprivs)" '{"Cmd": ["nnp"]}' --dir "$b" --dir "$n"

# nginx: port 80, the default page, logs to the container's output, as upstream's image. One
# build under both references (nginx, nginx-new).
g=$WORK/nginx
rootfs "$g" bookworm base-files base-passwd dash nginx-light
ln -sf dash "$g/bin/sh"
users "$g"
mkdir -p "$g/run" "$g/var/log/nginx" "$g/var/lib/nginx" "$g/tmp" "$g/var/www/html"
chmod 1777 "$g/tmp"
ln -sf /dev/stdout "$g/var/log/nginx/access.log"
ln -sf /dev/stderr "$g/var/log/nginx/error.log"
# What nginx-common's postinst does: the default site, serving the default page.
ln -sf ../sites-available/default "$g/etc/nginx/sites-enabled/default"
cp "$g/usr/share/nginx/html/index.html" "$g/var/www/html/index.html"
mapfile -t nginx_refs < <(references nginx)
for i in "${!nginx_refs[@]}"; do
  image "nginx-$i" "${nginx_refs[$i]}" \
    '{"Cmd": ["nginx", "-g", "daemon off;"], "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT"}' \
    --dir "$g"
done

# sample-apiserver: upstream's Dockerfile adds the program to alpine; here to the busybox image.
image sample-apiserver "$(reference sample-apiserver)" '{"Entrypoint": ["/sample-apiserver"]}' \
  --dir "$b" --file "/sample-apiserver=$(program sample-apiserver)"

# pause and etcd: the programs the bundle runs, under upstream's references.
image pause "$(reference pause)" '{"Entrypoint": ["/pause"], "User": "65535:65535"}' \
  --file "/pause=$(program pause)"
image etcd "$(reference etcd)" '{"Cmd": ["/usr/local/bin/etcd"]}' \
  --file "/usr/local/bin/etcd=$(program etcd)" --file "/usr/local/bin/etcdctl=$(program etcdctl)" \
  --file "/usr/local/bin/etcdutl=$(program etcdutl)"

log "$(wc -l <"$OUT/images.tsv") images in $OUT, took $((SECONDS - started))s"
