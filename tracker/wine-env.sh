# Shared by the tracker's Wine scripts (test.sh, test-truth.sh, test-reach.sh):
# `source wine-env.sh`, then `require_tools TOOL... -- PACKAGES` and `wine_prefix`.

winpath() { local p; p=$(readlink -f "$1"); echo "Z:${p//\//\\}"; }
fail() { echo "FAIL: $*"; exit 1; }

# require_tools TOOL... -- HINT: fails naming the first missing tool and HINT (the
# packages to install).
require_tools() {
    local tools=() hint
    while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do tools+=("$1"); shift; done
    shift
    hint=$*
    for tool in "${tools[@]}"; do
        command -v "$tool" >/dev/null || fail "$tool missing: apt-get install -y $hint"
    done
}

# wine_prefix: quiet Wine in its own prefix ($LDTRACK_WINEPREFIX, else a fresh one
# that is removed on exit), its server stopped on exit.
wine_prefix() {
    export WINEDEBUG=-all DISPLAY= WINEDLLOVERRIDES="mscoree,mshtml="
    if [ -n "${LDTRACK_WINEPREFIX:-}" ]; then
        export WINEPREFIX=$LDTRACK_WINEPREFIX
        CLEAN_PREFIX=
    else
        WINEPREFIX=$(mktemp -d /tmp/ldtrack-wine.XXXXXX)
        export WINEPREFIX
        CLEAN_PREFIX=$WINEPREFIX
    fi
    trap wine_cleanup EXIT
}

wine_cleanup() {
    wineserver -k >/dev/null 2>&1 || true
    if [ -n "${CLEAN_PREFIX:-}" ]; then rm -rf "$CLEAN_PREFIX"; fi
}
