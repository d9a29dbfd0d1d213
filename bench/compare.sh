#!/usr/bin/env bash
# Before/after timing of `leakdiag analyze` on the same dumps in one run, interleaved
# with a warm `cat` of each dump (docs/performance.md, case 5):
#
#   bash bench/compare.sh OLD_LEAKDIAG NEW_LEAKDIAG DUMP...
#
# Each round runs, per dump: cat DUMP >/dev/null, OLD analyze, NEW analyze; RUNS
# rounds (default 5); prints the median wall time of each, the ratios to cat, and the
# load average after each dump's rounds. The two reports of each dump are compared
# byte for byte (JSON and HTML) and a difference is reported. Output goes to $SCRATCH
# (default bench/scratch).
set -euo pipefail
OLD=$(realpath "$1") NEW=$(realpath "$2"); shift 2
SCRATCH=${SCRATCH:-bench/scratch}
RUNS=${RUNS:-5}
mkdir -p "$SCRATCH"
now() { date +%s%N; }
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b-a)/1e9}'; }
echo "| dump | size | cat (median) | before | after | before ÷ cat | after ÷ cat | before ÷ after | load after |"
echo "|---|---|---|---|---|---|---|---|---|"
for d in "$@"; do
    name=$(basename "$d" .dmp)
    cat "$d" >/dev/null
    c=() o=() n=()
    for _ in $(seq "$RUNS"); do
        t0=$(now); cat "$d" >/dev/null; t1=$(now)
        "$OLD" analyze -q -o "$SCRATCH/compare-old-$name" "$d"; t2=$(now)
        "$NEW" analyze -q -o "$SCRATCH/compare-new-$name" "$d"; t3=$(now)
        c+=("$(secs "$t0" "$t1")") o+=("$(secs "$t1" "$t2")") n+=("$(secs "$t2" "$t3")")
    done
    echo "$name: cat ${c[*]}; before ${o[*]}; after ${n[*]}" >&2
    diff -r "$SCRATCH/compare-old-$name" "$SCRATCH/compare-new-$name" >/dev/null ||
        echo "$name: the reports DIFFER" >&2
    C=$(printf '%s\n' "${c[@]}" | median) O=$(printf '%s\n' "${o[@]}" | median) N=$(printf '%s\n' "${n[@]}" | median)
    printf '| %s | %s | %s s | %s s | %s s | %s× | %s× | %s× | %s |\n' "$name" \
        "$(numfmt --to=iec --suffix=B "$(stat -c %s "$d")")" "$C" "$O" "$N" \
        "$(awk -v a="$O" -v b="$C" 'BEGIN {printf "%.0f", a/b}')" \
        "$(awk -v a="$N" -v b="$C" 'BEGIN {printf "%.0f", a/b}')" \
        "$(awk -v a="$O" -v b="$N" 'BEGIN {printf "%.1f", a/b}')" \
        "$(cut -d' ' -f1-3 /proc/loadavg)"
done
