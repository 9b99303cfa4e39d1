"""The rolling_update role's settings, checked together in preflight (filter role_settings)."""

import pytest

from ansible_collections.zerodowntime.rollout.plugins.filter.role_settings import role_settings
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.names import validate_name

SHA = "sha256:" + "ab" * 32


def settings(**changes):
    out = {
        "rolling_update_version": "v2",
        "rolling_update_artifact": "/srv/app-v2.tar.gz",
        "rolling_update_artifact_checksum": "",
        "rolling_update_allow_unverified": False,
        "rolling_update_artifact_from": "auto",
        "rolling_update_path": "/srv/app",
        "rolling_update_lb": "haproxy",
        "rolling_update_aws_target_id": "",
        "rolling_update_haproxy_delegate_to": ["lb1"],
        "rolling_update_haproxy_sockets": ["/run/haproxy/admin.sock"],
        "rolling_update_haproxy_backend": "app",
        "rolling_update_haproxy_server": "web1",
        "rolling_update_service_manager": "systemd",
        "rolling_update_service_name": "app.service",
        "rolling_update_start_command": "",
        "rolling_update_stop_command": "",
        "rolling_update_health_url": "http://127.0.0.1:8080/ready",
        "rolling_update_drain_on_timeout": "fail",
        "rolling_update_canary_weight": 0,
    }
    out.update(changes)
    return out


def test_consistent_settings_pass():
    result = role_settings(settings(), "web1")
    assert result == {"ok": True, "errors": [], "msg": "The settings of web1 are consistent."}


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"rolling_update_version": ""}, "rolling_update_version must be a release name"),
        ({"rolling_update_version": "v2;rm"}, 'got "v2;rm"'),
        ({"rolling_update_version": "v2\n"}, 'got "v2\\n"'),
        ({"rolling_update_version": "a..b"}, "has no '..'"),
        ({"rolling_update_version": ".hidden"}, "starts with a letter or digit"),
        ({"rolling_update_version": 2}, "got 2"),
        ({"rolling_update_artifact": ""}, "rolling_update_artifact is required"),
        ({"rolling_update_artifact_checksum": "sha256:xyz"}, "sha256:<64 hex digits>"),
        ({"rolling_update_artifact_checksum": SHA + "\n"}, "sha256:<64 hex digits>"),
        ({"rolling_update_artifact": "https://example.test/app.tgz"}, "is an http(s) URL"),
        ({"rolling_update_artifact": "HTTPS://example.test/app.tgz"}, "is an http(s) URL"),
        ({"rolling_update_artifact": "s3://bucket/app.tgz"}, "is an s3:// URL"),
        (
            {
                "rolling_update_artifact": "s3://bucket/app.tgz",
                "rolling_update_artifact_checksum": SHA,
                "rolling_update_artifact_from": "host",
            },
            "not host",
        ),
        ({"rolling_update_artifact_from": "lb"}, "auto, host or controller"),
        ({"rolling_update_path": "srv/app"}, "rolling_update_path must be an absolute path"),
        ({"rolling_update_service_manager": "upstart"}, "systemd or command"),
        ({"rolling_update_service_name": ""}, "needs rolling_update_service_name"),
        (
            {"rolling_update_service_manager": "command", "rolling_update_stop_command": "x"},
            "both rolling_update_start",
        ),
        ({"rolling_update_health_url": "127.0.0.1:8080/ready"}, "rolling_update_health_url must be"),
        ({"rolling_update_lb": "nginx"}, "haproxy, elbv2, elb_classic or none"),
        ({"rolling_update_lb": "elbv2"}, "rolling_update_aws_target_id"),
        ({"rolling_update_haproxy_sockets": []}, "rolling_update_haproxy_sockets"),
        ({"rolling_update_haproxy_delegate_to": []}, "rolling_update_haproxy_delegate_to"),
        ({"rolling_update_drain_on_timeout": "ignore"}, "fail or shutdown_sessions"),
        ({"rolling_update_canary_weight": 100}, "rolling_update_canary_weight (a percentage"),
        ({"rolling_update_canary_weight": "ten"}, "rolling_update_canary_weight (a percentage"),
        (
            {"rolling_update_canary_weight": 10, "rolling_update_lb": "elbv2", "rolling_update_aws_target_id": "i-1"},
            "needs rolling_update_lb=haproxy",
        ),
    ],
)
def test_each_broken_rule_is_refused_with_the_variable_named(changes, expected):
    result = role_settings(settings(**changes), "web1")
    assert result["ok"] is False
    assert len(result["errors"]) == 1, result["errors"]
    assert expected in result["errors"][0]
    assert result["msg"].startswith("Refusing web1: ")
    assert "Nothing was read or changed on any load balancer or host." in result["msg"]


@pytest.mark.parametrize(
    "changes",
    [
        {"rolling_update_artifact": "https://example.test/app.tgz", "rolling_update_artifact_checksum": SHA},
        {"rolling_update_artifact": "https://example.test/app.tgz", "rolling_update_allow_unverified": True},
        {"rolling_update_artifact": "s3://bucket/app.tgz", "rolling_update_allow_unverified": "true"},
        {
            "rolling_update_service_manager": "command",
            "rolling_update_start_command": "a",
            "rolling_update_stop_command": "b",
            "rolling_update_service_name": "",
        },
        {"rolling_update_lb": "none", "rolling_update_haproxy_sockets": [], "rolling_update_haproxy_server": "a;b"},
        {"rolling_update_lb": "elb_classic", "rolling_update_aws_target_id": "i-0123"},
        {"rolling_update_canary_weight": "10.5"},
        {"rolling_update_haproxy_server": 12},
    ],
)
def test_consistent_combinations_pass(changes):
    assert role_settings(settings(**changes), "web1")["ok"] is True, role_settings(settings(**changes), "web1")


def test_unverified_given_as_the_string_false_still_needs_a_checksum():
    result = role_settings(
        settings(rolling_update_artifact="https://example.test/a.tgz", rolling_update_allow_unverified="false"), "h"
    )
    assert result["ok"] is False


def test_every_broken_rule_is_reported_at_once():
    result = role_settings(settings(rolling_update_version="", rolling_update_path="x", rolling_update_lb="nginx"), "h")
    assert len(result["errors"]) == 3


@pytest.mark.parametrize(
    "name", ["app1", "be_app.v2:8080", "web-1", "a;b", "app\n", "app\nshow", "", "x y", "ä", "a/b", "a#b"]
)
@pytest.mark.parametrize("variable", ["rolling_update_haproxy_backend", "rolling_update_haproxy_server"])
def test_haproxy_names_follow_the_modules_rule(variable, name):
    try:
        validate_name(name)
        module_ok = True
    except ValidationError:
        module_ok = False
    result = role_settings(settings(**{variable: name}), "app3")
    assert result["ok"] is module_ok
    if not module_ok:
        assert result["msg"].startswith("Refusing app3: invalid HAProxy name in %s " % variable)
        assert "Nothing was sent to HAProxy and nothing was changed." in result["msg"]


def test_a_url_in_a_message_loses_its_credentials():
    result = role_settings(settings(rolling_update_artifact="https://user:s3cret@example.test/app.tgz"), "h")
    assert result["ok"] is False
    assert "s3cret" not in result["msg"]
    assert "example.test" in result["msg"]


@pytest.mark.parametrize("variable", ["rolling_update_canary_exclude", "rolling_update_surge_servers"])
def test_the_canary_lists_must_be_lists_of_haproxy_names(variable):
    # A string given with -e passes the argument spec (it converts a copy) but would fail the canary's Jinja
    # concatenation after the canary host was deployed: refused in preflight instead.
    result = role_settings(settings(**{variable: "web9"}), "h")
    assert result["ok"] is False
    assert '%s must be a list of HAProxy server names (got "web9")' % variable in result["msg"]
    assert '-e \'{"%s": ["web9"]}\'' % variable in result["msg"]
    result = role_settings(settings(**{variable: ["web9", "a;b"]}), "h")
    assert result["errors"] == ['invalid HAProxy server name in %s: "a;b".' % variable]
    assert role_settings(settings(**{variable: ["web9"]}), "h")["ok"] is True
    assert role_settings(settings(**{variable: [12]}), "h")["ok"] is True  # the module takes it as "12"
    assert role_settings(settings(**{variable: "web9", "rolling_update_lb": "none"}), "h")["ok"] is True


def test_the_role_hands_the_check_every_setting_it_reads_and_nothing_else():
    """vars/main.yml's _rolling_update_settings and the check's rules name the same role options: a rule on an option
    the role does not pass would never fire, and a passed option no rule reads is noise. Each is a documented option."""
    import ast
    import os

    import yaml

    from ansible_collections.zerodowntime.rollout.plugins.plugin_utils import _role_settings

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
    role = os.path.join(root, "roles", "rolling_update")
    with open(os.path.join(role, "vars", "main.yml")) as f:
        passed = set(yaml.safe_load(f)["_rolling_update_settings"])
    with open(_role_settings.__file__) as f:
        tree = ast.parse(f.read())
    read = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith("rolling_update_")
        and " " not in node.value
    }
    with open(os.path.join(role, "meta", "argument_specs.yml")) as f:
        documented = set(yaml.safe_load(f)["argument_specs"]["main"]["options"])
    assert read == passed, {"read, not passed": sorted(read - passed), "passed, not read": sorted(passed - read)}
    assert passed <= documented, sorted(passed - documented)
