#!/bin/sh
# Prints the folder of MinHook's C sources (src/, include/), fetched by cargo as
# part of the `minhook` crate's package (version pinned in minhook/Cargo.lock).
# The sources stay in cargo's registry cache; nothing is copied into this tree.
set -eu
cd "$(dirname "$0")/minhook"
cargo fetch --locked --quiet >&2
cargo metadata --locked --format-version 1 2>/dev/null | python3 -c '
import json, os, sys
m = json.load(sys.stdin)
p = [p for p in m["packages"] if p["name"] == "minhook"][0]
print(os.path.join(os.path.dirname(p["manifest_path"]), "minhook"))'
