#!/usr/bin/env bash
# The benchmarks that need more cores than a developer machine, in one run on a
# machine without the toolchain (the numbers of docs/performance.md marked "16
# cores"): case 7 (reachability) on all cores and pinned to two, the batch -j
# scaling, case 5 (1M / 3M / 10M allocations), case 6 (UMDH snapshot log) and
# case 6b (a realistic 1.16 GB UMDH log: issue 15's target, at most 3x a warm cat).
#
#   PREBUILT=DIR bash bench/device.sh    DIR: leakdiag, bench-gen, bench-aggregate,
#                                        make-umdh-logs (release builds) and, when
#                                        the machine lacks GNU time, `time`
#
# Inputs are generated into $SCRATCH (default /tmp/ldbench); results go to standard
# output as the Markdown tables of bench/run.sh and bench/scaling.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PREBUILT=$(cd "${PREBUILT:?PREBUILT=DIR with the release binaries}" && pwd)
export PREBUILT
[ -x /usr/bin/time ] || export TIME=$PREBUILT/time
export SCRATCH=${SCRATCH:-/tmp/ldbench}
export RUNS=${RUNS:-3}
echo "## $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
echo
echo "### Case 7, all cores"
CASES=reach bash bench/run.sh
echo
echo "### Case 7, two cores (taskset -c 0,1)"
CASES=reach taskset -c 0,1 bash bench/run.sh
echo
echo "### Batch scaling"
BIN=$PREBUILT/leakdiag GEN=$PREBUILT/bench-gen SCRATCH=$SCRATCH/scaling bash bench/scaling.sh
echo
echo "### Case 5"
CASES=huge bash bench/run.sh
echo
echo "### Case 6"
CASES=umdh bash bench/run.sh
echo
echo "### Case 6b"
CASES=umdh-real bash bench/run.sh
