#!/usr/bin/env bash
# Regenerates tests/fixtures/k8s/v<minor>/ from the real programs of one Kubernetes release:
#
#   tests/testbed/upstream/gen-fixtures.sh [VERSION]      (default: $KUBERNETES_VERSION or 1.37.2)
#
#   flags/<program>.txt   `--name<TAB>type[<TAB>deprecated]` parsed from `<program> --help` of the
#                         binaries build.sh makes (kubectl: `kubectl options`, its global flags);
#                         type as --help prints it, `bool` when it prints none (etcd: from the flag
#                         set etcd registers; kubectl: inferred from the default); `deprecated`
#                         when the help text says so
#   flags/SHORTHANDS.txt  component<TAB>-x<TAB>--long
#   config/<Kind>.txt     `<json path><TAB><type>` of each config kind, walked from the Go types by
#                         kubernetes/fieldlist
#   config/containerd-config-v<N>.txt  containerd's config keys at the config version N that
#                         containerd writes (4 from containerd 2.3), walked by containerd/fieldlist
#   SOURCE                the module versions the lists came from
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

version=$(normalize_version "${1:-${KUBERNETES_VERSION:-$DEFAULT_KUBERNETES_VERSION}}")
minor=$(minor_of "$version")
out=$(cd "$UPSTREAM_DIR/../../fixtures/k8s" && pwd)/v$minor
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly

log "building (or finding) the programs of Kubernetes v$version"
manifest=$("$UPSTREAM_DIR/build.sh" --version "$version" --only kubernetes,etcd,containerd --print-manifest)
bin() { awk -F'\t' -v p="$1" '$1 == p { print $4 }' <<<"$manifest"; }
src() { awk -F'\t' -v p="$1" '$1 == p { print $5 }' <<<"$manifest"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/flags" "$tmp/config"

# pflag's help: a flag line starts with "  -x, --name" or "      --name", then " type" (one space)
# unless the flag is a bool, then two or more spaces and the usage, which may continue on more
# deeply indented lines. Section titles ("Generic flags:") start in column 0.
parse_pflag_help() { # COMPONENT SHORTHANDS_FILE
  awk -v comp="$1" -v short="$2" '
    function flush() { if (name != "") { print name "\t" type (usage ~ /DEPRECATED/ ? "\tdeprecated" : "") } name = "" }
    /^(  -[^ ], |      )--[^ ]/ {
      flush()
      line = $0
      sh = (line ~ /^  -[^ ], /) ? substr(line, 3, 2) : ""
      sub(/^ *(-[^ ], )?/, "", line)
      name = line; sub(/ .*/, "", name)
      if (sh != "") print comp "\t" sh "\t" name >> short
      rest = substr(line, length(name) + 1)
      if (rest ~ /^ [^ ]/) { type = substr(rest, 2); sub(/ .*/, "", type); sub(/\[=.*$/, "", type); usage = substr(rest, length(type) + 2) }
      else { type = "bool"; usage = rest }
      next
    }
    /^[^ ]/ || /^$/ { if ($0 ~ /^[^ ]/) flush(); next }
    { usage = usage " " $0 }
    END { flush() }
  '
}

# etcd's help (etcdmain/help.go): "  --name 'default'" then the description on indented lines.
# It prints no types: they come from TYPES (etcd/flagtypes: the flag set etcd's embed.Config
# registers), else are inferred from the default.
parse_etcd_help() { # TYPES
  awk -v typesfile="$1" '
    BEGIN { while ((getline l < typesfile) > 0) { split(l, f, "\t"); known[f[1]] = f[2] } }
    function flush() { if (name != "") print name "\t" type (desc ~ /DEPRECATED|[Dd]eprecated/ ? "\tdeprecated" : "") ; name = "" }
    /^  --[a-z]/ {
      flush()
      line = $0; sub(/^  /, "", line)
      name = line; sub(/[ =].*/, "", name)
      def = substr(line, length(name) + 2); gsub(/^'\''|'\''$/, "", def)
      if (def == "true" || def == "false") type = "bool"
      else if (def ~ /^-?[0-9]+$/) type = "int"
      else if (def ~ /^[0-9.]+(ns|us|ms|s|m|h)$/) type = "duration"
      else type = "string"
      if (name in known) type = known[name]
      desc = ""
      next
    }
    /^[^ ]/ { flush(); next }
    { desc = desc " " $0 }
    END { flush() }
  '
}

# `kubectl options` (kubectl's own template): "    -s, --server='':" then the description on
# tab-indented lines; the type is inferred from the default.
parse_kubectl_options() { # SHORTHANDS_FILE
  awk -v short="$1" '
    function flush() { if (name != "") print name "\t" type (desc ~ /DEPRECATED/ ? "\tdeprecated" : ""); name = "" }
    /^    (-[^ ], )?--[^ =]+=/ {
      flush()
      line = $0; sub(/^ +/, "", line)
      if (line ~ /^-[^ ], /) { sh = substr(line, 1, 2); line = substr(line, 5) } else sh = ""
      name = line; sub(/=.*/, "", name)
      if (sh != "") print "kubectl\t" sh "\t" name >> short
      def = substr(line, length(name) + 2); sub(/:$/, "", def)
      if (def == "true" || def == "false") type = "bool"
      else if (def ~ /^-?[0-9]+$/) type = "int"
      else if (def ~ /^[0-9.]+(ns|us|ms|s|m|h)$/) type = "duration"
      else if (def ~ /^\[/) type = "strings"
      else type = "string"
      desc = ""
      next
    }
    /^\t/ { desc = desc " " $0 }
    END { flush() }
  '
}

: >"$tmp/shorthands"
for p in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
  b=$(bin "$p"); [[ -x $b ]] || die "no $p binary in the manifest"
  "$b" --help 2>&1 | parse_pflag_help "$p" "$tmp/shorthands" | sort -u >"$tmp/flags/$p.txt"
  [[ -s $tmp/flags/$p.txt ]] || die "parsed no flags from $p --help"
done
"$(bin kubectl)" options 2>&1 | parse_kubectl_options "$tmp/shorthands" | sort -u >"$tmp/flags/kubectl.txt"
[[ -s $tmp/flags/kubectl.txt ]] || die "parsed no flags from kubectl options"
etcd_version=$(awk -F'\t' -v m="$minor" '$1 == m && $2 == "etcd" { print $3 }' "$UPSTREAM_DIR/versions.tsv")
if [[ $minor == "$(minor_of "$DEFAULT_KUBERNETES_VERSION")" ]]; then emod=$UPSTREAM_DIR/etcd; else emod=$CACHE_ROOT/modules/etcd/v$etcd_version; fi
(cd "$emod" && go run ./flagtypes >"$tmp/etcd-types") || die "etcd flagtypes failed"
"$(bin etcd)" --help 2>&1 | parse_etcd_help "$tmp/etcd-types" | sort -u >"$tmp/flags/etcd.txt"
[[ -s $tmp/flags/etcd.txt ]] || die "parsed no flags from etcd --help"
{ printf 'component\tshorthand\tlong\n'; sort -u "$tmp/shorthands"; } >"$tmp/flags/SHORTHANDS.txt"

# A header on each list: where it came from (the tests read only the lines starting with "--").
for f in "$tmp"/flags/*.txt; do
  p=$(basename "$f" .txt)
  [[ $p == SHORTHANDS ]] && continue
  case $p in
    kubectl) how="kubectl options" ;;
    etcd) how="etcd --help (types: etcd/flagtypes)" ;;
    *) how="$p --help" ;;
  esac
  { printf '# %s of %s, built by tests/testbed/upstream/build.sh\n' "$how" "$(src "$p")"
    printf '# format: --name<TAB>type[<TAB>deprecated]\n'
    cat "$f"; } >"$f.new" && mv "$f.new" "$f"
done

# Config kinds, from the module the Kubernetes programs were built from.
kmod=$(kubernetes_module_dir "$version")
(cd "$kmod" && go run ./fieldlist "$tmp/config") || die "fieldlist failed"
cversion=$(awk -F'\t' -v m="$minor" '$1 == m && $2 == "containerd" { print $3 }' "$UPSTREAM_DIR/versions.tsv")
if [[ $minor == "$(minor_of "$DEFAULT_KUBERNETES_VERSION")" ]]; then
  cmod=$UPSTREAM_DIR/containerd
else
  cmod=$CACHE_ROOT/modules/containerd/v$cversion
fi
cfgversion=$(cd "$cmod" && go run ./fieldlist -config-version) || die "containerd fieldlist failed"
(cd "$cmod" && go run ./fieldlist >"$tmp/config/containerd-config-v$cfgversion.txt") || die "containerd fieldlist failed"

{
  printf '# Generated by tests/testbed/upstream/gen-fixtures.sh %s; do not edit.\n' "$version"
  printf '# program\tsource module\tbinary version output\n'
  for p in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd containerd; do
    case $p in
      kubectl) v=$("$(bin "$p")" version --client 2>&1) || true ;;
      *) v=$("$(bin "$p")" --version 2>&1) || true ;;
    esac
    v=${v%%$'\n'*}
    printf '%s\t%s\t%s\n' "$p" "$(src "$p")" "$v"
  done
  printf 'config/*.txt (Kubernetes kinds)\t%s\t%s\n' "$(src kube-apiserver)" \
    "$(cd "$kmod" && go list -m -f '{{.Path}}@{{with .Replace}}{{.Version}}{{else}}{{.Version}}{{end}}' \
        k8s.io/kubelet k8s.io/kube-proxy k8s.io/kube-scheduler k8s.io/apiserver k8s.io/client-go | tr '\n' ' ')"
  printf 'config/containerd-config-v%s.txt\t%s\n' "$cfgversion" "$(src containerd)"
  printf 'go toolchain\t%s\n' "$(go env GOVERSION)"
} >"$tmp/SOURCE"

mkdir -p "$out"
rm -rf "$out/flags" "$out/config"
mv "$tmp/flags" "$tmp/config" "$tmp/SOURCE" "$out/"
log "wrote $out:"
(cd "$out" && wc -l SOURCE flags/*.txt config/*.txt) 1>&2
