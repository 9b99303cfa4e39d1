# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""zerodowntime.rollout.rotation with the AWS providers, through real ansible-playbook runs against a moto server:
out and in four ways each (check mode, for real, again, bad input), state read back with boto3 from inside the play
(aws_support's probe) and the resume record read from disk.

The AWS providers always run as a module, also on a local connection without become (where the HAProxy provider
runs in the controller's worker): the AnsiballZ payloads kept with ANSIBLE_KEEP_REMOTE_FILES show it."""

import json
import os

import aws_support
import pytest
from aws_support import ENV, probe_result, probe_task
from helpers import run_tasks

moto_endpoint_fixture = aws_support.moto_endpoint_fixture
aws_fixture = aws_support.aws_fixture

pytestmark = pytest.mark.integration

MODULE = "zerodowntime.rollout.rotation"


def task(aws, state_dir, provider, state, **args):
    params = dict(aws.params, provider=provider, state=state, state_dir=state_dir)
    params.update(args)
    return {"name": "rotation %s %s" % (provider, state), MODULE: params}


def records(state_dir):
    folder = os.path.join(state_dir, "rotation")
    out = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        with open(os.path.join(folder, name)) as f:
            out.append(json.load(f))
    return out


def shipped(remote_tmp):
    return [n for _d, _s, files in os.walk(remote_tmp) for n in files if n.startswith("AnsiballZ_rotation")]


def test_elbv2_out_and_in_four_ways(aws, tmp_path):
    lb = aws.alb()
    web = aws.target_group("tg-web", port=80, delay=1, lb_arn=lb)
    api = aws.target_group("tg-api", port=8080, delay=1, lb_arn=lb)
    one, two = aws.instances(2)
    aws.register(web, one, two)
    aws.register(api, one, two, port=9090)
    before = aws.snapshot([web, api])["targets"]
    state_dir = str(tmp_path / "state")
    remote_tmp = str(tmp_path / "remote-tmp")
    out = {"target_id": one, "min_healthy": "1", "batch": [one], "version": "v2"}

    results, proc = run_tasks(
        [
            task(aws, state_dir, "elbv2", "read", target_id=one),
            dict(task(aws, state_dir, "elbv2", "out", **out), check_mode=True, diff=True),
            probe_task(aws, "targets", [web, api], "after_check"),
            task(aws, state_dir, "elbv2", "out", **out),
            probe_task(aws, "targets", [web, api], "after_out"),
            task(aws, state_dir, "elbv2", "out", **out),
            task(aws, state_dir, "elbv2", "out", target_id=two, min_healthy="2"),
            probe_task(aws, "targets", [web, api], "after_bad"),
        ],
        env=dict(ENV, ANSIBLE_REMOTE_TEMP=remote_tmp, ANSIBLE_KEEP_REMOTE_FILES="1"),
    )
    read, check, probe_check, real, probe_out, again, bad, probe_bad = results
    assert read["in_rotation"] is True and read["found"] is True and read["record"] is None, read
    assert sorted((p["target_group_name"], p["port"]) for p in read["places"]) == [("tg-api", 9090), ("tg-web", 80)]
    # Shipped as a module although the connection is local and there is no become.
    assert len(shipped(remote_tmp)) == 5, shipped(remote_tmp)

    assert check["changed"] is True and not check.get("failed"), check
    assert set(check["diff"]["after"].values()) == {"absent"}
    assert probe_result(probe_check, "after_check") == before

    assert real["changed"] is True and not real.get("failed"), real
    assert real["steps"][0]["name"] == "drain" and real["record_written"] is True
    assert probe_result(probe_out, "after_out") == {web: [(two, 80, "healthy")], api: [(two, 9090, "healthy")]}
    [record] = records(state_dir)
    assert sorted((p["target_group_arn"], p["port"]) for p in record["places"]) == sorted([(web, 80), (api, 9090)])
    assert record["version"] == "v2"

    assert again["changed"] is False and not again.get("failed"), again

    assert bad.get("failed") is True and bad["changed"] is False
    assert "Capacity guard: draining %s would leave too few" % two in bad["msg"]
    assert probe_result(probe_bad, "after_bad") == probe_result(probe_out, "after_out")

    results, proc = run_tasks(
        [
            dict(task(aws, state_dir, "elbv2", "in", target_id=one), check_mode=True, diff=True),
            probe_task(aws, "targets", [web, api], "after_check"),
            task(aws, state_dir, "elbv2", "in", target_id=one),
            probe_task(aws, "targets", [web, api], "after_in"),
            task(aws, state_dir, "elbv2", "in", target_id=one),
            task(aws, state_dir, "elbv2", "in", target_id=one, target_groups=["tg-nope"]),
        ],
        env=ENV,
    )
    check, probe_check, real, probe_in, again, bad = results
    assert check["changed"] is True and not check.get("failed"), check
    assert probe_result(probe_check, "after_check") == probe_result(probe_out, "after_out")
    assert check["registered_from"] == "record" and check["record_removed"] is False
    assert real["changed"] is True and real["registered_from"] == "record" and real["record_removed"] is True, real
    assert probe_result(probe_in, "after_in") == before and records(state_dir) == []
    assert again["changed"] is False and not again.get("failed"), again
    assert bad.get("failed") is True and "tg-nope" in bad["msg"] and bad["changed"] is False


@pytest.mark.latest_only
def test_classic_out_and_in_four_ways(aws, tmp_path):
    one, two = aws.instances(2)
    elb = aws.classic_elb("classic", draining=1)
    aws.elb_register(elb, one, two)
    state_dir = str(tmp_path / "state")
    results, proc = run_tasks(
        [
            dict(task(aws, state_dir, "elb_classic", "out", target_id=one, min_healthy="1"), check_mode=True),
            probe_task(aws, "instances", [elb], "after_check"),
            task(aws, state_dir, "elb_classic", "out", target_id=one, min_healthy="1"),
            probe_task(aws, "instances", [elb], "after_out"),
            task(aws, state_dir, "elb_classic", "out", target_id=one, min_healthy="1"),
            task(aws, state_dir, "elb_classic", "in", target_id=one, load_balancers=["nope"]),
            task(aws, state_dir, "elb_classic", "in", target_id=one),
            probe_task(aws, "instances", [elb], "after_in"),
            task(aws, state_dir, "elb_classic", "in", target_id=one),
            task(aws, state_dir, "elb_classic", "read", target_id="web1"),
        ],
        env=ENV,
    )
    check, probe_check, real, probe_out, again, ignored, back, probe_in, back_again, bad = results
    assert check["changed"] is True and probe_result(probe_check, "after_check") == {elb: sorted([one, two])}
    assert real["changed"] is True and probe_result(probe_out, "after_out") == {elb: [two]}, real
    assert real["timeout"] == 300 and real["connection_draining_timeout"] == 1
    assert again["changed"] is False and not again.get("failed"), again
    # The record knows where the instance was: given load balancers do not override it.
    assert ignored["changed"] is True and ignored["registered_from"] == "record", ignored
    assert back["changed"] is False and back["registered_from"] == "current"
    assert probe_result(probe_in, "after_in") == {elb: sorted([one, two])} and records(state_dir) == []
    assert back_again["changed"] is False
    assert bad.get("failed") is True and "instance_id must be an EC2 instance id" in bad["msg"]
