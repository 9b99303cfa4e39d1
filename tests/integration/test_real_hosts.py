"""Real hosts (issue #14): the rolling update over SSH with become, on VM-like hosts that run the app as a systemd
unit (tests/integration/vmhosts/: each host its own systemd as PID 1, filesystem view, hostname, sshd and address).

Fleet: app1 and app2 run ``app.service`` (the demo app from /srv/app/current), lb1 runs ``haproxy.service`` with
its admin socket at the role's default /run/haproxy/admin.sock (root only). The controller runs the playbook
zerodowntime.rollout.rolling_update as ``deploy`` over SSH, ``ansible_become: true``,
``rolling_update_service_manager: systemd``. Load runs through lb1's frontend during every rollout, and HAProxy
has retries 0, so a request the rollout breaks reaches the client as an error.

Marked ``real_hosts``: a machine without root, unshare, sshd or sudo skips these tests with the reason; under
CI=true the missing requirement fails them instead.
"""

import os
import re
import shutil
import subprocess
import tempfile

import pytest
import vmhosts

from conftest import server_snapshot
from tests.fixtures.fleet.loadgen import LoadGenerator
from tests.fixtures.fleet.playbook import run_playbook
from tests.fixtures.fleet.release import APP_PY
from tests.fixtures.fleet.sampler import RotationSampler

pytestmark = [pytest.mark.integration, pytest.mark.real_hosts]

RATE = 40.0
LOCK = "/var/lib/zerodowntime-rollout/locks/app.lock"  # the playbook's default lock, on the first LB host
RECAP = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", re.M)


def recap(stdout):
    """PLAY RECAP -> {host: {"ok": n, "changed": n, "failed": n, ...}}"""
    out = {}
    for m in RECAP.finditer(stdout):
        out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return out


def tail(proc, n=4000):
    return "rc=%s\nSTDOUT:\n%s\nSTDERR:\n%s" % (proc.returncode, proc.stdout[-n:], proc.stderr[-1500:])


def never_ready_app(directory):
    """The demo app, but its readiness depends on a file that never exists."""
    with open(APP_PY) as f:
        src = f.read()
    path = os.path.join(directory, "app_never_ready.py")
    with open(path, "w") as f:
        f.write('import sys\nsys.argv += ["--require-file", "/nonexistent/zdt-never-ready"]\n' + src)
    return path


def unit_state(fleet):
    """{host: (MainPID, InvocationID, ActiveState)} of app.service, from systemd on each app host."""
    out = {}
    for h in fleet.app_hosts:
        s = h.show("app.service", "MainPID", "InvocationID", "ActiveState")
        out[h.name] = (int(s["MainPID"]), s["InvocationID"], s["ActiveState"])
    return out


def current_release(host):
    return os.readlink(host.fs(vmhosts.APP_PATH + "/current"))


def rollout(fleet, inventory, version, extra=None):
    """The playbook to ``version`` under load through lb1; (process, load summary, rotation sampler)."""
    artifact, sha = fleet.artifacts[version]
    extra_vars = {
        "rolling_update_version": version,
        "rolling_update_artifact": artifact,
        "rolling_update_artifact_checksum": "sha256:" + sha,
        # HAProxy checks every 200 ms on lb1.
        "rolling_update_health_interval": 0.2,
        **(extra or {}),
    }
    sampler = RotationSampler(fleet.lb.admin_socket, vmhosts.BACKEND, interval=0.1).start()
    load = LoadGenerator(fleet.lb.frontend_url + "/version", rate=RATE).start()
    try:
        proc = run_playbook(inventory, extra_vars, env=fleet.ansible_env())
    finally:
        summary = load.stop()
        sampler.stop()
    return proc, summary, sampler


def lock_left(fleet):
    return os.path.lexists(fleet.lb.root_path(LOCK))


@pytest.fixture(scope="module")
def requirements():
    missing = vmhosts.missing_requirements()
    if missing:
        reason = "real-host tests need %s" % ", ".join(missing)
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(reason + " (CI=true: a skipped real-host test counts as a failure)", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def fleet(requirements):
    # Short: the SSH control sockets live below it.
    directory = tempfile.mkdtemp(prefix="zdh-", dir="/tmp")
    f = vmhosts.Fleet(directory, app_hosts=2, lb_hosts=1)
    try:
        f.start()
        f.build_artifact("v2")
        yield f
    finally:
        f.stop()  # raises (and keeps the directory) if a host survived or the machine's /tmp lost its probes
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def inventory(fleet):
    return fleet.write_inventory(os.path.join(fleet.dir, "inventory.yml"))


@pytest.fixture(scope="module")
def to_v2(fleet, inventory):
    """The default rollout v1 -> v2, once for the module: (process, summary, sampler, units before, units after)."""
    before = unit_state(fleet)
    proc, summary, sampler = rollout(fleet, inventory, "v2")
    return proc, summary, sampler, before, unit_state(fleet)


def require_v2(to_v2):
    proc = to_v2[0]
    if proc.returncode != 0:
        pytest.fail("the v1 -> v2 rollout this test starts from failed (see the first test):\n" + tail(proc, 1500))


def test_rollout_over_ssh_with_become_and_systemd(fleet, to_v2):
    proc, summary, sampler, before, after = to_v2
    assert proc.returncode == 0, tail(proc)
    for h in fleet.app_hosts:
        pid_before, inv_before = before[h.name][:2]
        pid_after, inv_after, active = after[h.name]
        # restarted through systemd: a new invocation of app.service, running v2 from /srv/app/current
        assert active == "active"
        assert inv_after != inv_before and pid_after != pid_before, (before, after)
        assert h.version() == "v2"
        assert current_release(h) == "releases/v2"
        journal = h.journal("app.service", lines=200)
        assert "start version=v2" in journal, journal
        # over SSH as deploy, with sudo to root
        auth = h.run(["journalctl", "--no-pager", "-q", "-o", "cat"]).stdout
        assert "Accepted publickey for deploy from " in auth, auth[-2000:]
        assert re.search(r"deploy : .*USER=root", auth), auth[-2000:]
    # lb1: both servers UP on its admin socket, the lock released; its state directory (resume records, lock) was
    # made there by root, through become
    assert fleet.server_status() == {"app1": "UP", "app2": "UP"}
    assert not lock_left(fleet)
    assert os.stat(fleet.lb.root_path("/var/lib/zerodowntime-rollout")).st_uid == 0
    # one host out of rotation at a time, each for a while; no request lost
    assert not sampler.errors(), sampler.errors()[:3]
    assert sampler.max_out_of_rotation() == 1
    out_secs = sampler.out_of_rotation_seconds()
    assert all(out_secs[h.name] > 0 for h in fleet.app_hosts), out_secs
    assert summary.failed == 0, summary.format()
    assert set(summary.versions()) == {"v1", "v2"}, summary.format()


def test_rerun_changes_nothing(fleet, inventory, to_v2):
    require_v2(to_v2)
    before = unit_state(fleet)
    proc, summary, sampler = rollout(fleet, inventory, "v2")
    assert proc.returncode == 0, tail(proc)
    counts = recap(proc.stdout)
    assert {h.name for h in fleet.app_hosts} <= set(counts), counts
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in counts.values()), counts
    # no restart (same MainPID, same invocation of the unit), never out of rotation, no request lost
    assert unit_state(fleet) == before
    assert [h.version() for h in fleet.app_hosts] == ["v2", "v2"]
    assert sampler.out_of_rotation_seconds() == dict.fromkeys((h.name for h in fleet.app_hosts), 0), (
        sampler.out_of_rotation_seconds()
    )
    assert fleet.server_status() == {"app1": "UP", "app2": "UP"}
    assert not lock_left(fleet)
    assert summary.failed == 0, summary.format()


def test_never_ready_release_is_rolled_back_through_systemd(fleet, inventory, to_v2):
    require_v2(to_v2)
    fleet.build_artifact("v3", app_py=never_ready_app(fleet.dir))
    before = unit_state(fleet)
    proc, summary, sampler = rollout(fleet, inventory, "v3", {"rolling_update_health_timeout": 4})
    out = proc.stdout
    assert proc.returncode != 0, tail(proc)
    assert "Rollout halted on app1" in out and "Rolled back to release v2" in out, tail(proc)
    assert "back in rotation; capacity is intact" in out, tail(proc)
    app1, app2 = fleet.app_hosts
    # app1 ran v3 under systemd, which never became ready; systemd runs v2 again, from a new invocation
    journal = app1.journal("app.service", lines=200)
    assert journal.index("start version=v3") < journal.rindex("start version=v2"), journal
    after = unit_state(fleet)
    assert after["app1"][2] == "active" and after["app1"][1] != before["app1"][1], (before, after)
    assert app1.version() == "v2" and current_release(app1) == "releases/v2"
    # the rollout halted: app2 was never touched
    assert after["app2"] == before["app2"]
    assert app2.version() == "v2" and current_release(app2) == "releases/v2"
    out_secs = sampler.out_of_rotation_seconds()
    assert out_secs["app1"] > 0 and out_secs["app2"] == 0, out_secs
    # both back UP on lb1, lock released, no request lost
    assert fleet.server_status() == {"app1": "UP", "app2": "UP"}
    assert not lock_left(fleet)
    assert summary.failed == 0, summary.format()


def unchanged_run(fleet, inventory, extra=None, args=()):
    """A playbook run to v4 that must change nothing: no load needed, since nothing may be drained. Returns the
    process and the rotation sampler (every 100 ms), after checking that HAProxy's server state on lb1 (its admin
    socket), every app.service invocation and the releases are as they were, and that the lock is released."""
    if "v4" not in fleet.artifacts:
        fleet.build_artifact("v4")
    artifact, sha = fleet.artifacts["v4"]
    extra_vars = {
        "rolling_update_version": "v4",
        "rolling_update_artifact": artifact,
        "rolling_update_artifact_checksum": "sha256:" + sha,
        **(extra or {}),
    }
    lb_before = server_snapshot(fleet.lb.admin_socket)
    units_before = unit_state(fleet)
    releases_before = {h.name: current_release(h) for h in fleet.app_hosts}
    sampler = RotationSampler(fleet.lb.admin_socket, vmhosts.BACKEND, interval=0.1).start()
    try:
        proc = run_playbook(inventory, extra_vars, args=args, env=fleet.ansible_env())
    finally:
        sampler.stop()
    assert server_snapshot(fleet.lb.admin_socket) == lb_before
    assert fleet.server_status() == {"app1": "UP", "app2": "UP"}
    assert not sampler.errors(), sampler.errors()[:3]
    assert sampler.out_of_rotation_seconds() == dict.fromkeys((h.name for h in fleet.app_hosts), 0), (
        sampler.out_of_rotation_seconds()
    )
    # app.service never restarted (same invocation, same MainPID), current untouched, v4 never unpacked
    assert unit_state(fleet) == units_before
    assert {h.name: current_release(h) for h in fleet.app_hosts} == releases_before
    assert not any(os.path.exists(h.fs(vmhosts.APP_PATH + "/releases/v4")) for h in fleet.app_hosts)
    assert not lock_left(fleet)
    return proc, sampler


def refused_rollout(fleet, inventory, extra=None):
    """A rollout that preflight must refuse, having changed nothing (see unchanged_run)."""
    proc, sampler = unchanged_run(fleet, inventory, extra)
    assert proc.returncode != 0, tail(proc)
    assert "No host was drained, stopped or switched" in proc.stdout, tail(proc)
    return proc, sampler


def test_check_mode_over_ssh_succeeds_and_changes_nothing(fleet, inventory):
    """--check goes through the same SSH connections, become and preflight as a real run, reports what it would
    do, and changes nothing on the app hosts or on lb1."""
    proc, _sampler = unchanged_run(fleet, inventory, args=["--check"])
    assert proc.returncode == 0, tail(proc)
    counts = recap(proc.stdout)
    assert {h.name for h in fleet.app_hosts} <= set(counts) and all(c["failed"] == 0 for c in counts.values()), counts
    assert proc.stdout.count("roll it to v4") >= len(fleet.app_hosts), tail(proc)


def test_mistyped_unit_name_is_refused_in_preflight(fleet, inventory):
    proc, sampler = refused_rollout(fleet, inventory, {"rolling_update_service_name": "app.srvice"})
    for h in fleet.app_hosts:
        expected = "Preparing %s failed: The systemd unit app.srvice is not known on this host" % h.name
        assert expected in proc.stdout, tail(proc)
    assert "Check rolling_update_service_name" in proc.stdout, tail(proc)
    assert sampler.samples, "the sampler read lb1 during the run"


def test_ssh_user_without_become_is_refused_in_preflight(fleet, tmp_path):
    """deploy without become on the app hosts (the LB host keeps it: its admin socket is root's): systemctl can
    read the unit but not stop it, so preflight refuses before any host is drained, and says to use become."""
    inventory = fleet.write_inventory(str(tmp_path / "inventory.yml"), app_vars={"ansible_become": False})
    proc, _sampler = refused_rollout(fleet, inventory)
    for h in fleet.app_hosts:
        expected = "Preparing %s failed: Stopping and starting the systemd unit app.service needs root" % h.name
        assert expected in proc.stdout, tail(proc)
    assert "Run it with become (for example ansible_become: true for the app hosts)" in proc.stdout, tail(proc)


def test_host_init_never_starts_systemd_while_a_probe_is_visible(requirements, tmp_path):
    """The guard in host-init.sh: a probe file that is still visible after the private mounts (here /etc/hostname,
    which no mount hides) stops the script before systemd is exec'ed; the machine's /tmp keeps its files."""
    hostdir = tmp_path / "host"
    for d in ("fs/srv", "fs/home"):
        (hostdir / d).mkdir(parents=True)
    witness = tmp_path / "witness"
    witness.write_text("still here\n")
    argv = ["unshare", "--fork", "--pid", "--mount", "--uts", "--mount-proc", "--kill-child=SIGKILL"]
    argv += [vmhosts.INIT, str(hostdir), "guard", "/sys/fs/cgroup/none", "/etc/hostname"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False, stdin=subprocess.DEVNULL)
    assert proc.returncode == 70, (proc.returncode, proc.stdout, proc.stderr)
    assert "probe /etc/hostname is still visible" in proc.stderr and "systemd NOT started" in proc.stderr
    assert witness.read_text() == "still here\n"
