#!/usr/bin/env bash
# Run every molecule scenario (molecule/<name>/) at the same time, each in an ephemeral directory of its
# own, and fail if any fails. The scenarios use disjoint loopback addresses (molecule_fleet_first_address)
# and their own HAProxy, moto server and fleet folder, so they do not see each other; most of a scenario's
# time is spent waiting (drains, readiness, health checks), so running them side by side saves wall time.
# Each scenario's output is printed whole, one after the other, once all have finished.
#
# Usage: scripts/molecule-all.sh [scenario ...]   (default: every folder under molecule/)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
molecule=${MOLECULE:-.venv/bin/molecule}
if [ "$#" -gt 0 ]; then
    scenarios=("$@")
else
    scenarios=()
    for dir in molecule/*/; do
        [ -f "$dir/molecule.yml" ] && scenarios+=("$(basename "$dir")")
    done
fi
base=$(mktemp -d "${TMPDIR:-/tmp}/molecule-all.XXXXXX")
declare -A pids
for name in "${scenarios[@]}"; do
    mkdir -p "$base/$name"
    MOLECULE_EPHEMERAL_DIRECTORY="$base/$name/ephemeral" \
        "$molecule" test -s "$name" </dev/null >"$base/$name/log" 2>&1 &
    pids[$name]=$!
    echo "==> molecule scenario $name started (pid ${pids[$name]}, log $base/$name/log)"
done
failed=()
for name in "${scenarios[@]}"; do
    if wait "${pids[$name]}"; then rc=0; else rc=$?; fi
    echo "==================== molecule scenario $name: rc=$rc ===================="
    cat "$base/$name/log"
    [ "$rc" -eq 0 ] || failed+=("$name")
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "molecule: FAILED scenario(s): ${failed[*]} (logs kept in $base)"
    exit 1
fi
rm -rf "$base"
echo "molecule: all ${#scenarios[@]} scenario(s) passed: ${scenarios[*]}"
