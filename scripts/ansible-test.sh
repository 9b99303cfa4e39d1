#!/usr/bin/env bash
# Runs ansible-test (sanity, units) on a copy of this checkout laid out as
# ansible_collections/zerodowntime/rollout, which ansible-test requires (a symlink will not do).
# Usage: scripts/ansible-test.sh sanity|units [extra ansible-test args]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-.venv}
PYVER=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PIPVER=$("$VENV/bin/python" -c 'import re, ansible_test._internal.python_requirements as m, inspect; print(re.search(r"pip=.(\d+\.\d+)", inspect.getsource(m.get_venv_packages)).group(1))')

# ansible-test downloads get-pip.py from ci-files.testing.ansible.com, which is unreachable here.
CACHE="$HOME/.ansible/test/cache"
mkdir -p "$CACHE"
cp scripts/get_pip_shim.py "$CACHE/get_pip_${PIPVER//./_}.py"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/zdt-ansible-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
DEST="$WORK/ansible_collections/zerodowntime/rollout"
mkdir -p "$DEST"
# Only what ships (galaxy.yml build_ignore): demo/, bench/, scripts/ are development tools.
git ls-files -z --cached --others --exclude-standard -- . ':!demo' ':!bench' ':!scripts' ':!.ci' \
    | tar -C "$ROOT" --null -T - -cf - | tar -C "$DEST" -xf -
# amazon.aws next to us, so that import sanity of the AWS modules resolves it.
mkdir -p "$WORK/ansible_collections/amazon"
cp -a .cache/deps/ansible_collections/amazon/aws "$WORK/ansible_collections/amazon/aws"

cd "$DEST"
CMD=$1; shift
# pip's download chatter drowns the findings; keep ansible-test's own lines.
"$ROOT/$VENV/bin/ansible-test" "$CMD" --venv --python "$PYVER" --color no "$@" 2>&1 \
    | grep --line-buffered -v -E "^(WARNING: Location 'file:|Looking in|Collecting|Downloading|Installing|  (Attempting|Found existing|Uninstalling|Successfully uninstalled)|Successfully installed| *━|Requirement already)"
