# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rotation module's weighted canary states through main(): weighted needs a share, sets the weights after
recording them, unweighted puts them back; the AWS providers refuse both."""

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy import server as _haproxy
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.client import HAProxyRuntime
from ansible_collections.zerodowntime.rollout.plugins.module_utils._rotation import haproxy as _rotation
from ansible_collections.zerodowntime.rollout.plugins.modules import rotation
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.haproxy.fake_haproxy import FakeHAProxy, make_server
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.module_runner import run_main as run

SOCKET = "/run/haproxy/admin.sock"


@pytest.fixture
def haproxy(monkeypatch):
    fake = FakeHAProxy({("app", name): make_server() for name in ("app1", "app2", "app3", "app4")})
    monkeypatch.setattr(
        _rotation, "make_runtime", lambda address, timeout=10.0: HAProxyRuntime(address, transport=fake)
    )
    monkeypatch.setattr(_haproxy.time, "sleep", lambda seconds: None)
    return fake


def args(tmp_path, **extra):
    out = {"backend": "app", "server": "app1", "sockets": [SOCKET], "state_dir": str(tmp_path)}
    out.update(extra)
    return out


def weights(fake):
    return [fake.servers[("app", n)]["uweight"] for n in ("app1", "app2", "app3", "app4")]


def test_weighted_then_unweighted_through_main(haproxy, tmp_path, capsys):
    code, result = run(rotation, args(tmp_path, state="weighted", share=10, batch=["app1"]), capsys)
    assert code == 0, result
    assert result["changed"] is True and result["achieved"] == 10.0 and weights(haproxy) == [1, 3, 3, 3]
    code, result = run(rotation, args(tmp_path, state="read"), capsys)
    assert result["weights_record"]["weights"] == {SOCKET: {"app1": 1, "app2": 1, "app3": 1, "app4": 1}}
    code, result = run(rotation, args(tmp_path, state="unweighted"), capsys)
    assert code == 0 and result["changed"] is True and weights(haproxy) == [1, 1, 1, 1]
    code, result = run(rotation, args(tmp_path, state="unweighted"), capsys)
    assert code == 0 and result["changed"] is False


def test_weighted_without_a_share_fails_before_any_call(haproxy, tmp_path, capsys):
    code, result = run(rotation, args(tmp_path, state="weighted"), capsys)
    assert code == 1 and "state is weighted but all of the following are missing: share" in result["msg"]
    assert haproxy.log == []


def test_a_share_of_100_is_refused_with_nothing_sent(haproxy, tmp_path, capsys):
    code, result = run(rotation, args(tmp_path, state="weighted", share=100), capsys)
    assert code == 1 and "more than 0 and less than 100" in result["msg"]
    assert haproxy.changes() == []


@pytest.mark.parametrize("state", ["weighted", "unweighted"])
def test_the_aws_providers_refuse_the_weight_states(tmp_path, capsys, state):
    code, result = run(
        rotation,
        {"provider": "elbv2", "target_id": "i-0123456789abcdef0", "state": state, "share": 10, "region": "us-east-1"},
        capsys,
    )
    assert code == 1 and "state must be read, out or in" in result["msg"]
