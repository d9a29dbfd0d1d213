#!/bin/sh
# Builds the image and PDB of benchmark case 2 (docs/performance.md): C sources from
# `bench-gen csrc` (FUNCTIONS functions, 1,000 per translation unit, with
# always_inline helpers), compiled by clang-14 for x86_64-w64-mingw32 with CodeView
# debug info at -O1 and linked by lld-14 into bench.exe + bench.pdb, with the DWARF
# stripped, as tests/fixtures/pdb/build.sh does.
#
# usage: bench/build-symbols.sh OUTDIR [FUNCTIONS]   (needs bench-gen built)
set -eu
OUT=$1
FUNCTIONS=${2:-20000}
CC=${CC:-clang-14}
LD=${LD:-/usr/bin/ld.lld-14}
OBJCOPY=${OBJCOPY:-llvm-objcopy-14}
JOBS=${JOBS:-$(nproc)}
GEN=${GEN:-target/release/examples/bench-gen}
GCCLIB=$(ls -d /usr/lib/gcc/x86_64-w64-mingw32/*-posix 2>/dev/null | head -n 1)
if [ -z "$GCCLIB" ]; then
    GCCLIB=$(ls -d /usr/lib/gcc/x86_64-w64-mingw32/* | head -n 1)
fi
target="--target=x86_64-w64-mingw32"
rm -rf "$OUT"
mkdir -p "$OUT/src" "$OUT/obj"
"$GEN" csrc "$OUT/src" "$FUNCTIONS"
# Relative paths, so the PDB does not depend on the scratch folder's location.
cd "$OUT"
ls src/*.c | sed 's|src/\(.*\)\.c|\1|' |
    xargs -P "$JOBS" -I{} $CC $target -g -gcodeview -O1 -c -o obj/{}.o src/{}.c
$CC $target -fuse-ld="$LD" -L"$GCCLIB" -static-libgcc -Wl,--no-insert-timestamp \
    -o bench.exe obj/*.o -Wl,--pdb=bench.pdb
$OBJCOPY --strip-debug bench.exe
ls -l bench.exe bench.pdb
