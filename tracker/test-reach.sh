#!/bin/bash
# test-reach.sh OUTDIR - the reachability test program under Wine.
#
# Builds (if needed), runs demo/reach.c under
# "ldtrack run --full --dump-interval 4 --max-dumps 1 --out OUTDIR", and while
# it waits takes a full dump from outside the process
# ("ldtrack dump PID --full -o OUTDIR/reach.dmp") and waits for the rule dump
# (reach_<pid>_1.dmp, which ldtrack.dll has ldtrack.exe write from outside the
# process too); then lets it exit.  Leaves
#   OUTDIR/reach.dmp             the full dump (allocation stream 1.3)
#   OUTDIR/reach.exe, reach.pdb  the program and its PDB (for -s OUTDIR)
#   OUTDIR/truth.txt             the program's truth lines (format: demo/reach.c)
#   OUTDIR/reach.log, check.txt  the program's output, check_dump.py's output
# and checks the dump with check_dump.py: well formed, the tracker's regions
# declared, every block of the truth present at its address (--truth), and
# the classes of the truth lines hold under a conservative scan (--reach);
# the rule dump the same way, and its copies of block addresses outside the
# declared regions (--copies) must be at most reach.dmp's + 8 (the two
# dumps of one state differ by a copy or two in Wine's own memory; a full rule
# dump written inside the process left 16 to 21 more, in dbghelp's buffers).
#
# Environment as test.sh: LDTRACK_WINEPREFIX (reuse a prefix), LDTRACK_BUILD.
set -euo pipefail
[ $# = 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
mkdir -p "$1"
OUTDIR=$(readlink -f "$1")
cd "$(dirname "$0")"
B=${LDTRACK_BUILD:-build}

winpath() { local p; p=$(readlink -f "$1"); echo "Z:${p//\//\\}"; }
fail() { echo "FAIL: $*"; exit 1; }

for tool in clang-14 ld.lld-14 llvm-dlltool-14 x86_64-w64-mingw32-windres cargo wine wineserver python3 make; do
    command -v "$tool" >/dev/null || fail "$tool missing: apt-get install -y clang-14 lld-14 llvm-14 mingw-w64 wine wine64 python3 make (and cargo)"
done
make -s B="$B" all

export WINEDEBUG=-all DISPLAY= WINEDLLOVERRIDES="mscoree,mshtml="
if [ -n "${LDTRACK_WINEPREFIX:-}" ]; then
    export WINEPREFIX=$LDTRACK_WINEPREFIX
    CLEAN_PREFIX=
else
    export WINEPREFIX=$(mktemp -d /tmp/ldtrack-wine.XXXXXX)
    CLEAN_PREFIX=$WINEPREFIX
fi
cleanup() {
    wineserver -k >/dev/null 2>&1 || true
    if [ -n "$CLEAN_PREFIX" ]; then rm -rf "$CLEAN_PREFIX"; fi
}
trap cleanup EXIT
wine wineboot -i >/dev/null 2>&1 || fail "wineboot"
wineserver -w
wineserver -p 60 >/dev/null 2>&1 &

rm -f "$OUTDIR"/reach.dmp "$OUTDIR"/reach_*.dmp "$OUTDIR"/go "$OUTDIR"/truth.txt "$OUTDIR"/check*.txt \
    "$OUTDIR"/reach.log   # before the run: an old log would be read as this one's
cp "$B/reach.exe" "$B/reach.pdb" "$OUTDIR/"
OW=$(winpath "$OUTDIR")
LOG=$OUTDIR/reach.log
wine "$B/ldtrack.exe" run --full --dump-interval 4 --max-dumps 1 --out "$OW" -- \
    "$(winpath "$B/reach.exe")" --wait-dir "$OW" >"$LOG" 2>&1 &
R=$!
for _ in $(seq 1800); do
    grep -q "reach ready" "$LOG" 2>/dev/null && break
    kill -0 $R 2>/dev/null || { cat "$LOG"; fail "reach.exe exited before it was ready"; }
    sleep 0.1
done
grep -q "reach ready" "$LOG" || { cat "$LOG"; fail "reach.exe never got ready"; }
P=$(sed -n 's/.*reach ready pid=\([0-9]*\).*/\1/p' "$LOG" | head -1)
wine "$B/ldtrack.exe" dump "$P" --full -o "$OW\\reach.dmp" >"$OUTDIR/dump.log" 2>&1 \
    || { cat "$OUTDIR/dump.log"; touch "$OUTDIR/go"; fail "ldtrack dump --full"; }
for _ in $(seq 1200); do
    ls "$OUTDIR" | grep -qE '^reach_[0-9]+_1\.dmp$' && break
    sleep 0.1
done
touch "$OUTDIR/go"
wait $R || fail "reach.exe under ldtrack run exited with $?"
RULE=$(ls "$OUTDIR" | grep -E '^reach_[0-9]+_1\.dmp$' || true)
[ -n "$RULE" ] || { cat "$LOG"; fail "no rule dump"; }
grep -q "wrote .*reach_${P}_1.dmp (full memory, from outside the process)" "$LOG" \
    || { cat "$LOG"; fail "the rule dump was not written from outside the process"; }
tr -d '\r' <"$LOG" | grep '^truth ' >"$OUTDIR/truth.txt" || fail "no truth lines in $LOG"

python3 check_dump.py "$OUTDIR/reach.dmp" --truth "$OUTDIR/truth.txt" --expect-regions --copies --reach >"$OUTDIR/check.txt" 2>&1 \
    || { cat "$OUTDIR/check.txt"; fail "check_dump.py"; }
grep -E "regions|truth:|copies|reach" "$OUTDIR/check.txt"
STRAY=$(sed -n 's/.*in other blocks, \([0-9]*\) stray.*/\1/p' "$OUTDIR/check.txt")
# The rule dump's truth holds only if it was taken after the program was ready
# (the log says which came first; on a very slow machine it may not be).
RULE_ARGS=(--expect-regions --copies --max-stray "$((STRAY + 8))")
if tr -d '\r' <"$LOG" | grep -E "reach ready|rule dump 1" | head -1 | grep -q "reach ready"; then
    RULE_ARGS+=(--truth "$OUTDIR/truth.txt" --reach)
else
    echo "rule dump taken before the program was ready: its classes are not checked"
fi
python3 check_dump.py "$OUTDIR/$RULE" "${RULE_ARGS[@]}" >"$OUTDIR/check-rule.txt" 2>&1 \
    || { cat "$OUTDIR/check-rule.txt"; fail "check_dump.py (rule dump)"; }
grep -E "copies|reach:" "$OUTDIR/check-rule.txt" | sed 's/^/rule dump: /'
echo "reach: $OUTDIR/reach.dmp ($(stat -c %s "$OUTDIR/reach.dmp") bytes), truth $(wc -l <"$OUTDIR/truth.txt") cases"
echo "PASS"
