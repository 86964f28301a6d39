#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ and runs each for SECONDS_PER_TARGET (default 600), one at a time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (make fuzz, make fuzz-smoke; docs/development.md)
#
# Each target starts from its committed seeds in Fuzz/Corpus/<Target> (read only) and writes what it
# finds to a scratch corpus in Fuzz/work/<run>/<Target>; a crash or a violated property is kept there
# as crash-<sha1> (reproduce: Fuzz/.build/release/<Target> <that file>). Prints per target the executions,
# exec/s, coverage (libFuzzer's cov: edges and ft: features), corpus size and crashes; exits 1 on any crash.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${1:-600}
shift || true
ALL=(FuzzWireDecode FuzzFastReportDecoder FuzzAgentConfig FuzzDaemonJSON FuzzContainerdHosts FuzzRegistriesConf FuzzPullLog FuzzClassifier)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL[@]}"); fi

# Longest input per target: a few times the largest real file of its kind (a report is ~3 KB).
max_len() {
    case $1 in
        FuzzWireDecode | FuzzFastReportDecoder) echo 16384 ;;
        FuzzAgentConfig) echo 8192 ;;
        FuzzClassifier) echo 2048 ;;
        *) echo 4096 ;;
    esac
}

# Release with -enable-testing: several times the executions of a debug build, and the targets that
# compare internal paths (the fast report decoder) still see them.
SWIFT=${SWIFT:-swift}
BUILD=(-c release --package-path Fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing)
echo "fuzz: building (${BUILD[*]})"
"$SWIFT" build "${BUILD[@]}" 2>&1 | grep -v -e "Cannot export local symbol" -e "unhandled; explicitly declare" -e "CMakeLists.txt$" >&2
BIN=$("$SWIFT" build "${BUILD[@]}" --show-bin-path)

# A violated property is a fatalError: let libFuzzer's signal handler keep the input, not Swift's
# backtracer (which, under ASan, reports its own reads of the crashed stack).
export SWIFT_BACKTRACE=enable=no

RUN=Fuzz/work/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN"
failed=0
started=$(date +%s)
printf '%-22s %6s %11s %8s %6s %7s %8s %7s\n' target secs execs exec/s cov ft corpus crashes | tee "$RUN/summary.txt"
for t in "${TARGETS[@]}"; do
    dir=$RUN/$t
    mkdir -p "$dir/corpus" "$dir/artifacts"
    t0=$(date +%s)
    status=0
    # -rss_limit_mb: the ASan build of the agent's code stays far below; -timeout: no input may take 10 s.
    "$BIN/$t" -max_total_time="$SECONDS_PER_TARGET" -max_len="$(max_len "$t")" -print_final_stats=1 \
        -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$dir/artifacts/" \
        "$dir/corpus" "Fuzz/Corpus/$t" >"$dir/log" 2>&1 || status=$?
    secs=$(($(date +%s) - t0))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
    # The last status line: "#N  DONE|pulse|NEW  cov: C ft: F corp: U/S ...".
    last=$(grep -E '^#[0-9]+' "$dir/log" | grep ' cov: ' | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
    crashes=$(find "$dir/artifacts" -type f | wc -l)
    [ "$status" -eq 0 ] || [ "$crashes" -ne 0 ] || crashes="exit $status"
    printf '%-22s %6s %11s %8s %6s %7s %8s %7s\n' "$t" "$secs" "${execs:--}" "${rate:--}" "${cov:--}" "${ft:--}" "${corp:--}" "$crashes" | tee -a "$RUN/summary.txt"
    if [ "$status" -ne 0 ] || [ "$crashes" != 0 ]; then
        failed=1
        grep -E -m 5 'ERROR|Fatal error|property violated|SUMMARY' "$dir/log" >&2 || true
        find "$dir/artifacts" -type f -printf '  kept: %p\n' >&2
    fi
done
echo "fuzz: ${#TARGETS[@]} targets in $(($(date +%s) - started)) s (build not counted); logs and corpora in $RUN" | tee -a "$RUN/summary.txt"
exit "$failed"
