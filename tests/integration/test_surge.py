"""Surge hosts (rollout_surge_hosts: maxSurge, maxUnavailable 0) through the real playbooks, behind a real HAProxy,
under load: a standby host waiting in MAINT comes up on the new release before the first batch, so the servers in
rotation never drop below the count at the start; it is drained, put in MAINT and stopped after the last batch. A
surge host that never becomes ready halts the rollout before any regular host is touched; a batch larger than the
surge count is refused in preflight; the plan shows the surge host and the capacity at every step.

One fleet (app1..app4 regular, app5 the surge host) is shared by the tests of this file and reset before each."""

import json
import os
import re
import subprocess

import pytest
import yaml

from conftest import destroy_fleet, hap, make_fleet, server_snapshot, stat, wait_for, wait_status
from tests.fixtures.fleet.loadgen import LoadGenerator
from tests.fixtures.fleet.playbook import host_version, run_playbook, write_inventory
from tests.fixtures.fleet.release import build_artifact
from tests.fixtures.fleet.sampler import RotationSampler
from tests.fixtures.fleet.system import http_get

pytestmark = pytest.mark.integration

RATE = 60.0
REGULAR = ["app1", "app2", "app3", "app4"]
SURGE = "app5"


@pytest.fixture(scope="module")
def surge_fleet(tmp_path_factory):
    """Five hosts on v1; app5 is the standby: in MAINT, its app stopped. retries=0: a request the rollout breaks
    reaches the client as an error instead of being replayed on another server."""
    f, d = make_fleet(hosts=5, version="v1", first_address="127.0.0.161", retries=0)
    try:
        tmp = tmp_path_factory.mktemp("surge")
        f.tmp = tmp
        f.inventory = write_inventory(f, str(tmp / "inventory.yml"))
        f.artifacts = {}
        yield f
    finally:
        destroy_fleet(f, d)


def artifact(fleet, version):
    if version not in fleet.artifacts:
        fleet.artifacts[version] = build_artifact(version, str(fleet.tmp / "artifacts"))
    return fleet.artifacts[version]


def config_path(fleet, name):
    return os.path.join(fleet.host(name)["deploy_path"], "shared", "config.json")


@pytest.fixture
def fleet(surge_fleet):
    """Before each test: the surge host in MAINT with its app stopped and its config in place, every regular host
    running and UP, no rollout lock."""
    f = surge_fleet
    saved = str(f.tmp / "config.json")
    if os.path.exists(saved):  # a test took the surge host's config away: put it back
        os.replace(saved, config_path(f, SURGE))
    assert hap(f.admin_socket, "set server app/%s state maint" % SURGE).strip() == ""
    wait_status(f.admin_socket, SURGE, "MAINT")
    if f.host_pid(SURGE):
        f.stop_host(SURGE)
    for name in REGULAR:
        if not f.host_pid(name):
            f.start_host(name)
        assert hap(f.admin_socket, "set server app/%s state ready" % name).strip() == ""
    wait_for(lambda: all(stat(f.admin_socket)[n]["status"] == "UP" for n in REGULAR), 15, what="regular hosts UP")
    lock = os.path.join(f.dir, "rollout.lock")
    if os.path.exists(lock):
        os.unlink(lock)
    f.saved_config = saved
    return f


def extra_vars(fleet, version, **more):
    path, sha = artifact(fleet, version)
    return {
        "rolling_update_version": version,
        "rolling_update_artifact": path,
        "rolling_update_artifact_checksum": "sha256:" + sha,
        "rollout_serial": 1,
        "rollout_surge_hosts": SURGE,
        "rolling_update_health_interval": 0.2,
        **more,
    }


def roll(fleet, extra, args=(), playbook="zerodowntime.rollout.rolling_update", env=None, stdin=None):
    """Run a playbook under load with HAProxy sampled every 100 ms; returns (process, load summary, sampler)."""
    sampler = RotationSampler(fleet.admin_socket, fleet.backend, interval=0.1).start()
    load = LoadGenerator(fleet.frontend_url + "/version", rate=RATE).start()
    try:
        proc = run_playbook(fleet.inventory, extra, args=args, playbook=playbook, env=env, stdin=stdin)
    finally:
        summary = load.stop()
        sampler.stop()
    return proc, summary, sampler


def regular_versions(fleet):
    return {n: host_version(fleet.host(n)) for n in REGULAR}


def in_rotation_counts(sampler):
    return [sum(1 for k, up in s.items() if k != "_error" and up) for _t, s in sampler.samples]


def state(fleet):
    """What a rollout changes: HAProxy's view of every server, each host's `current` and releases, the processes."""
    out = {"haproxy": server_snapshot(fleet.admin_socket), "hosts": {}}
    for h in fleet.hosts:
        root = h["deploy_path"]
        out["hosts"][h["name"]] = {
            "current": os.readlink(os.path.join(root, "current")),
            "releases": sorted(os.listdir(os.path.join(root, "releases"))),
            "pid": fleet.host_pid(h["name"]),
        }
    return out


def admin_state(fleet, name):
    """srv_admin_state of one server: 1 is forced MAINT."""
    return int(server_snapshot(fleet.admin_socket)[("app", name)][1])


def assert_untouched(fleet, before, after, names):
    """The regular hosts ``names`` kept their app process and release; every regular host is UP."""
    for name in names:
        assert after["hosts"][name]["pid"] == before["hosts"][name]["pid"]
        assert after["hosts"][name]["current"] == before["hosts"][name]["current"]
    assert all(stat(fleet.admin_socket)[n]["status"] == "UP" for n in REGULAR)


def assert_surge_out_and_unlocked(fleet):
    """The surge host is in MAINT and stopped, and the rollout lock is released."""
    assert stat(fleet.admin_socket)[SURGE]["status"] == "MAINT" and fleet.host_pid(SURGE) is None
    assert not os.path.exists(os.path.join(fleet.dir, "rollout.lock"))


def output(proc):
    return proc.stdout[-6000:] + proc.stderr[-2000:]


def test_plan_shows_the_surge_host_and_the_capacity_at_every_step(fleet):
    before = state(fleet)
    proc = run_playbook(
        fleet.inventory,
        extra_vars(fleet, "v2"),
        env={"ANSIBLE_SHOW_CUSTOM_STATS": "1"},
        playbook="zerodowntime.rollout.plan",
    )
    assert proc.returncode == 0, output(proc)
    assert state(fleet) == before
    m = re.search(r"^\s*RUN: (\{.*\})\s*$", proc.stdout, re.M)
    assert m, output(proc)
    plan = json.loads(m.group(1))["rollout_plan"]
    assert plan["surge"]["count"] == 1 and plan["surge"]["comes_up"] is True
    assert [h["host"] for h in plan["surge"]["hosts"]] == [SURGE]
    assert plan["surge"]["hosts"][0]["action"] == "surge"
    # The regular hosts only, in batches of one; the surge host is not one of them.
    assert [[h["host"] for h in b["hosts"]] for b in plan["batches"]] == [[n] for n in REGULAR]
    steps = [(s["step"].split(" ")[0], s["min"]) for s in plan["capacity_steps"]]
    assert [n for _step, n in steps] == [4, 5, 4, 4, 4, 4, 4], plan["capacity_steps"]
    assert plan["capacity_steps"][1]["hosts"] == [SURGE]
    text = "\n".join(plan["lines"])
    assert re.search(r"Surge hosts \(rollout_surge_hosts\), before batch 1: app5", text), text
    assert re.search(r"^  app5 +v1 -> v2 +MAINT/maint +surge: ", text, re.M), text
    assert "Capacity, servers in rotation at every step" in text and "after the last batch" in text, text
    assert "app5 drained, put in MAINT and stopped" in text, text


def test_a_batch_larger_than_the_surge_count_is_refused_in_preflight(fleet):
    before = state(fleet)
    proc = run_playbook(fleet.inventory, extra_vars(fleet, "v2", rollout_serial=2))
    assert proc.returncode != 0, output(proc)
    assert "Refusing rollout_surge_hosts: rollout_serial gives a batch of 2 hosts but there are 1 surge hosts" in (
        proc.stdout
    ), output(proc)
    assert "Nothing was changed." in proc.stdout
    assert "Take the rollout lock" not in proc.stdout  # refused before the lock
    assert state(fleet) == before
    assert not os.path.exists(os.path.join(fleet.dir, "rollout.lock"))


def test_a_regular_host_behind_aws_is_refused_with_surge_in_preflight(fleet, tmp_path):
    """Surge works with HAProxy only: a regular host whose rolling_update_lb is an AWS load balancer is refused with
    the plan's message, before the lock, nothing changed."""
    with open(fleet.inventory) as handle:
        inv = yaml.safe_load(handle)
    inv["all"]["children"]["app"]["hosts"]["app2"].update(rolling_update_lb="elbv2", rolling_update_aws_target_id="i-0")
    inventory = str(tmp_path / "inventory-aws.yml")
    with open(inventory, "w") as handle:
        yaml.safe_dump(inv, handle)
    before = state(fleet)
    proc = run_playbook(inventory, extra_vars(fleet, "v2"))
    assert proc.returncode != 0, output(proc)
    assert (
        "Refusing rollout_surge_hosts: rollout_surge_hosts works with HAProxy only (rolling_update_lb is elbv2, "
        in (proc.stdout)
    ), output(proc)
    assert "Take the rollout lock" not in proc.stdout
    assert state(fleet) == before


def test_surge_rollout_never_drops_below_the_starting_capacity(fleet):
    before = state(fleet)
    assert regular_versions(fleet) == dict.fromkeys(REGULAR, "v1") and before["hosts"][SURGE]["pid"] is None

    # --check: the whole rollout with its surge host, nothing changed.
    check, check_summary, check_sampler = roll(fleet, extra_vars(fleet, "v2"), args=["--check"])
    assert check.returncode == 0, output(check)
    assert state(fleet) == before and check_summary.failed == 0
    assert max(in_rotation_counts(check_sampler)) == 4

    proc, summary, sampler = roll(fleet, extra_vars(fleet, "v2"))
    assert proc.returncode == 0, output(proc)
    assert summary.failed == 0, summary.format()
    assert summary.total >= RATE * 5, summary.format()
    assert not sampler.errors(), sampler.errors()[:3]
    counts = in_rotation_counts(sampler)
    assert len(counts) > 50
    # Never fewer servers in rotation than at the start (4), and the surge host did serve (5 at some point).
    assert min(counts) >= 4, counts
    assert max(counts) == 5, counts
    assert sampler.out_of_rotation_seconds()["app1"] > 0  # the regular hosts were drained in turn
    # Every regular host serves v2 from a new process; v1 and v2 both answered during the run.
    assert regular_versions(fleet) == dict.fromkeys(REGULAR, "v2")
    assert all(fleet.host_pid(n) and fleet.host_pid(n) != before["hosts"][n]["pid"] for n in REGULAR)
    assert summary.versions().get("v1") and summary.versions().get("v2"), summary.format()
    # The surge host ends drained, in MAINT, its app stopped (on the new release).
    assert stat(fleet.admin_socket)[SURGE]["status"] == "MAINT" and admin_state(fleet, SURGE) & 1
    assert fleet.host_pid(SURGE) is None
    assert http_get(fleet.host(SURGE)["url"] + "/health", timeout=1)[0] != 200
    assert os.readlink(os.path.join(fleet.host(SURGE)["deploy_path"], "current")).rstrip("/").endswith("v2")
    assert not os.path.exists(os.path.join(fleet.dir, "rollout.lock"))


def test_a_surge_host_that_never_becomes_ready_halts_before_any_regular_host(fleet):
    # The surge host's app answers /health 503 without its config: it never becomes ready.
    os.replace(config_path(fleet, SURGE), fleet.saved_config)
    before = state(fleet)
    served = regular_versions(fleet)
    proc, summary, sampler = roll(fleet, extra_vars(fleet, "v3", rolling_update_health_timeout=2))
    assert proc.returncode != 0, output(proc)
    assert "The rollout halts before the first batch: no regular host was drained, stopped or switched" in (
        proc.stdout
    ), output(proc)
    assert summary.failed == 0, summary.format()
    # Every regular host untouched: same process, same release, in rotation the whole time.
    after = state(fleet)
    for name in REGULAR:
        assert after["hosts"][name]["pid"] == before["hosts"][name]["pid"]
        assert after["hosts"][name]["current"] == before["hosts"][name]["current"]
    assert regular_versions(fleet) == served
    assert all(s.get(n) for _t, s in sampler.samples for n in REGULAR)
    assert min(in_rotation_counts(sampler)) >= 4
    # The surge host: rolled back to the release it ran before, out of rotation (MAINT), stopped; lock released.
    assert after["hosts"][SURGE]["current"] == before["hosts"][SURGE]["current"]
    assert_surge_out_and_unlocked(fleet)


def test_a_failing_regular_host_is_rolled_back_and_the_surge_host_taken_out_before_the_halt(fleet):
    hook = fleet.tmp / "fail_on_app1.yml"
    hook.write_text(
        "- name: A check that fails on app1 only\n"
        "  ansible.builtin.fail:\n"
        "    msg: injected failure on app1\n"
        "  when: inventory_hostname == 'app1'\n"
    )
    before = state(fleet)
    served = regular_versions(fleet)
    proc, summary, sampler = roll(fleet, extra_vars(fleet, "v4", rolling_update_before_enable_tasks=str(hook)))
    assert proc.returncode != 0, output(proc)
    assert "Rollout halted on app1" in proc.stdout and "injected failure on app1" in proc.stdout, output(proc)
    assert "the surge hosts (app5) were drained, put in MAINT and stopped, and the lock is released" in (proc.stdout), (
        output(proc)
    )
    assert summary.failed == 0, summary.format()
    assert min(in_rotation_counts(sampler)) >= 4 and max(in_rotation_counts(sampler)) == 5
    # app1 (the first batch) was rolled back to the release it ran; the other hosts were not touched.
    after = state(fleet)
    assert regular_versions(fleet) == served
    assert after["hosts"]["app1"]["current"] == before["hosts"]["app1"]["current"]
    assert_untouched(fleet, before, after, ("app2", "app3", "app4"))
    # The surge host: drained, in MAINT, stopped before the halt; the lock released.
    assert_surge_out_and_unlocked(fleet)


@pytest.mark.latest_only
def test_a_closed_manual_gate_takes_the_surge_host_out_before_the_halt(fleet):
    """No terminal to answer the gate (AWX, CI): the rollout halts after the first batch, as without surge hosts, and
    the surge host does not stay in rotation with the new release: drained, MAINT, stopped, then the lock released."""
    before = state(fleet)
    proc, summary, sampler = roll(fleet, extra_vars(fleet, "v5", rollout_manual_gate=True), stdin=subprocess.DEVNULL)
    out = output(proc)
    assert proc.returncode != 0, out
    assert "Stopped at the manual gate after app1 (no answer" in proc.stdout, out
    assert "The surge hosts (app5) were drained, put in MAINT and stopped, and the lock is released." in proc.stdout
    assert summary.failed == 0, summary.format()
    assert min(in_rotation_counts(sampler)) >= 4 and max(in_rotation_counts(sampler)) == 5
    # app1 (the batch before the gate) runs v5 and stays in rotation; the other regular hosts were not touched.
    after = state(fleet)
    assert host_version(fleet.host("app1")) == "v5"
    assert_untouched(fleet, before, after, ("app2", "app3", "app4"))
    assert_surge_out_and_unlocked(fleet)
