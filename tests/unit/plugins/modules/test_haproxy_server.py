# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument handling of the haproxy_server module: main() in-process, HAProxy faked.

Works on ansible-core 2.17 (no ansible.module_utils.testing) and 2.21 (patch_module_args).
"""

import pytest
import yaml

from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy import server as _haproxy
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.client import HAProxyRuntime
from ansible_collections.zerodowntime.rollout.plugins.modules import haproxy_server
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.haproxy.fake_haproxy import FakeHAProxy, make_server
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.module_docs import documented_options
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.module_runner import run_main as run_module


@pytest.fixture
def fakes(monkeypatch):
    """Two fake HAProxy instances behind the default connection factory, and no real sleeping."""
    instances = {
        "/run/haproxy/admin.sock": FakeHAProxy({("be_app", "web1"): make_server()}),
        "tcp://10.0.0.11:9999": FakeHAProxy({("be_app", "web1"): make_server()}),
    }
    monkeypatch.setattr(
        _haproxy, "make_runtime", lambda address, timeout=10.0: HAProxyRuntime(address, transport=instances[address])
    )
    monkeypatch.setattr(_haproxy.time, "sleep", lambda seconds: None)
    return instances


def test_argument_spec_matches_documentation():
    spec = haproxy_server.argument_spec()
    options = documented_options(haproxy_server)
    assert sorted(spec) == sorted(options)
    for name, opt in options.items():
        arg = spec[name]
        assert arg.get("type", "str") == opt.get("type", "str"), name
        assert arg.get("required", False) == opt.get("required", False), name
        assert arg.get("default") == opt.get("default"), name
        assert arg.get("choices") == opt.get("choices"), name
        assert arg.get("elements") == opt.get("elements"), name


def test_documentation_metadata():
    doc = yaml.safe_load(haproxy_server.DOCUMENTATION)
    assert doc["version_added"] == "0.1.0"
    assert doc["attributes"]["check_mode"]["support"] == "full"
    assert doc["attributes"]["diff_mode"]["support"] == "full"
    assert "ansible.builtin.action_common_attributes" in doc["extends_documentation_fragment"]
    for task in yaml.safe_load(haproxy_server.EXAMPLES):
        assert "zerodowntime.rollout.haproxy_server" in task
    returned = yaml.safe_load(haproxy_server.RETURN)
    for key in ("msg", "sockets", "elapsed", "polls", "sessions_shutdown", "timed_out", "waited"):
        assert key in returned


def test_defaults_reach_the_default_socket(fakes, capsys):
    code, result = run_module(haproxy_server, {"backend": "be_app", "server": "web1", "state": "maint"}, capsys)
    assert code == 0, result
    assert result["changed"] is True
    assert [s["socket"] for s in result["sockets"]] == ["/run/haproxy/admin.sock"]
    assert fakes["/run/haproxy/admin.sock"].changes() == ["set server be_app/web1 state maint"]
    assert fakes["tcp://10.0.0.11:9999"].log == []


def test_pair_check_mode_and_diff(fakes, capsys):
    args = {
        "backend": "be_app",
        "server": "web1",
        "state": "drain",
        "sockets": ["/run/haproxy/admin.sock", "tcp://10.0.0.11:9999"],
        "_ansible_check_mode": True,
        "_ansible_diff": True,
    }
    code, result = run_module(haproxy_server, args, capsys)
    assert code == 0, result
    assert result["changed"] is True
    assert set(result["diff"]["after"]) == {"/run/haproxy/admin.sock", "tcp://10.0.0.11:9999"}
    assert all(fake.changes() == [] for fake in fakes.values())


def test_real_run_then_idempotent(fakes, capsys):
    args = {"backend": "be_app", "server": "web1", "state": "drain", "weight": 5, "timeout": 10, "poll_interval": 0.1}
    code, first = run_module(haproxy_server, args, capsys)
    assert code == 0 and first["changed"] is True and first["weight"] == 5
    code, second = run_module(haproxy_server, args, capsys)
    assert code == 0 and second["changed"] is False


def test_collection_error_becomes_fail_json_with_details(fakes, capsys):
    args = {"backend": "be_app", "server": "web9", "state": "drain", "sockets": ["/run/haproxy/admin.sock"]}
    code, result = run_module(haproxy_server, args, capsys)
    assert code == 1
    assert result["failed"] is True
    assert "no server web9 in backend be_app" in result["msg"]
    assert result["changed"] is False
    assert result["failed_sockets"][0]["socket"] == "/run/haproxy/admin.sock"


def test_bad_name_fails_before_any_command(fakes, capsys):
    code, result = run_module(haproxy_server, {"backend": "be_app", "server": "web1 ; x", "state": "drain"}, capsys)
    assert code == 1 and "Invalid server name" in result["msg"]
    assert all(fake.log == [] for fake in fakes.values())


@pytest.mark.parametrize(
    "args, words",
    [
        ({"backend": "be_app", "server": "web1", "state": "up"}, "value of state must be one of"),
        ({"backend": "be_app", "server": "web1"}, "missing required arguments: state"),
        ({"backend": "be_app", "server": "web1", "state": "drain", "weight": "heavy"}, "weight"),
        ({"backend": "be_app", "server": "web1", "state": "drain", "on_timeout": "kill"}, "on_timeout"),
    ],
)
def test_argument_spec_rejects(fakes, capsys, args, words):
    code, result = run_module(haproxy_server, args, capsys)
    assert code == 1 and words in result["msg"]
    assert all(fake.log == [] for fake in fakes.values())


def test_drain_timeout_fails_with_counts(fakes, capsys):
    fakes["/run/haproxy/admin.sock"].servers[("be_app", "web1")]["scur"] = 3
    args = {"backend": "be_app", "server": "web1", "state": "drain", "timeout": 0}
    code, result = run_module(haproxy_server, args, capsys)
    assert code == 1
    assert "3 sessions" in result["msg"]
    assert result["changed"] is True and result["timed_out"] is True and result["polls"] == 1
