#!/bin/bash
# bench.sh - allocation throughput (malloc/free pairs from one call site) of
# build/bench.exe under Wine, without and with the tracker.
# Usage: bench.sh [PAIRS]   (default 1000000)
# With LDTRACK_STRESS=1 it also runs 4 threads x PAIRS under the tracker
# with a dump every second (at most 5): a locking/deadlock stress test whose
# dumps are checked with check_dump.py.
# Environment: LDTRACK_WINEPREFIX=DIR reuses a prefix (default: fresh temp one).
set -euo pipefail
cd "$(dirname "$0")"
N=${1:-1000000}
make -s all
export WINEDEBUG=-all DISPLAY= WINEDLLOVERRIDES="mscoree,mshtml="
if [ -n "${LDTRACK_WINEPREFIX:-}" ]; then
    export WINEPREFIX=$LDTRACK_WINEPREFIX; CLEAN_PREFIX=
else
    export WINEPREFIX=$(mktemp -d /tmp/ldtrack-wine.XXXXXX); CLEAN_PREFIX=$WINEPREFIX
fi
cleanup() { wineserver -k >/dev/null 2>&1 || true; [ -z "$CLEAN_PREFIX" ] || rm -rf "$CLEAN_PREFIX"; }
trap cleanup EXIT
wine wineboot -i >/dev/null 2>&1
wineserver -w
wineserver -p 60 >/dev/null 2>&1 &
p=$(readlink -f build/bench.exe); BENCH="Z:${p//\//\\}"
o=$(readlink -f build); OUTW="Z:${o//\//\\}"
wine build/bench.exe "$N" >/dev/null            # warm-up (page cache, wineserver)
plain=$(wine build/bench.exe "$N" | tr -d '\r')
tracked=$(wine build/ldtrack.exe run --out "$OUTW" -- "$BENCH" "$N" 2>/dev/null | tr -d '\r')
echo "without tracker: $plain"
echo "with tracker:    $tracked"
a=$(sed -n 's/.*allocs_per_sec=\([0-9]*\).*/\1/p' <<<"$plain")
b=$(sed -n 's/.*allocs_per_sec=\([0-9]*\).*/\1/p' <<<"$tracked")
[ -n "$a" ] && [ -n "$b" ] && echo "slowdown: $(echo "scale=1; $a / $b" | bc)x"
if [ -n "${LDTRACK_STRESS:-}" ]; then
    S=build/stress-out; rm -rf "$S"; mkdir -p "$S"; s=$(readlink -f "$S")
    wine build/ldtrack.exe run --out "Z:${s//\//\\}" --dump-interval 1 --max-dumps 5 -- "$BENCH" "$N" 4 2>/dev/null | tr -d '\r'
    for f in "$S"/*.dmp; do python3 check_dump.py "$f" | head -2; done
fi
