# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HAProxyRotation (read / take_out / put_back) against in-memory HAProxy instances and a fake clock."""

import os

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    LBCommandError,
    LBUnreachableError,
    RolloutError,
    ValidationError,
    WaitTimeout,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.client import HAProxyRuntime
from ansible_collections.zerodowntime.rollout.plugins.module_utils._records import record_key
from ansible_collections.zerodowntime.rollout.plugins.module_utils._rotation.haproxy import (
    CapacityError,
    HAProxyRotation,
    run_rotation,
)
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.haproxy.fake_haproxy import (
    FakeClock,
    RecordingHAProxy,
    make_server,
)

A = "/run/haproxy/a.sock"
B = "tcp://10.0.0.11:9999"
NOW = 1700000000.0


def two_servers(**web2):
    return RecordingHAProxy({("be_app", "web1"): make_server(), ("be_app", "web2"): make_server(**web2)})


class Rig:
    def __init__(self, tmp_path, a=None, b=None):
        self.fakes = {A: a or two_servers(), B: b or two_servers()}
        self.clock = FakeClock(fakes=self.fakes.values())
        self.state_dir = str(tmp_path / "state")
        timing = {"clock": self.clock, "sleep": self.clock.sleep, "now": lambda: NOW}
        self.member = HAProxyRotation([A, B], "be_app", "web1", self.state_dir, connect=self.connect, **timing)
        self.record_path = self.member.records.path(self.member.key)
        for fake in self.fakes.values():
            fake.record_path = self.record_path

    def connect(self, address):
        return HAProxyRuntime(address, transport=self.fakes[address])

    def server(self, address, name="web1"):
        return self.fakes[address].servers[("be_app", name)]

    def changes(self):
        return {address: fake.changes() for address, fake in self.fakes.items()}

    def record(self):
        return self.member.records.read(self.member.key)


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path)


# --- read --------------------------------------------------------------------------------------------


def test_read_in_rotation_everywhere(rig):
    result = rig.member.read()
    assert result["found"] is True and result["missing"] == []
    assert result["in_rotation"] is True and result["admin_down"] is False
    assert result["record"] is None and result["changed"] is False
    assert [m["socket"] for m in result["members"]] == [A, B]
    assert rig.changes() == {A: [], B: []}


def test_read_drained_on_one_socket_is_admin_down(rig):
    rig.server(B).update(admin=0x08, status="DRAIN")
    result = rig.member.read()
    assert result["in_rotation"] is False and result["admin_down"] is True


def test_missing_server_is_read_as_missing_and_refuses_take_out(tmp_path):
    rig = Rig(tmp_path, b=RecordingHAProxy({("be_app", "web2"): make_server()}))
    result = rig.member.read()
    assert result["found"] is False and result["missing"] == [B] and result["in_rotation"] is False
    with pytest.raises(RolloutError, match="no server be_app/web1 on %s" % B):
        rig.member.take_out()
    assert rig.changes()[A] == [] and not os.path.exists(rig.state_dir)


def test_read_returns_the_resume_record(rig):
    rig.member.records.write(rig.member.key, {"run_id": "r1"})
    result = rig.member.read()
    assert result["record"]["run_id"] == "r1"
    assert result["record_path"] == rig.record_path
    assert "resume record" in result["msg"]


def test_read_with_a_batch_reads_each_socket_once_for_every_server(rig):
    rig.server(B, "web2").update(admin=0x08, status="DRAIN")
    key2 = record_key("haproxy", [A, B], "be_app-web2")
    rig.member.records.write(key2, {"run_id": "r0"})

    def commands(read):
        before = {address: len(fake.log) for address, fake in rig.fakes.items()}
        out = read()
        return out, {address: len(fake.log) - before[address] for address, fake in rig.fakes.items()}

    alone, sent_alone = commands(rig.member.read)
    result, sent = commands(lambda: rig.member.read(batch=["web2", "web1"]))
    assert sent == sent_alone  # one read of each socket serves the whole batch
    web1, web2 = result["batch_reads"]["web1"], result["batch_reads"]["web2"]
    assert list(result["batch_reads"]) == ["web1", "web2"]
    assert web1["in_rotation"] is True and web1["record"] is None and web1["members"] == alone["members"]
    assert web2["in_rotation"] is False and web2["admin_down"] is True and web2["record"]["run_id"] == "r0"
    assert [m["admin_state"] for m in web2["members"]] == ["ready", "drain"]
    assert web2["record_path"] == rig.member.records.path(key2)
    assert result["read_for"] == {"backend": "be_app", "sockets": [A, B], "state_dir": rig.state_dir}
    assert rig.changes() == {A: [], B: []}


def test_read_with_a_batch_names_a_server_no_socket_knows(rig):
    web9 = rig.member.read(batch=["web9"])["batch_reads"]["web9"]
    assert web9["found"] is False and web9["missing"] == [A, B] and web9["in_rotation"] is False


def test_read_with_a_batch_refuses_a_bad_name_before_any_socket_is_read(rig):
    with pytest.raises(ValidationError, match="batch server"):
        rig.member.read(batch=["web2", "web2;disable server be_app/web1"])
    assert all(fake.log == [] for fake in rig.fakes.values())


def test_a_failed_batch_read_says_what_it_read(tmp_path):
    rig = Rig(tmp_path, b=RecordingHAProxy({}, unreachable="Connection refused"))
    with pytest.raises(RolloutError) as info:
        rig.member.read(batch=["web2"])
    assert info.value.details["read_for"]["sockets"] == [A, B]
    with pytest.raises(RolloutError) as alone:
        rig.member.read()
    assert "read_for" not in alone.value.details


# --- take_out ----------------------------------------------------------------------------------------


def test_capacity_guard_refuses_and_changes_nothing(tmp_path):
    rig = Rig(tmp_path, a=two_servers(status="DOWN", op=0), b=two_servers(status="DOWN", op=0))
    with pytest.raises(CapacityError) as info:
        rig.member.take_out(min_healthy=1)
    assert info.value.details["changed"] is False
    assert info.value.details["capacity"]["ok"] is False
    assert "Nothing was drained" in info.value.msg
    assert rig.changes() == {A: [], B: []}
    assert not any(c.startswith("set server") for fake in rig.fakes.values() for c in fake.log)
    assert not os.path.exists(rig.state_dir)


def test_capacity_guard_counts_the_whole_batch(rig):
    with pytest.raises(CapacityError):
        rig.member.take_out(batch=["web1", "web2"], min_healthy="50%")
    assert rig.changes() == {A: [], B: []}
    assert rig.record() is None


def test_take_out_writes_the_record_before_the_drain(rig):
    result = rig.member.take_out(min_healthy=1, run_id="run-7", version="v2")
    for address, fake in rig.fakes.items():
        assert fake.record_seen == [("set server be_app/web1 state drain", True)], address
        assert rig.server(address)["admin"] & 0x08
    assert result["changed"] is True and result["record_written"] is True and result["resumed"] is False
    assert result["capacity"]["ok"] is True
    record = rig.record()
    assert record["run_id"] == "run-7" and record["version"] == "v2"
    assert record["drained_at"] == NOW and record["sockets"] == [A, B]
    assert record["before"] == [
        {"socket": A, "admin_state": "ready", "weight": 1},
        {"socket": B, "admin_state": "ready", "weight": 1},
    ]


def test_take_out_waits_for_sessions_and_reports_one_drain_step(rig):
    rig.server(A)["scur"] = 3
    rig.fakes[A].script("be_app", "web1", {"scur": 1}, {"scur": 0})
    result = rig.member.take_out(poll_interval=1.0)
    assert [s["name"] for s in result["steps"]] == ["drain"]
    step = result["steps"][0]
    assert isinstance(step["seconds"], float) and step["seconds"] == 2.0
    assert rig.clock.sleeps == [1.0, 1.0]
    assert result["capacity"] is None  # min_healthy 0: no guard


def test_existing_record_is_kept_on_resume(rig):
    rig.member.records.write(rig.member.key, {"run_id": "first", "drained_at": 1.0})
    result = rig.member.take_out(run_id="second")
    assert result["record_written"] is False and result["resumed"] is True
    assert rig.record()["run_id"] == "first" and rig.record()["drained_at"] == 1.0
    assert rig.changes()[A] == ["set server be_app/web1 state drain"]


def test_already_drained_without_record_writes_none(rig):
    for address in (A, B):
        rig.server(address).update(admin=0x08, status="DRAIN")
    result = rig.member.take_out()
    assert result["changed"] is False and result["record_written"] is False
    assert rig.record() is None and rig.changes() == {A: [], B: []}


def test_check_mode_sends_nothing_and_writes_no_record(rig):
    result = rig.member.take_out(min_healthy=1, check_mode=True)
    assert result["changed"] is True and result["record_written"] is False
    assert rig.changes() == {A: [], B: []}
    assert not os.path.exists(rig.state_dir)
    assert [s["name"] for s in result["steps"]] == ["drain"]


def test_unreachable_socket_is_named_and_nothing_changes(tmp_path):
    rig = Rig(tmp_path, b=RecordingHAProxy({}, unreachable="Connection refused by %s" % B))
    with pytest.raises(LBUnreachableError) as info:
        rig.member.take_out()
    assert B in info.value.msg and info.value.details["changed"] is False
    assert [f["socket"] for f in info.value.details["failed_sockets"]] == [B]
    assert rig.changes()[A] == [] and not os.path.exists(rig.state_dir)
    rig.fakes[A].unreachable = "refused"
    with pytest.raises(LBUnreachableError) as info:
        rig.member.read()
    assert "2 of 2" in info.value.msg
    assert [f["socket"] for f in info.value.details["failed_sockets"]] == [A, B]


def test_failed_drain_keeps_the_record_and_reports_the_step(tmp_path):
    rig = Rig(tmp_path, b=two_servers())
    rig.fakes[B].set_error = "Require 'admin' access level."
    with pytest.raises(LBCommandError) as info:
        rig.member.take_out()
    assert info.value.details["record_path"] == rig.record_path
    assert [s["name"] for s in info.value.details["steps"]] == ["drain"]
    assert rig.record() is not None  # the next run knows the member may be out


@pytest.mark.parametrize(
    "kwargs",
    [{"batch": ["web1;show info"]}, {"min_healthy": "lots"}, {"min_healthy": -1}, {"on_timeout": "ignore"}],
)
def test_invalid_take_out_arguments_send_nothing(rig, kwargs):
    with pytest.raises(ValidationError):
        rig.member.take_out(**kwargs)
    assert all(fake.log == [] for fake in rig.fakes.values())


@pytest.mark.parametrize("server, state_dir", [("web1\nset server x", "/var/lib/x"), ("web1", "relative")])
def test_invalid_names_are_refused_at_construction(server, state_dir):
    with pytest.raises(ValidationError):
        HAProxyRotation([A], "be_app", server, state_dir)


# --- put_back ----------------------------------------------------------------------------------------


def test_put_back_sets_ready_waits_until_up_and_removes_the_record(rig):
    rig.member.take_out()
    for address in (A, B):
        rig.server(address)["ready_status"] = "UP 1/3"
        rig.fakes[address].script("be_app", "web1", {"status": "UP 2/3"}, {"status": "UP"})
    result = rig.member.put_back(poll_interval=1.0)
    assert rig.changes()[A][-1] == "set server be_app/web1 state ready"
    assert rig.server(A)["status"] == "UP" and rig.server(B)["status"] == "UP"
    assert rig.clock.sleeps == [1.0, 1.0]
    assert [s["name"] for s in result["steps"]] == ["enable"] and result["steps"][0]["seconds"] == 2.0
    assert result["record_removed"] is True and rig.record() is None
    assert not os.path.exists(rig.record_path)


def test_put_back_check_mode_leaves_the_record(rig):
    rig.member.take_out()
    before = rig.changes()
    result = rig.member.put_back(check_mode=True)
    assert result["record_removed"] is False and rig.record() is not None
    assert rig.changes() == before


def test_put_back_timeout_keeps_the_record(rig):
    rig.member.take_out()
    for address in (A, B):
        rig.server(address)["ready_status"] = "DOWN"
    with pytest.raises(WaitTimeout) as info:
        rig.member.put_back(timeout=3, poll_interval=1.0)
    assert [s["name"] for s in info.value.details["steps"]] == ["enable"]
    assert rig.record() is not None


# --- run_rotation ------------------------------------------------------------------------------------


def params(rig):
    return {"sockets": [A, B], "backend": "be_app", "server": "web1", "state_dir": rig.state_dir}


def test_run_rotation_out_then_in(rig):
    out = run_rotation("haproxy", "out", dict(params(rig), run_id="r"), connect=rig.connect)
    assert out["record_written"] is True and rig.record()["run_id"] == "r"
    back = run_rotation("haproxy", "in", params(rig), connect=rig.connect)
    assert back["record_removed"] is True and rig.record() is None
    assert run_rotation("haproxy", "read", params(rig), connect=rig.connect)["in_rotation"] is True


@pytest.mark.parametrize("provider, state", [("elbv2", "read"), ("haproxy", "drain")])
def test_run_rotation_refuses_unknown_provider_or_state(rig, provider, state):
    with pytest.raises(ValidationError):
        run_rotation(provider, state, params(rig), connect=rig.connect)
    assert rig.changes() == {A: [], B: []}
