#!/bin/bash
# bench.sh - the tracker's overhead under Wine: allocation throughput of
# bench.exe without and with the tracker (default depth 32), best of R runs
# each (the machine is shared; the best run is the least disturbed).
#   1. tight loop: 1 thread, PAIRS malloc/free pairs from one call site
#   2. mixed: 8 threads, each PAIRS/4 steps of malloc/calloc/realloc/HeapAlloc
#      with 256 live blocks per thread, freed long after they were made
# With LDTRACK_UNWIND=system the tracker uses Wine's RtlCaptureStackBackTrace
# (for comparison with its own cached unwinder).
# Usage: bench.sh [PAIRS] [R]   (defaults 1000000, 5)
# Environment: LDTRACK_WINEPREFIX=DIR reuses a prefix (default: a fresh one);
# LDTRACK_BUILD=DIR builds into DIR (default build/).
set -euo pipefail
cd "$(dirname "$0")"
N=${1:-1000000}
R=${2:-5}
B=${LDTRACK_BUILD:-build}
make -s B="$B" all
# shellcheck source=wine-env.sh
source ./wine-env.sh
wine_prefix
wine wineboot -i >/dev/null 2>&1
wineserver -w
wineserver -p 60 >/dev/null 2>&1 &
p=$(readlink -f "$B/bench.exe"); BENCH="Z:${p//\//\\}"
best() {  # best ARGS...: highest allocs_per_sec of R runs
    local top=0 v
    for _ in $(seq "$R"); do
        v=$("$@" 2>/dev/null | tr -d '\r' | sed -n 's/.*allocs_per_sec=\([0-9]*\).*/\1/p')
        [ -n "$v" ] && [ "$v" -gt "$top" ] && top=$v
    done
    echo "$top"
}
wine "$B/bench.exe" 1000 >/dev/null            # warm-up (page cache, wineserver)
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(wine --version)"
for mode in tight mixed; do
    if [ $mode = tight ]; then args=("$N" 1); else args=($((N / 4)) 8 mixed); fi
    a=$(best wine "$B/bench.exe" "${args[@]}")
    b=$(best wine "$B/ldtrack.exe" run -- "$BENCH" "${args[@]}")
    echo "$mode (${args[*]}): without tracker $a/s, with tracker $b/s: $(echo "scale=1; $a / $b" | bc)x slower"
done
