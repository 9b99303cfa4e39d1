# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""elb_classic_instance through real ansible-playbook runs against a moto server (state read back with boto3)."""

import aws_support
import pytest
from aws_support import ENV, probe_result, probe_task
from helpers import run_tasks

# aws_support's fixtures (moto_endpoint, aws), used by the tests of this module
moto_endpoint_fixture = aws_support.moto_endpoint_fixture
aws_fixture = aws_support.aws_fixture

pytestmark = pytest.mark.integration

MODULE = "zerodowntime.rollout.elb_classic_instance"


def task(aws, **args):
    return {"name": "elb_classic_instance", MODULE: dict(aws.params, **args)}


def test_register_four_ways(aws):
    web = aws.classic_elb("web")
    api = aws.classic_elb("api")
    one, two = aws.instances(2)
    aws.elb_register(web, one)
    args = {"instance_id": two, "load_balancers": [web, api], "state": "registered", "timeout": 20}
    results, proc = run_tasks(
        [
            dict(task(aws, **args), check_mode=True, diff=True),
            probe_task(aws, "instances", [web, api], "after_check"),
            task(aws, **args),
            probe_task(aws, "instances", [web, api], "after_real"),
            task(aws, **args),
            task(aws, instance_id=two, load_balancers=[web, "nope"], state="deregistered"),
            probe_task(aws, "instances", [web, api], "after_bad"),
        ],
        env=ENV,
    )
    check, probe_check, real, probe_real, again, bad, probe_bad = results
    assert not check.get("failed"), (check, proc.stdout)
    assert check["changed"] is True
    assert check["diff"] == {
        "before": {"web": {"registered": False, "state": "absent"}, "api": {"registered": False, "state": "absent"}},
        "after": {"web": {"registered": True, "state": "InService"}, "api": {"registered": True, "state": "InService"}},
    }
    assert probe_result(probe_check, "after_check") == {web: [one], api: []}

    assert not real.get("failed"), real
    assert real["changed"] is True
    assert real["waited"] is True
    assert [(e["load_balancer_name"], e["after"]["state"]) for e in real["load_balancers"]] == [
        ("web", "InService"),
        ("api", "InService"),
    ]
    assert real["load_balancer_names"] == ["web", "api"]
    assert real["api_calls"] >= 5
    expected = {web: sorted([one, two]), api: [two]}
    assert probe_result(probe_real, "after_real") == expected

    assert not again.get("failed"), again
    assert again["changed"] is False
    assert again["waited"] is True
    assert "already registered on all 2 load balancer(s)" in again["msg"]

    assert bad["failed"] is True
    assert bad["changed"] is False
    assert "Classic load balancer(s) not found: nope. Nothing was changed on any load balancer." in bad["msg"]
    assert probe_result(probe_bad, "after_bad") == expected
    assert aws.snapshot(elbs=[web, api])["elbs"] == expected


def test_deregister_four_ways_with_draining_and_register_back(aws):
    web = aws.classic_elb("web", draining=2)
    api = aws.classic_elb("api")
    other = aws.classic_elb("other")
    one, two = aws.instances(2)
    aws.elb_register(web, one, two)
    aws.elb_register(api, one)
    aws.elb_register(other, two)
    before = aws.snapshot(elbs=[web, api, other])["elbs"]
    args = {"instance_id": one, "state": "deregistered", "timeout": 1}  # load balancers discovered
    results, proc = run_tasks(
        [
            dict(task(aws, **args), check_mode=True, diff=True),
            probe_task(aws, "instances", [web, api, other], "after_check"),
            dict(task(aws, **args), register="__out"),
            probe_task(aws, "instances", [web, api, other], "after_real"),
            task(aws, **args),
            task(aws, instance_id="web1", state="deregistered"),
            task(aws, instance_id=one, load_balancers="{{ __out.load_balancer_names }}", state="registered"),
        ],
        env=ENV,
    )
    check, probe_check, real, probe_real, again, bad, back = results
    assert not check.get("failed"), (check, proc.stdout)
    assert check["changed"] is True
    assert sorted(check["diff"]["before"]) == ["api", "web"]
    assert check["diff"]["after"] == {
        "web": {"registered": False, "state": "absent"},
        "api": {"registered": False, "state": "absent"},
    }
    assert probe_result(probe_check, "after_check") == before

    assert not real.get("failed"), real
    assert real["changed"] is True
    # timeout 1 is below web's 2 s connection draining: raised to 2 + 60 and reported
    assert real["timeout"] == 62
    assert real["timeout_extended"] is True
    assert real["connection_draining_timeout"] == 2
    assert "Timeout raised to 62s for connection draining (2s)" in real["msg"]
    assert "timeout raised from 1s to 62s" in proc.stdout + proc.stderr
    assert sorted(real["load_balancer_names"]) == ["api", "web"]
    assert probe_result(probe_real, "after_real") == {web: [two], api: [], other: [two]}

    assert not again.get("failed"), again
    assert again["changed"] is False
    assert again["load_balancers"] == []
    assert "not registered with any Classic ELB" in again["msg"]

    assert bad["failed"] is True
    assert "instance_id must be an EC2 instance id (i-...), got 'web1'" in bad["msg"]
    assert bad["api_calls"] == 0

    assert not back.get("failed"), back
    assert back["changed"] is True
    assert aws.snapshot(elbs=[web, api, other])["elbs"] == before


def test_action_group_module_defaults_timeout_zero_and_no_wait(aws):
    """``group/zerodowntime.rollout.aws`` alone carries the endpoint, region and keys."""
    web = aws.classic_elb("web")
    (one,) = aws.instances(1)
    tasks = [
        {MODULE: {"instance_id": one, "load_balancers": [web], "state": "registered", "timeout": 0}},
        {MODULE: {"instance_id": one, "load_balancers": [web], "state": "registered", "timeout": -5}},
        {MODULE: {"instance_id": one, "load_balancers": [web], "state": "registered", "wait": False}},
        {"amazon.aws.elb_classic_lb_info": {"names": [web]}},
    ]
    results, proc = run_tasks(
        [dict(t, module_defaults={"group/zerodowntime.rollout.aws": aws.params}) for t in tasks], env=ENV
    )
    zero, negative, nowait, theirs = results
    assert zero["failed"] is True
    assert "timeout must be more than 0 seconds, got 0. To not wait at all, set wait=false instead." in zero["msg"]
    assert negative["failed"] is True
    assert "got -5" in negative["msg"]
    assert not nowait.get("failed"), (nowait, proc.stdout)
    assert nowait["changed"] is True
    assert nowait["waited"] is False
    assert nowait["load_balancers"][0]["after"]["state"] == "InService"
    assert not theirs.get("failed"), theirs
    assert [lb["instances"] for lb in theirs["elbs"]] == [[{"instance_id": one}]]
    assert aws.elb_instances(web) == [one]
