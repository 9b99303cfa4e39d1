"""After converge and idempotence with ELBv2 target groups on a moto server: every host runs the target
release, and its fake EC2 instance is registered again, healthy, in the same target group and on the
same port as before the rollout. (moto reports a registered target ``healthy`` at once and runs no
health check, so ``healthy`` here means "registered"; the app's own readiness is checked over HTTP.)

The AWS state is read back from moto with boto3, independently of the collection's modules. prepare.yml
started moto's request recorder after it built the target group, so the recording holds exactly the
calls the two rollouts made: each instance was deregistered once and registered back before the next
one was deregistered, and the second rollout (idempotence) wrote nothing.
"""

import base64
import json
import urllib.parse
import urllib.request

import boto3
import pytest

testinfra_hosts = ["ansible://app"]

KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
WRITES = ("RegisterTargets", "DeregisterTargets")


@pytest.fixture(scope="module")
def hostvars(host):
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def endpoint(hostvars):
    return hostvars["rolling_update_aws_endpoint_url"]


@pytest.fixture(scope="module")
def targets(hostvars, endpoint):
    """``{instance id: (port, state)}`` of every target moto lists in the scenario's target group."""
    elbv2 = boto3.client("elbv2", endpoint_url=endpoint, region_name=hostvars["molecule_aws_region"], **KEYS)
    answer = elbv2.describe_target_health(TargetGroupArn=hostvars["molecule_aws_target_group_arn"])
    return {
        d["Target"]["Id"]: (d["Target"].get("Port"), d["TargetHealth"]["State"])
        for d in answer["TargetHealthDescriptions"]
    }


def _recorded_writes(endpoint):
    """``[(action, target group arn, [target ids])]`` of every ELBv2 register/deregister call moto recorded."""
    with urllib.request.urlopen(endpoint + "/moto-api/recorder/download-recording", timeout=10) as answer:  # noqa: S310
        lines = answer.read().decode().splitlines()
    writes = []
    for line in lines:
        entry = json.loads(line)
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode()
        params = urllib.parse.parse_qs(body)
        action = params.get("Action", [""])[0]
        if action in WRITES:
            ids = [v[0] for k, v in sorted(params.items()) if k.startswith("Targets.member.") and k.endswith(".Id")]
            writes.append((action, params["TargetGroupArn"][0], ids))
    return writes


def test_current_points_at_the_target_release(host, hostvars):
    version = hostvars["rolling_update_version"]
    current = host.file(hostvars["rolling_update_path"] + "/current")
    release = host.file("%s/releases/%s" % (hostvars["rolling_update_path"], version))
    assert current.is_symlink
    assert current.linked_to == release.linked_to  # both fully resolved (readlink -f)
    assert host.file(release.path + "/VERSION").content_string.strip() == version
    assert not host.file(hostvars["rolling_update_path"] + "/.rollout-drained").exists


def test_app_answers_with_the_target_version(host, hostvars):
    url = "http://%s:%d/version" % (hostvars["rolling_update_app_host"], hostvars["rolling_update_app_port"])
    code = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
    python = hostvars.get("ansible_python_interpreter", "python3")
    assert host.check_output("%s -c %s %s", python, code, url).strip() == hostvars["rolling_update_version"]


def test_instance_is_registered_healthy_on_its_port(hostvars, targets):
    assert hostvars["instance_id"] in targets, "%s is not in the target group: %s" % (hostvars["instance_id"], targets)
    assert targets[hostvars["instance_id"]] == (hostvars["rolling_update_app_port"], "healthy")


def test_target_group_holds_every_host_and_nothing_else(hostvars, targets):
    assert len(targets) == len(hostvars["groups"]["app"]), targets
    assert {state for _port, state in targets.values()} == {"healthy"}, targets


def test_each_instance_was_taken_out_once_and_put_back_before_the_next(host, hostvars, endpoint):
    runner = host.backend.ansible_runner
    group = hostvars["molecule_aws_target_group_arn"]
    instances = [runner.get_variables(name)["instance_id"] for name in hostvars["groups"]["app"]]
    expected = []
    for instance in instances:  # serial: 1, in inventory order; the idempotence run made no call at all
        expected += [("DeregisterTargets", group, [instance]), ("RegisterTargets", group, [instance])]
    assert _recorded_writes(endpoint) == expected
