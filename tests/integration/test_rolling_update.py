"""The collection's central claim: a rolling update through the real playbook under steady load
loses no request, keeps at most one batch out of rotation, and a re-run changes nothing."""

import os
import re

import pytest

from conftest import destroy_fleet, make_fleet
from tests.fixtures.fleet.loadgen import LoadGenerator
from tests.fixtures.fleet.playbook import run_playbook, versions, write_inventory
from tests.fixtures.fleet.release import build_artifact
from tests.fixtures.fleet.sampler import RotationSampler

pytestmark = pytest.mark.integration

RATE = 100.0
# The fleets run HAProxy with retries=0: a request the rollout breaks must reach the client as an
# error, not be replayed quietly on another server.


def recap(stdout):
    """PLAY RECAP -> {host: {"ok": n, "changed": n, "failed": n, ...}}"""
    out = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", stdout, re.M):
        out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return out


def admin_states(fleet):
    """(server, operational state, admin state, weight) of every server, from ``show servers state``."""
    rows = [line.split() for line in fleet.admin("show servers state app").splitlines()[2:] if line.strip()]
    return sorted((r[3], r[5], r[6], r[7]) for r in rows)


def rollout(fleet, tmp_path, version, serial=1, extra=None, args=()):
    artifact, sha = build_artifact(version, str(tmp_path / "artifacts"))
    inv = write_inventory(fleet, str(tmp_path / "inventory.yml"))
    sampler = RotationSampler(fleet.data["admin_socket"], fleet.data["backend"], interval=0.1).start()
    load = LoadGenerator(fleet.data["frontend_url"] + "/version", rate=RATE).start()
    try:
        proc = run_playbook(
            inv,
            {
                "rolling_update_version": version,
                "rolling_update_artifact": artifact,
                "rolling_update_artifact_checksum": "sha256:" + sha,
                "rollout_serial": serial,
                # Fast detection for tests: HAProxy checks every 200 ms in these fleets.
                "rolling_update_health_interval": 0.2,
                **(extra or {}),
            },
            args=args,
        )
    finally:
        summary = load.stop()
        sampler.stop()
    return proc, summary, sampler


@pytest.fixture
def fleet4():
    fleet, d = make_fleet(hosts=4, version="v1", retries=0)
    try:
        yield fleet
    finally:
        destroy_fleet(fleet, d)


@pytest.fixture
def fleet5():
    fleet, d = make_fleet(hosts=5, version="v1", first_address="127.0.0.31", retries=0)
    try:
        yield fleet
    finally:
        destroy_fleet(fleet, d)


def test_rollout_under_load_loses_no_request_and_rerun_changes_nothing(fleet4, tmp_path):
    names = [h["name"] for h in fleet4.data["hosts"]]
    pids_before = {n: fleet4.host_pid(n) for n in names}
    assert all(pids_before.values()) and versions(fleet4) == dict.fromkeys(names, "v1")

    # The playbook in check mode with diff: it says what it would change on every host and changes nothing.
    links = {h["name"]: os.readlink(os.path.join(h["deploy_path"], "current")) for h in fleet4.data["hosts"]}
    haproxy_before = admin_states(fleet4)
    check, check_summary, check_sampler = rollout(fleet4, tmp_path, "v2", args=["--check", "--diff"])
    assert check.returncode == 0, check.stdout[-4000:] + check.stderr[-2000:]
    assert all(recap(check.stdout)[n]["changed"] >= 3 for n in names), recap(check.stdout)
    assert re.search(r'^\+\s+"admin_state": "drain"', check.stdout, re.M), check.stdout[-4000:]  # the drain's diff
    assert admin_states(fleet4) == haproxy_before and check_sampler.max_out_of_rotation() == 0
    assert {h["name"]: os.readlink(os.path.join(h["deploy_path"], "current")) for h in fleet4.data["hosts"]} == links
    assert not [h for h in fleet4.data["hosts"] if os.path.exists(os.path.join(h["deploy_path"], "releases", "v2"))]
    assert {n: fleet4.host_pid(n) for n in names} == pids_before and check_summary.failed == 0

    proc, summary, sampler = rollout(fleet4, tmp_path, "v2")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    # Enough load to mean something, across the whole rollout.
    assert summary.total >= RATE * 5, summary.format()
    assert summary.failed == 0, summary.format()
    assert summary.versions().get("v1") and summary.versions().get("v2"), summary.format()
    # Every host serves v2 from a new process.
    assert versions(fleet4) == dict.fromkeys(names, "v2")
    pids_after = {n: fleet4.host_pid(n) for n in names}
    assert all(pids_after[n] and pids_after[n] != pids_before[n] for n in names), (pids_before, pids_after)
    for h in fleet4.data["hosts"]:
        assert os.readlink(os.path.join(h["deploy_path"], "current")).rstrip("/").endswith("releases/v2")
    # serial 1: never more than one server out of rotation; and each host was drained at some point.
    assert not sampler.errors(), sampler.errors()[:3]
    assert len(sampler.samples) > 50
    assert sampler.max_out_of_rotation() == 1
    assert all(secs > 0 for secs in sampler.out_of_rotation_seconds().values()), sampler.out_of_rotation_seconds()

    # A second run of the finished rollout changes nothing and drains nothing.
    proc2, summary2, sampler2 = rollout(fleet4, tmp_path, "v2")
    assert proc2.returncode == 0, proc2.stdout[-4000:]
    rc = recap(proc2.stdout)
    assert set(names) <= set(rc), rc
    assert all(rc[n]["changed"] == 0 for n in names), rc
    assert sampler2.max_out_of_rotation() == 0
    assert summary2.failed == 0, summary2.format()
    assert {n: fleet4.host_pid(n) for n in names} == pids_after


HOOKS = ("before_drain", "after_deploy", "before_enable", "after_enable")


def write_hooks(tmp_path):
    """Hook task files that log their name, the host, and the release `current` points at."""
    log = tmp_path / "hooks.log"
    paths = {}
    for hook in HOOKS:
        path = tmp_path / ("%s.yml" % hook)
        path.write_text(
            "- name: hook %s\n"
            "  ansible.builtin.shell: >-\n"
            "    echo %s {{ inventory_hostname }} $(basename $(readlink {{ rolling_update_path }}/current)) >> %s\n"
            "  changed_when: false\n" % (hook, hook, log)
        )
        paths["rolling_update_%s_tasks" % hook] = str(path)
    return log, paths


@pytest.mark.latest_only
def test_ramp_never_exceeds_the_batch_and_runs_hooks_in_order(fleet5, tmp_path):
    names = [h["name"] for h in fleet5.data["hosts"]]
    log, hooks = write_hooks(tmp_path)
    proc, summary, sampler = rollout(fleet5, tmp_path, "v2", serial=[1, "50%"], extra=hooks)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert versions(fleet5) == dict.fromkeys(names, "v2")
    assert summary.failed == 0, summary.format()
    # Batches of 1, then 2 (50% of 5, rounded down), then 2.
    assert not sampler.errors()
    assert sampler.max_out_of_rotation() <= 2
    # Every hook ran once per host, in order, seeing the release switch between before_drain and after_deploy.
    lines = [ln.split() for ln in log.read_text().splitlines()]
    for name in names:
        seen = [(hook, release) for hook, host, release in lines if host == name]
        assert seen == [("before_drain", "v1"), ("after_deploy", "v2"), ("before_enable", "v2"), ("after_enable", "v2")]
