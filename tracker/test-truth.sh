#!/bin/bash
# test-truth.sh - end-to-end tests of issue 11's table under Wine, with
# demo/truth.c, a program that prints its own truth about its blocks.  Each
# run's dump is compared with that truth exactly (check_dump.py --truth).
#
#  1. scenarios: every row of the table (Local/Global pairs, HeapDestroy,
#     HeapFree on the wrong heap, a msvcrt block given to ucrtbase's free,
#     HeapAlloc through GetProcAddress, a DLL importing API sets, BSTRs with
#     realloc and the cache, DllMain of a DLL loaded later), realloc in place
#     and moving, aligned, COM task memory, virtual memory, and the audit:
#     every allocation entry point of 15 DLLs called through GetProcAddress.
#  2. stress: 8 threads freeing each other's blocks; 2 dumps during the run
#     (well formed), then one exact dump at the end.
#  3. table full: --max-allocations 2000 and 5000 blocks kept: honest counts.
#  4. ldtrack dump while the target exits: a prompt error, no file left.
#  5. --dump-at-exit: a dump named <stem>_<pid>_exit.dmp, exact.
#
# Environment as test.sh: LDTRACK_WINEPREFIX, LDTRACK_BUILD.
set -euo pipefail
cd "$(dirname "$0")"
B=${LDTRACK_BUILD:-build}
T0=$(date +%s.%N)

# shellcheck source=wine-env.sh
source ./wine-env.sh

require_tools clang-14 ld.lld-14 llvm-dlltool-14 wine wineserver python3 make bc cargo -- "clang-14 lld-14 llvm-14 mingw-w64 wine wine64 python3 make bc"
make -s B="$B" all

wine_prefix
wine wineboot -i >/dev/null 2>&1 || fail "wineboot"
wineserver -w
wineserver -p 60 >/dev/null 2>&1 &

OUT=$B/truth-out
rm -rf "$OUT"
mkdir -p "$OUT"
PASSED=0
FAILED=0
check() {  # check NAME check_dump.py-args...
    local name=$1; shift
    if python3 check_dump.py "$@" >"$OUT/$name.check" 2>&1; then
        PASSED=$((PASSED + 1)); { grep -E "truth:|PASS" "$OUT/$name.check" || echo "well formed"; } | tail -1 | sed "s/^/$name: /"
    else
        FAILED=$((FAILED + 1)); echo "$name: FAILED"; grep -E "FAIL|MALFORMED" "$OUT/$name.check" || cat "$OUT/$name.check"
    fi
}
waitfor() {  # waitfor LOG PATTERN PID
    for _ in $(seq 1800); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || { cat "$1"; fail "exited before '$2'"; }
        sleep 0.1
    done
    cat "$1"; fail "never saw '$2' in $1"
}
pid_of() { sed -n "s/.*$2 pid=\([0-9]*\).*/\1/p" "$1" | head -1; }

# 1. scenarios
D=$OUT/scenarios; mkdir -p "$D"; DW=$(winpath "$D")
wine "$B/ldtrack.exe" run -- "$(winpath "$B/truth.exe")" scenarios --wait-dir "$DW" >"$D/log" 2>&1 &
R=$!
waitfor "$D/log" "scenarios done" $R
P=$(pid_of "$D/log" "scenarios done")
wine "$B/ldtrack.exe" dump "$P" -o "$DW\\scenarios.dmp" >/dev/null || fail "dump scenarios"
touch "$D/go"
wait $R || fail "scenarios run exited with $?"
grep -E "^(audit|HeapFree|ucrtbase|HeapReAlloc|error)" "$D/log" || true
check scenarios "$D/scenarios.dmp" --truth "$D/log"

# 2. stress: 8 threads, frees on other threads, 2 dumps during the run
D=$OUT/stress; mkdir -p "$D"; DW=$(winpath "$D")
wine "$B/ldtrack.exe" run -- "$(winpath "$B/truth.exe")" stress --wait-dir "$DW" >"$D/log" 2>&1 &
R=$!
waitfor "$D/log" "stress running" $R
P=$(pid_of "$D/log" "stress running")
for k in 1 2; do
    wine "$B/ldtrack.exe" dump "$P" -o "$DW\\during$k.dmp" >/dev/null || fail "dump during stress"
    check "stress-during$k" "$D/during$k.dmp"
done
touch "$D/stop"
waitfor "$D/log" "stress done" $R
wine "$B/ldtrack.exe" dump "$P" -o "$DW\\stress.dmp" >/dev/null || fail "dump after stress"
touch "$D/go"
wait $R || fail "stress run exited with $?"
check stress "$D/stress.dmp" --truth "$D/log"

# 3. table full: 5000 blocks kept, room for 2000 records
D=$OUT/full; mkdir -p "$D"; DW=$(winpath "$D")
wine "$B/ldtrack.exe" run --max-allocations 2000 -- "$(winpath "$B/truth.exe")" full 5000 --wait-dir "$DW" >"$D/log" 2>&1 &
R=$!
waitfor "$D/log" "full done" $R
P=$(pid_of "$D/log" "full done")
wine "$B/ldtrack.exe" dump "$P" -o "$DW\\full.dmp" >/dev/null || fail "dump full"
touch "$D/go"
wait $R || fail "full run exited with $?"
check full "$D/full.dmp" --truth "$D/log"

# 4. ldtrack dump while the target exits: the tracker is made slow to answer
# (test hook), the target exits 2 s after start; the dump must fail promptly
# and leave no file.
D=$OUT/exit; mkdir -p "$D"; DW=$(winpath "$D")
LDTRACK_TEST_SNAPSHOT_DELAY_MS=30000 wine "$B/ldtrack.exe" run -- "$(winpath "$B/truth.exe")" exit-after 2000 >"$D/log" 2>&1 &
R=$!
waitfor "$D/log" "pid=" $R
P=$(sed -n 's/^pid=\([0-9]*\).*/\1/p' "$D/log")
S0=$(date +%s.%N)
if wine "$B/ldtrack.exe" dump "$P" -o "$DW\\exit.dmp" >"$D/dump.log" 2>&1; then
    echo "exit: ldtrack dump succeeded on an exiting process"; FAILED=$((FAILED + 1))
else
    S1=$(date +%s.%N)
    E=$(echo "$S1 - $S0" | bc)
    if [ "$(echo "$E < 7" | bc)" = 1 ] && [ -z "$(ls "$D" | grep dmp)" ] && grep -q "exited" "$D/dump.log"; then
        PASSED=$((PASSED + 1)); echo "exit: prompt error after $E s (target exited 2 s after start): $(tr -d '\r' <"$D/dump.log")"
    else
        FAILED=$((FAILED + 1)); echo "exit: took $E s, files: $(ls "$D"), message: $(cat "$D/dump.log")"
    fi
fi
wait $R || true

# 5. --dump-at-exit
D=$OUT/atexit; mkdir -p "$D"; DW=$(winpath "$D")
touch "$D/go"
wine "$B/ldtrack.exe" run --dump-at-exit --out "$DW" -- "$(winpath "$B/truth.exe")" scenarios --wait-dir "$DW" >"$D/log" 2>&1 || fail "dump-at-exit run"
F=$(ls "$D" | grep -E '^truth_[0-9]+_exit\.dmp$' || true)
if [ -n "$F" ]; then check atexit "$D/$F" --truth "$D/log"; else echo "atexit: no dump: $(ls "$D")"; FAILED=$((FAILED + 1)); fi

T1=$(date +%s.%N)
echo "test-truth duration: $(echo "$T1 - $T0" | bc) s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
