#!/usr/bin/env bash
# Checks that every program build.sh made for a release reports its own version:
#
#   tests/testbed/upstream/verify.sh [VERSION]     (default: $KUBERNETES_VERSION or 1.37.2)
#
# Builds nothing new when the cache is warm (it runs build.sh --print-manifest). Exit 1 on any
# mismatch; runc must also report the libseccomp it was linked with.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

version=$(normalize_version "${1:-${KUBERNETES_VERSION:-$DEFAULT_KUBERNETES_VERSION}}")
manifest=$("$UPSTREAM_DIR/build.sh" --version "$version" --print-manifest)
failed=0
while IFS=$'\t' read -r program _ pversion path _; do
  case $program in
    kubectl) out=$("$path" version --client 2>&1) || true ;;
    etcdctl | etcdutl) out=$("$path" version 2>&1) || true ;;
    coredns) out=$("$path" -version 2>&1) || true ;;
    pause | containerd-shim-runc-v2) out=$("$path" -v 2>&1) || true ;;
    bridge | loopback | host-local | portmap | bandwidth | firewall | tuning) out=$("$path" 2>&1) || true ;;
    *) out=$("$path" --version 2>&1) || true ;;
  esac
  want=${pversion#v}
  ok=1
  [[ $out == *"$want"* ]] || ok=0
  [[ $program == runc && $out != *libseccomp* ]] && ok=0
  if ((ok)); then
    printf 'ok    %-24s %s\n' "$program" "${out%%$'\n'*}"
  else
    printf 'FAIL  %-24s wanted %s, got: %s\n' "$program" "$want" "${out%%$'\n'*}"
    failed=1
  fi
done <<<"$manifest"
exit "$failed"
