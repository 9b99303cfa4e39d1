"""When the new version never becomes ready, the host is rolled back and put back in rotation,
the rollout halts before the next host, and no request fails."""

import os

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._records import RecordStore
from conftest import destroy_fleet, make_fleet
from tests.fixtures.fleet.loadgen import LoadGenerator
from tests.fixtures.fleet.playbook import host_version as version_of
from tests.fixtures.fleet.playbook import resume_record_path, run_playbook, write_inventory
from tests.fixtures.fleet.release import APP_PY, build_artifact
from tests.fixtures.fleet.sampler import RotationSampler

pytestmark = pytest.mark.integration


def never_ready_app(tmp_path):
    """The demo app, but its readiness depends on a file that never exists."""
    with open(APP_PY) as f:
        src = f.read()
    path = tmp_path / "app_never_ready.py"
    path.write_text('import sys\nsys.argv += ["--require-file", "/nonexistent/zdt-never-ready"]\n' + src)
    return str(path)


def admin_states(text):
    """``show servers state`` rows without the ever-changing timers and counters."""
    return [ln.split()[:9] for ln in text.splitlines() if ln[:1].isdigit() and len(ln.split()) > 9]


def rollout_under_load(fleet, inv, artifact, sha, rate=100.0, **extra):
    """Run the playbook to v2 under steady load; (process, load summary, rotation sampler)."""
    args = {
        "rolling_update_version": "v2",
        "rolling_update_artifact": artifact,
        "rolling_update_artifact_checksum": "sha256:" + sha,
        **extra,
    }
    sampler = RotationSampler(fleet.data["admin_socket"], fleet.data["backend"]).start()
    load = LoadGenerator(fleet.data["frontend_url"] + "/version", rate=rate).start()
    try:
        proc = run_playbook(inv, args)
    finally:
        summary = load.stop()
        sampler.stop()
    return proc, summary, sampler


def assert_halted_while_preparing(fleet, pids, proc, summary, sampler):
    """The rollout halted while preparing the hosts: lock released, no host drained, stopped or switched, no failed
    request. Returns the playbook's output for the caller's own checks."""
    out = proc.stdout
    assert proc.returncode != 0, out[-3000:]
    assert "No host was drained, stopped or switched" in out and "the lock is released" in out, out[-3000:]
    assert ".. No host was drained" not in out, out[-3000:]  # the cause's own full stop is not doubled
    assert {n: fleet.host_pid(n) for n in pids} == pids
    assert [version_of(h) for h in fleet.data["hosts"]] == ["v1"] * len(pids)
    assert sampler.out_of_rotation_seconds() == dict.fromkeys(pids, 0), sampler.out_of_rotation_seconds()
    assert summary.failed == 0, summary.format()
    return out


@pytest.fixture
def fleet3():
    fleet, d = make_fleet(hosts=3, version="v1", first_address="127.0.0.41", retries=0)
    try:
        yield fleet
    finally:
        destroy_fleet(fleet, d)


def test_never_ready_release_is_rolled_back_and_rollout_halts(fleet3, tmp_path):
    hosts = fleet3.data["hosts"]
    names = [h["name"] for h in hosts]
    pids = {n: fleet3.host_pid(n) for n in names}
    artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"), app_py=never_ready_app(tmp_path))
    inv = write_inventory(fleet3, str(tmp_path / "inventory.yml"))

    extra = {
        "rolling_update_health_interval": 0.2,
        "rolling_update_health_timeout": 4,
        "rollout_lock_path": str(tmp_path / "rollout.lock"),
    }
    proc, summary, sampler = rollout_under_load(fleet3, inv, artifact, sha, **extra)
    # The halted rollout released its lock, so the operator can re-run after fixing the release.
    assert not (tmp_path / "rollout.lock").exists()

    out = proc.stdout
    assert proc.returncode != 0, out[-3000:]
    assert "Rollout halted on app1" in out and "Rolled back to release v1" in out, out[-3000:]
    assert "back in rotation; capacity is intact" in out
    # The first host runs v1 again, from a fresh process, and is back in rotation.
    assert version_of(hosts[0]) == "v1"
    assert fleet3.host_pid("app1") != pids["app1"]
    assert sampler.samples[-1][1]["app1"] is True
    # The rollout halted: later hosts were never touched (same process, same version, never drained).
    for h in hosts[1:]:
        assert fleet3.host_pid(h["name"]) == pids[h["name"]]
        assert version_of(h) == "v1"
    out_secs = sampler.out_of_rotation_seconds()
    assert out_secs["app1"] > 0 and out_secs["app2"] == 0 and out_secs["app3"] == 0, out_secs
    assert summary.failed == 0, summary.format()

    # The same job run again (an AWX relaunch): app1 records v2 as rolled back, so preflight refuses it
    # before anything changes on any host or in HAProxy.
    # A resume record on the LB host stands in for a run killed during that rollback, before app1 was back in
    # rotation: the refusal then also says how to put the host back.
    marker = resume_record_path(fleet3, "app1")
    RecordStore(os.path.join(fleet3.dir, "lb-state")).write(os.path.basename(marker), {"server": "app1"})
    pids = {n: fleet3.host_pid(n) for n in names}
    before = admin_states(fleet3.admin("show servers state app"))
    again = run_playbook(
        inv,
        dict(
            extra,
            rolling_update_version="v2",
            rolling_update_artifact=artifact,
            rolling_update_artifact_checksum="sha256:" + sha,
        ),
    )
    assert again.returncode != 0
    assert "Refusing app1: release v2 was rolled back on it at 20" in again.stdout, again.stdout[-3000:]
    assert "(it serves v1)" in again.stdout and "rolling_update_retry_rolled_back=true" in again.stdout
    assert "left drained by an interrupted run: roll out the release it serves (v1) to put it back" in again.stdout
    assert os.path.exists(marker)
    assert admin_states(fleet3.admin("show servers state app")) == before
    assert {n: fleet3.host_pid(n) for n in names} == pids
    assert [version_of(h) for h in hosts] == ["v1", "v1", "v1"]
    assert not (tmp_path / "rollout.lock").exists()


def test_bad_setting_on_the_last_host_fails_before_any_host_changes(fleet3, tmp_path):
    import yaml

    hosts = fleet3.data["hosts"]
    pids = {h["name"]: fleet3.host_pid(h["name"]) for h in hosts}
    artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"))
    inv = write_inventory(fleet3, str(tmp_path / "inventory.yml"))
    with open(inv) as f:
        data = yaml.safe_load(f)
    data["all"]["children"]["app"]["hosts"]["app3"]["rolling_update_haproxy_server"] = "ghost"
    with open(inv, "w") as f:
        yaml.safe_dump(data, f)
    before = fleet3.admin("show servers state app")

    proc = run_playbook(
        inv,
        {
            "rolling_update_version": "v2",
            "rolling_update_artifact": artifact,
            "rolling_update_artifact_checksum": "sha256:" + sha,
        },
    )
    assert proc.returncode != 0
    assert "does not know server app/ghost" in proc.stdout, proc.stdout[-3000:]
    # Nothing changed anywhere: same admin/operational state in HAProxy, same processes, same release.
    assert admin_states(fleet3.admin("show servers state app")) == admin_states(before)
    for h in hosts:
        assert fleet3.host_pid(h["name"]) == pids[h["name"]]
        assert version_of(h) == "v1"


@pytest.mark.latest_only
def test_capacity_guard_refuses_to_drain_when_too_few_would_remain(fleet3, tmp_path):
    hosts = fleet3.data["hosts"]
    pids = {h["name"]: fleet3.host_pid(h["name"]) for h in hosts}
    artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"))
    inv = write_inventory(fleet3, str(tmp_path / "inventory.yml"))
    assert fleet3.admin("set server app/app2 state maint").strip() == ""
    extra = {
        "rolling_update_version": "v2",
        "rolling_update_artifact": artifact,
        "rolling_update_artifact_checksum": "sha256:" + sha,
        "rolling_update_min_healthy": 2,  # 3 servers, app1 drained: 2 would remain if app2 were up
    }
    try:
        # Someone else put app2 in maintenance: by default the rollout refuses in preflight.
        proc = run_playbook(inv, extra)
        assert proc.returncode != 0
        assert "app2 is out of rotation (maint)" in proc.stdout and "not by this collection" in proc.stdout, (
            proc.stdout[-3000:]
        )
        assert fleet3.host_pid("app1") == pids["app1"]
        # Told to leave app2 alone, the capacity guard still counts it as missing capacity.
        proc = run_playbook(inv, dict(extra, rolling_update_admin_down="skip"))
        assert proc.returncode != 0
        assert "Capacity guard: draining app1 would leave too few servers in rotation" in proc.stdout, proc.stdout[
            -3000:
        ]
        assert "already out of rotation: app2" in proc.stdout
        # Refused before the drain: app1 stayed in rotation on its old process and release.
        assert fleet3.servers()["app1"]["status"] == "UP"
        assert fleet3.host_pid("app1") == pids["app1"] and version_of(hosts[0]) == "v1"
        assert fleet3.servers()["app2"]["status"] == "MAINT"  # and nobody put app2 back behind the operator's back
    finally:
        fleet3.admin("set server app/app2 state ready")


@pytest.mark.latest_only
def test_a_second_rollout_is_refused_while_another_holds_the_lock(fleet3, tmp_path):
    import json
    import time

    hosts = fleet3.data["hosts"]
    pids = {h["name"]: fleet3.host_pid(h["name"]) for h in hosts}
    lock = tmp_path / "rollout.lock"
    lock.write_text(json.dumps({"owner": "alice@elsewhere", "run_id": "r-alice", "started": time.time(), "ttl": 3600}))
    artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"))
    inv = write_inventory(fleet3, str(tmp_path / "inventory.yml"))
    extra = {
        "rolling_update_version": "v2",
        "rolling_update_artifact": artifact,
        "rolling_update_artifact_checksum": "sha256:" + sha,
        "rollout_lock_path": str(lock),
        "rollout_lock_owner": "bob@here",
        "rollout_hosts": "app1",
    }
    proc = run_playbook(inv, extra)
    assert proc.returncode != 0
    assert "Another rollout holds the lock" in proc.stdout and "alice@elsewhere" in proc.stdout, proc.stdout[-3000:]
    assert json.loads(lock.read_text())["owner"] == "alice@elsewhere"
    assert fleet3.host_pid("app1") == pids["app1"] and version_of(hosts[0]) == "v1"
    assert fleet3.servers()["app1"]["status"] == "UP"

    # Break glass: the same rollout with rollout_lock_force goes through and releases the lock at the end.
    proc = run_playbook(inv, dict(extra, rollout_lock_force=True))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert version_of(hosts[0]) == "v2" and not lock.exists()


def test_checksum_mismatch_fails_before_anything_is_drained(fleet3, tmp_path):
    """R3: the artifact on the host does not match its checksum: refused while preparing, before any host is drained
    (the lock, taken just before, is released)."""
    hosts = fleet3.data["hosts"]
    pids = {h["name"]: fleet3.host_pid(h["name"]) for h in hosts}
    artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"))
    inv = write_inventory(fleet3, str(tmp_path / "inventory.yml"))
    before = fleet3.admin("show servers state app")
    wrong = "0" * 64
    proc = run_playbook(
        inv,
        {
            "rolling_update_version": "v2",
            "rolling_update_artifact": artifact,
            "rolling_update_artifact_checksum": "sha256:" + wrong,
            "rollout_lock_path": str(tmp_path / "rollout.lock"),
        },
    )
    assert proc.returncode != 0
    assert "checksum mismatch for %s: expected sha256:%s, got sha256:%s" % (artifact, wrong, sha) in proc.stdout, (
        proc.stdout[-3000:]
    )
    assert "No host was drained, stopped or switched" in proc.stdout and "the lock is released" in proc.stdout
    assert admin_states(fleet3.admin("show servers state app")) == admin_states(before)
    for h in hosts:
        assert fleet3.host_pid(h["name"]) == pids[h["name"]] and version_of(h) == "v1"
        assert not os.path.exists(os.path.join(h["deploy_path"], "releases", "v2"))
    assert not (tmp_path / "rollout.lock").exists()  # released


# Injected before the app's entry point: /health answers 503 from 8 s after start, while every
# other path keeps serving, so HAProxy takes the server out without a single failed request.
FADING_PATCH = """
import time as _fading_time

_fading_started = _fading_time.monotonic()
_fading_serve = Handler._serve


def _fading_health(self, head):
    if urlsplit(self.path).path == "/health" and _fading_time.monotonic() - _fading_started > 8.0:
        return self._send(503, "text/plain", "gone bad\\\\n", head)
    return _fading_serve(self, head)


Handler._serve = _fading_health

"""


@pytest.mark.latest_only
def test_release_that_fails_inside_the_stabilisation_window_is_rolled_back(fleet3, tmp_path):
    """R2: ready at first, unready 8 s after it started, inside a 20 s stabilisation window."""
    with open(APP_PY) as f:
        src = f.read()
    marker = 'if __name__ == "__main__":'
    assert src.count(marker) == 1
    app = tmp_path / "app_fading.py"
    app.write_text(src.replace(marker, FADING_PATCH + marker))
    hosts = fleet3.data["hosts"]
    pids = {h["name"]: fleet3.host_pid(h["name"]) for h in hosts}
    artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"), app_py=str(app))
    inv = write_inventory(fleet3, str(tmp_path / "inventory.yml"))
    proc, summary, _sampler = rollout_under_load(
        fleet3,
        inv,
        artifact,
        sha,
        rolling_update_health_interval=0.2,
        rolling_update_stabilize_seconds=20,
        rolling_update_enable_timeout=30,
        rollout_lock_path=str(tmp_path / "rollout.lock"),
    )
    assert proc.returncode != 0
    assert "Rollout halted on app1" in proc.stdout and "Rolled back to release v1" in proc.stdout, proc.stdout[-3000:]
    halted = [ln for ln in proc.stdout.splitlines() if "Rollout halted on app1" in ln][0]
    assert "stabilisation window" in halted, halted
    assert version_of(hosts[0]) == "v1" and fleet3.servers()["app1"]["status"] == "UP"
    for h in hosts[1:]:
        assert fleet3.host_pid(h["name"]) == pids[h["name"]] and version_of(h) == "v1"
    assert summary.failed == 0, summary.format()


def test_a_release_that_cannot_be_unpacked_stops_the_host_before_it_leaves_rotation(fleet3, tmp_path):
    """The release is unpacked on every host before the first batch, while they all still serve: a full disk
    (here: a min_free_space no disk meets) halts the rollout there; no host leaves rotation, no app is stopped."""
    hosts = fleet3.data["hosts"]
    names = [h["name"] for h in hosts]
    pids = {n: fleet3.host_pid(n) for n in names}
    artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"))
    inv = write_inventory(fleet3, str(tmp_path / "inventory.yml"))
    proc, summary, sampler = rollout_under_load(
        fleet3, inv, artifact, sha, rate=50.0, rolling_update_min_free_space="99.9%"
    )
    out = assert_halted_while_preparing(fleet3, pids, proc, summary, sampler)
    assert "Preparing app1 failed:" in out, out[-3000:]
    assert "not enough disk space to unpack v2" in out and "min_free_space 99.9%" in out, out[-3000:]
    for h in hosts:
        assert not os.path.exists(os.path.join(h["deploy_path"], "releases", "v2"))
        assert not os.path.exists(resume_record_path(fleet3, h["name"]))


def test_a_start_command_that_cannot_run_stops_the_rollout_before_any_host_leaves_rotation(fleet3, tmp_path):
    """The host's stop and start commands are checked while it still serves, in the same call that unpacks: a
    start command whose program does not exist halts the rollout there, with no host drained or stopped."""
    pids = {h["name"]: fleet3.host_pid(h["name"]) for h in fleet3.data["hosts"]}
    artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"))
    inv = write_inventory(fleet3, str(tmp_path / "inventory.yml"))
    proc, summary, sampler = rollout_under_load(
        fleet3, inv, artifact, sha, rate=50.0, rolling_update_start_command="/nonexistent/app-ctl start"
    )
    out = assert_halted_while_preparing(fleet3, pids, proc, summary, sampler)
    expected = "Preparing app1 failed: start_command runs /nonexistent/app-ctl, which is not an executable"
    assert expected in out, out[-3000:]
