# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument handling of the haproxy_server_info module: main() in-process, HAProxy faked."""

import pytest
import yaml

from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy import info as _haproxy
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.client import HAProxyRuntime
from ansible_collections.zerodowntime.rollout.plugins.modules import haproxy_server_info
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.haproxy.fake_haproxy import FakeHAProxy, make_server
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.module_docs import documented_options
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.module_runner import run_main


def run_module(args, capsys):
    return run_main(haproxy_server_info, args, capsys)


@pytest.fixture
def fake(monkeypatch):
    instance = FakeHAProxy(
        {
            ("be_app", "web1"): make_server(scur=1),
            ("be_app", "web2"): make_server(admin=1, status="MAINT"),
            ("be_api", "api1"): make_server(check=False, status="no check"),
        }
    )
    monkeypatch.setattr(
        _haproxy, "make_runtime", lambda address, timeout=10.0: HAProxyRuntime(address, transport=instance)
    )
    return instance


def test_argument_spec_matches_documentation():
    spec = haproxy_server_info.argument_spec()
    doc = yaml.safe_load(haproxy_server_info.DOCUMENTATION)
    options = documented_options(haproxy_server_info)
    assert sorted(spec) == sorted(options)
    for name, opt in options.items():
        for key, default in (("type", "str"), ("required", False), ("default", None), ("elements", None)):
            assert spec[name].get(key, default) == opt.get(key, default), (name, key)
    assert doc["attributes"]["check_mode"]["support"] == "full"


def test_reads_all_backends_never_changed(fake, capsys):
    code, result = run_module({}, capsys)
    assert code == 0, result
    assert result["changed"] is False
    entry = result["sockets"][0]
    assert entry["socket"] == "/run/haproxy/admin.sock"
    assert sorted(entry["backends"]) == ["be_api", "be_app"]
    assert entry["backends"]["be_app"]["servers"]["web2"]["admin_state"] == "maint"
    assert fake.changes() == []


def test_one_backend_in_check_mode(fake, capsys):
    code, result = run_module({"backend": "be_api", "_ansible_check_mode": True}, capsys)
    assert code == 0 and result["changed"] is False
    assert list(result["sockets"][0]["backends"]) == ["be_api"]


def test_unknown_and_invalid_backend(fake, capsys):
    code, result = run_module({"backend": "be_nope"}, capsys)
    assert code == 1 and "No such proxy" in result["msg"]
    fake.log.clear()
    code, result = run_module({"backend": "be nope"}, capsys)
    assert code == 1 and "Invalid backend name" in result["msg"]
    assert fake.log == []
