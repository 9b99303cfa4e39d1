# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""zerodowntime.rollout.http_health through a real ansible-playbook run against local HTTP servers."""

import contextlib
import json
import socket
import threading
import time

import pytest
from helpers import run_tasks
from release_support import http_server, sequence_responder, unused_port

pytestmark = pytest.mark.integration

MODULE = "zerodowntime.rollout.http_health"
SECRET = "Bearer s3cr3t-token-value"
WARMUP = 1.5


def warming_up_responder():
    """503 for WARMUP seconds after the first request, then 200."""
    state = {"start": None}
    lock = threading.Lock()

    def respond(handler):
        with lock:
            if state["start"] is None:
                state["start"] = time.monotonic()
            warm = time.monotonic() - state["start"] >= WARMUP
        return (200, b"ready", {}) if warm else (503, b"warming up", {})

    return respond


def auth_responder(handler):
    if handler.headers.get("Authorization") != SECRET:
        return 401, b"who are you?", {}
    return 200, b'{"ok": true}', {"Content-Type": "application/json"}


def probe(name, url, **args):
    args.setdefault("interval", 0.2)
    args.setdefault("timeout", 10)
    args["url"] = url
    return {"name": name, MODULE: args}


def test_http_health_probes():
    json_answers = [
        (200, json.dumps({"checks": {"database": False}, "items": [{"state": "booting"}]}).encode()),
        (200, json.dumps({"checks": {"database": False}, "items": [{"state": "up"}]}).encode()),
        (200, json.dumps({"checks": {"database": True}, "items": [{"state": "up"}]}).encode()),
    ]
    with contextlib.ExitStack() as stack:
        warm = stack.enter_context(http_server("127.0.0.41", warming_up_responder()))
        regex = stack.enter_context(
            http_server("127.0.0.42", sequence_responder([(200, b"status: starting")] * 2 + [(200, b"status: ready")]))
        )
        js = stack.enter_context(http_server("127.0.0.43", sequence_responder(json_answers, per_path=True)))
        flap = stack.enter_context(
            http_server("127.0.0.44", sequence_responder([(200, b"ok"), (200, b"ok"), (503, b"hiccup"), (200, b"ok")]))
        )
        down = stack.enter_context(http_server("127.0.0.45", sequence_responder([(503, b"maintenance in progress")])))
        auth = stack.enter_context(http_server("127.0.0.46", auth_responder))
        dead = "http://127.0.0.47:%d/health" % unused_port("127.0.0.47")

        tasks = [
            probe("warm", warm.base_url + "/health", consecutive_successes=2),
            probe("regex", regex.base_url + "/", body_regex="status: (ready|up)"),
            probe("json_bool", js.base_url + "/a", json_path="checks.database", json_value=True),
            probe("json_list", js.base_url + "/b", json_path="items.0.state", json_value="up", consecutive_successes=1),
            probe("flap", flap.base_url + "/", consecutive_successes=3),
            probe("down", down.base_url + "/", timeout=1),
            probe("auth", auth.base_url + "/", headers={"Authorization": SECRET}, consecutive_successes=1),
            probe("dead", dead, timeout=1, request_timeout=1),
        ]
        results, proc = run_tasks(tasks, extra_args=["-v"])
        warm_requests = list(warm.requests)
        regex_requests = len(regex.requests)
    r = {task["name"]: res for task, res in zip(tasks, results)}

    for name in ("warm", "regex", "json_bool", "json_list", "flap", "auth"):
        assert r[name].get("failed") is False and r[name]["changed"] is False, (name, r[name])

    # 503 for WARMUP seconds, then two 200s in a row
    assert r["warm"]["status"] == 200 and r["warm"]["successes"] == 2
    assert r["warm"]["attempts"] == len(warm_requests) >= 4
    assert r["warm"]["elapsed"] >= WARMUP
    assert "503" in r["warm"]["last_error"]
    assert warm_requests[-1]["time"] - warm_requests[0]["time"] >= WARMUP

    assert (r["regex"]["attempts"], r["regex"]["successes"]) == (5, 3) == (regex_requests, 3)
    assert "body_regex" in r["regex"]["last_error"]

    assert (r["json_bool"]["attempts"], r["json_bool"]["successes"]) == (5, 3)
    assert r["json_bool"]["last_error"] == "json_path checks.database is false, expected true"
    assert (r["json_list"]["attempts"], r["json_list"]["successes"]) == (2, 1)

    # 200, 200, 503 (resets), 200, 200, 200
    assert (r["flap"]["attempts"], r["flap"]["successes"]) == (6, 3)
    assert r["flap"]["last_error"].startswith("status 503")

    assert r["down"]["failed"] is True and r["down"]["status"] == 503 and r["down"]["successes"] == 0
    assert "Last status: 503" in r["down"]["msg"] and "maintenance in progress" in r["down"]["msg"]
    assert r["down"]["attempts"] >= 2

    assert r["auth"]["status"] == 200
    assert SECRET not in proc.stdout and "s3cr3t" not in json.dumps(results)

    assert r["dead"]["failed"] is True and r["dead"]["status"] is None
    assert "Connection refused" in r["dead"]["msg"] and "none (no answer)" in r["dead"]["msg"]
    assert r["dead"]["attempts"] >= 2


class TrickleServer:
    """127.0.0.x: reads a request head, answers 200 with a 20-byte body sent one byte a second (bounded)."""

    def __init__(self, address):
        self.stop = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((address, 0))
        self.listener.listen(8)
        self.listener.settimeout(0.1)
        self.base_url = "http://%s:%d" % (address, self.listener.getsockname()[1])
        self.workers = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        for _i in range(1200):  # at most 120 s
            if self.stop.is_set():
                return
            try:
                conn, _peer = self.listener.accept()
            except OSError:
                continue
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.workers.append(worker)
            worker.start()

    def _serve(self, conn):
        with conn:
            try:
                conn.settimeout(5)
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    data = conn.recv(4096)
                    if not data:
                        return
                    head += data
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n")
                for _i in range(20):
                    if self.stop.wait(1.0):
                        return
                    conn.sendall(b"x")
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.thread.join(10)
        for worker in self.workers:
            worker.join(10)
        self.listener.close()


def redirect_responder(location):
    def respond(handler):
        return 302, b"moved", {"Location": location}

    return respond


def test_http_health_redirects_credentials_and_deadline():
    with contextlib.ExitStack() as stack:
        other = stack.enter_context(http_server("127.0.0.49", sequence_responder([(200, b"ok")])))
        app = stack.enter_context(
            http_server("127.0.0.48", redirect_responder(other.base_url + "/ready?token=t0ken-value"))
        )
        slow = TrickleServer("127.0.0.50")
        stack.callback(slow.close)
        once = {"timeout": 0, "consecutive_successes": 1, "headers": {"Authorization": SECRET}}
        tasks = [
            probe("refused", app.base_url + "/health", **once),
            probe("same_origin", app.base_url + "/health", follow_redirects="same_origin", **once),
            probe("all", app.base_url + "/health", follow_redirects="all", **once),
            probe("trickle", slow.base_url + "/health", timeout=2, request_timeout=1.5, consecutive_successes=1),
        ]
        start = time.monotonic()
        results, proc = run_tasks(tasks, extra_args=["-v"])
        wall = time.monotonic() - start
        other_requests = list(other.requests)
    r = {task["name"]: res for task, res in zip(tasks, results)}

    # Not followed by default: a failed probe that says where the redirect pointed (query redacted).
    assert r["refused"]["failed"] is True and r["refused"]["status"] == 302
    assert (
        "redirect (302) to %s/ready?*** not followed: follow_redirects is none" % other.base_url in r["refused"]["msg"]
    )
    assert r["same_origin"]["failed"] is True
    assert "it leaves %s, and follow_redirects is same_origin" % app.base_url in r["same_origin"]["msg"]

    # follow_redirects=all reaches the other host, which never receives the Authorization header.
    assert r["all"].get("failed") is False and r["all"]["status"] == 200, r["all"]
    assert len(other_requests) == 1
    assert not any(key.lower() == "authorization" for key in other_requests[0]["headers"])
    assert SECRET not in proc.stdout and "s3cr3t" not in json.dumps(results) and "t0ken" not in json.dumps(results)

    # A body trickled one byte a second: each attempt ends at request_timeout, the probe at its timeout.
    assert r["trickle"]["failed"] is True and r["trickle"]["successes"] == 0
    assert "no complete answer within" in r["trickle"]["msg"]
    assert r["trickle"]["elapsed"] < 2 + 1.5 + 0.5
    assert wall < 60
