"""zerodowntime.rollout.haproxy_server against real HAProxy instances and real app processes.

Every expectation is checked on HAProxy itself (read back with socat, see conftest), not only on what
the module says about itself.
"""

import os
import threading
import time

import pytest
import requests
from helpers import run_tasks

from conftest import (
    BACKEND,
    admin_flags,
    hap,
    probe_result,
    probe_task,
    server_snapshot,
    stat,
    timestamp_task,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.integration

MODULE = "zerodowntime.rollout.haproxy_server"


def task(sockets, server="app1", state="ready", **options):
    args = {"backend": BACKEND, "server": server, "state": state, "sockets": list(sockets)}
    args.update(options)
    return {"name": "%s %s" % (server, state), MODULE: args}


def assert_ok(result):
    assert not result.get("failed"), "module failed: %s" % result.get("msg", result)


def assert_failed(result, *words):
    assert result.get("failed"), "module should have failed: %r" % result
    msg = result.get("msg", "")
    for w in words:
        assert w in msg, "%r not in failure message %r" % (w, msg)


class SlowRequest(threading.Thread):
    """A GET through the frontend that the app answers after ``delay`` seconds."""

    def __init__(self, fleet, delay):
        super().__init__(daemon=True)
        self.url = "%s/version?delay=%s" % (fleet.frontend_url, delay)
        self.status = self.error = self.started = self.ended = None

    def run(self):
        self.started = time.time()
        try:
            self.status = requests.get(self.url, timeout=90).status_code
        except requests.RequestException as e:
            self.error = type(e).__name__
        self.ended = time.time()


def in_flight_target(fleet, delay, tmp_path):
    """Tasks that make the play wait for a slow request and target the server that holds it.

    Returns (tasks_before, server_expression, start) where ``start()`` is run by the test while the
    play waits: it starts the request, finds the server holding the session in ``show stat`` and
    hands its name to the play through a file. Returns the request thread and that server name.
    """
    go = tmp_path / "play-started"
    target = tmp_path / "target-server"
    before = [
        {"name": "tell the test the play runs", "ansible.builtin.file": {"path": str(go), "state": "touch"}},
        {"name": "wait for the slow request", "ansible.builtin.wait_for": {"path": str(target), "sleep": 0.1}},
    ]
    expr = "{{ lookup('ansible.builtin.file', %r) }}" % str(target)

    def start():
        wait_for(go.exists, 60, what="the play to start")
        req = SlowRequest(fleet, delay)
        req.start()
        busy = wait_for(
            lambda: [n for n, s in stat(fleet.admin_socket).items() if s["scur"] >= 1],
            5,
            what="a server with the session of the slow request",
        )
        assert len(busy) == 1, busy
        target.write_text(busy[0])
        return req, busy[0]

    return before, expr, start


def run_with(start, tasks, **kwargs):
    """Run the play in a thread while ``start()`` runs here; return (results, start's value)."""
    box = {}

    def play():
        try:
            box["results"], box["proc"] = run_tasks(tasks, **kwargs)
        except BaseException as e:  # re-raised below
            box["error"] = e

    t = threading.Thread(target=play, daemon=True)
    t.start()
    value = start()
    t.join(180)
    if "error" in box:
        raise box["error"]
    return box["results"], value


# ---------------------------------------------------------------------------------------- states

# server: (state it starts in, state asked for, status HAProxy must then show)
STATE_CASES = {
    "app1": ("ready", "drain", "DRAIN"),
    "app2": ("ready", "maint", "MAINT"),
    "app3": ("maint", "ready", "UP"),
}


def test_states_check_then_real_then_idempotent(clean_fleet):
    """One play, three servers: check mode (changed, HAProxy untouched), for real (changed, state read
    back), again (not changed)."""
    sock = clean_fleet.admin_socket
    for server, (initial, _state, _expected) in STATE_CASES.items():
        hap(sock, "set server %s/%s state %s" % (BACKEND, server, initial))
    initial_status = {n: s["status"] for n, s in stat(sock).items()}
    assert initial_status == {"app1": "UP", "app2": "UP", "app3": "MAINT"}
    tasks = [task([sock], server, state) for server, (_i, state, _e) in STATE_CASES.items()]

    results, _proc = run_tasks(
        [dict(t, check_mode=True) for t in tasks]
        + [probe_task(sock, "p1")]
        + tasks
        + [probe_task(sock, "p2")]
        + tasks
        + [probe_task(sock, "p3")],
        diff=True,
    )
    checks, p1, reals, p2, agains, p3 = results[0:3], results[3], results[4:7], results[7], results[8:11], results[11]
    after_check, after_real, after_again = probe_result(p1, "p1"), probe_result(p2, "p2"), probe_result(p3, "p3")

    for i, (server, (_initial, state, expected)) in enumerate(STATE_CASES.items()):
        what = "%s -> %s" % (server, state)
        assert_ok(checks[i])
        assert checks[i]["changed"] is True, what
        assert checks[i].get("diff"), "no diff in check mode with --diff: %s" % what
        assert after_check[server]["status"] == initial_status[server], "check mode changed HAProxy: %s" % what

        assert_ok(reals[i])
        assert reals[i]["changed"] is True, what
        assert after_real[server]["status"] == expected, what
        assert reals[i]["sockets"][0]["after"]["status"] == expected, what

        assert_ok(agains[i])
        assert agains[i]["changed"] is False, what
        assert after_again[server]["status"] == expected, what


def test_weight(clean_fleet):
    sock = clean_fleet.admin_socket
    t = task([sock], "app3", "ready", weight=50)
    results, _proc = run_tasks(
        [
            dict(task([sock], "app3", "ready", weight=7), check_mode=True),
            probe_task(sock, "p1"),
            t,
            probe_task(sock, "p2"),
            t,
        ]
    )
    check, p1, real, p2, again = results
    assert_ok(check)
    assert check["changed"] is True
    assert probe_result(p1, "p1")["app3"]["weight"] == 1, "check mode changed the weight"
    assert_ok(real)
    assert real["changed"] is True
    assert probe_result(p2, "p2")["app3"]["weight"] == 50
    assert stat(sock)["app3"]["status"] == "UP"
    assert_ok(again)
    assert again["changed"] is False


# ---------------------------------------------------------------------------------------- drain and sessions


def test_drain_waits_for_in_flight_request(clean_fleet, tmp_path):
    """A slow request is in flight when the module sets DRAIN: it completes with 200, and the module
    returns only after it finished, having waited for the rest of it."""
    sock = clean_fleet.admin_socket
    before, server, start = in_flight_target(
        clean_fleet, 12, tmp_path
    )  # long enough for a slow machine to start the task
    tasks = before + [task([sock], server, "drain", timeout=30), timestamp_task()]

    def begin():
        req, name = start()
        # the moment the module's "set server ... state drain" lands in HAProxy
        wait_for(lambda: admin_flags(sock, name) & 8, 60, interval=0.02, what="the module to set DRAIN")
        drained_at = time.time()
        return req, name, drained_at

    results, (req, name, drained_at) = run_with(begin, tasks)
    drain, stamp = results[-2], results[-1]
    req.join(10)

    assert req.status == 200, "in-flight request did not complete normally: %s" % (req.error or req.status)
    assert_ok(drain)
    assert drain["changed"] is True
    remaining = req.ended - drained_at
    assert remaining > 0.5, "the request ended %.2fs after DRAIN was set: machine too loaded to test" % remaining
    after_module = float(stamp["ansible_facts"]["t_after"])
    assert after_module >= req.ended, "module returned %.2fs before the in-flight request ended" % (
        req.ended - after_module
    )
    assert drain["elapsed"] >= remaining - 0.3, "module waited %.2fs, request still had %.2fs to run" % (
        drain["elapsed"],
        remaining,
    )
    s = stat(sock)[name]
    assert s["status"] == "DRAIN" and s["scur"] == 0


def test_drain_timeout_shutdown_sessions(clean_fleet, tmp_path):
    sock = clean_fleet.admin_socket
    before, server, start = in_flight_target(clean_fleet, 30, tmp_path)
    tasks = before + [task([sock], server, "drain", timeout=2, poll_interval=0.2, on_timeout="shutdown_sessions")]
    results, (req, name) = run_with(start, tasks)
    drain = results[-1]
    req.join(10)

    assert_ok(drain)
    assert drain["changed"] is True
    assert drain["sessions_shutdown"] >= 1
    assert drain["elapsed"] >= 2
    assert not req.is_alive(), "the cut request is still running"
    assert req.error or req.status >= 500, "client should see the cut: got %s" % req.status
    assert req.ended - req.started < 20, "request ran to completion instead of being cut"
    s = stat(sock)[name]
    assert s["status"] == "DRAIN" and s["scur"] == 0


def test_drain_timeout_fail(clean_fleet, tmp_path):
    sock = clean_fleet.admin_socket
    # The request must outlast the drain's 1 s timeout even when the machine is slow to run the task.
    before, server, start = in_flight_target(clean_fleet, 15, tmp_path)
    tasks = before + [task([sock], server, "drain", timeout=1, poll_interval=0.2, on_timeout="fail")]
    results, (req, name) = run_with(start, tasks)
    drain = results[-1]

    assert_failed(drain)
    assert "session" in drain["msg"].lower(), drain["msg"]
    assert name in drain["msg"], drain["msg"]
    assert stat(sock)[name]["status"] == "DRAIN"
    # on_timeout=fail leaves the session alone: the request still completes
    req.join(30)
    assert req.status == 200, req.error or req.status


# ---------------------------------------------------------------------------------------- several instances


def test_two_instances_changed_together(clean_fleet, pair):
    unix1, tcp2 = pair
    t = task([unix1, tcp2], "app1", "maint")
    drift = {
        "name": "the second instance drifts back to ready",
        "ansible.builtin.shell": "echo 'set server %s/app1 state ready' | socat STDIO TCP:%s" % (BACKEND, tcp2[6:]),
    }
    results, _proc = run_tasks(
        [t, probe_task(unix1, "p1"), probe_task(tcp2, "p2"), t, drift, t, probe_task(tcp2, "p3")]
    )
    real, p1, p2, again, _drift, fix, p3 = results
    assert_ok(real)
    assert real["changed"] is True
    assert probe_result(p1, "p1")["app1"]["status"] == "MAINT"
    assert probe_result(p2, "p2")["app1"]["status"] == "MAINT"
    assert [e["socket"] for e in real["sockets"]] == [unix1, tcp2]
    assert again["changed"] is False
    # only the instance that drifted is changed
    assert_ok(fix)
    assert fix["changed"] is True
    assert [e["changed"] for e in fix["sockets"]] == [False, True]
    assert probe_result(p3, "p3")["app1"]["status"] == "MAINT"
    assert stat(unix1)["app1"]["status"] == "MAINT"


def test_refusals_change_nothing(clean_fleet, pair, tmp_path):
    """Bad input fails with a useful message and leaves every server on every instance as it was."""
    from tests.fixtures.fleet.system import free_port

    unix1, tcp2 = pair
    missing = str(tmp_path / "no-such-haproxy.sock")
    closed = "tcp://127.0.0.1:%d" % free_port()
    injected_server = task([unix1], "app1;set server app/app2 state maint", "drain")
    injected_backend = task([unix1], "app1", "drain")
    injected_backend[MODULE]["backend"] = "app;set server app/app2 state maint"
    cases = [
        # (task, words the failure message must contain)
        (task([unix1, tcp2], "app3", "maint"), ["app3"]),  # lb2 does not know app3
        (injected_server, []),
        (injected_backend, []),
        (task([unix1, missing], "app1", "maint"), [missing]),
        (task([unix1, closed], "app1", "maint", timeout=5), [closed]),
        (task([unix1], "app1", "ready", weight=257), []),
        (task([unix1], "no-such-server", "maint"), ["no-such-server"]),
    ]
    if not os.path.exists("/run/haproxy/admin.sock"):  # the default socket: refused, not hanging
        cases.append(({MODULE: {"backend": BACKEND, "server": "app1", "state": "drain"}}, ["/run/haproxy/admin.sock"]))
    snap1, snap2 = server_snapshot(unix1), server_snapshot(tcp2)
    results, _proc = run_tasks([t for t, _w in cases])
    for (t, words), result in zip(cases, results):
        args = t[MODULE]
        what = "%s/%s on %s" % (args["backend"], args["server"], args.get("sockets", "(default)"))
        assert result.get("failed"), "should have failed: %s -> %r" % (what, result)
        for w in words:
            assert w in result.get("msg", ""), "%r not in failure message for %s: %r" % (w, what, result.get("msg"))
    assert server_snapshot(unix1) == snap1, "a refused task changed the first instance"
    assert server_snapshot(tcp2) == snap2, "a refused task changed the second instance"
    assert {n: s["status"] for n, s in stat(unix1).items()} == {"app1": "UP", "app2": "UP", "app3": "UP"}


# ---------------------------------------------------------------------------------------- readiness


def test_ready_waits_for_steady_up(slow_fleet, tmp_path):
    """``ready`` on a drained server whose app is not healthy yet (its config file is missing, as after
    a fresh deploy) must wait until HAProxy has seen ``rise`` good checks, i.e. steadily ``UP``, never
    returning on ``DOWN`` or ``DOWN x/3``. In the same play, a ``no check`` server (app2) counts as
    ready at once."""
    sock = slow_fleet.admin_socket
    config = os.path.join(slow_fleet.host("app1")["deploy_path"], "shared", "config.json")
    saved = tmp_path / "config.json"
    hap(sock, "set server %s/app1 state drain" % BACKEND)
    os.replace(config, saved)
    try:
        wait_status(sock, "app1", "DOWN", 10)
        hap(sock, "set server %s/app2 state maint" % BACKEND)
        wait_status(sock, "app2", "MAINT")
        tasks = [
            task([sock], "app1", "ready", timeout=30, poll_interval=0.2),
            probe_task(sock, "p1"),
            task([sock], "app2", "ready", timeout=10),
            probe_task(sock, "p2"),
        ]

        def heal():
            wait_for(lambda: admin_flags(sock, "app1") == 0, 60, interval=0.02, what="the module to set ready")
            status = stat(sock)["app1"]["status"]
            healed = time.time()
            os.replace(saved, config)  # from now on /health answers 200
            return status, healed

        results, (status_while_waiting, healed) = run_with(heal, tasks)
    finally:
        if saved.exists():
            os.replace(saved, config)
    ready, p1, nocheck, p2 = results
    assert status_while_waiting.startswith("DOWN"), status_while_waiting
    assert_ok(ready)
    assert ready["changed"] is True
    assert probe_result(p1, "p1")["app1"]["status"] == "UP", "module returned before app1 was steadily UP"
    assert ready["sockets"][0]["after"]["status"] == "UP"
    # 3 good checks 250 ms apart are needed after the fix: the module cannot have returned sooner
    assert ready["elapsed"] >= 0.5, ready["elapsed"]

    assert_ok(nocheck)
    assert nocheck["changed"] is True
    assert probe_result(p2, "p2")["app2"]["status"] == "no check"
    assert nocheck["elapsed"] < 5, "waited for a health check that will never come"


def test_ready_times_out_when_app_stays_down(slow_fleet):
    sock = slow_fleet.admin_socket
    slow_fleet.stop_host("app1")
    try:
        wait_for(lambda: stat(sock)["app1"]["status"].startswith("DOWN"), 10, what="app1 DOWN")
        hap(sock, "set server %s/app1 state maint" % BACKEND)
        (ready,), _proc = run_tasks([task([sock], "app1", "ready", timeout=1, poll_interval=0.2)])
        assert_failed(ready, "app1")
        assert stat(sock)["app1"]["status"].startswith("DOWN")
    finally:
        slow_fleet.start_host("app1")
        hap(sock, "set server %s/app1 state ready" % BACKEND)
        wait_status(sock, "app1", "UP", 15)
