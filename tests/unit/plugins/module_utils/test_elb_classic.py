# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ClassicELBInstance against a botocore Stubber (the sequences moto cannot produce) and a fake clock."""

import collections

import boto3
import pytest
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry, RetryingBotoClientWrapper
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.elb_classic import ClassicELBInstance
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    NotFoundError,
    ValidationError,
    WaitTimeout,
)

INSTANCE = "i-0123456789abcdef0"
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


def lb(name, *instances):
    return {"LoadBalancerName": name, "Instances": [{"InstanceId": i} for i in instances]}


class Harness:
    def __init__(self, rand=0.0):
        client = boto3.client("elb", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="t")
        self.stub = Stubber(client)
        # Every request that reaches the client, by operation name (each retry of the backoff too).
        self.requests = collections.Counter()
        client.meta.events.register_first("before-call.*.*", lambda model, **_kw: self.requests.update([model.name]))
        self.stub.activate()
        self.clock = FakeClock()
        wrapped = RetryingBotoClientWrapper(client, AWSRetry.jittered_backoff(retries=4, delay=0))
        self.elb = ClassicELBInstance(
            wrapped, aws_retry=True, clock=self.clock, sleep=self.clock.sleep, rand=lambda: rand
        )

    def lbs(self, descriptions, marker=None, next_marker=None, **params):
        answer = {"LoadBalancerDescriptions": descriptions}
        if next_marker:
            answer["NextMarker"] = next_marker
        if marker:
            params["Marker"] = marker
        self.stub.add_response("describe_load_balancers", answer, params)

    def not_found(self, names):
        self.stub.add_client_error(
            "describe_load_balancers",
            service_error_code="LoadBalancerNotFound",
            service_message="There is no ACTIVE Load Balancer named '%s'" % names[-1],
            http_status_code=400,
            expected_params={"LoadBalancerNames": names},
        )

    def health(self, name, state, reason="N/A", description="N/A", instance=INSTANCE):
        self.stub.add_response(
            "describe_instance_health",
            {
                "InstanceStates": [
                    {"InstanceId": instance, "State": state, "ReasonCode": reason, "Description": description}
                ]
            },
            {"LoadBalancerName": name, "Instances": [{"InstanceId": instance}]},
        )

    def invalid_instance(self, name, instance=INSTANCE):
        self.stub.add_client_error(
            "describe_instance_health",
            service_error_code="InvalidInstance",
            service_message="Could not find EC2 instance %s." % instance,
            http_status_code=400,
            expected_params={"LoadBalancerName": name, "Instances": [{"InstanceId": instance}]},
        )

    def draining(self, name, enabled=True, timeout=300):
        attributes = {"ConnectionDraining": {"Enabled": enabled, "Timeout": timeout}}
        self.stub.add_response(
            "describe_load_balancer_attributes", {"LoadBalancerAttributes": attributes}, {"LoadBalancerName": name}
        )

    def change(self, operation, name, instance=INSTANCE):
        self.stub.add_response(
            operation,
            {"Instances": [{"InstanceId": instance}]},
            {"LoadBalancerName": name, "Instances": [{"InstanceId": instance}]},
        )

    def run(self, **kwargs):
        params = {"instance_id": INSTANCE, "state": "registered", "load_balancers": ["web"]}
        params.update(kwargs)
        return self.elb.ensure(**params)

    def done(self):
        self.stub.assert_no_pending_responses()


def test_register_waits_from_out_of_service_to_in_service():
    h = Harness()
    h.lbs([lb("web", OTHER)], LoadBalancerNames=["web"])
    h.invalid_instance("web")
    h.change("register_instances_with_load_balancer", "web")
    h.health("web", "OutOfService", "ELB", "Instance registration is still in progress.")
    h.health("web", "OutOfService", "Instance", "Instance has failed at least the UnhealthyThreshold number")
    h.health("web", "InService")
    result = h.run(diff=True)
    h.done()
    assert result["changed"] is True
    assert result["polls"] == 3
    assert result["timeout"] == 300
    assert result["api_calls"] == 6
    assert h.clock.sleeps == [2.0, 3.0]
    [entry] = result["load_balancers"]
    assert entry["before"] == {"state": "absent", "reason_code": None, "description": None, "registered": False}
    assert entry["after"]["state"] == "InService"
    assert result["load_balancer_names"] == ["web"]
    assert result["diff"] == {
        "before": {"web": {"registered": False, "state": "absent"}},
        "after": {"web": {"registered": True, "state": "InService"}},
    }


def test_already_registered_but_out_of_service_is_waited_for_and_fails_with_the_reason():
    h = Harness()
    h.lbs([lb("web", INSTANCE)], LoadBalancerNames=["web"])
    h.health("web", "OutOfService", "Instance", "Instance has failed at least the UnhealthyThreshold number of checks")
    for _poll in range(5):  # timeout 10: polls at 0, 2, 5, 9.5, 10
        h.health(
            "web", "OutOfService", "Instance", "Instance has failed at least the UnhealthyThreshold number of checks"
        )
    with pytest.raises(WaitTimeout) as info:
        h.run(timeout=10)
    h.done()
    assert "(5 polls)" in info.value.msg
    assert "OutOfService (Instance: Instance has failed at least the UnhealthyThreshold" in info.value.msg
    assert "Nothing was changed." in info.value.msg
    assert info.value.details["changed"] is False


def test_deregister_waits_for_connection_draining_and_extends_the_timeout():
    h = Harness()
    h.lbs([lb("web", INSTANCE), lb("api", INSTANCE)], LoadBalancerNames=["web", "api"])
    h.health("web", "InService")
    h.health("api", "InService")
    h.draining("web", timeout=300)
    h.draining("api", enabled=False)
    h.change("deregister_instances_from_load_balancer", "web")
    h.change("deregister_instances_from_load_balancer", "api")
    in_progress = "Instance deregistration currently in progress."
    h.health("web", "InService", "N/A", in_progress)
    h.health("api", "OutOfService", "Instance", "Instance is not currently registered with the LoadBalancer.")
    h.health("web", "InService", "N/A", in_progress)  # api is done: only web is read again
    h.invalid_instance("web")
    result = h.run(state="deregistered", load_balancers=["web", "api"], timeout=30)
    h.done()
    assert result["changed"] is True
    assert result["timeout"] == 360
    assert result["timeout_extended"] is True
    assert result["connection_draining_timeout"] == 300
    assert "timeout raised from 30s to 360s" in result["warnings"][0]
    assert "Timeout raised to 360s for connection draining (300s)" in result["msg"]
    assert [e["after"]["state"] for e in result["load_balancers"]] == ["absent", "OutOfService"]
    assert result["load_balancer_names"] == ["web", "api"]
    assert result["polls"] == 3


def test_a_long_enough_timeout_is_not_extended():
    h = Harness()
    h.lbs([lb("web", INSTANCE)], LoadBalancerNames=["web"])
    h.health("web", "InService")
    h.draining("web", timeout=20)
    h.change("deregister_instances_from_load_balancer", "web")
    h.health("web", "Unknown")
    result = h.run(state="deregistered", timeout=300)
    h.done()
    assert result["timeout"] == 300
    assert result["timeout_extended"] is False
    assert result["connection_draining_timeout"] == 20


def test_throttling_is_retried_and_counted():
    h = Harness()
    h.lbs([lb("web", INSTANCE)], LoadBalancerNames=["web"])
    h.health("web", "InService")
    h.stub.add_client_error("describe_instance_health", service_error_code="Throttling", http_status_code=400)
    h.health("web", "InService")
    result = h.run()
    h.done()
    assert result["changed"] is False
    assert result["api_calls"] == 4
    assert h.requests["DescribeInstanceHealth"] == 3


def test_discovery_reads_every_page():
    h = Harness()
    h.lbs([lb("a", OTHER), lb("b", INSTANCE, OTHER)], next_marker="m2")
    h.lbs([lb("c", INSTANCE)], marker="m2")
    h.health("b", "InService")
    h.health("c", "OutOfService", "Instance", "Instance has failed")
    h.draining("b", enabled=False)  # read in check mode too, to report the timeout it would use
    h.draining("c", timeout=600)
    result = h.run(state="deregistered", load_balancers=None, check_mode=True)
    h.done()
    assert result["changed"] is True
    assert result["load_balancer_names"] == ["b", "c"]
    assert [e["after"] for e in result["load_balancers"]] == [
        {"state": "absent", "reason_code": None, "description": None, "registered": False}
    ] * 2
    assert "Would deregister i-0123456789abcdef0 on b, c" in result["msg"]
    assert result["timeout"] == 660
    assert result["waited"] is False


def test_discovery_to_register_needs_at_least_one_load_balancer():
    h = Harness()
    h.lbs([lb("a", OTHER)])
    with pytest.raises(ValidationError, match="list load_balancers to register it"):
        h.run(load_balancers=None)
    h.done()


def test_unknown_load_balancers_are_all_named_and_nothing_is_changed():
    h = Harness()
    h.not_found(["web", "nope", "gone"])
    h.lbs([lb("web", INSTANCE)], LoadBalancerNames=["web"])
    h.not_found(["nope"])
    h.not_found(["gone"])
    with pytest.raises(NotFoundError) as info:
        h.run(load_balancers=["web", "nope", "gone"], state="deregistered")
    h.done()
    assert info.value.details == {"changed": False, "missing_load_balancers": ["nope", "gone"]}
    assert "Nothing was changed on any load balancer" in info.value.msg


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": 0}, "timeout must be more than 0 seconds, got 0. To not wait at all, set wait=false"),
        ({"timeout": -1}, "timeout must be more than 0 seconds, got -1"),
        ({"timeout": None}, "timeout is required"),
        ({"poll_interval": -2.0}, "poll_interval must be more than 0"),
        ({"instance_id": "web1"}, "instance_id must be an EC2 instance id"),
        ({"load_balancers": []}, "load_balancers is empty"),
    ],
)
def test_invalid_arguments_are_refused_before_any_call(kwargs, message):
    h = Harness()
    with pytest.raises(ValidationError, match=message):
        h.run(**kwargs)
    assert h.elb.aws.api_calls == 0


def test_no_wait_reads_the_state_once_after_the_change():
    h = Harness()
    h.lbs([lb("web")], LoadBalancerNames=["web"])
    h.health("web", "Unknown")
    h.change("register_instances_with_load_balancer", "web")
    h.health("web", "OutOfService", "ELB", "Instance registration is still in progress.")
    result = h.run(wait=False)
    h.done()
    assert result["waited"] is False
    assert result["load_balancers"][0]["before"]["state"] == "absent"
    assert result["load_balancers"][0]["after"]["state"] == "OutOfService"


def test_messages_when_nothing_changes():
    h = Harness()
    h.lbs([lb("web", INSTANCE)], LoadBalancerNames=["web"])
    h.health("web", "InService")
    result = h.run(check_mode=True)
    assert result["msg"] == "i-0123456789abcdef0 is already registered on all 1 load balancer(s); nothing would change."

    h = Harness()
    h.lbs([lb("web", INSTANCE)], LoadBalancerNames=["web"])
    h.health("web", "InService")
    h.health("web", "InService")
    result = h.run()
    assert result["msg"] == (
        "i-0123456789abcdef0 was already registered on all 1 load balancer(s); nothing changed. "
        "InService everywhere after 0.0s (1 poll, 3 AWS calls)."
    )

    h.lbs([lb("web", OTHER)])
    result = h.run(state="deregistered", load_balancers=None)
    assert result["msg"] == "i-0123456789abcdef0 is not registered with any Classic ELB; nothing to do."
    assert result["waited"] is False
    h.done()


def test_register_without_wait_message_and_diff():
    h = Harness()
    h.lbs([lb("web")], LoadBalancerNames=["web"])
    h.invalid_instance("web")
    h.change("register_instances_with_load_balancer", "web")
    h.health("web", "OutOfService", "ELB", "Instance registration is still in progress.")
    result = h.run(wait=False, diff=True)
    h.done()
    assert result["msg"] == "Registered i-0123456789abcdef0 on web."
    assert result["diff"] == {
        "before": {"web": {"registered": False, "state": "absent"}},
        "after": {"web": {"registered": True, "state": "OutOfService"}},
    }
    assert list(result) == [
        "changed",
        "instance_id",
        "state",
        "load_balancers",
        "load_balancer_names",
        "timeout",
        "timeout_extended",
        "connection_draining_timeout",
        "waited",
        "elapsed",
        "polls",
        "api_calls",
        "warnings",
        "diff",
        "msg",
    ]


def test_message_and_timeout_when_one_load_balancer_is_still_draining():
    h = Harness()
    h.lbs([lb("web", INSTANCE), lb("api", INSTANCE)], LoadBalancerNames=["web", "api"])
    h.health("web", "InService")
    h.health("api", "InService")
    h.draining("web", enabled=False)
    h.draining("api", enabled=False)
    h.change("deregister_instances_from_load_balancer", "web")
    h.change("deregister_instances_from_load_balancer", "api")
    h.invalid_instance("web")
    for _poll in range(4):  # timeout 10: polls at 0, 2, 5, 9.5 and 10
        h.health("api", "InService", "N/A", "Instance deregistration currently in progress.")
    h.health("api", "InService", "N/A", "Instance deregistration currently in progress.")
    with pytest.raises(WaitTimeout) as info:
        h.run(state="deregistered", load_balancers=["web", "api"], timeout=10)
    h.done()
    assert info.value.msg == (
        "Timed out after 10.0s (5 polls) waiting for i-0123456789abcdef0 to be out of service (deregistered, "
        "connections drained) on every load balancer; last observed: web absent; api InService (Instance "
        "deregistration currently in progress.) [waiting]. Connections are still draining: raise timeout, or lower "
        "the connection-draining timeout. The change was made."
    )
    assert info.value.details == {
        "changed": True,
        "load_balancers": h.elb.entries,
        "polls": 5,
        "timeout": 10,
        "timed_out": True,
        "elapsed": 10.0,
        "api_calls": 13,
    }
