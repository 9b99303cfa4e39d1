# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""elbv2_target through real ansible-playbook runs against a moto server (state read back with boto3)."""

import aws_support
import pytest
from aws_support import ENV, probe_result, probe_task
from helpers import run_tasks

# aws_support's fixtures (moto_endpoint, aws), used by the tests of this module
moto_endpoint_fixture = aws_support.moto_endpoint_fixture
aws_fixture = aws_support.aws_fixture

pytestmark = pytest.mark.integration

MODULE = "zerodowntime.rollout.elbv2_target"


def task(aws, **args):
    params = dict(aws.params)
    params.update(args)
    return {"name": "elbv2_target", MODULE: params}


def fleet(aws, delay=5):
    """Two instances; tg-web (port 80) and tg-api (port 8080) behind one ALB; the first instance in both."""
    lb = aws.alb()
    web = aws.target_group("tg-web", port=80, delay=delay, lb_arn=lb)
    api = aws.target_group("tg-api", port=8080, delay=delay * 2, lb_arn=lb)
    one, two = aws.instances(2)
    return web, api, one, two


def test_register_four_ways(aws):
    web, api, one, two = fleet(aws)
    aws.register(web, one)
    before = aws.snapshot([web, api])
    args = {"target_id": two, "target_groups": ["tg-web", api], "state": "registered", "timeout": 20}
    results, proc = run_tasks(
        [
            dict(task(aws, **args), check_mode=True, diff=True),
            probe_task(aws, "targets", [web, api], "after_check"),
            task(aws, **args),
            probe_task(aws, "targets", [web, api], "after_real"),
            task(aws, **args),
            task(aws, target_id=two, target_groups=["tg-web", "tg-nope", "tg-gone"], state="deregistered"),
            probe_task(aws, "targets", [web, api], "after_bad"),
        ],
        env=ENV,
    )
    check, probe_check, real, probe_real, again, bad, probe_bad = results
    assert not check.get("failed"), check
    assert check["changed"] is True
    assert check["diff"] == {
        "before": {"tg-web:80": "absent", "tg-api:8080": "absent"},
        "after": {"tg-web:80": "healthy", "tg-api:8080": "healthy"},
    }
    assert probe_result(probe_check, "after_check") == before["targets"]

    assert not real.get("failed"), real
    assert real["changed"] is True
    assert real["waited"] is True
    assert real["api_calls"] >= 5
    assert [(g["target_group_name"], g["port"], g["after"]["state"]) for g in real["target_groups"]] == [
        ("tg-web", 80, "healthy"),
        ("tg-api", 8080, "healthy"),
    ]
    after = probe_result(probe_real, "after_real")
    assert after[web] == sorted([(one, 80, "healthy"), (two, 80, "healthy")])
    assert after[api] == [(two, 8080, "healthy")]

    assert not again.get("failed"), again
    assert again["changed"] is False
    assert again["waited"] is True  # already registered: still waits for healthy
    assert "already registered in all 2 target group(s)" in again["msg"]

    assert bad["failed"] is True
    assert "Target group(s) not found (or not a valid name or ARN): tg-nope, tg-gone" in bad["msg"]
    assert bad["changed"] is False
    assert bad["missing_target_groups"] == ["tg-nope", "tg-gone"]
    assert probe_result(probe_bad, "after_bad") == after
    assert aws.snapshot([web, api])["targets"] == after, proc.stdout


def test_deregister_four_ways_and_register_back_in_the_same_groups(aws):
    web, api, one, two = fleet(aws)
    aws.register(web, one, two)
    aws.register(api, one)
    before = aws.snapshot([web, api])
    args = {"target_id": one, "state": "deregistered"}  # target_groups discovered, timeout from the delays
    results, proc = run_tasks(
        [
            dict(task(aws, **args), check_mode=True, diff=True),
            probe_task(aws, "targets", [web, api], "after_check"),
            dict(task(aws, **args), register="__out"),
            probe_task(aws, "targets", [web, api], "after_real"),
            task(aws, **args),
            task(aws, target_id="10.0.0.9", target_groups=[web], state="deregistered"),
            probe_task(aws, "targets", [web, api], "after_bad"),
            {
                "name": "register back where it was, from the registrations returned",
                MODULE: dict(
                    aws.params,
                    target_id=one,
                    state="registered",
                    target_groups="{{ item.target_groups }}",
                    port="{{ item.port }}",
                ),
                "loop": "{{ __out.registrations }}",
            },
        ],
        env=ENV,
    )
    check, probe_check, real, probe_real, again, bad, probe_bad, back = results
    assert not check.get("failed"), check
    assert check["changed"] is True
    assert check["diff"]["before"] == {"tg-web:80": "healthy", "tg-api:8080": "healthy"}
    assert check["diff"]["after"] == {"tg-web:80": "absent", "tg-api:8080": "absent"}
    assert check["timeout"] == 10 + 60  # longest deregistration delay (tg-api: 10 s) + 60
    assert probe_result(probe_check, "after_check") == before["targets"]

    assert not real.get("failed"), real
    assert real["changed"] is True
    assert real["deregistration_delay"] == 10
    registrations = sorted(real["registrations"], key=lambda r: r["port"])  # discovery keeps AWS's order
    assert registrations == [{"port": 80, "target_groups": [web]}, {"port": 8080, "target_groups": [api]}]
    assert probe_result(probe_real, "after_real") == {web: [(two, 80, "healthy")], api: []}

    assert not again.get("failed"), again
    assert again["changed"] is False
    assert again["target_groups"] == []
    assert "not registered in any target group" in again["msg"]

    assert bad["failed"] is True
    assert "tg-web has target type 'instance' and needs an EC2 instance id (i-...) as target_id" in bad["msg"]
    assert probe_result(probe_bad, "after_bad") == {web: [(two, 80, "healthy")], api: []}

    # the registrations fed back put the target in exactly the groups and ports it left
    assert not back.get("failed"), back
    assert [r["changed"] for r in back["results"]] == [True, True]
    assert aws.snapshot([web, api])["targets"] == before["targets"], proc.stdout


def test_action_group_module_defaults_port_override_and_timeout_zero(aws):
    """Only ``module_defaults`` carry the endpoint, region and keys in these tasks.

    ``group/zerodowntime.rollout.aws`` extends ``amazon.aws.aws``: one block serves our modules and amazon.aws's.
    A bare ``group/aws`` is ansible-core's own group (amazon.aws + community.aws), which no other collection can
    join: the last task pins that down, so a change in ansible-core shows up here.
    """
    web, _api, one, _two = fleet(aws)
    ours = {"group/zerodowntime.rollout.aws": aws.params}
    tasks = [
        {MODULE: {"target_id": one, "target_groups": ["tg-web"], "port": 8081, "state": "registered"}},
        probe_task(aws, "targets", [web], "after_port"),
        {MODULE: {"target_id": one, "target_groups": ["tg-web"], "state": "deregistered", "timeout": 3}},
        {MODULE: {"target_id": one, "target_groups": ["tg-web"], "state": "registered", "timeout": 0}},
        {"amazon.aws.elb_application_lb_info": {"names": ["alb"]}},
    ]
    bare = {
        "module_defaults": {"group/aws": aws.params},
        MODULE: {"target_id": one, "target_groups": ["tg-web"], "state": "registered"},
    }
    results, proc = run_tasks([dict(t, module_defaults=ours) for t in tasks] + [bare], env=ENV)
    registered, probe, deregistered, zero, theirs, bare_group = results
    output = proc.stdout + proc.stderr

    assert not registered.get("failed"), (registered, output)
    assert registered["changed"] is True
    assert registered["target_groups"][0]["port"] == 8081
    assert registered["registrations"] == [{"port": 8081, "target_groups": [web]}]
    assert probe_result(probe, "after_port") == {web: [(one, 8081, "healthy")]}

    assert not deregistered.get("failed"), deregistered
    assert deregistered["changed"] is True
    assert deregistered["timeout"] == 3
    assert deregistered["deregistration_delay"] == 5
    assert "timeout (3s) is shorter than the longest deregistration delay" in output

    assert zero["failed"] is True
    assert "timeout must be more than 0 seconds, got 0. To not wait at all, set wait=false instead." in zero["msg"]

    assert not theirs.get("failed"), theirs
    assert [lb["load_balancer_name"] for lb in theirs["load_balancers"]] == ["alb"]

    assert bare_group["failed"] is True
    assert "requires a region" in bare_group["msg"]
    assert aws.targets(web) == []


def test_nlb_tcp_target_group_round_trip(aws):
    """An NLB's TCP target group: drained and registered back like an ALB's."""
    nlb = aws.elbv2.create_load_balancer(Name="nlb", Subnets=aws.subnets(), Type="network")["LoadBalancers"][0]
    group = aws.elbv2.create_target_group(
        Name="tg-tcp", Protocol="TCP", Port=5432, VpcId=aws.vpc_id, TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    aws.elbv2.create_listener(
        LoadBalancerArn=nlb["LoadBalancerArn"],
        Protocol="TCP",
        Port=5432,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": group}],
    )
    (one,) = aws.instances(1)
    aws.register(group, one)
    before = aws.snapshot([group])
    results, proc = run_tasks(
        [
            task(aws, target_id=one, state="deregistered", timeout=20),
            probe_task(aws, "targets", [group], "drained"),
            {
                "name": "back",
                "zerodowntime.rollout.elbv2_target": dict(
                    aws.params,
                    target_id=one,
                    target_groups="{{ _r0.registrations[0].target_groups }}",
                    state="registered",
                    timeout=20,
                ),
            },
        ],
        env=ENV,
    )
    drained, probe, back = results
    assert not drained.get("failed"), drained
    assert [g["target_group_name"] for g in drained["target_groups"]] == ["tg-tcp"]  # discovered
    assert probe_result(probe, "drained") == {group: []}
    assert not back.get("failed") and back["changed"] is True, back
    assert aws.snapshot([group]) == before


def test_invalid_ids_are_refused_and_nothing_changes(aws):
    lb = aws.alb()
    web = aws.target_group("tg-web", port=80, delay=1, lb_arn=lb)
    (one,) = aws.instances(1)
    aws.register(web, one)
    before = aws.snapshot([web])
    results, proc = run_tasks(
        [
            task(aws, target_id="i-doesnotexist", target_groups=["tg-web"], state="registered", timeout=5),
            task(aws, target_id="web1; rm -rf /", target_groups=["tg-web"], state="deregistered", timeout=5),
            {
                "name": "classic",
                "zerodowntime.rollout.elb_classic_instance": dict(
                    aws.params, instance_id="bogus", state="registered", timeout=5
                ),
            },
        ],
        env=ENV,
    )
    bad_id, injected, classic = results
    assert bad_id["failed"] and "needs an EC2 instance id" in bad_id["msg"], bad_id
    assert injected["failed"] and "Nothing was changed in any target group" in injected["msg"], injected
    assert classic["failed"] and "instance_id must be an EC2 instance id" in classic["msg"], classic
    assert aws.snapshot([web]) == before
