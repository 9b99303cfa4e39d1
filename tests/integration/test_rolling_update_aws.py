"""The rolling update with AWS load balancers (ELBv2 target groups and a Classic ELB) on a moto server:
each host is deregistered before its app stops and registered back, in exactly the same groups and
ports, before the next host. The apps are real demo-fleet processes; moto only holds the LB state.

The AWS calls are zerodowntime.rollout.rotation (provider elbv2 / elb_classic), which keeps its resume
record in rolling_update_state_dir on rolling_update_aws_delegate_to (here the fleet's lb-state folder)."""

import json
import os
import re

import aws_support
import pytest
from aws_support import ENV, KEYS, REGION

from conftest import destroy_fleet, make_fleet
from tests.fixtures.fleet.playbook import run_playbook, versions, write_inventory
from tests.fixtures.fleet.release import build_artifact

moto_endpoint_fixture = aws_support.moto_endpoint_fixture
aws_fixture = aws_support.aws_fixture

pytestmark = pytest.mark.integration

AWS_ENV = dict(ENV, AWS_ACCESS_KEY_ID=KEYS["aws_access_key_id"], AWS_SECRET_ACCESS_KEY=KEYS["aws_secret_access_key"])


@pytest.fixture
def fleet():
    f, d = make_fleet(hosts=2, version="v1", first_address="127.0.0.91")
    try:
        yield f
    finally:
        destroy_fleet(f, d)


def inventory(fleet, tmp_path, aws, lb, instance_ids):
    inv = write_inventory(
        fleet,
        str(tmp_path / "inventory.yml"),
        group_vars={
            "rolling_update_lb": lb,
            "rolling_update_aws_endpoint_url": aws.endpoint,
            "rolling_update_aws_region": REGION,
            "rolling_update_health_interval": 0.2,
        },
    )
    import yaml

    with open(inv) as f:
        data = yaml.safe_load(f)
    for host, iid in zip(sorted(data["all"]["children"]["app"]["hosts"]), instance_ids):
        data["all"]["children"]["app"]["hosts"][host]["instance_id"] = iid  # as the aws_ec2 inventory sets it
    with open(inv, "w") as f:
        yaml.safe_dump(data, f)
    return inv


def records(fleet):
    """The resume records in the fleet's rolling_update_state_dir: ``{file name: record}``."""
    folder = os.path.join(fleet.dir, "lb-state", "rotation")
    out = {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.endswith(".json") and not name.startswith("."):
            with open(os.path.join(folder, name)) as f:
                out[name] = json.load(f)
    return out


def extra(tmp_path):
    artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"))
    return {
        "rolling_update_version": "v2",
        "rolling_update_artifact": artifact,
        "rolling_update_artifact_checksum": "sha256:" + sha,
        "rollout_lock_path": str(tmp_path / "rollout.lock"),
    }


def test_elbv2_rollout_puts_targets_back_in_the_same_groups_and_ports(fleet, tmp_path, aws):
    lb = aws.alb()
    web = aws.target_group("tg-web", port=80, delay=1, lb_arn=lb)
    api = aws.target_group("tg-api", port=8080, delay=1, lb_arn=lb)
    one, two = aws.instances(2)
    aws.register(web, one, two)
    aws.register(api, one, two, port=9090)  # both also serve the API, on another port
    before = aws.snapshot([web, api])
    inv = inventory(fleet, tmp_path, aws, "elbv2", [one, two])

    proc = run_playbook(inv, extra(tmp_path), env=AWS_ENV)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Take this host out of rotation on every load balancer" in proc.stdout
    assert "Put this host back on every load balancer" in proc.stdout
    assert versions(fleet) == {"app1": "v2", "app2": "v2"}
    assert aws.snapshot([web, api]) == before  # same targets, same ports, healthy
    # Every record was removed once its target was back; no marker on the app hosts any more.
    assert records(fleet) == {}
    for h in fleet.data["hosts"]:
        assert not os.path.exists(os.path.join(h["deploy_path"], ".rollout-drained"))

    # Done hosts are skipped: nothing is deregistered the second time.
    again = run_playbook(inv, extra(tmp_path), env=AWS_ENV)
    assert again.returncode == 0, again.stdout[-4000:]
    assert "already runs v2, is ready and in rotation: skipped" in again.stdout
    recap = dict(re.findall(r"^(app\d)\s+:\s+ok=\d+\s+changed=(\d+)", again.stdout, re.M))
    assert recap == {"app1": "0", "app2": "0"}, again.stdout[-2000:]
    assert aws.snapshot([web, api]) == before


def test_elbv2_target_not_registered_fails_in_preflight(fleet, tmp_path, aws):
    lb = aws.alb()
    web = aws.target_group("tg-web", port=80, delay=1, lb_arn=lb)
    one, two = aws.instances(2)
    aws.register(web, one)  # app2's instance is behind no group
    before = aws.snapshot([web])
    inv = inventory(fleet, tmp_path, aws, "elbv2", [one, two])
    proc = run_playbook(inv, extra(tmp_path), env=AWS_ENV)
    assert proc.returncode != 0
    assert "%s (app2) is not registered with any target group" % two in proc.stdout, proc.stdout[-3000:]
    assert aws.snapshot([web]) == before and versions(fleet) == {"app1": "v1", "app2": "v1"}


@pytest.mark.latest_only
def test_classic_elb_rollout(fleet, tmp_path, aws):
    one, two = aws.instances(2)
    elb = aws.classic_elb("classic", draining=1)
    aws.elb_register(elb, one, two)
    inv = inventory(fleet, tmp_path, aws, "elb_classic", [one, two])
    proc = run_playbook(inv, extra(tmp_path), env=AWS_ENV)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Take this host out of rotation on every load balancer" in proc.stdout
    assert versions(fleet) == {"app1": "v2", "app2": "v2"}
    assert sorted(aws.elb_instances(elb)) == sorted([one, two])


@pytest.mark.latest_only
def test_elbv2_resume_registers_back_where_an_interrupted_run_deregistered(fleet, tmp_path, aws):
    """A run killed while app1 was out of rotation (after the drain and the replace, before the enable) left the
    target out of its groups and the drain's resume record: the next run puts it back in exactly those groups and
    ports (two groups, two ports), and removes the record."""
    lb = aws.alb()
    web = aws.target_group("tg-web", port=80, delay=1, lb_arn=lb)
    api = aws.target_group("tg-api", port=8080, delay=1, lb_arn=lb)
    one, two = aws.instances(2)
    aws.register(web, one, two)
    aws.register(api, one, two, port=9090)  # both also serve the API, on another port than the group's
    before = aws.snapshot([web, api])
    inv = inventory(fleet, tmp_path, aws, "elbv2", [one, two])
    # Interrupt the run as a killed controller would: SIGKILL to ansible-playbook, from app1's hook that runs
    # inside the out-of-rotation window.
    hook = tmp_path / "interrupt.yml"
    hook.write_text(
        "- name: Kill this ansible-playbook run (the test's interruption)\n"
        "  ansible.builtin.command:\n"
        "    argv: [kill, -KILL, \"{{ (query('zerodowntime.rollout.controller_run') | first).pid }}\"]\n"
        "  changed_when: true\n"
        "  when: inventory_hostname == 'app1'\n"
    )

    killed = run_playbook(inv, dict(extra(tmp_path), rolling_update_before_enable_tasks=str(hook)), env=AWS_ENV)
    assert killed.returncode == -9, killed.stdout[-4000:] + killed.stderr[-2000:]
    # app1 is out of both groups; the drain's record says exactly where it was.
    assert aws.targets(web) == [(two, 80, "healthy")]
    assert aws.targets(api) == [(two, 9090, "healthy")]
    (record,) = list(records(fleet).values())
    assert record["provider"] == "elbv2" and record["target_id"] == one and record["version"] == "v2"
    assert sorted((p["target_group_arn"], p["port"]) for p in record["places"]) == sorted([(web, 80), (api, 9090)])

    proc = run_playbook(inv, extra(tmp_path), env=AWS_ENV)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert aws.snapshot([web, api]) == before
    assert versions(fleet) == {"app1": "v2", "app2": "v2"}
    assert records(fleet) == {}


@pytest.mark.latest_only
@pytest.mark.parametrize("lb", ["elbv2", "elb_classic"])
def test_capacity_guard_reads_aws_target_health_and_refuses_before_deregistering(fleet, tmp_path, aws, lb):
    """Two healthy targets and rolling_update_min_healthy 2: draining either would leave one, so the
    rollout refuses on the first host, names the group or ELB, and nothing is deregistered."""
    one, two = aws.instances(2)
    if lb == "elbv2":
        group = aws.target_group("tg-web", port=80, delay=1, lb_arn=aws.alb())
        aws.register(group, one, two)
        before, where = aws.snapshot([group]), "target group tg-web"
    else:
        group = aws.classic_elb("classic", draining=1)
        aws.elb_register(group, one, two)
        before, where = aws.snapshot(elbs=[group]), "Classic ELB classic"
    inv = inventory(fleet, tmp_path, aws, lb, [one, two])
    proc = run_playbook(inv, dict(extra(tmp_path), rolling_update_min_healthy=2), env=AWS_ENV)
    assert proc.returncode != 0
    assert "Capacity guard: draining %s would leave too few" % one in proc.stdout, proc.stdout[-3000:]
    assert "%s keeps 1 of 2, needs 2" % where in proc.stdout, proc.stdout[-3000:]
    after = aws.snapshot([group]) if lb == "elbv2" else aws.snapshot(elbs=[group])
    assert after == before and versions(fleet) == {"app1": "v1", "app2": "v1"}
    # With 50% the same fleet rolls: one of two stays in rotation.
    ok = run_playbook(inv, dict(extra(tmp_path), rolling_update_min_healthy="50%"), env=AWS_ENV)
    assert ok.returncode == 0, ok.stdout[-4000:]
    assert versions(fleet) == {"app1": "v2", "app2": "v2"}
