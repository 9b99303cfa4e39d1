# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ELBv2Targets against a botocore Stubber (the sequences moto cannot produce) and a fake clock.

The client is wrapped in amazon.aws's RetryingBotoClientWrapper with AWSRetry.jittered_backoff, as the
module does, so throttling goes through the real retry decorator (with a zero delay).
"""

import collections

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry, RetryingBotoClientWrapper
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.elbv2 import ELBv2Targets
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    NotFoundError,
    ValidationError,
    WaitTimeout,
)

ACCOUNT = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
ARN_WEB = ACCOUNT + ":targetgroup/tg-web/0123456789abcdef"
ARN_API = ACCOUNT + ":targetgroup/tg-api/fedcba9876543210"
ARN_IPS = ACCOUNT + ":targetgroup/tg-ips/00112233aabbccdd"
ARN_FN = ACCOUNT + ":targetgroup/tg-fn/99887766aabbccdd"
ARN_LB = ACCOUNT + ":loadbalancer/app/alb/50dc6c495c0c9188"
TARGET = "i-0123456789abcdef0"
OTHER = "i-0fedcba9876543210"


class FakeClock:
    def __init__(self, start=500.0):
        self.now = start
        self.start = start
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def group(name, arn, port=80, target_type="instance"):
    return {
        "TargetGroupArn": arn,
        "TargetGroupName": name,
        "Protocol": "HTTP",
        "Port": port,
        "TargetType": target_type,
        "LoadBalancerArns": [ARN_LB],
    }


WEB = group("tg-web", ARN_WEB)
API = group("tg-api", ARN_API, port=8080)
IPS = group("tg-ips", ARN_IPS, target_type="ip")
FN = group("tg-fn", ARN_FN, port=None, target_type="lambda")
del FN["Port"]


def health(state, target=TARGET, port=80, reason=None, description=None):
    th = {"State": state}
    if reason:
        th["Reason"] = reason
    if description:
        th["Description"] = description
    return {"Target": {"Id": target, "Port": port}, "HealthCheckPort": "traffic-port", "TargetHealth": th}


class Harness:
    """A Stubber-backed elbv2 client behind the retry wrapper, a fake clock and a scripted jitter source."""

    def __init__(self, rand=0.0):
        client = boto3.client(
            "elbv2", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        self.stub = Stubber(client)
        # Every request that reaches the client, by operation name (each retry of the backoff too).
        self.requests = collections.Counter()
        client.meta.events.register_first("before-call.*.*", lambda model, **_kw: self.requests.update([model.name]))
        self.stub.activate()
        self.clock = FakeClock()
        wrapped = RetryingBotoClientWrapper(client, AWSRetry.jittered_backoff(retries=4, delay=0))
        self.targets = ELBv2Targets(
            wrapped, aws_retry=True, clock=self.clock, sleep=self.clock.sleep, rand=lambda: rand
        )

    # scripted answers
    def groups(self, groups, marker=None, next_marker=None, **params):
        answer = {"TargetGroups": groups}
        if next_marker:
            answer["NextMarker"] = next_marker
        if marker:
            params["Marker"] = marker
        self.stub.add_response("describe_target_groups", answer, params)

    def groups_not_found(self, **params):
        self.stub.add_client_error(
            "describe_target_groups",
            service_error_code="TargetGroupNotFound",
            service_message="One or more target groups not found",
            http_status_code=400,
            expected_params=params,
        )

    def health(self, arn, *descriptions):
        self.stub.add_response(
            "describe_target_health", {"TargetHealthDescriptions": list(descriptions)}, {"TargetGroupArn": arn}
        )

    def throttled(self, operation, params):
        self.stub.add_client_error(
            operation,
            service_error_code="Throttling",
            service_message="Rate exceeded",
            http_status_code=400,
            expected_params=params,
        )

    def delay(self, arn, seconds):
        self.stub.add_response(
            "describe_target_group_attributes",
            {"Attributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": str(seconds)}]},
            {"TargetGroupArn": arn},
        )

    def register(self, arn, port=80, target=TARGET):
        self.stub.add_response(
            "register_targets", {}, {"TargetGroupArn": arn, "Targets": [{"Id": target, "Port": port}]}
        )

    def deregister(self, arn, port=80, target=TARGET):
        self.stub.add_response(
            "deregister_targets", {}, {"TargetGroupArn": arn, "Targets": [{"Id": target, "Port": port}]}
        )

    def run(self, **kwargs):
        params = {"target_id": TARGET, "state": "registered", "target_groups": ["tg-web"]}
        params.update(kwargs)
        return self.targets.ensure(**params)

    def done(self):
        self.stub.assert_no_pending_responses()


def test_register_waits_from_initial_to_healthy():
    h = Harness()
    h.groups([WEB], Names=["tg-web"])
    h.health(ARN_WEB, health("healthy", target=OTHER))
    h.register(ARN_WEB)
    h.health(ARN_WEB, health("initial", reason="Elb.RegistrationInProgress"))
    h.health(ARN_WEB, health("initial", reason="Elb.InitialHealthChecking"))
    h.health(ARN_WEB, health("healthy"))
    result = h.run(diff=True)
    h.done()
    assert result["changed"] is True
    assert result["waited"] is True
    assert result["polls"] == 3
    assert result["timeout"] == 300
    assert result["api_calls"] == 6
    assert h.clock.sleeps == [2.0, 3.0]  # backoff 1.5 from poll_interval 2, no jitter drawn
    assert result["elapsed"] == 5.0
    [entry] = result["target_groups"]
    assert entry["target_group_arn"] == ARN_WEB
    assert entry["port"] == 80
    assert entry["before"]["state"] == "absent"
    assert entry["after"]["state"] == "healthy"
    assert result["registrations"] == [{"port": 80, "target_groups": [ARN_WEB]}]
    assert result["diff"] == {"before": {"tg-web:80": "absent"}, "after": {"tg-web:80": "healthy"}}
    assert "Registered i-0123456789abcdef0 in tg-web:80. Healthy everywhere" in result["msg"]


def test_already_registered_but_initial_is_still_waited_for():
    h = Harness()
    h.groups([WEB], Names=["tg-web"])
    h.health(ARN_WEB, health("initial", reason="Elb.InitialHealthChecking"))
    h.health(ARN_WEB, health("initial", reason="Elb.InitialHealthChecking"))
    h.health(ARN_WEB, health("healthy"))
    result = h.run()
    h.done()
    assert result["changed"] is False
    assert result["waited"] is True
    assert result["polls"] == 2
    assert result["target_groups"][0]["before"]["state"] == "initial"
    assert result["target_groups"][0]["after"]["state"] == "healthy"


def test_unhealthy_at_the_deadline_fails_with_reason_and_description():
    h = Harness()
    h.groups([WEB], Names=["tg-web"])
    h.health(ARN_WEB, health("healthy", target=OTHER))
    h.register(ARN_WEB)
    bad = health(
        "unhealthy", reason="Target.ResponseCodeMismatch", description="Health checks failed with these codes: [502]"
    )
    # timeout 10: polls at 0, 2, 5, 9.5 and the deadline 10.
    for _poll in range(5):
        h.health(ARN_WEB, bad)
    with pytest.raises(WaitTimeout) as info:
        h.run(timeout=10)
    h.done()
    msg = info.value.msg
    assert "Timed out after 10.0s (5 polls)" in msg
    assert "Target.ResponseCodeMismatch" in msg
    assert "Health checks failed with these codes: [502]" in msg
    assert "The change was made." in msg
    details = info.value.details
    assert details["changed"] is True
    assert details["timed_out"] is True
    assert details["target_groups"][0]["after"]["reason"] == "Target.ResponseCodeMismatch"
    assert details["api_calls"] == 8


def test_deregister_waits_from_draining_to_unused_with_default_timeout_from_delay():
    h = Harness()
    h.groups([WEB], Names=["tg-web"])
    h.health(ARN_WEB, health("healthy"), health("healthy", target=OTHER))
    h.delay(ARN_WEB, 30)
    h.deregister(ARN_WEB)
    h.health(ARN_WEB, health("draining", reason="Target.DeregistrationInProgress"), health("healthy", target=OTHER))
    h.health(ARN_WEB, health("draining", reason="Target.DeregistrationInProgress"), health("healthy", target=OTHER))
    h.health(ARN_WEB, health("unused", reason="Target.NotRegistered"), health("healthy", target=OTHER))
    result = h.run(state="deregistered", diff=True)
    h.done()
    assert result["changed"] is True
    assert result["deregistration_delay"] == 30
    assert result["timeout"] == 90
    assert result["polls"] == 3
    assert result["target_groups"][0]["before"]["state"] == "healthy"
    assert result["target_groups"][0]["after"]["state"] == "absent"
    # what to feed back to register it again: exactly this group and port
    assert result["registrations"] == [{"port": 80, "target_groups": [ARN_WEB]}]
    assert result["diff"]["after"] == {"tg-web:80": "absent"}


def test_deregister_gone_from_the_group_counts_as_drained():
    h = Harness()
    h.groups([WEB], Names=["tg-web"])
    h.health(ARN_WEB, health("draining", reason="Target.DeregistrationInProgress"))
    h.delay(ARN_WEB, 300)
    h.health(ARN_WEB, health("draining", reason="Target.DeregistrationInProgress"))
    h.health(ARN_WEB)
    result = h.run(state="deregistered")
    h.done()
    assert result["changed"] is False  # already draining: nothing to do but wait
    assert result["timeout"] == 360
    assert result["target_groups"][0]["after"]["state"] == "absent"
    assert result["registrations"] == [{"port": 80, "target_groups": [ARN_WEB]}]


def test_throttling_is_retried_by_the_backoff_decorator_and_counted():
    h = Harness()
    h.groups([WEB], Names=["tg-web"])
    h.throttled("describe_target_health", {"TargetGroupArn": ARN_WEB})
    h.health(ARN_WEB, health("healthy"))
    h.health(ARN_WEB, health("healthy"))
    result = h.run()
    h.done()
    assert result["changed"] is False
    assert result["polls"] == 1
    assert result["api_calls"] == 4  # describe groups, throttled + retried health, one poll
    assert h.requests["DescribeTargetHealth"] == 3


def test_throttling_without_the_retry_wrapper_propagates_the_botocore_error():
    client = boto3.client("elbv2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    stub = Stubber(client)
    stub.add_response("describe_target_groups", {"TargetGroups": [WEB]}, {"Names": ["tg-web"]})
    stub.add_client_error("describe_target_health", service_error_code="Throttling", http_status_code=400)
    stub.activate()
    targets = ELBv2Targets(client)
    with pytest.raises(ClientError) as info:
        targets.ensure(TARGET, "registered", target_groups=["tg-web"])
    assert info.value.response["Error"]["Code"] == "Throttling"
    assert targets.action == "describe target health in target group tg-web"
    assert targets.partial_result() == {"changed": False, "target_groups": [], "api_calls": 2}


def test_discovery_reads_every_page_and_every_group():
    h = Harness()
    h.groups([WEB, FN], next_marker="page-2")
    h.groups([API, IPS], marker="page-2")
    h.health(ARN_WEB, health("healthy"), health("healthy", target=OTHER))
    h.health(ARN_API, health("healthy", target=OTHER, port=8080))
    h.health(ARN_IPS, health("healthy", target="10.0.0.5", port=80))
    # the lambda group is not read
    h.deregister(ARN_WEB)
    h.health(ARN_WEB, health("draining"), health("healthy", target=OTHER))
    result = h.run(state="deregistered", target_groups=None, wait=False)
    h.done()
    assert result["changed"] is True
    assert [e["target_group_name"] for e in result["target_groups"]] == ["tg-web"]
    assert result["target_groups"][0]["after"]["state"] == "draining"
    assert result["registrations"] == [{"port": 80, "target_groups": [ARN_WEB]}]
    assert result["waited"] is False
    assert result["timeout"] is None


def test_discovery_finds_several_ports_and_returns_them_for_re_registration():
    h = Harness()
    h.groups([WEB, API])
    h.health(ARN_WEB, health("healthy", port=80), health("healthy", port=81))
    h.health(ARN_API, health("unhealthy", port=8080))
    h.stub.add_response(
        "deregister_targets",
        {},
        {"TargetGroupArn": ARN_WEB, "Targets": [{"Id": TARGET, "Port": 80}, {"Id": TARGET, "Port": 81}]},
    )
    h.deregister(ARN_API, port=8080)
    h.health(ARN_WEB)
    h.health(ARN_API)
    result = h.run(state="deregistered", target_groups=None, wait=False, diff=True)
    h.done()
    assert result["registrations"] == [
        {"port": 80, "target_groups": [ARN_WEB]},
        {"port": 81, "target_groups": [ARN_WEB]},
        {"port": 8080, "target_groups": [ARN_API]},
    ]
    assert sorted(result["diff"]["before"]) == ["tg-api:8080", "tg-web:80", "tg-web:81"]


def test_discovery_with_nothing_found():
    h = Harness()
    h.groups([WEB])
    h.health(ARN_WEB, health("healthy", target=OTHER))
    result = h.run(state="deregistered", target_groups=None)
    assert result["changed"] is False
    assert result["target_groups"] == []
    assert result["registrations"] == []
    assert "not registered in any target group" in result["msg"]

    h = Harness()
    h.groups([WEB])
    h.health(ARN_WEB, health("healthy", target=OTHER))
    with pytest.raises(ValidationError, match="list target_groups to register it"):
        h.run(state="registered", target_groups=None)
    h.done()


@pytest.mark.parametrize(("rand", "max_calls"), [(0.0, 25), (0.5, 26), (0.999999, 27)])
def test_a_300_second_drain_costs_at_most_about_30_describe_target_health_calls(rand, max_calls):
    h = Harness(rand=rand)
    h.groups([WEB, API], Names=["tg-web", "tg-api"])
    h.health(ARN_WEB, health("healthy"))
    h.health(ARN_API, health("healthy", port=8080))
    h.delay(ARN_WEB, 300)
    h.delay(ARN_API, 300)
    h.deregister(ARN_WEB)
    h.deregister(ARN_API, port=8080)
    for _poll in range(40):
        h.health(ARN_WEB, health("draining"))
        h.health(ARN_API, health("draining", port=8080))
    with pytest.raises(WaitTimeout) as info:
        h.run(state="deregistered", target_groups=["tg-web", "tg-api"], timeout=300)
    polls = info.value.attempts
    assert h.clock.now - h.clock.start == pytest.approx(300.0)
    # one read of each group before the change, then one per poll and group
    assert h.requests["DescribeTargetHealth"] == 2 * (polls + 1)
    assert 20 <= polls <= max_calls
    assert max(h.clock.sleeps) <= 15.0


def test_a_drain_that_ends_stops_polling_that_group():
    h = Harness()
    h.groups([WEB, API], Names=["tg-web", "tg-api"])
    h.health(ARN_WEB, health("healthy"))
    h.health(ARN_API, health("healthy", port=8080))
    h.delay(ARN_WEB, 10)
    h.delay(ARN_API, 120)
    h.deregister(ARN_WEB)
    h.deregister(ARN_API, port=8080)
    h.health(ARN_WEB)  # web done at once
    h.health(ARN_API, health("draining", port=8080))
    h.health(ARN_API, health("draining", port=8080))
    h.health(ARN_API)
    result = h.run(state="deregistered", target_groups=["tg-web", "tg-api"])
    h.done()
    assert result["timeout"] == 180  # longest delay (120) + 60
    assert result["deregistration_delay"] == 120
    assert result["polls"] == 3
    assert h.requests["DescribeTargetHealth"] == 2 + 1 + 3


def test_check_mode_changes_nothing_and_predicts():
    h = Harness()
    h.groups([WEB, API], Names=["tg-web", "tg-api"])
    h.health(ARN_WEB, health("healthy"))
    h.health(ARN_API)
    h.delay(ARN_WEB, 30)
    h.delay(ARN_API, 45)
    # no deregister_targets queued: the Stubber would fail on any
    result = h.run(state="deregistered", target_groups=["tg-web", "tg-api"], check_mode=True, diff=True)
    h.done()
    assert result["changed"] is True
    assert result["waited"] is False
    assert result["timeout"] == 105
    assert result["diff"] == {
        "before": {"tg-web:80": "healthy", "tg-api:8080": "absent"},
        "after": {"tg-web:80": "absent", "tg-api:8080": "absent"},
    }
    assert [e["changed"] for e in result["target_groups"]] == [True, False]
    assert result["registrations"] == [{"port": 80, "target_groups": [ARN_WEB]}]
    assert result["msg"].startswith("Would deregister i-0123456789abcdef0 in tg-web:80 (check mode")


def test_port_override_registers_that_port_only():
    h = Harness()
    h.groups([WEB], TargetGroupArns=[ARN_WEB])
    h.health(ARN_WEB, health("healthy", port=80))
    h.register(ARN_WEB, port=8080)
    h.health(ARN_WEB, health("healthy", port=80), health("initial", port=8080))
    result = h.run(target_groups=[ARN_WEB], port=8080, wait=False)
    h.done()
    [entry] = result["target_groups"]
    assert entry["port"] == 8080
    assert entry["before"]["state"] == "absent"
    assert entry["after"]["state"] == "initial"
    assert result["registrations"] == [{"port": 8080, "target_groups": [ARN_WEB]}]


def test_unknown_target_groups_are_all_named_and_nothing_is_changed():
    h = Harness()
    h.groups_not_found(Names=["tg-web", "nope", "gone"])
    h.groups([WEB], Names=["tg-web"])
    h.groups_not_found(Names=["nope"])
    h.groups_not_found(Names=["gone"])
    with pytest.raises(NotFoundError) as info:
        h.run(target_groups=["tg-web", "nope", "gone", "tg-web"])
    h.done()
    assert info.value.details == {"changed": False, "missing_target_groups": ["nope", "gone"]}
    assert "nope, gone" in info.value.msg
    assert "Nothing was changed" in info.value.msg


def test_a_target_of_the_wrong_type_is_refused_before_any_change():
    h = Harness()
    h.groups([WEB], TargetGroupArns=[ARN_WEB])  # ARNs are looked up first, then names
    h.groups([IPS], Names=["tg-ips"])
    with pytest.raises(ValidationError) as info:
        h.run(target_groups=[ARN_WEB, "tg-ips"])
    h.done()
    assert "tg-ips has target type 'ip' and needs an IP address" in info.value.msg
    assert "Nothing was changed" in info.value.msg


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": 0}, "timeout must be more than 0 seconds, got 0. To not wait at all, set wait=false"),
        ({"timeout": -5}, "timeout must be more than 0 seconds"),
        ({"poll_interval": 0}, "poll_interval must be more than 0"),
        ({"port": 70000}, "port must be between 1 and 65535"),
        ({"state": "present"}, "Invalid state 'present'"),
        ({"target_id": " i-0123456789abcdef0"}, "target_id must be"),
        ({"target_groups": []}, "target_groups is empty"),
    ],
)
def test_invalid_arguments_are_refused_before_any_call(kwargs, message):
    h = Harness()
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        h.run(**kwargs)
    assert h.targets.aws.api_calls == 0


def test_short_explicit_timeout_warns_but_is_kept():
    h = Harness()
    h.groups([WEB], Names=["tg-web"])
    h.health(ARN_WEB, health("healthy"))
    h.delay(ARN_WEB, 300)
    h.deregister(ARN_WEB)
    h.health(ARN_WEB)
    result = h.run(state="deregistered", timeout=30)
    h.done()
    assert result["timeout"] == 30
    assert "shorter than the longest deregistration delay" in result["warnings"][0]


def test_a_failed_change_reports_what_was_already_changed():
    h = Harness()
    h.groups([WEB, API], Names=["tg-web", "tg-api"])
    h.health(ARN_WEB)
    h.health(ARN_API)
    h.register(ARN_WEB)
    h.stub.add_client_error(
        "register_targets",
        service_error_code="InvalidTarget",
        service_message="The following targets are not in a running state",
        http_status_code=400,
    )
    with pytest.raises(ClientError) as info:
        h.run(target_groups=["tg-web", "tg-api"])
    h.done()
    assert info.value.response["Error"]["Code"] == "InvalidTarget"
    assert h.targets.action == "register i-0123456789abcdef0 in target group tg-api"
    partial = h.targets.partial_result()
    assert partial["changed"] is True
    assert [e["target_group_name"] for e in partial["target_groups"]] == ["tg-web", "tg-api"]


def test_a_failed_first_change_reports_nothing_changed():
    h = Harness()
    h.groups([WEB], Names=["tg-web"])
    h.health(ARN_WEB)
    h.stub.add_client_error("register_targets", service_error_code="InvalidTarget", http_status_code=400)
    with pytest.raises(ClientError):
        h.run()
    assert h.targets.partial_result()["changed"] is False


def test_messages_when_nothing_changes():
    h = Harness()
    h.groups([WEB], Names=["tg-web"])
    h.health(ARN_WEB, health("healthy"))
    result = h.run(check_mode=True)
    assert result["msg"] == "i-0123456789abcdef0 is already registered in all 1 target group(s); nothing would change."

    h.groups([WEB], Names=["tg-web"])
    h.health(ARN_WEB, health("healthy"))
    result = h.run(wait=False)
    assert result["msg"] == "i-0123456789abcdef0 was already registered in all 1 target group(s); nothing changed."

    h.groups([WEB])
    h.health(ARN_WEB, health("healthy", target=OTHER))
    result = h.run(state="deregistered", target_groups=None, check_mode=True)
    assert result["msg"] == "i-0123456789abcdef0 is not registered in any target group; nothing to do."
    h.done()


def test_message_and_timeout_of_a_drain_that_ends_in_one_group_only():
    h = Harness()
    h.groups([WEB, API], Names=["tg-web", "tg-api"])
    h.health(ARN_WEB, health("healthy"))
    h.health(ARN_API, health("healthy", port=8080))
    h.delay(ARN_WEB, 5)
    h.delay(ARN_API, 5)
    h.deregister(ARN_WEB)
    h.deregister(ARN_API, port=8080)
    h.health(ARN_WEB, health("unused", reason="Target.NotRegistered"))
    h.health(ARN_API, health("draining", reason="Target.DeregistrationInProgress", port=8080))
    for _poll in range(7):  # timeout 65: 2, 3, 4.5, 6.75, 10.125, 15, 15, then the last 8.625 to the deadline
        h.health(ARN_API, health("draining", reason="Target.DeregistrationInProgress", port=8080))
    h.health(ARN_API, health("draining", reason="Target.DeregistrationInProgress", port=8080))
    with pytest.raises(WaitTimeout) as info:
        h.run(state="deregistered", target_groups=["tg-web", "tg-api"])
    h.done()
    assert info.value.msg == (
        "Timed out after 65.0s (9 polls) waiting for i-0123456789abcdef0 to be deregistered (done draining) in every "
        "target group; last observed: tg-web:80 absent (Target.NotRegistered); tg-api:8080 draining "
        "(Target.DeregistrationInProgress) [waiting]. The target is still draining: raise timeout, or lower the "
        "deregistration delay. The change was made."
    )
    assert info.value.attempts == 9
    assert info.value.details == {
        "changed": True,
        "target_groups": h.targets.entries,
        "polls": 9,
        "timeout": 65,
        "timed_out": True,
        "elapsed": 65.0,
        "api_calls": 17,
    }


def test_message_of_a_finished_drain():
    h = Harness()
    h.groups([WEB], Names=["tg-web"])
    h.health(ARN_WEB, health("healthy"))
    h.delay(ARN_WEB, 5)
    h.deregister(ARN_WEB)
    h.health(ARN_WEB, health("draining"))
    h.health(ARN_WEB)
    result = h.run(state="deregistered")
    h.done()
    assert result["msg"] == (
        "Deregistered i-0123456789abcdef0 in tg-web:80. Done draining everywhere after 2.0s (2 polls, 6 AWS calls)."
    )
    assert list(result) == [
        "changed",
        "target_id",
        "state",
        "port",
        "target_groups",
        "registrations",
        "timeout",
        "deregistration_delay",
        "waited",
        "elapsed",
        "polls",
        "api_calls",
        "warnings",
        "msg",
    ]
