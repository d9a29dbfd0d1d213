#!/usr/bin/env bash
# leakdiag's benchmark suite (issue #7; results in docs/performance.md).
#
#   bash bench/run.sh                 every case, 5 runs each, medians
#   CASES="large batch" bash bench/run.sh
#   RUNS=3 SCRATCH=/tmp/ldbench bash bench/run.sh
#   CASES=huge bash bench/run.sh      case 5 only: 10M allocations, and 1M/3M for scaling
#   CASES=reach bash bench/run.sh     case 7 only: reachability scan of a 2 GiB full dump
#   PREBUILT=DIR bash bench/run.sh    use DIR/leakdiag and DIR/bench-gen … (no cargo build)
#
# Inputs are generated deterministically into $SCRATCH (default bench/scratch, not
# committed) on the first run and reused afterwards (FORCE=1 regenerates). Each case
# runs $RUNS times; the table shows the median wall time and the peak resident set
# size ("Maximum resident set size" of /usr/bin/time, the largest of the runs).
# Nothing here is a test: `cargo test` never depends on speed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCRATCH=${SCRATCH:-bench/scratch}
RUNS=${RUNS:-5}
CASES=${CASES:-"large symbols batch full huge umdh umdh-real reach"}
UMDH_ALLOCATIONS=${UMDH_ALLOCATIONS:-5000000}
SYMBOLIZER=${SYMBOLIZER:-llvm-symbolizer-19}
LLVM_RUNS=${LLVM_RUNS:-1}
FUNCTIONS=${FUNCTIONS:-20000}
ADDRESSES=${ADDRESSES:-200000}
mkdir -p "$SCRATCH"
SCRATCH=$(cd "$SCRATCH" && pwd)

# GNU time for peak RSS; TIME= names another copy (a machine without the package).
TIME=${TIME:-/usr/bin/time}
[ -x "$TIME" ] || { echo "needs GNU time at $TIME (apt-get install time)" >&2; exit 2; }

if [ -n "${PREBUILT:-}" ]; then
    # A machine without the toolchain: leakdiag and the examples built elsewhere,
    # all in one folder.
    BIN=$PREBUILT/leakdiag
    EX=$PREBUILT
else
    echo "building (release)..." >&2
    cargo build --release --quiet --bin leakdiag --example bench-gen \
        --example bench-aggregate --example bench-symbolize --example make-umdh-logs
    BIN=$ROOT/target/release/leakdiag
    EX=$ROOT/target/release/examples
fi

# --- helpers -----------------------------------------------------------------
ROWS=()
NOTES=()

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
max() { sort -g | tail -n 1; }
human() { numfmt --to=iec --suffix=B "$1"; }

# measure NAME CMD...: runs CMD $RUNS times (stdout to $SCRATCH/NAME.out, or to
# $MEASURE_OUT when set, e.g. /dev/null; stderr to $SCRATCH/NAME.err);
# sets MED (seconds) and RSS (KiB, the largest peak of the runs).
measure() {
    local name=$1; shift
    local times=() rss=()
    for _ in $(seq "${MEASURE_RUNS:-$RUNS}"); do
        local t0 t1
        t0=$(date +%s%N)
        "$TIME" -f %M -o "$SCRATCH/$name.rss" "$@" >"${MEASURE_OUT:-$SCRATCH/$name.out}" 2>"$SCRATCH/$name.err" || {
            echo "FAILED: $*" >&2; cat "$SCRATCH/$name.err" >&2; exit 1; }
        t1=$(date +%s%N)
        times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b-a)/1e9}')")
        rss+=("$(tail -n 1 "$SCRATCH/$name.rss")")
    done
    MED=$(printf '%s\n' "${times[@]}" | median)
    RSS=$(printf '%s\n' "${rss[@]}" | max)
    echo "  $name: runs ${times[*]} s -> median $MED s, peak RSS $((RSS / 1024)) MiB (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
}

# row CASE INPUT LEAKDIAG_S RSS_KIB COMPARISON COMPARISON_S RATIO_TEXT
row() { ROWS+=("$(printf '| %s | %s | %.3f s | %s MiB | %s | %.3f s | %s |' "$1" "$2" "$3" "$(($4 / 1024))" "$5" "$6" "$7")"); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }

# peak_status CMD...: runs CMD once, sampling /proc/PID/status every 5 ms; prints the
# largest VmRSS, RssAnon and RssFile seen (KiB).
peak_status() {
    "$@" >/dev/null 2>&1 &
    local pid=$! vm=0 anon=0 file=0
    while kill -0 "$pid" 2>/dev/null; do
        read -r v a f < <(awk '/^VmRSS/ {v=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {print v+0, a+0, f+0}' "/proc/$pid/status" 2>/dev/null || echo "0 0 0")
        [ "$v" -gt "$vm" ] && vm=$v
        [ "$a" -gt "$anon" ] && anon=$a
        [ "$f" -gt "$file" ] && file=$f
        sleep 0.005
    done
    wait "$pid"
    echo "$vm $anon $file"
}

size_of() { human "$(du -cb "$@" | tail -n 1 | cut -f1)"; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; load at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# --- case 1: large stream ---------------------------------------------------------
if [[ " $CASES " == *" large "* ]]; then
    echo "case 1: large stream" >&2
    D=$SCRATCH/large.dmp
    [ -f "$D" ] && [ -z "${FORCE:-}" ] || "$EX/bench-gen" large "$D"
    cat "$D" >/dev/null # warm the page cache
    MEASURE_OUT=/dev/null measure large-cat cat "$D"
    CAT=$MED
    measure large-aggregate "$EX/bench-aggregate" "$D"
    AGG=$MED AGG_RSS=$RSS
    measure large-leak "$BIN" analyze -q --scripts leak -o "$SCRATCH/large-leak-report" "$D"
    LEAK=$MED LEAK_RSS=$RSS
    measure large-e2e "$BIN" analyze -q -o "$SCRATCH/large-report" "$D"
    E2E=$MED E2E_RSS=$RSS
    IN="$(size_of "$D") (1M allocations, 20k stacks × 32, 200 modules)"
    row "1 large: analyze (all scripts, HTML+JSON)" "$IN" "$E2E" "$E2E_RSS" "bench-aggregate (leak::analyze only)" "$AGG" "$(ratio "$E2E" "$AGG")× of aggregation"
    row "1 large: analyze (all scripts, HTML+JSON)" "$IN" "$E2E" "$E2E_RSS" "cat dump >/dev/null (warm)" "$CAT" "$(ratio "$E2E" "$CAT")× of cat"
    row "1 large: analyze --scripts leak" "$IN" "$LEAK" "$LEAK_RSS" "bench-aggregate" "$AGG" "$(ratio "$LEAK" "$AGG")× of aggregation"
    NOTES+=("bench-aggregate alone: peak RSS $((AGG_RSS / 1024)) MiB")
fi

# --- case 2: symbols ----------------------------------------------------------------
if [[ " $CASES " == *" symbols "* ]]; then
    echo "case 2: symbols" >&2
    S=$SCRATCH/symbols
    if [ ! -f "$S/bench.pdb" ] || [ -n "${FORCE:-}" ]; then
        t0=$(date +%s)
        GEN=$EX/bench-gen bash bench/build-symbols.sh "$S" "$FUNCTIONS" >&2
        echo "  built $FUNCTIONS functions in $(($(date +%s) - t0)) s" >&2
    fi
    "$EX/bench-symbolize" sample "$S/bench.exe" "$ADDRESSES" 7 >"$S/addresses.txt"
    cat "$S/bench.exe" "$S/bench.pdb" >/dev/null
    measure symbols-leakdiag sh -c "'$EX/bench-symbolize' resolve '$S/bench.exe' < '$S/addresses.txt'"
    OURS=$MED OURS_RSS=$RSS
    # llvm-symbolizer takes minutes here: $LLVM_RUNS run(s) (default 1).
    MEASURE_RUNS=${LLVM_RUNS:-1} measure symbols-llvm sh -c "$SYMBOLIZER --obj='$S/bench.exe' --relative-address --inlining --functions=linkage < '$S/addresses.txt'"
    LLVM=$MED
    # Same answers? Compare function/file/line of every frame (llvm prints a column
    # where we print 0).
    norm() { sed -E 's/:[0-9]+$//' "$1"; }
    norm "$SCRATCH/symbols-leakdiag.out" >"$S/ours.txt"
    norm "$SCRATCH/symbols-llvm.out" >"$S/llvm.txt"
    paste -d '\t' "$S/addresses.txt" <(awk -v RS= '{gsub(/\n/, "|"); print}' "$S/ours.txt") \
        <(awk -v RS= '{gsub(/\n/, "|"); print}' "$S/llvm.txt") | awk -F '\t' '$2 != $3' >"$S/differences.txt" || true
    DIFFER=$(wc -l <"$S/differences.txt")
    # Differences only in the outer frame's line, where leakdiag has none.
    OUTER=$(awk -F '\t' '{o=$2; l=$3; sub(/\|[^|]*$/, "", o); sub(/\|[^|]*$/, "", l); if (o == l && $2 ~ /\?\?:0$/) n++} END {print n+0}' "$S/differences.txt")
    IN="$(size_of "$S/bench.exe" "$S/bench.pdb") image+PDB, $FUNCTIONS functions, $ADDRESSES addresses"
    row "2 symbols: bench-symbolize (Symbolizer)" "$IN" "$OURS" "$OURS_RSS" "$SYMBOLIZER (one process, stdin)" "$LLVM" "$(ratio "$LLVM" "$OURS")× faster"
    NOTES+=("symbols: $DIFFER of $ADDRESSES addresses answered differently (whole inline chain, function/file/line, compared; list in $S/differences.txt); of those, $OUTER differ only in the outer frame's line, which leakdiag leaves empty; llvm-symbolizer ran $LLVM_RUNS time(s), leakdiag $RUNS")
fi

# --- case 3: batch -------------------------------------------------------------------
if [[ " $CASES " == *" batch "* ]]; then
    echo "case 3: batch" >&2
    B=$SCRATCH/batch
    [ -f "$B/batch_63.dmp" ] && [ -z "${FORCE:-}" ] || "$EX/bench-gen" batch "$B"
    cat "$B"/*.dmp >/dev/null
    measure batch-j1 "$BIN" analyze -q -j 1 -o "$SCRATCH/batch-report-1" "$B"
    J1=$MED
    N=$(nproc)
    measure "batch-j$N" "$BIN" analyze -q -j "$N" -o "$SCRATCH/batch-report-$N" "$B"
    JN=$MED JN_RSS=$RSS
    row "3 batch: analyze -j $N" "$(size_of "$B") (64 dumps × 100k allocations)" "$JN" "$JN_RSS" "analyze -j 1" "$J1" "speed-up $(ratio "$J1" "$JN") on $N cores"
fi

# --- case 4: full dump ------------------------------------------------------------------
if [[ " $CASES " == *" full "* ]]; then
    echo "case 4: full dump" >&2
    F=$SCRATCH/full.dmp
    [ -f "$F" ] && [ -z "${FORCE:-}" ] || "$EX/bench-gen" full "$F"
    cat "$F" >/dev/null
    MEASURE_OUT=/dev/null measure full-cat cat "$F"
    CAT=$MED
    measure full-e2e "$BIN" analyze -q -o "$SCRATCH/full-report" "$F"
    E2E=$MED E2E_RSS=$RSS
    read -r VM ANON FILE < <(peak_status "$BIN" analyze -q -o "$SCRATCH/full-report-status" "$F")
    row "4 full dump: analyze (all scripts)" "$(size_of "$F") (2 GiB Memory64List, 500k allocations)" "$E2E" "$E2E_RSS" "cat dump >/dev/null (warm)" "$CAT" "$(ratio "$E2E" "$CAT")× of cat"
    NOTES+=("full dump, /proc/PID/status sampled every 5 ms: peak VmRSS $((VM / 1024)) MiB = RssAnon (heap, stacks) up to $((ANON / 1024)) MiB + RssFile (mapped dump and binary pages) up to $((FILE / 1024)) MiB")
fi

# --- case 7: reachability ---------------------------------------------------------------
if [[ " $CASES " == *" reach "* ]]; then
    echo "case 7: reachability scan of a full dump" >&2
    R=$SCRATCH/reach.dmp
    [ -f "$R" ] && [ -z "${FORCE:-}" ] || "$EX/bench-gen" reach "$R"
    cat "$R" >/dev/null
    MEASURE_OUT=/dev/null measure reach-cat cat "$R"
    CAT=$MED
    measure reach-scan "$BIN" analyze -q --scripts reachability -o "$SCRATCH/reach-scan-report" "$R"
    SCAN=$MED SCAN_RSS=$RSS
    measure reach-e2e "$BIN" analyze -q -o "$SCRATCH/reach-report" "$R"
    E2E=$MED E2E_RSS=$RSS
    row "7 reachability: analyze --scripts reachability" "$(size_of "$R") (2 GiB Memory64List, 500k blocks in it)" "$SCAN" "$SCAN_RSS" "cat dump >/dev/null (warm)" "$CAT" "$(ratio "$SCAN" "$CAT")× of cat"
    row "7 reachability: analyze (all scripts, leak section with classes)" "$(size_of "$R")" "$E2E" "$E2E_RSS" "cat dump >/dev/null (warm)" "$CAT" "$(ratio "$E2E" "$CAT")× of cat"
    read -r VM ANON FILE < <(peak_status "$BIN" analyze -q --scripts reachability -o "$SCRATCH/reach-report-status" "$R")
    NOTES+=("reachability, /proc/PID/status sampled every 5 ms: peak VmRSS $((VM / 1024)) MiB = RssAnon (heap, stacks) up to $((ANON / 1024)) MiB + RssFile (mapped dump and binary pages) up to $((FILE / 1024)) MiB")
fi

# --- case 5: ten million allocations ---------------------------------------------------
if [[ " $CASES " == *" huge "* ]]; then
    echo "case 5: 10M allocations (and 1M, 3M of the same shape)" >&2
    H=$SCRATCH/huge.dmp
    [ -f "$H" ] && [ -z "${FORCE:-}" ] || "$EX/bench-gen" huge "$H"
    for n in 1000000 3000000; do
        f=$SCRATCH/scale-$n.dmp
        [ -f "$f" ] && [ -z "${FORCE:-}" ] || "$EX/bench-gen" scale "$n" "$f"
    done
    PER=()
    for n in 1000000 3000000 10000000; do
        f=$SCRATCH/scale-$n.dmp
        [ "$n" = 10000000 ] && f=$H
        cat "$f" >/dev/null
        MEASURE_OUT=/dev/null measure "huge-cat-$n" cat "$f"
        CAT=$MED
        measure "huge-e2e-$n" "$BIN" analyze -q -o "$SCRATCH/huge-report-$n" "$f"
        E2E=$MED E2E_RSS=$RSS
        label=$(numfmt --to=si "$n" | tr -d ' ')
        row "5 huge: analyze (all scripts, HTML+JSON), $label allocations" "$(size_of "$f") ($label allocations, 100k stacks of 8-32 frames, 400 modules)" "$E2E" "$E2E_RSS" "cat dump >/dev/null (warm)" "$CAT" "$(ratio "$E2E" "$CAT")× of cat"
        PER+=("$(awk -v t="$E2E" -v n="$n" 'BEGIN {printf "%.1f", t * 1e9 / n}')")
    done
    measure huge-aggregate "$EX/bench-aggregate" "$H"
    row "5 huge: bench-aggregate (Table::read + leak::build), 10M" "$(size_of "$H")" "$MED" "$RSS" "cat dump >/dev/null (warm)" "$CAT" "$(ratio "$MED" "$CAT")× of cat"
    NOTES+=("huge, bench-aggregate phases (last run): $(cat "$SCRATCH/huge-aggregate.err")")
    read -r VM ANON FILE < <(peak_status "$BIN" analyze -q -o "$SCRATCH/huge-report-status" "$H")
    NOTES+=("huge (10M), /proc/PID/status sampled every 5 ms: peak VmRSS $((VM / 1024)) MiB = RssAnon (heap, stacks) up to $((ANON / 1024)) MiB + RssFile (mapped dump and binary pages) up to $((FILE / 1024)) MiB")
    NOTES+=("huge, end-to-end time per allocation at 1M / 3M / 10M: ${PER[0]} / ${PER[1]} / ${PER[2]} ns (largest / smallest: $(printf '%s\n' "${PER[@]}" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f", hi / lo}'))")
fi

# --- case 6: UMDH snapshot log ----------------------------------------------------------
if [[ " $CASES " == *" umdh "* ]]; then
    echo "case 6: UMDH snapshot log" >&2
    U=$SCRATCH/umdh-$UMDH_ALLOCATIONS.txt
    [ -f "$U" ] && [ -z "${FORCE:-}" ] || "$EX/make-umdh-logs" large "$U" "$UMDH_ALLOCATIONS"
    cat "$U" >/dev/null
    MEASURE_OUT=/dev/null measure umdh-cat cat "$U"
    CAT=$MED
    MEASURE_OUT=/dev/null measure umdh-wc wc -l "$U"
    WC=$MED
    measure umdh-e2e "$BIN" analyze -q -o "$SCRATCH/umdh-report" "$U"
    E2E=$MED E2E_RSS=$RSS
    # The reader alone (umdh::snapshot::parse: no analysis, no report).
    measure umdh-parse "$EX/make-umdh-logs" parse "$U"
    PARSE=$MED PARSE_RSS=$RSS
    IN="$(size_of "$U") ($UMDH_ALLOCATIONS allocations, 20k stacks × 16, 200 modules, 8 heaps)"
    row "6 UMDH snapshot: analyze (all scripts, HTML+JSON)" "$IN" "$E2E" "$E2E_RSS" "cat log >/dev/null (warm)" "$CAT" "$(ratio "$E2E" "$CAT")× of cat"
    row "6 UMDH snapshot: analyze" "$IN" "$E2E" "$E2E_RSS" "wc -l log (warm)" "$WC" "$(ratio "$E2E" "$WC")× of wc -l"
    row "6 UMDH snapshot: reader alone (make-umdh-logs parse)" "$IN" "$PARSE" "$PARSE_RSS" "cat log >/dev/null (warm)" "$CAT" "$(ratio "$PARSE" "$CAT")× of cat"
    read -r VM ANON FILE < <(peak_status "$BIN" analyze -q -o "$SCRATCH/umdh-report-status" "$U")
    NOTES+=("umdh, /proc/PID/status sampled every 5 ms: peak VmRSS $((VM / 1024)) MiB = RssAnon up to $((ANON / 1024)) MiB + RssFile (the log's pages being read, the binary) up to $((FILE / 1024)) MiB")
fi

# --- case 6b: a realistic UMDH snapshot log --------------------------------------------
# ~230 B per allocation: one distinct stack per 5 allocations, 16-32 frames, raw and
# resolved frames (make-umdh-logs realistic; docs/performance.md, case 6).
if [[ " $CASES " == *" umdh-real "* ]]; then
    echo "case 6b: realistic UMDH snapshot log" >&2
    U=$SCRATCH/umdh-real-$UMDH_ALLOCATIONS.txt
    [ -f "$U" ] && [ -z "${FORCE:-}" ] || "$EX/make-umdh-logs" realistic "$U" "$UMDH_ALLOCATIONS"
    cat "$U" >/dev/null
    MEASURE_OUT=/dev/null measure umdh-real-cat cat "$U"
    CAT=$MED
    MEASURE_OUT=/dev/null measure umdh-real-wc wc -l "$U"
    WC=$MED
    measure umdh-real-e2e "$BIN" analyze -q -o "$SCRATCH/umdh-real-report" "$U"
    E2E=$MED E2E_RSS=$RSS
    measure umdh-real-parse "$EX/make-umdh-logs" parse "$U"
    PARSE=$MED PARSE_RSS=$RSS
    NOTES+=("umdh-real reader, all threads: $(tail -n 1 "$SCRATCH/umdh-real-parse.err")")
    # One thread: the CPU time of the work; with the time of the serial merge it
    # gives the serial fraction (Amdahl).
    RAYON_NUM_THREADS=1 measure umdh-real-parse1 "$EX/make-umdh-logs" parse "$U"
    PARSE1=$MED PARSE1_RSS=$RSS
    NOTES+=("umdh-real reader, 1 thread: $(tail -n 1 "$SCRATCH/umdh-real-parse1.err")")
    IN="$(size_of "$U") ($UMDH_ALLOCATIONS allocations, $((UMDH_ALLOCATIONS / 5)) stacks × 16-32, raw and resolved frames, 240 modules, 6 heaps)"
    row "6b realistic UMDH snapshot: analyze (all scripts, HTML+JSON)" "$IN" "$E2E" "$E2E_RSS" "cat log >/dev/null (warm)" "$CAT" "$(ratio "$E2E" "$CAT")× of cat"
    row "6b realistic UMDH snapshot: analyze" "$IN" "$E2E" "$E2E_RSS" "wc -l log (warm)" "$WC" "$(ratio "$E2E" "$WC")× of wc -l"
    row "6b realistic UMDH snapshot: reader alone" "$IN" "$PARSE" "$PARSE_RSS" "cat log >/dev/null (warm)" "$CAT" "$(ratio "$PARSE" "$CAT")× of cat"
    row "6b realistic UMDH snapshot: reader alone, 1 thread" "$IN" "$PARSE1" "$PARSE1_RSS" "reader alone, all threads" "$PARSE" "$(ratio "$PARSE1" "$PARSE")× speed-up"
fi

echo
echo "| case | input | leakdiag (median of $RUNS) | peak RSS | comparison | comparison (median) | ratio |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
[ ${#NOTES[@]} -eq 0 ] || printf -- '- %s\n' "${NOTES[@]}"
echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
