"""The rollout plan (playbooks/plan.yml) against a real fleet behind a real HAProxy: it names every
batch and every host with its release, load balancer state, skip decision and the capacity guard's
verdict, and it changes nothing (HAProxy state, releases, `current` symlinks, app processes, lock)."""

import json
import os
import re

import aws_support
import pytest
import yaml
from aws_support import ENV, KEYS, REGION

from conftest import destroy_fleet, hap, make_fleet, server_snapshot, stat, wait_status
from tests.fixtures.fleet.playbook import run_playbook, write_inventory
from tests.fixtures.fleet.release import build_artifact

moto_endpoint_fixture = aws_support.moto_endpoint_fixture
aws_fixture = aws_support.aws_fixture

pytestmark = pytest.mark.integration

PLAN = "zerodowntime.rollout.plan"
HOSTS = ["app1", "app2", "app3", "app4"]


@pytest.fixture(scope="module")
def fleet():
    """app1..app4 on v1; app2 already switched to v2 (not restarted); app4 put in maintenance by hand."""
    f, d = make_fleet(hosts=4, version="v1", first_address="127.0.0.131", retries=0)
    try:
        f.deploy("app2", "v2")
        assert hap(f.admin_socket, "set server app/app4 state maint").strip() == ""
        wait_status(f.admin_socket, "app4", "MAINT")
        yield f
    finally:
        destroy_fleet(f, d)


@pytest.fixture(scope="module")
def setup(fleet, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plan")
    artifact, sha = build_artifact("v2", str(tmp / "artifacts"))
    inv = write_inventory(fleet, str(tmp / "inventory.yml"))
    extra = {
        "rolling_update_version": "v2",
        "rolling_update_artifact": artifact,
        "rolling_update_artifact_checksum": "sha256:" + sha,
        "rollout_serial": [1, "50%"],
        "rolling_update_min_healthy": 2,
        "rolling_update_admin_down": "skip",
        # What a rollout with these variables would lock: the plan must never create it.
        "rollout_lock_path": str(tmp / "rollout.lock"),
    }
    return {"tmp": tmp, "inventory": inv, "extra": extra}


def snapshot(fleet):
    """Everything a rollout would change: HAProxy's view of every server (admin and operational state,
    weights, status), each host's deploy root, releases and `current` symlink (target, inode, mtime),
    and the app processes."""
    out = {"servers_state": {}, "stat": {}, "hosts": {}}
    for sock in fleet.sockets:
        out["servers_state"][sock] = server_snapshot(sock)
        out["stat"][sock] = {n: (s["status"], s["weight"]) for n, s in stat(sock).items()}
    for h in fleet.hosts:
        root = h["deploy_path"]
        link = os.path.join(root, "current")
        st = os.lstat(link)
        out["hosts"][h["name"]] = {
            "root": sorted(os.listdir(root)),
            "releases": sorted(os.listdir(os.path.join(root, "releases"))),
            "current": os.readlink(os.fsencode(link)),
            "current_inode": (st.st_ino, st.st_mtime_ns),
            "pid": fleet.host_pid(h["name"]),
        }
    return out


def plan_lines(stdout):
    """The lines of the plan that the "Show the plan" task printed."""
    m = re.search(r"TASK \[Show the plan\].*?\n\S+: \[\w+\] => (\{\n.*?\n\})\n", stdout, re.S)
    assert m, "no plan in the output:\n" + stdout[-3000:]
    return json.loads(m.group(1))["msg"]


def plan_stats(stdout):
    """The plan returned with set_stats (printed by ANSIBLE_SHOW_CUSTOM_STATS)."""
    m = re.search(r"^\s*RUN: (\{.*\})\s*$", stdout, re.M)
    assert m, "no custom stats in the output:\n" + stdout[-3000:]
    return json.loads(m.group(1))["rollout_plan"]


def recap(stdout):
    out = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", stdout, re.M):
        out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return out


def run_plan(setup, extra=None, args=(), inventory=None):
    return run_playbook(
        inventory or setup["inventory"],
        {**setup["extra"], **(extra or {})},
        args=args,
        env={"ANSIBLE_SHOW_CUSTOM_STATS": "1"},
        playbook=PLAN,
    )


def batch_of(lines):
    """host -> (batch number, its table row), and batch number -> capacity guard line."""
    rows, capacity, batch = {}, {}, None
    for line in lines:
        m = re.match(r"Batch (\d+) of (\d+): (.*)$", line)
        if m:
            batch = int(m.group(1))
            continue
        if line.startswith("  capacity guard:"):
            capacity[batch] = line
        elif batch and re.match(r"  app\d ", line):
            rows[line.split()[0]] = (batch, line)
    return rows, capacity


def test_plan_names_batches_hosts_and_verdicts_and_changes_nothing(fleet, setup):
    before = snapshot(fleet)
    proc = run_plan(setup)
    after = snapshot(fleet)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert after == before
    assert not os.path.exists(setup["extra"]["rollout_lock_path"])
    rc = recap(proc.stdout)
    assert set(HOSTS) <= set(rc) and all(rc[h]["changed"] == 0 and rc[h]["failed"] == 0 for h in HOSTS), rc

    lines = plan_lines(proc.stdout)
    text = "\n".join(lines)
    assert lines[0].startswith('Rollout plan: 4 hosts to v2 in 3 batches (rollout_serial [1, "50%"])'), text
    assert "lb1 = localhost:%s" % fleet.admin_socket in lines, text
    # Batches of 1, then 50% of 4 = 2, then the rest; every host in its batch, once.
    assert [ln for ln in lines if ln.startswith("Batch ")] == [
        "Batch 1 of 3: app1",
        "Batch 2 of 3: app2, app3",
        "Batch 3 of 3: app4",
    ], text
    rows, capacity = batch_of(lines)
    assert {h: batch for h, (batch, row) in rows.items()} == {"app1": 1, "app2": 2, "app3": 2, "app4": 3}, text
    cells = {h: row.split(None, 5) for h, (batch, row) in rows.items()}  # host, current, ->, target, lb1, decision
    assert cells["app1"] == ["app1", "v1", "->", "v2", "UP/ready", "roll"], text
    assert cells["app2"] == ["app2", "v2", "->", "v2", "UP/ready", "skip: already runs v2, is ready and in rotation"]
    assert cells["app3"] == ["app3", "v1", "->", "v2", "UP/ready", "roll"], text
    assert cells["app4"][:5] == ["app4", "v1", "->", "v2", "MAINT/maint"], text
    assert cells["app4"][5].startswith(
        "skip: out of rotation, not by this collection (rolling_update_admin_down: skip)"
    )
    # min_healthy 2: draining app1 keeps app2 and app3; draining app2 and app3 together keeps app1 only.
    assert capacity[1] == "  capacity guard: ok: lb1 keeps 2 of 4 in rotation (needs 2)", text
    assert capacity[2] == "  capacity guard: WOULD REFUSE: lb1 keeps 1 of 4 in rotation, needs 2 (already out: app4)"
    assert capacity[3] == "  capacity guard: not checked: every host of this batch is skipped", text
    assert lines[-1].startswith("Verdict: the rollout would halt at batch 2"), text

    # The same plan as data (set_stats), for tests and AWX workflows.
    plan = plan_stats(proc.stdout)
    assert plan["lines"] == lines
    assert [[h["host"] for h in b["hosts"]] for b in plan["batches"]] == [["app1"], ["app2", "app3"], ["app4"]]
    assert [b["capacity"]["status"] for b in plan["batches"]] == ["ok", "refuse", "not checked"]
    hosts = {h["host"]: h for b in plan["batches"] for h in b["hosts"]}
    assert {n: (h["current"], h["action"]) for n, h in hosts.items()} == {
        "app1": ("v1", "roll"),
        "app2": ("v2", "skip"),
        "app3": ("v1", "roll"),
        "app4": ("v1", "skip"),
    }
    assert hosts["app4"]["lbs"] == [
        {"where": "localhost:" + fleet.admin_socket, "state": "MAINT/maint", "in_rotation": False}
    ]
    assert plan["halts_at"] == 2 and plan["preflight_errors"] == [] and plan["would_complete"] is False


def test_plan_in_check_mode_with_admin_down_roll(fleet, setup):
    before = snapshot(fleet)
    proc = run_plan(setup, {"rolling_update_admin_down": "roll"}, args=["--check"])
    after = snapshot(fleet)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert after == before
    lines = plan_lines(proc.stdout)
    rows, capacity = batch_of(lines)
    # app4 is rolled now; its batch is checked with app1 and app3 back in rotation after batches 1 and 2.
    assert rows["app4"][0] == 3 and "roll: out of rotation, not by this collection" in rows["app4"][1]
    assert "(rolling_update_admin_down: roll)" in rows["app4"][1]
    assert capacity[1].startswith("  capacity guard: ok:")
    assert capacity[2].startswith("  capacity guard: WOULD REFUSE:")
    assert capacity[3] == "  capacity guard: ok: lb1 keeps 3 of 4 in rotation (needs 2)", "\n".join(lines)


def test_invalid_serial_is_refused_before_anything_is_read(fleet, setup):
    before = snapshot(fleet)
    proc = run_plan(setup, {"rollout_serial": "abc"})
    assert snapshot(fleet) == before
    assert proc.returncode != 0
    assert "rollout_serial: 'abc' is not a number, a percentage such as '25%'" in proc.stdout, proc.stdout[-3000:]
    assert "Read the backend" not in proc.stdout and "Show the plan" not in proc.stdout


def test_a_wrong_option_type_stops_the_rollout_before_the_lock_and_before_any_host_is_read(fleet, setup):
    # The role's arguments are validated once, for every host, in the rolling_update playbook's first play
    # (entry point preflight): not first in a batch, after the lock was taken and every host prepared.
    before = snapshot(fleet)
    proc = run_playbook(
        setup["inventory"], {**setup["extra"], "rollout_serial": 1, "rolling_update_keep_releases": "abc"}
    )
    assert snapshot(fleet) == before
    assert proc.returncode != 0
    assert "Validating arguments against arg spec 'preflight'" in proc.stdout, proc.stdout[-3000:]
    assert "rolling_update_keep_releases" in proc.stdout
    for later in ("Read this host on every load balancer", "Take the rollout lock", "Read the host and unpack"):
        assert later not in proc.stdout
    assert not os.path.exists(setup["extra"]["rollout_lock_path"])


def test_bad_server_name_and_admin_down_stop_at_preflight_and_change_nothing(fleet, setup):
    # app3's server name would carry a second Runtime API command; app4 is in maintenance and
    # rolling_update_admin_down is left at "fail". Both are refused, the others still planned.
    with open(setup["inventory"]) as f:
        inv = yaml.safe_load(f)
    inv["all"]["children"]["app"]["hosts"]["app3"]["rolling_update_haproxy_server"] = (
        "app3;set server app/app1 state maint"
    )
    path = str(setup["tmp"] / "inventory-bad.yml")
    with open(path, "w") as f:
        yaml.safe_dump(inv, f)
    before = snapshot(fleet)
    proc = run_plan(setup, {"rolling_update_admin_down": "fail"}, inventory=path)
    assert snapshot(fleet) == before
    assert proc.returncode != 0
    lines = plan_lines(proc.stdout)
    rows = batch_of(lines)[0]
    assert rows["app1"][1].split()[-1] == "roll"
    assert "fail: preflight refuses:" in rows["app3"][1] and "invalid HAProxy name" in rows["app3"][1]
    assert "fail: preflight refuses: app4 is out of rotation (maint)" in rows["app4"][1]
    # A refused host still shows what its load balancers said (read before the refusal); app3's bad name was
    # refused before any load balancer was read.
    hosts = {h["host"]: h for b in plan_stats(proc.stdout)["batches"] for h in b["hosts"]}
    assert hosts["app4"]["lbs"] == [
        {"where": "localhost:" + fleet.admin_socket, "state": "MAINT/maint", "in_rotation": False}
    ]
    assert hosts["app3"]["lbs"] == []
    assert lines[-1] == "Verdict: the rollout would stop at preflight (app3, app4) before changing anything."
    assert "The rollout would stop at preflight, before changing anything" in proc.stdout
    assert stat(fleet.admin_socket)["app1"]["status"] == "UP"


def test_plan_with_elbv2_target_groups(aws, tmp_path):
    """The AWS side: target group health per host, and the capacity guard over every target of the group."""
    f, d = make_fleet(hosts=2, version="v1", first_address="127.0.0.136", retries=0)
    try:
        lb = aws.alb()
        web = aws.target_group("tg-web", port=80, delay=1, lb_arn=lb)
        one, two = aws.instances(2)
        aws.register(web, one, two)
        inv = write_inventory(
            f,
            str(tmp_path / "inventory.yml"),
            group_vars={
                "rolling_update_lb": "elbv2",
                "rolling_update_aws_endpoint_url": aws.endpoint,
                "rolling_update_aws_region": REGION,
            },
        )
        with open(inv) as fh:
            data = yaml.safe_load(fh)
        for host, iid in (("app1", one), ("app2", two)):
            data["all"]["children"]["app"]["hosts"][host]["instance_id"] = iid
        with open(inv, "w") as fh:
            yaml.safe_dump(data, fh)
        artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"))
        before = (aws.snapshot([web]), snapshot(f))
        proc = run_playbook(
            inv,
            {
                "rolling_update_version": "v2",
                "rolling_update_artifact": artifact,
                "rolling_update_artifact_checksum": "sha256:" + sha,
                "rolling_update_min_healthy": 2,
            },
            env=dict(
                ENV,
                AWS_ACCESS_KEY_ID=KEYS["aws_access_key_id"],
                AWS_SECRET_ACCESS_KEY=KEYS["aws_secret_access_key"],
                ANSIBLE_SHOW_CUSTOM_STATS="1",
            ),
            playbook=PLAN,
        )
        assert (aws.snapshot([web]), snapshot(f)) == before
        assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
        plan = plan_stats(proc.stdout)
        assert [[h["host"] for h in b["hosts"]] for b in plan["batches"]] == [["app1"], ["app2"]]
        first = plan["batches"][0]["hosts"][0]
        assert first["lbs"] == [{"where": "tg-web:80", "state": "healthy", "in_rotation": True}]
        assert first["action"] == "roll" and first["current"] == "v1"
        # Two targets, min_healthy 2: draining either leaves one.
        assert [b["capacity"]["status"] for b in plan["batches"]] == ["refuse", "refuse"]
        assert "target group tg-web keeps 1 of 2 in rotation, needs 2" in plan["batches"][0]["capacity"]["reason"]
        assert plan["halts_at"] == 1
    finally:
        destroy_fleet(f, d)
