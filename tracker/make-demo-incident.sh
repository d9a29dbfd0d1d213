#!/bin/bash
# make-demo-incident.sh - remakes examples/demo-incident/ from a real run: builds the
# tracker and the demo, runs tracker/test.sh under Wine (three dumps of leakyapp.exe
# after 100, 200 and 400 requests), and copies the three dumps with the PDBs and
# images of the demo's modules next to them.
set -euo pipefail
cd "$(dirname "$0")"
./test.sh
DEST=../examples/demo-incident
rm -rf "$DEST/dumps" "$DEST/symbols"
mkdir -p "$DEST/dumps" "$DEST/symbols"
for k in 1 2 3; do
    src=$(ls build/test-out/leakyapp_*_$k.dmp)
    cp "$src" "$DEST/dumps/leakyapp_$k.dmp"
done
for f in leakyapp.exe leakyapp.pdb odbcvend.dll odbcvend.pdb ucrtvend.dll ucrtvend.pdb ldtrack.dll ldtrack.pdb; do
    cp "build/$f" "$DEST/symbols/"
done
echo "wrote $DEST"
