# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""main() of elbv2_target and elb_classic_instance in-process, AWS behind a botocore Stubber.

What the modules add to their helpers: the arguments, the client (with the retry wrapper), check
and diff mode, warnings, and the failures (the collection's errors through fail_json with the AWS
calls made, botocore errors through fail_json_aws with what was done before them).
Works on ansible-core 2.17 (no ansible.module_utils.testing) and 2.21 (patch_module_args).
"""

import json
import random
import time

import boto3
import pytest
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from ansible_collections.zerodowntime.rollout.plugins.modules import elb_classic_instance, elbv2_target
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.module_docs import documented_options
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.module_runner import run_main as run

ARN_WEB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg-web/0123456789abcdef"
ARN_API = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg-api/fedcba9876543210"
TARGET = "i-0123456789abcdef0"
WEB = {"TargetGroupArn": ARN_WEB, "TargetGroupName": "tg-web", "Port": 80, "TargetType": "instance"}
API = {"TargetGroupArn": ARN_API, "TargetGroupName": "tg-api", "Port": 8080, "TargetType": "instance"}


class FakeTime:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class AWS:
    """Stubbed clients handed out by AnsibleAWSModule.client, a fake clock and no jitter for the waits."""

    def __init__(self, monkeypatch):
        self.time = FakeTime()
        self.clients = []  # (service, wrapped for retries)
        self.scripts = {}
        monkeypatch.setattr(time, "monotonic", self.time.monotonic)
        monkeypatch.setattr(time, "sleep", self.time.sleep)
        monkeypatch.setattr(random, "random", lambda: 0.0)  # no jitter: exact poll times
        # A bound method set on the class is not bound again: the module is not passed.
        monkeypatch.setattr(AnsibleAWSModule, "client", self._client)

    def _client(self, service, retry_decorator=None, **_extra):
        self.clients.append((service, retry_decorator is not None))
        raw = boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
        self.scripts[service].attach(raw)
        return RetryingBotoClientWrapper(raw, retry_decorator)

    def stub(self, service):
        return self.scripts.setdefault(service, StubScript())

    def done(self):
        for script in self.scripts.values():
            script.stubber.assert_no_pending_responses()


@pytest.fixture
def aws(monkeypatch):
    return AWS(monkeypatch)


class StubScript:
    """Responses queued before the client exists; attached to the client the module creates."""

    def __init__(self):
        self.calls = []
        self.stubber = None

    def response(self, operation, answer, params):
        self.calls.append(("response", operation, answer, params))
        return self

    def error(self, operation, code, params=None, message=""):
        self.calls.append(("error", operation, code, params, message))
        return self

    def attach(self, client):
        self.stubber = Stubber(client)
        for call in self.calls:
            if call[0] == "response":
                self.stubber.add_response(call[1], call[2], call[3])
            else:
                self.stubber.add_client_error(
                    call[1],
                    service_error_code=call[2],
                    service_message=call[4],
                    http_status_code=400,
                    expected_params=call[3],
                )
        self.stubber.activate()


def target_health(arn, state=None, reason=None, port=80):
    descriptions = []
    if state:
        health = {"State": state}
        if reason:
            health["Reason"] = reason
        descriptions.append({"Target": {"Id": TARGET, "Port": port}, "TargetHealth": health})
    return ("describe_target_health", {"TargetHealthDescriptions": descriptions}, {"TargetGroupArn": arn})


def delay(arn, seconds):
    answer = {"Attributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": str(seconds)}]}
    return ("describe_target_group_attributes", answer, {"TargetGroupArn": arn})


def instance_health(name, state):
    answer = {"InstanceStates": [{"InstanceId": TARGET, "State": state, "ReasonCode": "N/A", "Description": "N/A"}]}
    return ("describe_instance_health", answer, {"LoadBalancerName": name, "Instances": [{"InstanceId": TARGET}]})


def lbs(*names, instances=(TARGET,)):
    answer = {
        "LoadBalancerDescriptions": [
            {"LoadBalancerName": n, "Instances": [{"InstanceId": i} for i in instances]} for n in names
        ]
    }
    return ("describe_load_balancers", answer, {"LoadBalancerNames": list(names)})


# ---------------------------------------------------------------------------- documentation


@pytest.mark.parametrize("module", [elbv2_target, elb_classic_instance])
def test_argument_spec_matches_documentation(module):
    spec = module.argument_spec()
    options = documented_options(module)
    assert sorted(spec) == sorted(options)
    for name, opt in options.items():
        arg = spec[name]
        for key, default in (("type", "str"), ("required", False), ("default", None), ("choices", None)):
            assert arg.get(key, default) == opt.get(key, default), (name, key)
        assert arg.get("elements") == opt.get("elements"), name


# ---------------------------------------------------------------------------- elbv2_target


def test_elbv2_registers_with_a_retrying_elbv2_client(aws, capsys):
    elbv2 = aws.stub("elbv2")
    elbv2.response("describe_target_groups", {"TargetGroups": [WEB]}, {"Names": ["tg-web"]})
    elbv2.response(*target_health(ARN_WEB))
    elbv2.response("register_targets", {}, {"TargetGroupArn": ARN_WEB, "Targets": [{"Id": TARGET, "Port": 80}]})
    elbv2.response(*target_health(ARN_WEB, "initial"))
    elbv2.response(*target_health(ARN_WEB, "healthy"))
    code, result = run(elbv2_target, {"target_id": TARGET, "target_groups": ["tg-web"], "state": "registered"}, capsys)
    aws.done()
    assert code == 0, result
    assert aws.clients == [("elbv2", True)]
    assert result["changed"] is True
    assert result["msg"] == (
        "Registered i-0123456789abcdef0 in tg-web:80. Healthy everywhere after 2.0s (2 polls, 5 AWS calls)."
    )
    assert result["timeout"] == 300
    assert result["registrations"] == [{"port": 80, "target_groups": [ARN_WEB]}]
    assert "warnings" not in result
    assert "diff" not in result


def test_elbv2_check_mode_and_diff_reach_the_helper(aws, capsys):
    elbv2 = aws.stub("elbv2")
    elbv2.response("describe_target_groups", {"TargetGroups": [WEB]}, {"Names": ["tg-web"]})
    elbv2.response(*target_health(ARN_WEB, "healthy"))
    elbv2.response(*delay(ARN_WEB, 30))
    args = {
        "target_id": TARGET,
        "target_groups": ["tg-web"],
        "state": "deregistered",
        "_ansible_check_mode": True,
        "_ansible_diff": True,
    }
    code, result = run(elbv2_target, args, capsys)
    aws.done()
    assert code == 0, result
    assert result["changed"] is True
    assert result["waited"] is False
    assert result["diff"] == {"before": {"tg-web:80": "healthy"}, "after": {"tg-web:80": "absent"}}
    assert result["msg"].startswith("Would deregister i-0123456789abcdef0 in tg-web:80 (check mode")


def test_elbv2_warnings_become_module_warnings(aws, capsys):
    elbv2 = aws.stub("elbv2")
    elbv2.response("describe_target_groups", {"TargetGroups": [WEB]}, {"Names": ["tg-web"]})
    elbv2.response(*target_health(ARN_WEB, "draining"))
    elbv2.response(*delay(ARN_WEB, 300))
    elbv2.response(*target_health(ARN_WEB))
    args = {"target_id": TARGET, "target_groups": ["tg-web"], "state": "deregistered", "timeout": 30}
    code, result = run(elbv2_target, args, capsys)
    aws.done()
    assert code == 0, result
    assert result["changed"] is False
    assert "shorter than the longest deregistration delay" in json.dumps(result["warnings"])


def test_elbv2_collection_error_fails_with_its_details_and_the_calls_made(aws, capsys):
    elbv2 = aws.stub("elbv2")
    elbv2.error("describe_target_groups", "TargetGroupNotFound", {"Names": ["tg-web", "tg-nope"]})
    elbv2.response("describe_target_groups", {"TargetGroups": [WEB]}, {"Names": ["tg-web"]})
    elbv2.error("describe_target_groups", "TargetGroupNotFound", {"Names": ["tg-nope"]})
    args = {"target_id": TARGET, "target_groups": ["tg-web", "tg-nope"], "state": "deregistered"}
    code, result = run(elbv2_target, args, capsys)
    aws.done()
    assert code == 1
    assert result["failed"] is True
    assert result["msg"] == (
        "Target group(s) not found (or not a valid name or ARN): tg-nope. Nothing was changed in any target group."
    )
    assert result["changed"] is False
    assert result["missing_target_groups"] == ["tg-nope"]
    assert result["api_calls"] == 3  # not in the error's details: the module adds it


def test_elbv2_wait_timeout_fails_with_the_wait_details(aws, capsys):
    elbv2 = aws.stub("elbv2")
    elbv2.response("describe_target_groups", {"TargetGroups": [WEB]}, {"Names": ["tg-web"]})
    elbv2.response(*target_health(ARN_WEB))
    elbv2.response("register_targets", {}, {"TargetGroupArn": ARN_WEB, "Targets": [{"Id": TARGET, "Port": 80}]})
    for _poll in range(2):  # timeout 1, poll_interval 2: at 0 and at the deadline
        elbv2.response(*target_health(ARN_WEB, "unhealthy", reason="Target.Timeout"))
    args = {"target_id": TARGET, "target_groups": ["tg-web"], "state": "registered", "timeout": 1}
    code, result = run(elbv2_target, args, capsys)
    aws.done()
    assert code == 1
    assert result["msg"] == (
        "Timed out after 1.0s (2 polls) waiting for i-0123456789abcdef0 to be healthy in every target group; "
        "last observed: tg-web:80 unhealthy (Target.Timeout) [waiting]. The target group's health check does "
        "not pass: check the application and the reason above. The change was made."
    )
    assert result["changed"] is True
    assert result["timed_out"] is True
    assert result["polls"] == 2
    assert result["timeout"] == 1
    assert result["elapsed"] == 1.0
    assert result["api_calls"] == 5
    assert [e["after"]["state"] for e in result["target_groups"]] == ["unhealthy"]
    assert aws.time.sleeps == [1.0]


def test_elbv2_botocore_error_fails_with_what_was_done_before_it(aws, capsys):
    elbv2 = aws.stub("elbv2")
    elbv2.response("describe_target_groups", {"TargetGroups": [WEB, API]}, {"Names": ["tg-web", "tg-api"]})
    elbv2.response(*target_health(ARN_WEB))
    elbv2.response(*target_health(ARN_API))
    elbv2.response("register_targets", {}, {"TargetGroupArn": ARN_WEB, "Targets": [{"Id": TARGET, "Port": 80}]})
    elbv2.error("register_targets", "InvalidTarget", message="The target is not running")
    args = {"target_id": TARGET, "target_groups": ["tg-web", "tg-api"], "state": "registered"}
    code, result = run(elbv2_target, args, capsys)
    aws.done()
    assert code == 1
    assert result["msg"].startswith(
        "Failed to register i-0123456789abcdef0 in target group tg-api: An error occurred (InvalidTarget)"
    )
    assert result["changed"] is True
    assert [(e["target_group_name"], e["changed"]) for e in result["target_groups"]] == [
        ("tg-web", True),
        ("tg-api", True),
    ]
    assert result["api_calls"] == 5
    assert result["error"]["code"] == "InvalidTarget"


def test_elbv2_invalid_arguments_fail_before_any_call(aws, capsys):
    aws.stub("elbv2")
    code, result = run(elbv2_target, {"target_id": TARGET, "state": "registered", "timeout": 0}, capsys)
    aws.done()
    assert code == 1
    assert result["msg"].startswith("timeout must be more than 0 seconds, got 0.")
    assert result["api_calls"] == 0


# ---------------------------------------------------------------------------- elb_classic_instance


def test_classic_deregisters_with_a_retrying_elb_client_and_warns_about_the_extension(aws, capsys):
    elb = aws.stub("elb")
    elb.response(*lbs("web"))
    elb.response(*instance_health("web", "InService"))
    attributes = {"LoadBalancerAttributes": {"ConnectionDraining": {"Enabled": True, "Timeout": 60}}}
    elb.response("describe_load_balancer_attributes", attributes, {"LoadBalancerName": "web"})
    change = {"LoadBalancerName": "web", "Instances": [{"InstanceId": TARGET}]}
    elb.response("deregister_instances_from_load_balancer", {"Instances": []}, change)
    elb.response(*instance_health("web", "OutOfService"))
    args = {"instance_id": TARGET, "load_balancers": ["web"], "state": "deregistered", "timeout": 30}
    code, result = run(elb_classic_instance, args, capsys)
    aws.done()
    assert code == 0, result
    assert aws.clients == [("elb", True)]
    assert result["changed"] is True
    assert result["msg"] == (
        "Deregistered i-0123456789abcdef0 on web. Timeout raised to 120s for connection draining (60s). "
        "Out of service everywhere after 0.0s (1 poll, 5 AWS calls)."
    )
    assert result["load_balancer_names"] == ["web"]
    assert "timeout raised from 30s to 120s" in json.dumps(result["warnings"])


def test_classic_check_mode_and_diff_reach_the_helper(aws, capsys):
    elb = aws.stub("elb")
    elb.response(*lbs("web", instances=()))
    elb.response(*instance_health("web", "Unknown"))
    args = {
        "instance_id": TARGET,
        "load_balancers": ["web"],
        "state": "registered",
        "_ansible_check_mode": True,
        "_ansible_diff": True,
    }
    code, result = run(elb_classic_instance, args, capsys)
    aws.done()
    assert code == 0, result
    assert result["changed"] is True
    assert result["diff"] == {
        "before": {"web": {"registered": False, "state": "absent"}},
        "after": {"web": {"registered": True, "state": "InService"}},
    }
    assert result["msg"] == (
        "Would register i-0123456789abcdef0 on web (check mode: nothing changed, nothing waited for)."
    )


def test_classic_collection_error_fails_with_its_details_and_the_calls_made(aws, capsys):
    elb = aws.stub("elb")
    elb.error("describe_load_balancers", "LoadBalancerNotFound", {"LoadBalancerNames": ["nope"]})
    elb.error("describe_load_balancers", "LoadBalancerNotFound", {"LoadBalancerNames": ["nope"]})
    args = {"instance_id": TARGET, "load_balancers": ["nope"], "state": "deregistered"}
    code, result = run(elb_classic_instance, args, capsys)
    aws.done()
    assert code == 1
    assert result["msg"] == "Classic load balancer(s) not found: nope. Nothing was changed on any load balancer."
    assert result["changed"] is False
    assert result["missing_load_balancers"] == ["nope"]
    assert result["api_calls"] == 2


def test_classic_wait_timeout_fails_with_the_wait_details(aws, capsys):
    elb = aws.stub("elb")
    elb.response(*lbs("web"))
    elb.response(*instance_health("web", "OutOfService"))
    for _poll in range(2):
        elb.response(*instance_health("web", "OutOfService"))
    args = {"instance_id": TARGET, "load_balancers": ["web"], "state": "registered", "timeout": 1}
    code, result = run(elb_classic_instance, args, capsys)
    aws.done()
    assert code == 1
    assert result["msg"] == (
        "Timed out after 1.0s (2 polls) waiting for i-0123456789abcdef0 to be InService on every load balancer; "
        "last observed: web OutOfService [waiting]. The ELB health check does not pass: check the application "
        "and the reason above. Nothing was changed."
    )
    assert result["changed"] is False
    assert result["timed_out"] is True
    assert result["polls"] == 2
    assert result["timeout"] == 1
    assert result["api_calls"] == 4
    assert [e["after"]["state"] for e in result["load_balancers"]] == ["OutOfService"]


def test_classic_botocore_error_fails_with_what_was_done_before_it(aws, capsys):
    elb = aws.stub("elb")
    elb.response(*lbs("web", "api"))
    elb.response(*instance_health("web", "InService"))
    elb.response(*instance_health("api", "InService"))
    change = {"LoadBalancerName": "web", "Instances": [{"InstanceId": TARGET}]}
    elb.response("deregister_instances_from_load_balancer", {"Instances": []}, change)
    elb.error("deregister_instances_from_load_balancer", "AccessDenied", message="not allowed")
    args = {"instance_id": TARGET, "load_balancers": ["web", "api"], "state": "deregistered", "wait": False}
    code, result = run(elb_classic_instance, args, capsys)
    aws.done()
    assert code == 1
    assert result["msg"].startswith(
        "Failed to deregister i-0123456789abcdef0 on load balancer api: An error occurred (AccessDenied)"
    )
    assert result["changed"] is True
    assert [e["load_balancer_name"] for e in result["load_balancers"]] == ["web", "api"]
    assert result["api_calls"] == 5
    assert result["error"]["code"] == "AccessDenied"
