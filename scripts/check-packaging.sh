#!/usr/bin/env bash
# Proves the packaging: build the collection tarball, install it into an empty collections path
# (plus the offline amazon.aws), and render module docs from the installed copy only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d "${TMPDIR:-/tmp}/zdt-packaging.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
BIN=$ROOT/.venv/bin

"$BIN/ansible-galaxy" collection build --force --output-path "$WORK/dist" >/dev/null
TARBALL=$(find "$WORK/dist" -name 'zerodowntime-rollout-*.tar.gz')
echo "built $(basename "$TARBALL") ($(du -h "$TARBALL" | cut -f1))"

# Nothing from the development tree may ship.
if tar -tzf "$TARBALL" | grep -E '^(\.venv|\.cache|\.git/|demo/|bench/|scripts/|tests/output)' ; then
    echo "ERROR: development files in the tarball (above)"; exit 1
fi

mkdir -p "$WORK/installed/ansible_collections/amazon"
cp -a .cache/deps/ansible_collections/amazon/aws "$WORK/installed/ansible_collections/amazon/aws"
"$BIN/ansible-galaxy" collection install --offline --no-deps -p "$WORK/installed" "$TARBALL" >/dev/null

export ANSIBLE_COLLECTIONS_PATH="$WORK/installed" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
cd "$WORK"   # away from the source tree
for m in $(find "$ROOT/plugins/modules" -name '*.py' ! -name '__init__.py' -printf '%f\n' | sed 's/\.py$//' | sort); do
    out=$("$BIN/ansible-doc" -t module "zerodowntime.rollout.$m")
    grep -q "EXAMPLES" <<<"$out" || { echo "ERROR: ansible-doc for $m has no EXAMPLES"; exit 1; }
    src=$("$BIN/ansible-doc" --json "zerodowntime.rollout.$m" | "$BIN/python" -c 'import json,sys; d=json.load(sys.stdin); print(list(d.values())[0]["doc"]["filename"])')
    case "$src" in "$WORK"/*) ;; *) echo "ERROR: $m documented from $src, not the installed copy"; exit 1;; esac
    echo "ansible-doc zerodowntime.rollout.$m: ok (from the installed copy)"
done
for f in $(find "$ROOT/plugins/filter" -name '*.py' -printf '%f\n' | sed 's/\.py$//' | sort); do
    "$BIN/ansible-doc" -t filter "zerodowntime.rollout.$f" | grep -q "EXAMPLES" || { echo "ERROR: no docs for filter $f"; exit 1; }
    echo "ansible-doc -t filter zerodowntime.rollout.$f: ok"
done
"$BIN/ansible-doc" -t role zerodowntime.rollout.rolling_update | grep -q "rolling_update_version" \
    || { echo "ERROR: role argument spec not rendered"; exit 1; }
echo "ansible-doc -t role zerodowntime.rollout.rolling_update: ok"
# The playbooks ship and resolve by their FQCN from the installed copy.
for pb in rolling_update plan; do
    "$BIN/ansible-playbook" --syntax-check -i localhost, "zerodowntime.rollout.$pb" >/dev/null
    echo "ansible-playbook --syntax-check zerodowntime.rollout.$pb: ok"
done
