#!/usr/bin/env bash
# Creates the development environments idempotently (run by `make venv`):
#   .venv      newest Python >= 3.12 with the pinned dev tools (requirements/dev.txt + constraints.txt)
#   .venv-min  the oldest ansible-core that meta/runtime.yml admits (requirements/min.txt)
#   .cache/deps/ansible_collections/amazon/aws   amazon.aws, offline, taken from the `ansible` wheel
# and installs HAProxy, socat, shellcheck, Chromium, and openssh-server and sudo (for the real-host test fleet,
# tests/integration/vmhosts/) with apt where they are missing and apt can be used. No service is started or
# enabled on this machine by it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { printf '==> %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# --- find a Python ----------------------------------------------------------------------------
# pyenv shims exist for versions that are installed but not selected; they fail when run, so every
# candidate is executed before it is trusted, and pyenv's version folders are searched directly.
works() { "$1" -c 'import sys, venv, ssl' >/dev/null 2>&1; }
find_python() {  # $1 = major.minor
    local v=$1 c
    for c in "python$v" "/usr/bin/python$v" "/usr/local/bin/python$v" \
             "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/"python$v" \
             ; do
        if works "$c"; then command -v "$c" 2>/dev/null || echo "$c"; return 0; fi
    done
    return 1
}

PYTHON=${PYTHON:-}
DEV_REQ=requirements/dev.txt
DEV_CON=requirements/constraints.txt
if [ -z "$PYTHON" ]; then
    for v in 3.14 3.13 3.12; do
        if PYTHON=$(find_python "$v"); then break; fi
        PYTHON=
    done
fi
if [ -z "$PYTHON" ]; then
    if PYTHON=$(find_python 3.11); then
        say "no Python >= 3.12 found; falling back to $PYTHON with ansible-core 2.19 (requirements/dev-py311.txt)"
        DEV_REQ=requirements/dev-py311.txt
        DEV_CON=/dev/null
    else
        die "no usable Python found. Install Python 3.12 or newer (e.g. 'apt-get install python3.12-venv' or 'pyenv install 3.13'), or set PYTHON=/path/to/python3.12"
    fi
fi

# The stamp hashes the contents of the requirement files among the pip arguments (a bare `cat "$@"`
# would stop at the first option, `-r`, and hash nothing), so editing a pin updates the venv.
stamp_of() { local a; for a in "$@"; do [ ! -f "$a" ] || cat "$a"; done | sha256sum | cut -c1-16; }

make_venv() {  # $1 = dir, $2 = python, rest = pip install args
    local dir=$1 py=$2; shift 2
    local want; want="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') $(stamp_of "$@" 2>/dev/null; printf '%s' "$*" | sha256sum | cut -c1-8)"
    if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$want" ] && [ -x "$dir/bin/python" ]; then
        say "$dir is up to date ($("$dir/bin/python" --version))"
        return 0
    fi
    local pyver; pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [ -x "$dir/bin/python" ] && [ "$("$dir/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$pyver" ]; then
        # Same Python, changed pins: update in place (processes using the venv keep working).
        say "updating $dir to the pinned requirements"
    else
        say "creating $dir with $py"
        rm -rf "$dir"
        "$py" -m venv "$dir"
        "$dir/bin/python" -m pip install -q --disable-pip-version-check -U pip
    fi
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
    echo "$want" > "$dir/.stamp"
}

# shellcheck disable=SC2046
make_venv .venv "$PYTHON" -r "$DEV_REQ" $( [ "$DEV_CON" = /dev/null ] || echo "-c $DEV_CON" )

# ansible-core 2.17 runs on controller Python 3.10 - 3.12.
MIN_PY=$(find_python 3.12 || find_python 3.11 || find_python 3.10 || true)
[ -n "$MIN_PY" ] || die "ansible-core 2.17 (the oldest version this collection claims) needs Python 3.10 - 3.12 for .venv-min; install python3.12"
# requirements/constraints-min.txt is a freeze made on Python 3.12; on an older Python only the
# direct pins of requirements/min.txt apply.
if [ "$("$MIN_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = 3.12 ]; then
    make_venv .venv-min "$MIN_PY" -r requirements/min.txt -c requirements/constraints-min.txt
else
    make_venv .venv-min "$MIN_PY" -r requirements/min.txt
fi

# --- amazon.aws, offline ------------------------------------------------------------------------
# Galaxy is unreachable from CI; the `ansible` community package on PyPI bundles amazon.aws.
AWS_DIR=.cache/deps/ansible_collections/amazon/aws
ANSIBLE_WHEEL_VERSION=$(sed -n 's/^# amazon.aws from: ansible==\(.*\)$/\1/p' requirements/dev.txt)
if [ ! -f "$AWS_DIR/MANIFEST.json" ]; then
    say "extracting amazon.aws from the ansible==$ANSIBLE_WHEEL_VERSION wheel"
    mkdir -p .cache/wheels
    ls .cache/wheels/ansible-"$ANSIBLE_WHEEL_VERSION"-*.whl >/dev/null 2>&1 || \
        # The wheel is pure Python; ask for it as for 3.12 so a 3.11 fallback venv can fetch it too.
        .venv/bin/python -m pip download -q --disable-pip-version-check --no-deps \
            --python-version 3.12 --only-binary=:all: "ansible==$ANSIBLE_WHEEL_VERSION" -d .cache/wheels
    .venv/bin/python - "$ANSIBLE_WHEEL_VERSION" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(".cache/wheels/ansible-%s-*.whl" % sys.argv[1])[0]
prefix = "ansible_collections/amazon/aws/"
with zipfile.ZipFile(wheel) as z:
    z.extractall(".cache/deps", [n for n in z.namelist() if n.startswith(prefix)])
PY
fi
say "amazon.aws $(.venv/bin/python -c 'import json;print(json.load(open("'$AWS_DIR'/MANIFEST.json"))["collection_info"]["version"])') in .cache/deps"

# --- collections path pointing at this checkout -------------------------------------------------
mkdir -p .cache/collections/ansible_collections/zerodowntime
ln -sfn "$ROOT" .cache/collections/ansible_collections/zerodowntime/rollout

# --- HAProxy, socat, shellcheck, Chromium (the rollout report's browser test), sshd and sudo ---------------------
# openssh-server and sudo serve the real-host tests (tests/integration/test_real_hosts.py): each test host runs its
# own sshd under its own systemd. Installing them must not start or enable a service on this machine, so apt runs
# with a policy-rc.d that refuses every start (unless the machine has one already), and the units the
# openssh-server package enables are disabled again.
have_haproxy() { command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; }
have_chromium() { [ -x /usr/bin/chromium ]; }
have_sshd() { [ -x /usr/sbin/sshd ]; }
have_sudo() { [ -x /usr/bin/sudo ]; }
POLICY_RC_D=/usr/sbin/policy-rc.d
POLICY_ADDED=
drop_policy() { if [ -n "$POLICY_ADDED" ]; then $SUDO rm -f "$POLICY_RC_D"; POLICY_ADDED=; fi; }
apt_install_quietly() {  # $@ = packages; no service is started while they are installed
    if [ ! -e "$POLICY_RC_D" ]; then
        trap drop_policy EXIT
        printf '#!/bin/sh\n# added by zerodowntime.rollout scripts/bootstrap.sh while it installs packages\nexit 101\n' \
            | $SUDO tee "$POLICY_RC_D" >/dev/null
        POLICY_ADDED=1
        $SUDO chmod 0755 "$POLICY_RC_D"
    fi
    local rc=0
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || rc=$?
    drop_policy
    return "$rc"
}
if ! have_haproxy || ! command -v socat >/dev/null 2>&1 || ! command -v shellcheck >/dev/null 2>&1 \
        || ! have_chromium || ! have_sshd || ! have_sudo; then
    SUDO=
    [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
    if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        if ! have_haproxy || ! command -v socat >/dev/null 2>&1 || ! command -v shellcheck >/dev/null 2>&1; then
            say "installing haproxy, socat and shellcheck with apt"
            apt_install_quietly haproxy socat shellcheck
        fi
        if ! have_sshd || ! have_sudo; then
            had_sshd=; have_sshd && had_sshd=1
            say "installing openssh-server and sudo with apt (for the real-host test fleet; no service is started)"
            apt_install_quietly openssh-server sudo
            if [ -z "$had_sshd" ] && command -v deb-systemd-helper >/dev/null 2>&1; then
                # The package enables ssh.service for the next boot; this machine only needs the binary.
                $SUDO deb-systemd-helper disable ssh.service ssh.socket >/dev/null 2>&1 || true
                $SUDO update-rc.d ssh disable >/dev/null 2>&1 || true
            fi
        fi
        if ! have_chromium; then
            # Without recommends (printer, notification and power daemons); fonts so the page has text.
            say "installing chromium with apt"
            apt_install_quietly --no-install-recommends chromium fonts-liberation
        fi
    fi
fi
have_haproxy || die "HAProxy is missing and could not be installed here. Install it as root: 'apt-get install -y haproxy socat' (Debian/Ubuntu; HAProxy >= 2.6), then run 'make venv' again."
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
say "haproxy: $("$HAPROXY" -v | head -1)"
if have_chromium; then
    say "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
else
    printf 'WARNING: %s\n' "/usr/bin/chromium is missing and could not be installed here (no root, no passwordless sudo or no apt). The rollout report's browser test (tests/integration/test_rollout_report.py) will fail until it is: install it as root with 'apt-get install -y --no-install-recommends chromium fonts-liberation', then run 'make venv' again." >&2
fi
