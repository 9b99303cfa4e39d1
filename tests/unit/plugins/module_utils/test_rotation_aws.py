# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ELBv2Rotation and ClassicELBRotation (read / take_out / put_back).

Against a moto server over HTTP (as the integration tests use it) for everything moto can produce, with the
client behind amazon.aws's retry wrapper as the module builds it; against a botocore Stubber only for the state
sequences moto never produces (draining -> unused, initial -> healthy) and for a failing call. The AWS state is
read back with a separate boto3 client, the resume record from disk.
"""

import json
import os
import urllib.request

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry, RetryingBotoClientWrapper
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.rotation import run_aws_rotation
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.rotation_providers import (
    ClassicELBRotation,
    ELBv2Rotation,
    make_rotation,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    NotFoundError,
    RolloutError,
    ValidationError,
    WaitTimeout,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._rotation.guard import CapacityError
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.moto_server import moto_server

REGION = "us-east-1"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
AMI = "ami-12c6146b"
NOW = 1700000000.0
SESSION = boto3.session.Session()  # one session: its loaders are shared by every client the tests make


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(scope="module")
def moto_endpoint():
    with moto_server() as endpoint:
        yield endpoint


class Cloud:
    """An empty moto (reset), resources made with boto3, and rotations built as the module builds them."""

    def __init__(self, endpoint, tmp_path):
        request = urllib.request.Request(endpoint + "/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback test server
            assert answer.status == 200
        self.endpoint = endpoint
        self.ec2 = self.client("ec2")
        self.elbv2 = self.client("elbv2")
        self.elb = self.client("elb")
        self.state_dir = str(tmp_path / "state")
        self.clock = FakeClock()
        self.vpc = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnet = self.ec2.create_subnet(VpcId=self.vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=REGION + "a")[
            "Subnet"
        ]["SubnetId"]

    def client(self, service, region=REGION):
        return SESSION.client(service, endpoint_url=self.endpoint, region_name=region, **KEYS)

    def wrapped(self, service, region=REGION):
        return RetryingBotoClientWrapper(self.client(service, region), AWSRetry.jittered_backoff(retries=3, delay=0))

    def instances(self, count):
        answer = self.ec2.run_instances(ImageId=AMI, MinCount=count, MaxCount=count, SubnetId=self.subnet)
        return [i["InstanceId"] for i in answer["Instances"]]

    def group(self, name, port=80):
        answer = self.elbv2.create_target_group(Name=name, Protocol="HTTP", Port=port, VpcId=self.vpc)
        return answer["TargetGroups"][0]["TargetGroupArn"]

    def register(self, arn, *targets, port=None):
        self.elbv2.register_targets(
            TargetGroupArn=arn, Targets=[dict({"Id": t}, **({"Port": port} if port else {})) for t in targets]
        )

    def targets(self, arn):
        answer = self.elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        return sorted((d["Target"]["Id"], d["Target"].get("Port"), d["TargetHealth"]["State"]) for d in answer)

    def classic(self, name, *instances):
        self.elb.create_load_balancer(
            LoadBalancerName=name,
            Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}],
            AvailabilityZones=[REGION + "a"],
        )
        if instances:
            self.elb.register_instances_with_load_balancer(
                LoadBalancerName=name, Instances=[{"InstanceId": i} for i in instances]
            )
        return name

    def elb_instances(self, name):
        lb = self.elb.describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"][0]
        return sorted(i["InstanceId"] for i in lb.get("Instances") or [])

    def elbv2_rotation(self, target, region=REGION, **kwargs):
        return ELBv2Rotation(
            self.wrapped("elbv2", region),
            target,
            self.state_dir,
            aws_retry=True,
            clock=self.clock,
            sleep=self.clock.sleep,
            rand=lambda: 0.0,
            now=lambda: NOW,
            **kwargs,
        )

    def classic_rotation(self, instance, **kwargs):
        return ClassicELBRotation(
            self.wrapped("elb"),
            instance,
            self.state_dir,
            aws_retry=True,
            clock=self.clock,
            sleep=self.clock.sleep,
            rand=lambda: 0.0,
            now=lambda: NOW,
            **kwargs,
        )

    def records(self):
        folder = os.path.join(self.state_dir, "rotation")
        if not os.path.isdir(folder):
            return {}
        out = {}
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name)) as f:
                out[name] = json.load(f)
        return out


@pytest.fixture
def cloud(moto_endpoint, tmp_path):
    return Cloud(moto_endpoint, tmp_path)


@pytest.fixture
def two_groups(cloud):
    """Two instances in tg-web (port 80); the first also in tg-api on port 9090 (not the group's 8080), the second
    there on 9090 too."""
    one, two = cloud.instances(2)
    web, api = cloud.group("tg-web", 80), cloud.group("tg-api", 8080)
    cloud.register(web, one, two)
    cloud.register(api, one, two, port=9090)
    return one, two, web, api


def record_seen_before(client, operation, path):
    """Notes, each time ``operation`` is about to be sent, whether the record file existed."""
    seen = []
    client.meta.events.register("before-call.*.%s" % operation, lambda **_kw: seen.append(os.path.exists(path)))
    return seen


# ---------------------------------------------------------------------------- ELBv2, moto


def test_elbv2_read_discovers_every_group_and_port(cloud, two_groups):
    one, two, web, api = two_groups
    result = cloud.elbv2_rotation(one).read()
    assert result["changed"] is False and result["found"] is True and result["in_rotation"] is True
    assert sorted((p["target_group_name"], p["port"], p["before"]["state"]) for p in result["places"]) == [
        ("tg-api", 9090, "healthy"),
        ("tg-web", 80, "healthy"),
    ]
    assert result["record"] is None and result["searched"] is None
    assert sorted((r["where"], sorted(r["servers"].items())) for r in result["rows"]) == [
        ("target group tg-api", sorted([("%s:9090" % one, True), ("%s:9090" % two, True)])),
        ("target group tg-web", sorted([("%s:80" % one, True), ("%s:80" % two, True)])),
    ]
    assert cloud.records() == {}  # a read writes nothing, not even the directory
    assert not os.path.exists(cloud.state_dir)


def test_elbv2_take_out_writes_the_record_before_deregistering_and_put_back_restores_exactly(cloud, two_groups):
    one, two, web, api = two_groups
    before = (cloud.targets(web), cloud.targets(api))
    member = cloud.elbv2_rotation(one)
    seen = record_seen_before(member.lb.aws.client, "DeregisterTargets", member.record_path)

    out = member.take_out(batch=[one], min_healthy=1, run_id="run1", version="v2")
    assert out["changed"] is True and out["record_written"] is True and out["resumed"] is False
    assert seen == [True, True]  # the record was on disk before each of the two deregistrations
    assert cloud.targets(web) == [(two, 80, "healthy")] and cloud.targets(api) == [(two, 9090, "healthy")]
    (record,) = list(cloud.records().values())
    assert record["provider"] == "elbv2" and record["target_id"] == one
    assert (record["run_id"], record["version"], record["drained_at"], record["schema"]) == ("run1", "v2", NOW, 1)
    assert sorted((p["target_group_arn"], p["port"]) for p in record["places"]) == sorted([(web, 80), (api, 9090)])
    assert record["endpoint_url"] == cloud.endpoint and record["region"] == REGION
    assert out["capacity"]["ok"] is True and "Capacity guard" in out["msg"]
    assert [s["name"] for s in out["steps"]] == ["drain"] and out["steps"][0]["seconds"] >= out["steps"][0]["waited"]
    assert os.stat(member.record_path).st_mode & 0o777 == 0o600

    # Out again: nothing to do, the record stays as it was.
    again = member.take_out(batch=[one], min_healthy=1)
    assert again["changed"] is False and again["record_written"] is False and again["resumed"] is True
    assert list(cloud.records().values()) == [record]

    back = member.put_back()
    assert back["changed"] is True and back["registered_from"] == "record" and back["record_removed"] is True
    assert (cloud.targets(web), cloud.targets(api)) == before  # same groups, same ports (9090 too), healthy
    assert cloud.records() == {} and [s["name"] for s in back["steps"]] == ["enable"]
    # In again: nothing to register, nothing to remove.
    again = member.put_back()
    assert again["changed"] is False and again["registered_from"] == "current" and again["record_removed"] is False
    assert (cloud.targets(web), cloud.targets(api)) == before


def test_elbv2_in_twice_keeps_the_target_where_it_is(cloud, two_groups):
    one, _two, web, api = two_groups
    before = (cloud.targets(web), cloud.targets(api))
    back = cloud.elbv2_rotation(one).put_back()
    assert back["changed"] is False and back["registered_from"] == "current" and back["record_removed"] is False
    assert (cloud.targets(web), cloud.targets(api)) == before


def test_elbv2_a_new_run_registers_back_from_the_record_of_an_interrupted_one(cloud, two_groups):
    one, _two, web, api = two_groups
    before = (cloud.targets(web), cloud.targets(api))
    cloud.elbv2_rotation(one).take_out()
    # The next run (a new client, a new object): the record alone says where the target belongs.
    member = cloud.elbv2_rotation(one)
    read = member.read()
    assert read["found"] is False and read["in_rotation"] is False and read["record"]["places"]
    assert "earlier rollout" in read["msg"]
    resumed = member.take_out(min_healthy=1)
    assert resumed["changed"] is False and resumed["resumed"] is True and resumed["record_written"] is False
    back = member.put_back()
    assert back["changed"] is True and back["registered_from"] == "record"
    assert (cloud.targets(web), cloud.targets(api)) == before and cloud.records() == {}


def test_elbv2_resume_after_a_partial_deregistration_keeps_and_extends_the_record(cloud, two_groups):
    """Interrupted between its two deregistrations: the target is still in one group. The next take_out keeps the
    record (it knows both places) and deregisters the rest; a place found since is added to the record."""
    one, two, web, api = two_groups
    before = (cloud.targets(web), cloud.targets(api))
    member = cloud.elbv2_rotation(one)
    member.take_out()
    cloud.register(web, one)  # say the run was interrupted before tg-web's deregistration went through
    first = list(cloud.records().values())[0]
    second = cloud.elbv2_rotation(one).take_out()
    assert second["changed"] is True and second["resumed"] is True and second["record_written"] is False
    assert list(cloud.records().values()) == [first]
    assert cloud.targets(web) == [(two, 80, "healthy")]
    # Someone registered it in another group meanwhile: that place joins the record.
    extra = cloud.group("tg-extra", 8443)
    cloud.register(extra, one)
    third = cloud.elbv2_rotation(one).take_out()
    assert third["record_written"] is True and cloud.targets(extra) == []
    (record,) = list(cloud.records().values())
    assert sorted((p["target_group_arn"], p["port"]) for p in record["places"]) == sorted(
        [(web, 80), (api, 9090), (extra, 8443)]
    )
    cloud.elbv2_rotation(one).put_back()
    assert (cloud.targets(web), cloud.targets(api)) == before
    assert cloud.targets(extra) == [(one, 8443, "healthy")] and cloud.records() == {}


def test_elbv2_capacity_guard_refuses_on_its_read_and_changes_nothing(cloud, two_groups):
    one, two, web, api = two_groups
    before = (cloud.targets(web), cloud.targets(api))
    member = cloud.elbv2_rotation(one)
    with pytest.raises(CapacityError) as info:
        member.take_out(batch=[one], min_healthy=2)
    assert "Capacity guard: draining %s would leave too few" % one in info.value.msg
    assert "target group tg-api keeps 1 of 2, needs 2" in info.value.msg
    assert info.value.details["changed"] is False and info.value.details["steps"][0]["name"] == "drain"
    assert (cloud.targets(web), cloud.targets(api)) == before and cloud.records() == {}
    # The whole batch counts: with both targets in the batch, 50% of 2 cannot stay.
    with pytest.raises(CapacityError, match="keeps 0 of 2, needs 1"):
        member.take_out(batch=[one, two], min_healthy="50%")
    assert member.take_out(batch=[one], min_healthy="50%")["capacity"]["ok"] is True


def test_elbv2_check_mode_reads_and_predicts_but_changes_and_writes_nothing(cloud, two_groups):
    one, _two, web, api = two_groups
    before = (cloud.targets(web), cloud.targets(api))
    member = cloud.elbv2_rotation(one)
    out = member.take_out(check_mode=True, diff=True)
    assert out["changed"] is True and out["record_written"] is False and "Would deregister" in out["msg"]
    assert out["record"]["places"] and set(out["diff"]["after"].values()) == {"absent"}
    assert (cloud.targets(web), cloud.targets(api)) == before and not os.path.exists(cloud.state_dir)
    member.take_out()
    back = member.put_back(check_mode=True)
    assert back["changed"] is True and back["record_removed"] is False and len(cloud.records()) == 1


def test_elbv2_refuses_a_target_that_is_nowhere_without_a_record(cloud, two_groups):
    _one, _two, web, _api = two_groups
    [lone] = cloud.instances(1)
    member = cloud.elbv2_rotation(lone)
    with pytest.raises(RolloutError, match="is not registered with any target group, and no resume record") as out:
        member.take_out()
    assert out.value.details["changed"] is False
    with pytest.raises(RolloutError, match="Do not know where to register %s back" % lone):
        member.put_back()
    assert cloud.records() == {}
    # Given groups and no record: state=in registers there.
    given = cloud.elbv2_rotation(lone, target_groups=["tg-web"])
    back = given.put_back()
    assert back["registered_from"] == "given" and (lone, 80, "healthy") in cloud.targets(web)


def test_elbv2_unknown_group_is_named_and_nothing_changes(cloud, two_groups):
    one, _two, web, api = two_groups
    before = (cloud.targets(web), cloud.targets(api))
    with pytest.raises(NotFoundError, match="tg-nope"):
        cloud.elbv2_rotation(one, target_groups=["tg-web", "tg-nope"]).take_out()
    assert (cloud.targets(web), cloud.targets(api)) == before and cloud.records() == {}


def test_elbv2_given_groups_limit_what_is_read_and_taken_out(cloud, two_groups):
    one, two, web, api = two_groups
    member = cloud.elbv2_rotation(one, target_groups=["tg-web"])
    read = member.read()
    assert [r["where"] for r in read["rows"]] == ["target group tg-web"] and read["searched"] == ["tg-web"]
    member.take_out()
    assert cloud.targets(web) == [(two, 80, "healthy")]
    assert (one, 9090, "healthy") in cloud.targets(api)  # not named: left alone
    (record,) = list(cloud.records().values())
    assert [(p["target_group_arn"], p["port"]) for p in record["places"]] == [(web, 80)]


def test_the_record_belongs_to_provider_region_endpoint_and_target(cloud, two_groups):
    one, two, _web, _api = two_groups
    keys = {
        cloud.elbv2_rotation(one).key,
        cloud.elbv2_rotation(two).key,
        cloud.elbv2_rotation(one, region="eu-west-1").key,
        cloud.classic_rotation(one).key,
    }
    assert len(keys) == 4
    assert cloud.elbv2_rotation(one).key == cloud.elbv2_rotation(one).key
    assert all(k.endswith(".json") and os.sep not in k for k in keys)
    # An ALB ARN as target (alb target groups) makes a safe file name too.
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/alb/50dc6c495c0c9188"
    assert "/" not in cloud.elbv2_rotation(arn).key


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target_id": " i-1"}, "target_id must be"),
        ({"target_id": "i-0123456789abcdef0", "port": 0}, "port must be between"),
        ({"target_id": "i-0123456789abcdef0", "target_groups": []}, "target_groups is empty"),
    ],
)
def test_elbv2_bad_arguments_are_refused_before_any_call(cloud, kwargs, message):
    target = kwargs.pop("target_id")
    with pytest.raises(ValidationError, match=message):
        cloud.elbv2_rotation(target, **kwargs)


def test_run_aws_rotation_dispatches_the_states(cloud, two_groups):
    one, _two, web, _api = two_groups
    params = {"target_id": one, "state_dir": cloud.state_dir, "target_groups": ["tg-web"], "min_healthy": "1"}
    member = make_rotation("elbv2", cloud.wrapped("elbv2"), params, aws_retry=True, sleep=cloud.clock.sleep)
    assert run_aws_rotation(member, "read", params)["in_rotation"] is True
    assert run_aws_rotation(member, "out", params)["changed"] is True
    assert run_aws_rotation(member, "in", params)["changed"] is True
    with pytest.raises(ValidationError):
        run_aws_rotation(member, "sideways", params)
    with pytest.raises(ValidationError, match="provider"):
        make_rotation("gcp", cloud.wrapped("elbv2"), params)
    # The other provider's options are ignored (one module_defaults block serves every provider).
    assert make_rotation("elb_classic", cloud.wrapped("elb"), dict(params, port=80)).load_balancers is None


# ---------------------------------------------------------------------------- Classic ELB, moto


def test_classic_out_and_in_on_exactly_the_same_load_balancers(cloud):
    one, two = cloud.instances(2)
    web, other = cloud.classic("web", one, two), cloud.classic("other", two)
    member = cloud.classic_rotation(one)
    read = member.read()
    assert read["in_rotation"] is True and [p["load_balancer_name"] for p in read["places"]] == [web]
    assert read["rows"] == [{"where": "Classic ELB web", "servers": {one: True, two: True}}]
    seen = record_seen_before(member.lb.aws.client, "DeregisterInstancesFromLoadBalancer", member.record_path)

    out = member.take_out(batch=[one], min_healthy=1, version="v2")
    assert out["changed"] is True and seen == [True]
    assert cloud.elb_instances(web) == [two] and cloud.elb_instances(other) == [two]
    (record,) = list(cloud.records().values())
    assert record["provider"] == "elb_classic" and record["places"] == [web]

    back = cloud.classic_rotation(one).put_back()
    assert back["changed"] is True and back["registered_from"] == "record"
    assert cloud.elb_instances(web) == sorted([one, two]) and cloud.elb_instances(other) == [two]
    assert cloud.records() == {}


def test_classic_capacity_guard_counts_every_instance_in_service(cloud):
    one, two = cloud.instances(2)
    cloud.classic("web", one, two)
    cloud.ec2.stop_instances(InstanceIds=[two])  # moto: OutOfService
    member = cloud.classic_rotation(one)
    assert member.read()["rows"] == [{"where": "Classic ELB web", "servers": {one: True, two: False}}]
    with pytest.raises(CapacityError, match="Classic ELB web keeps 0 of 2, needs 1 .already out of rotation: %s" % two):
        member.take_out(min_healthy=1)
    assert cloud.elb_instances("web") == sorted([one, two]) and cloud.records() == {}


def test_classic_refuses_an_instance_on_no_load_balancer(cloud):
    [lone] = cloud.instances(1)
    cloud.classic("web")
    with pytest.raises(RolloutError, match="not registered with any Classic ELB of web"):
        cloud.classic_rotation(lone, load_balancers=["web"]).take_out()
    assert cloud.records() == {}


# ---------------------------------------------------------------------------- Stubber: what moto cannot produce

ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg-web/0123456789abcdef"
TARGET = "i-0123456789abcdef0"
OTHER = "i-0fedcba9876543210"
WEB = {"TargetGroupArn": ARN, "TargetGroupName": "tg-web", "Port": 80, "TargetType": "instance"}


def _health(state, target=TARGET):
    return {"Target": {"Id": target, "Port": 80}, "TargetHealth": {"State": state}}


class Stubbed:
    def __init__(self, tmp_path):
        raw = boto3.client("elbv2", region_name=REGION, **KEYS)
        self.stub = Stubber(raw)
        self.stub.activate()
        self.clock = FakeClock()
        self.state_dir = str(tmp_path / "state")
        self.member = ELBv2Rotation(
            RetryingBotoClientWrapper(raw, AWSRetry.jittered_backoff(retries=3, delay=0)),
            TARGET,
            self.state_dir,
            target_groups=["tg-web"],
            aws_retry=True,
            clock=self.clock,
            sleep=self.clock.sleep,
            rand=lambda: 0.0,
            now=lambda: NOW,
        )

    def read(self, *descriptions, by="Names"):
        self.stub.add_response(
            "describe_target_groups", {"TargetGroups": [WEB]}, {by: ["tg-web"] if by == "Names" else [ARN]}
        )
        self.health(*descriptions)

    def delay(self, seconds):
        self.stub.add_response(
            "describe_target_group_attributes",
            {"Attributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": str(seconds)}]},
            {"TargetGroupArn": ARN},
        )

    def health(self, *descriptions):
        self.stub.add_response(
            "describe_target_health", {"TargetHealthDescriptions": list(descriptions)}, {"TargetGroupArn": ARN}
        )


def test_take_out_waits_from_draining_to_unused(tmp_path):
    s = Stubbed(tmp_path)
    s.read(_health("healthy"), _health("healthy", OTHER))
    s.delay(30)
    s.stub.add_response("deregister_targets", {}, {"TargetGroupArn": ARN, "Targets": [{"Id": TARGET, "Port": 80}]})
    s.health(_health("draining"), _health("healthy", OTHER))
    s.health(_health("draining"), _health("healthy", OTHER))
    s.health(_health("unused"), _health("healthy", OTHER))
    out = s.member.take_out(min_healthy=1)
    s.stub.assert_no_pending_responses()
    assert out["changed"] is True and out["polls"] == 3 and out["timeout"] == 90
    assert s.clock.sleeps == [2.0, 3.0]  # the AWS backoff, from the default poll interval
    assert out["steps"] == [{"name": "drain", "seconds": 5.0, "waited": 5.0}]
    assert out["target_groups"][0]["after"]["state"] == "unused"
    assert os.path.exists(s.member.record_path)


def test_put_back_waits_from_initial_to_healthy_then_removes_the_record(tmp_path):
    s = Stubbed(tmp_path)
    s.member.records.write(
        s.member.key,
        {"provider": "elbv2", "target_id": TARGET, "places": [{"target_group_arn": ARN, "port": 80}]},
    )
    s.read(_health("healthy", OTHER), by="TargetGroupArns")
    s.stub.add_response("register_targets", {}, {"TargetGroupArn": ARN, "Targets": [{"Id": TARGET, "Port": 80}]})
    s.health(_health("initial"), _health("healthy", OTHER))
    s.health(_health("initial"), _health("healthy", OTHER))
    s.health(_health("healthy"), _health("healthy", OTHER))
    back = s.member.put_back(timeout=60)
    s.stub.assert_no_pending_responses()
    assert back["changed"] is True and back["registered_from"] == "record" and back["polls"] == 3
    assert back["record_removed"] is True and not os.path.exists(s.member.record_path)
    assert back["steps"][0]["name"] == "enable" and back["steps"][0]["waited"] == 5.0


def test_put_back_that_never_turns_healthy_keeps_the_record(tmp_path):
    s = Stubbed(tmp_path)
    s.member.records.write(
        s.member.key, {"provider": "elbv2", "target_id": TARGET, "places": [{"target_group_arn": ARN, "port": 80}]}
    )
    s.read(by="TargetGroupArns")
    s.stub.add_response("register_targets", {}, {"TargetGroupArn": ARN, "Targets": [{"Id": TARGET, "Port": 80}]})
    for _poll in range(4):
        s.health(_health("unhealthy"))
    with pytest.raises(WaitTimeout) as info:
        s.member.put_back(timeout=5)
    assert info.value.details["changed"] is True and info.value.details["steps"][0]["name"] == "enable"
    assert info.value.details["record_path"] == s.member.record_path
    assert os.path.exists(s.member.record_path)  # the next run still knows where the target belongs


def test_a_failing_deregistration_leaves_the_record_and_tells_what_was_done(tmp_path):
    s = Stubbed(tmp_path)
    s.read(_health("healthy"))
    s.delay(30)
    s.stub.add_client_error("deregister_targets", service_error_code="AccessDenied", http_status_code=403)
    with pytest.raises(ClientError):
        s.member.take_out()
    partial = s.member.partial_result()
    assert partial["changed"] is False and partial["record_path"] == s.member.record_path
    assert partial["steps"][0]["name"] == "drain" and partial["target_groups"][0]["port"] == 80
    assert s.member.action == "deregister %s in target group tg-web" % TARGET
    assert os.path.exists(s.member.record_path)  # written before the call that failed
