# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ensure_server_state / gather_server_info against in-memory HAProxy instances and a fake clock."""

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    LBCommandError,
    LBPermissionError,
    LBUnreachableError,
    NotFoundError,
    RolloutError,
    ValidationError,
    WaitTimeout,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy import info as _haproxy_info
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy import server as _haproxy
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.client import HAProxyRuntime
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.haproxy.fake_haproxy import (
    FakeClock,
    FakeHAProxy,
    make_server,
)

A = "/run/haproxy/a.sock"
B = "tcp://10.0.0.11:9999"


class Pair:
    """Two fake HAProxy instances (an HA pair), a fake clock, and the runtimes handed out."""

    def __init__(self, a=None, b=None):
        self.fakes = {
            A: a or FakeHAProxy({("be_app", "web1"): make_server(), ("be_app", "web2"): make_server()}),
            B: b or FakeHAProxy({("be_app", "web1"): make_server(), ("be_app", "web2"): make_server()}),
        }
        self.clock = FakeClock(fakes=self.fakes.values())
        self.runtimes = []

    def connect(self, address):
        runtime = HAProxyRuntime(address, transport=self.fakes[address])
        self.runtimes.append(runtime)
        return runtime

    def run(self, **kwargs):
        params = {
            "sockets": [A, B],
            "backend": "be_app",
            "server": "web1",
            "state": "drain",
            "timeout": 30,
            "poll_interval": 1.0,
        }
        params.update(kwargs)
        return _haproxy.ensure_server_state(connect=self.connect, clock=self.clock, sleep=self.clock.sleep, **params)

    def server(self, address, name="web1"):
        return self.fakes[address].servers[("be_app", name)]

    def changes(self, address):
        return self.fakes[address].changes()

    def commands_sent(self):
        # What the fake HAProxy instances received: every command a client handed to its transport.
        return sum(len(fake.log) for fake in self.fakes.values())


# ---------------------------------------------------------------------------------------------
# validation and preflight: all or nothing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server": "web1;show info"},
        {"server": "web1\nset server be_app/web2 state maint"},
        {"server": ""},
        {"backend": "be app"},
        {"state": "up"},
        {"weight": 257},
        {"weight": -1},
        {"sockets": []},
        {"sockets": [A, "relative.sock"]},
        {"sockets": [A, A]},
        {"on_timeout": "ignore"},
        {"timeout": -1},
        {"poll_interval": 0},
    ],
)
def test_invalid_input_sends_zero_commands(kwargs):
    pair = Pair()
    with pytest.raises(ValidationError):
        pair.run(**kwargs)
    assert pair.commands_sent() == 0
    assert pair.fakes[A].log == [] and pair.fakes[B].log == []


def test_unknown_server_on_second_socket_changes_nothing_on_the_first():
    pair = Pair(b=FakeHAProxy({("be_app", "web2"): make_server()}))
    with pytest.raises(NotFoundError) as info:
        pair.run()
    assert pair.changes(A) == [] and pair.changes(B) == []
    assert B in info.value.msg and "no server web1 in backend be_app" in info.value.msg
    assert "nothing was changed" in info.value.msg
    assert info.value.details["changed"] is False
    assert [f["socket"] for f in info.value.details["failed_sockets"]] == [B]
    assert pair.server(A)["admin"] == 0


def test_unknown_backend_on_second_socket():
    pair = Pair(b=FakeHAProxy({("be_other", "web1"): make_server()}))
    with pytest.raises(NotFoundError, match="No such proxy"):
        pair.run()
    assert pair.changes(A) == []


def test_unreachable_second_socket_changes_nothing():
    pair = Pair(b=FakeHAProxy({}, unreachable="Connection refused by tcp://10.0.0.11:9999"))
    with pytest.raises(LBUnreachableError):
        pair.run()
    assert pair.changes(A) == []


def test_user_level_socket_is_refused_before_any_change():
    pair = Pair(b=FakeHAProxy({("be_app", "web1"): make_server()}, level="user"))
    with pytest.raises(LBPermissionError, match="user-level socket"):
        pair.run()
    assert pair.changes(A) == [] and pair.changes(B) == []


def test_every_failing_socket_is_reported():
    pair = Pair(
        a=FakeHAProxy({("be_app", "web2"): make_server()}),
        b=FakeHAProxy({}, unreachable="Connection refused by tcp://10.0.0.11:9999"),
    )
    with pytest.raises(RolloutError) as info:
        pair.run()
    assert "2 of 2" in info.value.msg
    assert [f["socket"] for f in info.value.details["failed_sockets"]] == [A, B]


# ---------------------------------------------------------------------------------------------
# changes, idempotence, check mode, diff
# ---------------------------------------------------------------------------------------------


def test_drain_changes_both_then_is_idempotent():
    pair = Pair()
    result = pair.run()
    assert result["changed"] is True
    assert pair.changes(A) == ["set server be_app/web1 state drain"]
    assert pair.changes(B) == ["set server be_app/web1 state drain"]
    assert [s["after"]["admin_state"] for s in result["sockets"]] == ["drain", "drain"]
    assert [s["before"]["admin_state"] for s in result["sockets"]] == ["ready", "ready"]

    again = pair.run()
    assert again["changed"] is False
    assert pair.changes(A) == ["set server be_app/web1 state drain"]  # nothing new sent
    assert all(not s["changed"] and s["commands"] == [] for s in again["sockets"])
    assert "already in drain" in again["msg"]


def test_only_the_socket_that_differs_is_changed():
    pair = Pair()
    pair.server(A)["admin"] = 8
    pair.server(A)["status"] = "DRAIN"
    result = pair.run()
    assert result["changed"] is True
    assert pair.changes(A) == []
    assert pair.changes(B) == ["set server be_app/web1 state drain"]
    assert [s["changed"] for s in result["sockets"]] == [False, True]


def test_weight_is_set_before_state_and_only_when_different():
    pair = Pair()
    for fake in pair.fakes.values():
        fake.servers[("be_app", "web1")].update(admin=1, status="MAINT")
    result = pair.run(state="ready", weight=10)
    assert pair.changes(A) == ["set server be_app/web1 weight 10", "set server be_app/web1 state ready"]
    assert result["sockets"][0]["after"]["weight"] == 10
    again = pair.run(state="ready", weight=10)
    assert again["changed"] is False
    weight_only = pair.run(state="ready", weight=3)
    assert weight_only["changed"] is True
    assert pair.changes(B)[-1] == "set server be_app/web1 weight 3"


def test_changed_never_depends_on_session_counts():
    pair = Pair()
    for fake in pair.fakes.values():
        fake.servers[("be_app", "web1")].update(admin=8, status="DRAIN", scur=5)
        fake.script("be_app", "web1", {"scur": 2}, {"scur": 0})
    result = pair.run()
    assert result["changed"] is False
    assert result["sockets"][0]["before"]["sessions"] == 5
    assert result["sockets"][0]["after"]["sessions"] == 0


def test_check_mode_changes_nothing_and_does_not_wait():
    pair = Pair()
    pair.server(A).update(scur=3)
    result = pair.run(check_mode=True, diff=True)
    assert result["changed"] is True
    assert pair.changes(A) == [] and pair.changes(B) == []
    assert pair.clock.sleeps == [] and result["waited"] is False and result["polls"] == 0
    assert result["sockets"][0]["commands"] == ["set server be_app/web1 state drain"]
    assert result["sockets"][0]["after"]["admin_state"] == "drain"
    assert result["sockets"][0]["after"]["status"] == "DRAIN"
    assert result["diff"]["before"][A] == {"status": "UP", "admin_state": "ready", "weight": 1}
    assert result["diff"]["after"][A] == {"status": "DRAIN", "admin_state": "drain", "weight": 1}
    assert "Would set" in result["msg"]


def test_check_mode_when_nothing_differs():
    pair = Pair()
    for fake in pair.fakes.values():
        fake.servers[("be_app", "web1")].update(admin=1, status="MAINT")
    result = pair.run(state="maint", check_mode=True)
    assert result["changed"] is False
    assert "nothing would change" in result["msg"]


def test_check_mode_predicts_no_check_for_a_server_without_check():
    pair = Pair()
    for fake in pair.fakes.values():
        fake.servers[("be_app", "web1")].update(admin=1, status="MAINT", check=False)
    result = pair.run(state="ready", check_mode=True, diff=True)
    assert result["diff"]["after"][B]["status"] == "no check"


def test_diff_after_a_real_run():
    pair = Pair()
    result = pair.run(state="maint", diff=True)
    assert result["diff"]["before"][B]["admin_state"] == "ready"
    assert result["diff"]["after"][B] == {"status": "MAINT", "admin_state": "maint", "weight": 1}


def test_no_diff_key_without_diff_mode():
    assert "diff" not in Pair().run()


# ---------------------------------------------------------------------------------------------
# waits
# ---------------------------------------------------------------------------------------------


def test_drain_waits_for_sessions_and_queue_on_every_socket():
    pair = Pair()
    pair.server(A).update(scur=3)
    pair.fakes[A].script("be_app", "web1", {"scur": 1}, {"scur": 0})
    pair.server(B).update(scur=0, qcur=2)
    pair.fakes[B].script("be_app", "web1", {"qcur": 1}, {"qcur": 1}, {"qcur": 0})
    result = pair.run()
    assert result["polls"] == 4  # A drained at t=2, B at t=3: both in the same poll only at t=3
    assert result["elapsed"] == 3.0
    assert result["timed_out"] is False and result["sessions_shutdown"] == 0
    assert "Drained everywhere after 3.0s (4 polls)" in result["msg"]


def test_wait_false_does_not_poll():
    pair = Pair()
    pair.server(A).update(scur=3)
    result = pair.run(wait=False)
    assert result["waited"] is False and result["polls"] == 0 and pair.clock.sleeps == []
    assert result["sockets"][0]["after"]["sessions"] == 3


def test_drain_timeout_fails_with_remaining_sessions_per_socket():
    pair = Pair()
    pair.server(A).update(scur=2)
    pair.server(B).update(scur=0, qcur=1)
    with pytest.raises(WaitTimeout) as info:
        pair.run(timeout=5)
    err = info.value
    assert err.attempts == 6
    assert "%s: DRAIN, 2 sessions, 0 queued" % A in err.msg
    assert "%s: DRAIN, 0 sessions, 1 queued" % B in err.msg
    assert "on_timeout=shutdown_sessions" in err.msg
    assert err.details["changed"] is True
    assert err.details["polls"] == 6 and err.details["elapsed"] == 5.0
    assert [s["after"]["sessions"] for s in err.details["sockets"]] == [2, 0]
    assert not any("shutdown" in c for c in pair.changes(A) + pair.changes(B))


def test_drain_timeout_shutdown_sessions_cuts_only_where_sessions_remain():
    pair = Pair()
    pair.server(A).update(scur=2)
    result = pair.run(timeout=5, on_timeout="shutdown_sessions")
    assert pair.changes(A) == ["set server be_app/web1 state drain", "shutdown sessions server be_app/web1"]
    assert pair.changes(B) == ["set server be_app/web1 state drain"]
    assert result["sessions_shutdown"] == 2
    assert [s["sessions_shutdown"] for s in result["sockets"]] == [2, 0]
    assert result["timed_out"] is True and result["changed"] is True
    assert result["sockets"][0]["after"]["sessions"] == 0
    assert "shut down 2 remaining session(s)" in result["msg"]


def test_shutdown_sessions_alone_does_not_make_the_task_changed():
    pair = Pair()
    for fake in pair.fakes.values():
        fake.servers[("be_app", "web1")].update(admin=8, status="DRAIN")
    pair.server(B).update(scur=4)
    result = pair.run(timeout=2, on_timeout="shutdown_sessions")
    assert result["changed"] is False
    assert result["sessions_shutdown"] == 4


def test_ready_waits_through_transitional_up():
    pair = Pair()
    for address, fake in pair.fakes.items():
        fake.servers[("be_app", "web1")].update(admin=1, status="MAINT", ready_status="UP 1/3")
        fake.script("be_app", "web1", {"status": "UP 1/3"}, {"status": "UP 2/3" if address == A else "UP"})
        fake.script("be_app", "web1", {"status": "UP"})
    result = pair.run(state="ready")
    assert result["changed"] is True
    assert result["polls"] == 4 and result["elapsed"] == 3.0
    assert [s["after"]["status"] for s in result["sockets"]] == ["UP", "UP"]


def test_ready_accepts_no_check():
    pair = Pair()
    for fake in pair.fakes.values():
        fake.servers[("be_app", "web1")].update(admin=1, status="MAINT", check=False, ready_status="no check")
    result = pair.run(state="ready")
    assert result["polls"] == 1 and result["sockets"][0]["after"]["status"] == "no check"


def test_ready_when_admin_ready_but_down_changes_nothing_but_waits():
    pair = Pair()
    for fake in pair.fakes.values():
        fake.servers[("be_app", "web1")].update(status="DOWN", op=0)
        fake.script("be_app", "web1", {"status": "DOWN 1/3"}, {"status": "DOWN 2/3"}, {"status": "UP", "op": 2})
    result = pair.run(state="ready")
    assert result["changed"] is False
    assert pair.changes(A) == [] and pair.changes(B) == []
    assert result["polls"] == 4


def test_ready_timeout_reports_the_check_and_that_nothing_changed():
    pair = Pair()
    pair.server(B).update(status="DOWN", op=0)
    with pytest.raises(WaitTimeout) as info:
        pair.run(state="ready", timeout=2)
    assert "%s: DOWN" % B in info.value.msg and "check L7OK" in info.value.msg
    assert "Nothing was changed." in info.value.msg
    assert info.value.details["changed"] is False


def test_maint_wait():
    pair = Pair()
    result = pair.run(state="maint")
    assert result["polls"] == 1 and "MAINT everywhere" in result["msg"]


def test_socket_vanishing_during_the_wait_is_retried():
    pair = Pair()
    pair.server(A).update(scur=1)
    fake_a = pair.fakes[A]
    original_tick = fake_a.tick

    def flaky_tick():
        original_tick()
        fake_a.unreachable = "HAProxy reloading" if fake_a.unreachable is None else None
        if fake_a.unreachable is None:
            fake_a.servers[("be_app", "web1")]["scur"] = 0

    fake_a.unreachable = None
    fake_a.tick = flaky_tick
    result = pair.run()
    assert result["polls"] == 3  # t=0 sessions; t=1 unreachable; t=2 drained


def test_failure_while_applying_reports_what_was_changed():
    pair = Pair(b=FakeHAProxy({("be_app", "web1"): make_server()}, set_error="Out of memory."))
    with pytest.raises(LBCommandError) as info:
        pair.run()
    assert "Out of memory." in info.value.msg
    assert "Sockets already changed: %s" % A in info.value.msg
    assert info.value.details["changed"] is True


def test_inherited_maint_cannot_be_cleared_and_says_so():
    pair = Pair()
    for fake in pair.fakes.values():
        fake.servers[("be_app", "web1")].update(admin=2, status="MAINT (via be_app/web2)")
    with pytest.raises(RolloutError, match="inherited"):
        pair.run(state="ready", wait=False)


# ---------------------------------------------------------------------------------------------
# info
# ---------------------------------------------------------------------------------------------


def test_gather_info_all_backends_and_one_backend():
    fake = FakeHAProxy(
        {
            ("be_app", "web1"): make_server(scur=2, stot=40),
            ("be_app", "web2"): make_server(admin=8, status="DRAIN"),
            ("be_api", "api1"): make_server(check=False, status="no check"),
        },
        level="user",
    )
    pair = Pair(a=fake)
    info = _haproxy_info.gather_server_info([A], connect=pair.connect)
    entry = info["sockets"][0]
    assert entry["socket"] == A and entry["cli_level"] == "user"
    assert sorted(entry["backends"]) == ["be_api", "be_app"]
    web1 = entry["backends"]["be_app"]["servers"]["web1"]
    assert (web1["sessions"], web1["total_sessions"], web1["responses"]["2xx"]) == (2, 40, 40)
    assert entry["backends"]["be_app"]["servers"]["web2"]["admin_state"] == "drain"
    assert entry["backends"]["be_app"]["totals"]["sessions"] == 2
    assert entry["backends"]["be_api"]["servers"]["api1"]["healthy"] is True

    one = _haproxy_info.gather_server_info([A], backend="be_api", connect=pair.connect)
    assert list(one["sockets"][0]["backends"]) == ["be_api"]
    assert pair.changes(A) == []


def test_gather_info_unknown_backend_and_bad_name():
    pair = Pair()
    with pytest.raises(NotFoundError):
        _haproxy_info.gather_server_info([A], backend="be_nope", connect=pair.connect)
    with pytest.raises(ValidationError):
        _haproxy_info.gather_server_info([A], backend="be;nope", connect=pair.connect)


def test_gather_info_names_every_socket_that_does_not_answer():
    c = "/run/haproxy/c.sock"
    pair = Pair(
        a=FakeHAProxy({("be_app", "web1"): make_server()}, unreachable="Connection refused by /run/haproxy/a.sock"),
        b=FakeHAProxy({}, unreachable="Connection refused by tcp://10.0.0.11:9999"),
    )
    pair.fakes[c] = FakeHAProxy({("be_app", "web1"): make_server()})
    with pytest.raises(LBUnreachableError) as info:
        _haproxy_info.gather_server_info([A, B, c], backend="be_app", connect=pair.connect)
    assert info.value.msg.startswith("2 of 3 HAProxy runtime sockets did not answer.")
    assert "a.sock" in info.value.msg and "10.0.0.11:9999" in info.value.msg
    assert [f["socket"] for f in info.value.details["failed_sockets"]] == [A, B]
    # one socket down: its own message, unchanged, with the socket named
    pair.fakes[A].unreachable = None
    with pytest.raises(LBUnreachableError) as info:
        _haproxy_info.gather_server_info([A, B, c], backend="be_app", connect=pair.connect)
    assert info.value.msg == "Connection refused by tcp://10.0.0.11:9999"
    assert info.value.details["socket"] == B
