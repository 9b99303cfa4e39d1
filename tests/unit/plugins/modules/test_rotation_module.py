# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""main() of the rotation module in-process: which module class serves which call, the arguments, and the AWS
providers end to end with the AWS client behind a botocore Stubber (as test_aws_lb_modules does).

Works on ansible-core 2.17 (no ansible.module_utils.testing) and 2.21 (patch_module_args).
"""

import os

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy import server as _haproxy
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.client import HAProxyRuntime
from ansible_collections.zerodowntime.rollout.plugins.module_utils._rotation import haproxy as _rotation
from ansible_collections.zerodowntime.rollout.plugins.modules import rotation
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.haproxy.fake_haproxy import FakeHAProxy, make_server
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.module_docs import documented_options
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.module_runner import run_main as run

ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg-web/0123456789abcdef"
TARGET = "i-0123456789abcdef0"
WEB = {"TargetGroupArn": ARN, "TargetGroupName": "tg-web", "Port": 80, "TargetType": "instance"}
SOCKET = "/run/haproxy/admin.sock"


@pytest.fixture
def haproxy(monkeypatch):
    fake = FakeHAProxy({("be_app", "web1"): make_server()})
    monkeypatch.setattr(
        _rotation, "make_runtime", lambda address, timeout=10.0: HAProxyRuntime(address, transport=fake)
    )
    monkeypatch.setattr(_haproxy.time, "sleep", lambda seconds: None)
    return fake


@pytest.fixture
def aws_class(monkeypatch):
    """Records every AnsibleAWSModule built (and with which check_boto3); its client answers from ``stub``."""
    built = []
    original = AnsibleAWSModule.__init__

    def init(self, **kwargs):
        built.append(kwargs.get("check_boto3"))
        original(self, **kwargs)

    monkeypatch.setattr(AnsibleAWSModule, "__init__", init)
    raw = boto3.client("elbv2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    stub = Stubber(raw)
    monkeypatch.setattr(
        AnsibleAWSModule,
        "client",
        lambda _module, service, retry_decorator=None, **kw: RetryingBotoClientWrapper(raw, retry_decorator),
    )
    return built, stub


def haproxy_args(tmp_path, **extra):
    args = {"state": "read", "backend": "be_app", "server": "web1", "sockets": [SOCKET], "state_dir": str(tmp_path)}
    args.update(extra)
    return args


def test_options_match_the_documentation_without_the_amazon_aws_fragments():
    spec = rotation.argument_spec()
    doc = yaml.safe_load(rotation.DOCUMENTATION)
    options = documented_options(rotation)
    assert sorted(spec) == sorted(options)
    for name, opt in options.items():
        arg = spec[name]
        for key, default in (("type", "str"), ("required", False), ("default", None), ("choices", None)):
            assert arg.get(key, default) == opt.get(key, default), (name, key)
        assert arg.get("elements") == opt.get("elements"), name
    # amazon.aws's own options come with AnsibleAWSModule and are documented by its fragments.
    assert {"amazon.aws.common.modules", "amazon.aws.region.modules", "amazon.aws.boto3"} <= set(
        doc["extends_documentation_fragment"]
    )


@pytest.mark.parametrize(
    "args, plain",
    [
        ({"state": "in", "backend": "b", "server": "s"}, True),
        ({"state": "in", "backend": "b", "server": "s", "provider": "haproxy", "_ansible_check_mode": True}, True),
        ({"state": "in", "provider": "elbv2", "target_id": TARGET}, False),
        ({"state": "in", "provider": "elb_classic", "target_id": TARGET}, False),
        # amazon.aws's connection options (module_defaults of the aws group may bring them) need its module class.
        ({"state": "in", "backend": "b", "server": "s", "region": "eu-west-1"}, False),
        ({"state": "in", "backend": "b", "server": "s", "aws_access_key_id": "x"}, False),
        (None, False),
    ],
)
def test_only_a_plain_haproxy_call_skips_amazon_aws(args, plain):
    assert rotation.plain_haproxy(args) is plain


def test_haproxy_runs_without_amazon_aws(haproxy, aws_class, tmp_path, capsys):
    built, _stub = aws_class
    code, result = run(rotation, haproxy_args(tmp_path), capsys)
    assert code == 0, result
    assert result["in_rotation"] is True and built == []


def test_haproxy_with_aws_connection_options_accepts_and_ignores_them(haproxy, aws_class, tmp_path, capsys):
    built, _stub = aws_class
    code, result = run(rotation, haproxy_args(tmp_path, region="eu-west-1", endpoint_url="http://x"), capsys)
    assert code == 0, result
    assert result["in_rotation"] is True and built == [False]  # boto3 not required for HAProxy


@pytest.mark.parametrize("state, timeout", [("out", 300), ("in", 120), ("read", 120)])
def test_haproxy_defaults_are_unchanged(monkeypatch, state, timeout):
    """Without timeout and poll_interval (no defaults in the spec any more, they depend on the provider), HAProxy
    still gets 300 s to drain, 120 s to come back, and a poll every 0.25 s."""
    seen = []
    monkeypatch.setattr(rotation, "run_rotation", lambda provider, st, params, **kw: seen.append(params) or {})
    params = {name: spec.get("default") for name, spec in rotation.argument_spec().items()}
    params.update(state=state, backend="b", server="s")
    rotation.run_module(params)
    assert (seen[0]["timeout"], seen[0]["poll_interval"]) == (timeout, 0.25)


@pytest.mark.parametrize(
    "args, message",
    [
        ({"state": "read", "backend": "b"}, "provider is haproxy but all of the following are missing: server"),
        ({"state": "read", "provider": "elbv2"}, "provider is elbv2 but all of the following are missing: target_id"),
        (
            {"state": "read", "provider": "elb_classic", "region": "us-east-1"},
            "provider is elb_classic but all of the following are missing: target_id",
        ),
        ({"state": "read", "backend": "b", "server": "s", "bogus": 1}, "bogus"),
    ],
)
def test_missing_and_unknown_arguments_fail_before_any_call(aws_class, args, message, capsys):
    code, result = run(rotation, args, capsys)
    assert code == 1 and result["failed"] is True
    assert message in result["msg"], result["msg"]


def _health(state):
    descriptions = [{"Target": {"Id": TARGET, "Port": 80}, "TargetHealth": {"State": state}}] if state else []
    return {"TargetHealthDescriptions": descriptions}


def test_elbv2_out_then_in_through_main(aws_class, tmp_path, capsys, monkeypatch):
    built, stub = aws_class
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    stub.add_response("describe_target_groups", {"TargetGroups": [WEB]}, {"Names": ["tg-web"]})
    stub.add_response("describe_target_health", _health("healthy"), {"TargetGroupArn": ARN})
    stub.add_response(
        "describe_target_group_attributes",
        {"Attributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": "5"}]},
        {"TargetGroupArn": ARN},
    )
    stub.add_response("deregister_targets", {}, {"TargetGroupArn": ARN, "Targets": [{"Id": TARGET, "Port": 80}]})
    stub.add_response("describe_target_health", _health(None), {"TargetGroupArn": ARN})
    stub.activate()
    args = {
        "provider": "elbv2",
        "state": "out",
        "target_id": TARGET,
        "target_groups": ["tg-web"],
        "state_dir": str(tmp_path),
        "region": "us-east-1",
        # What the role's module_defaults bring to every rotation call: ignored by the AWS providers.
        "backend": "app",
        "server": "app1",
        "sockets": [SOCKET],
    }
    code, result = run(rotation, args, capsys)
    assert code == 0, result
    assert built == [True]  # boto3 is required for the AWS providers
    assert result["changed"] is True and result["provider"] == "elbv2" and result["timeout"] == 65
    assert result["steps"][0]["name"] == "drain" and result["record_written"] is True
    assert os.path.exists(result["record_path"]) and result["api_calls"] == 5

    stub.add_response("describe_target_groups", {"TargetGroups": [WEB]}, {"TargetGroupArns": [ARN]})
    stub.add_response("describe_target_health", _health(None), {"TargetGroupArn": ARN})
    stub.add_response("register_targets", {}, {"TargetGroupArn": ARN, "Targets": [{"Id": TARGET, "Port": 80}]})
    stub.add_response("describe_target_health", _health("healthy"), {"TargetGroupArn": ARN})
    code, back = run(rotation, dict(args, state="in"), capsys)
    stub.assert_no_pending_responses()
    assert code == 0, back
    assert back["changed"] is True and back["registered_from"] == "record" and back["record_removed"] is True
    assert not os.path.exists(result["record_path"])


def test_elbv2_botocore_error_fails_with_what_was_done(aws_class, tmp_path, capsys):
    _built, stub = aws_class
    stub.add_response("describe_target_groups", {"TargetGroups": [WEB]}, {"Names": ["tg-web"]})
    stub.add_client_error("describe_target_health", service_error_code="AccessDenied", http_status_code=403)
    stub.activate()
    args = {"provider": "elbv2", "state": "read", "target_id": TARGET, "target_groups": ["tg-web"]}
    code, result = run(rotation, dict(args, state_dir=str(tmp_path)), capsys)
    assert code == 1 and result["failed"] is True
    assert result["msg"].startswith("Failed to describe target health in target group tg-web")
    assert result["changed"] is False and result["provider"] == "elbv2" and result["api_calls"] == 2


def test_elbv2_capacity_refusal_fails_with_its_verdict(aws_class, tmp_path, capsys):
    _built, stub = aws_class
    stub.add_response("describe_target_groups", {"TargetGroups": [WEB]}, {"Names": ["tg-web"]})
    stub.add_response("describe_target_health", _health("healthy"), {"TargetGroupArn": ARN})
    stub.activate()
    args = {"provider": "elbv2", "state": "out", "target_id": TARGET, "target_groups": ["tg-web"], "min_healthy": "1"}
    code, result = run(rotation, dict(args, state_dir=str(tmp_path)), capsys)
    assert code == 1 and result["changed"] is False
    assert "target group tg-web keeps 0 of 1, needs 1" in result["msg"]
    assert result["capacity"]["ok"] is False and result["api_calls"] == 2
    assert not os.path.exists(os.path.join(str(tmp_path), "rotation"))
