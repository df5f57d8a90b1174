#!/usr/bin/env bash
# Runs the fuzz targets one after the other, each for SECONDS (default 600).
#
#   bash fuzz/run.sh              # every target, 10 minutes each
#   bash fuzz/run.sh 60           # every target, 1 minute each
#   bash fuzz/run.sh 600 archive  # only the named targets
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). New inputs the fuzzer
# finds go to fuzz/target/corpus/<target>, so the committed seeds in fuzz/corpus stay small;
# crashes go to fuzz/artifacts/<target>/ and logs to fuzz/target/logs/<target>.log (or to
# $FUZZ_LOG_DIR/<target>.log). Exits non-zero when any target failed.
set -uo pipefail

seconds=${1:-600}
shift || true
all=(inventory known_hosts manifest signature archive)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

here=$(cd "$(dirname "$0")" && pwd) || exit 1
logs=${FUZZ_LOG_DIR:-$here/target/logs}
mkdir -p "$logs" && logs=$(cd "$logs" && pwd) || exit 1
cd "$here" || exit 1
# Low priority: fuzzing uses a whole core for as long as it runs.
nice=${FUZZ_NICE:-15}

nice -n "$nice" cargo +nightly fuzz build || exit 1

failed=()
for t in "${targets[@]}"; do
    mkdir -p "target/corpus/$t" "corpus/$t"
    log="$logs/$t.log"
    echo "== $t: ${seconds}s, log in $log"
    nice -n "$nice" cargo +nightly fuzz run "$t" "target/corpus/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=25 >"$log" 2>&1
    status=$?
    grep -E '^Done [0-9]+ runs|^#[0-9]+.*DONE' "$log" | tail -n 2
    if [ $status -ne 0 ]; then
        echo "!! $t failed (exit $status); see $log and $here/artifacts/$t/"
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -n 5
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}"
    exit 1
fi
echo "all targets ran ${seconds}s without a failure: ${targets[*]}"
