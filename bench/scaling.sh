#!/usr/bin/env bash
# Batch scaling of `leakdiag analyze -j N` (issue 16; docs/performance.md, case 5).
#
#   bash bench/scaling.sh
#   DUMPS=64 ALLOCATIONS=1000000 STACKS=20000 RUNS=3 JOBS="1 2 4 8 16" bash bench/scaling.sh
#
# Needs only the repository and a release build made beforehand (no network, no
# cargo run here): target/release/leakdiag and target/release/examples/bench-gen
# (`cargo build --release --bin leakdiag --example bench-gen`). BIN= and GEN= point
# elsewhere.
#
# Generates DUMPS dumps (default 64) of ALLOCATIONS allocations (1,000,000) over STACKS
# stacks (20,000: case 1's shape, 45 MB each, 2.8 GB in all; one process dumped every
# 10 minutes, so they form one series) into $SCRATCH (default bench/scratch/scaling;
# reused when present, FORCE=1 regenerates), warms the page cache, then times
# `leakdiag analyze -q -j N` over the whole folder for every N of JOBS (default the
# powers of two up to `nproc`), RUNS times each (median), and the same at -j 1 and -j 2
# pinned to two cores (`taskset -c 0,1`) for the 2-core figure. Every run's report
# folder must be byte-identical to the first -j 1 run's (`diff -r`): results do not
# depend on -j. Prints a Markdown table (wall time, speed-up over -j 1, efficiency =
# speed-up / jobs) and notes on standard output, progress on standard error; exits 1
# when reports differ.
#
# Expected time on a 16-core machine: about 1 minute. Measured on a 2-core machine: a
# 1M-allocation dump takes ~70 ms at -j 1, so -j 1 over 64 dumps ~4.5 s; all runs
# together ~4.5 × (1 + 1/2 + 1/4 + 1/8 + 1/16 + 1 + 1/2) × 3 runs ≈ 45 s, plus ~5 s
# to generate the dumps on 16 cores and the diffs of ~600 MB of reports per run.
# Disk: 2.8 GB of dumps and 2 × 600 MB of reports in $SCRATCH.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/target/release/leakdiag}
GEN=${GEN:-$ROOT/target/release/examples/bench-gen}
DUMPS=${DUMPS:-64}
ALLOCATIONS=${ALLOCATIONS:-1000000}
STACKS=${STACKS:-20000}
RUNS=${RUNS:-3}
CORES=$(nproc)
if [ -z "${JOBS:-}" ]; then
    JOBS=""
    for j in 1 2 4 8 16 32 64; do [ "$j" -le "$CORES" ] && JOBS="$JOBS $j"; done
fi
SCRATCH=${SCRATCH:-bench/scratch/scaling}

for f in "$BIN" "$GEN"; do
    [ -x "$f" ] || { echo "missing $f: run 'cargo build --release --bin leakdiag --example bench-gen' first" >&2; exit 2; }
done
mkdir -p "$SCRATCH"
SCRATCH=$(cd "$SCRATCH" && pwd)
DUMPDIR=$SCRATCH/dumps-$DUMPS-$ALLOCATIONS-$STACKS
OUT=$SCRATCH/out

t_start=$(date +%s)
if [ ! -f "$DUMPDIR/done" ] || [ -n "${FORCE:-}" ]; then
    rm -rf "$DUMPDIR"
    echo "generating $DUMPS dumps of $ALLOCATIONS allocations, $STACKS stacks into $DUMPDIR..." >&2
    t0=$(date +%s)
    "$GEN" batch "$DUMPDIR" "$DUMPS" "$ALLOCATIONS" "$STACKS" 2>/dev/null
    touch "$DUMPDIR/done"
    echo "  generated in $(($(date +%s) - t0)) s" >&2
fi
SIZE=$(du -sb "$DUMPDIR" | cut -f1)
cat "$DUMPDIR"/*.dmp >/dev/null # warm the page cache

now() { date +%s%N; }
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

REFERENCE=$SCRATCH/reference
DIFFERENT=()

# run LABEL PREFIX... -- JOBS: RUNS timed runs; sets MED (seconds).
run() {
    local label=$1 jobs=$2; shift 2
    local times=()
    for r in $(seq "$RUNS"); do
        rm -rf "$OUT"
        local t0 t1
        t0=$(now)
        "$@" "$BIN" analyze -q -j "$jobs" -o "$OUT" "$DUMPDIR"
        t1=$(now)
        times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b-a)/1e9}')")
        if [ ! -d "$REFERENCE" ]; then
            mv "$OUT" "$REFERENCE"
        elif ! diff -r -q "$REFERENCE" "$OUT" >/dev/null; then
            DIFFERENT+=("$label run $r")
        fi
    done
    MED=$(printf '%s\n' "${times[@]}" | median)
    echo "  $label: ${times[*]} s -> median $MED s (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
}

rm -rf "$REFERENCE"
ROWS=()
BASE=""
for j in $JOBS; do
    run "-j $j" "$j" env
    [ -z "$BASE" ] && BASE=$MED
    ROWS+=("$(awk -v j="$j" -v c="$CORES" -v t="$MED" -v b="$BASE" 'BEGIN {s = b / t; printf "| -j %d | all %d | %.3f s | %.2f | %.2f |", j, c, t, s, s / j}')")
done
if command -v taskset >/dev/null && [ "$CORES" -ge 2 ]; then
    run "-j 1 on cores 0,1" 1 taskset -c 0,1
    PIN1=$MED
    ROWS+=("$(awk -v t="$MED" 'BEGIN {printf "| -j 1 | 2 (taskset -c 0,1) | %.3f s | 1.00 | 1.00 |", t}')")
    run "-j 2 on cores 0,1" 2 taskset -c 0,1
    ROWS+=("$(awk -v t="$MED" -v b="$PIN1" 'BEGIN {s = b / t; printf "| -j 2 | 2 (taskset -c 0,1) | %.3f s | %.2f | %.2f |", t, s, s / 2}')")
fi

echo
echo "\`bench/scaling.sh\`: $DUMPS dumps × $ALLOCATIONS allocations, $STACKS stacks ($(numfmt --to=iec --suffix=B "$SIZE")), median of $RUNS runs; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "| jobs | cores | wall (median) | speed-up over -j 1 | efficiency (speed-up / jobs) |"
echo "|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "- machine: $CORES cores ($(lscpu 2>/dev/null | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}')), $(free -g | awk '/Mem:/ {print $2}') GiB; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ ${#DIFFERENT[@]} -eq 0 ]; then
    echo "- reports byte-identical (diff -r) across every -j and run"
else
    echo "- REPORTS DIFFER from the first -j 1 run: ${DIFFERENT[*]}"
fi
echo "- total time of the script: $(($(date +%s) - t_start)) s"
rm -rf "$OUT" "$REFERENCE"
[ ${#DIFFERENT[@]} -eq 0 ]
