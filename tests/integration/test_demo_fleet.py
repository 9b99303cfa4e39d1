"""The demo fleet itself: app endpoints, graceful shutdown, app-ctl, fleet CLI, artifact, load generator."""

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time

import pytest

from conftest import ROOT, destroy_fleet, make_fleet, short_tmpdir, stat, wait_for, wait_status
from tests.fixtures.fleet.loadgen import LoadGenerator
from tests.fixtures.fleet.release import build_artifact, install_release
from tests.fixtures.fleet.system import free_port, pid_alive, read_pidfile

pytestmark = [pytest.mark.integration, pytest.mark.latest_only]

FLEET_PY = os.path.join(ROOT, "tests", "fixtures", "fleet", "fleet.py")
APP_CTL = os.path.join(ROOT, "tests", "fixtures", "fleet", "bin", "app-ctl")


@pytest.fixture(scope="module")
def demo_fleet():
    f, d = make_fleet(hosts=2)
    yield f
    destroy_fleet(f, d)


def refused(address, port):
    try:
        with socket.create_connection((address, port), timeout=1):
            return False
    except OSError:
        return True


def get(conn, path, method="GET"):
    conn.request(method, path)
    r = conn.getresponse()
    return r, r.read()


# ---------------------------------------------------------------------------------------- app


def test_app_endpoints_on_one_keepalive_connection(demo_fleet):
    h = demo_fleet.host("app1")
    conn = http.client.HTTPConnection(h["address"], h["port"], timeout=10)
    r, body = get(conn, "/version")
    first_socket = conn.sock
    assert r.status == 200 and body == b"v1\n"
    assert int(r.headers["Content-Length"]) == len(body)
    assert r.headers["X-Version"] == "v1" and r.headers["X-Served-By"] == "%s:%d" % (h["address"], h["port"])

    r, body = get(conn, "/")
    assert r.status == 200 and b"v1" in body and int(r.headers["Content-Length"]) == len(body)

    r, body = get(conn, "/health")
    assert r.status == 200
    assert json.loads(body) == {"status": "ok", "version": "v1", "checks": {"warmup": True, "config": True}}

    r, body = get(conn, "/version", method="HEAD")
    assert r.status == 200 and body == b"" and r.headers["Content-Length"] == "3"

    r, body = get(conn, "/nope")
    assert r.status == 404

    t = time.monotonic()
    r, body = get(conn, "/version?delay=0.3")
    assert r.status == 200 and time.monotonic() - t >= 0.3
    assert conn.sock is first_socket, "the app closed a keep-alive connection"
    conn.close()


def test_frontend_balances_over_hosts(demo_fleet):
    conn = http.client.HTTPConnection(demo_fleet.frontend_url[len("http://") :], timeout=10)
    served = set()
    for _attempt in range(4):
        r, body = get(conn, "/version")
        assert r.status == 200 and body == b"v1\n"
        served.add(r.headers["X-Served-By"])
    assert served == {"%s:%d" % (h["address"], h["port"]) for h in demo_fleet.hosts}


def start_app(release_dir, port, *args):
    app = os.path.join(release_dir, "app.py")
    proc = subprocess.Popen(
        [sys.executable, app, "--bind", "127.0.0.11", "--port", str(port)] + list(args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_for(lambda: proc.poll() is not None or not refused("127.0.0.11", port), 10, what="app listening")
    assert proc.poll() is None, proc.stderr.read().decode()
    return proc


@pytest.fixture
def release(tmp_path):
    deploy = tmp_path / "deploy"
    artifact, _sha = build_artifact("v7", str(tmp_path / "art"))
    release_dir = install_release(str(deploy), artifact, "v7")
    return deploy, release_dir


def test_health_needs_warmup_and_config(release):
    deploy, release_dir = release
    config = deploy / "shared" / "config.json"
    config.unlink()
    port = free_port(("127.0.0.11",))
    started = time.monotonic()
    proc = start_app(release_dir, port, "--startup-delay", "1")
    try:
        conn = http.client.HTTPConnection("127.0.0.11", port, timeout=5)
        r, body = get(conn, "/health")
        assert r.status == 503
        assert json.loads(body)["checks"] == {"warmup": False, "config": False}
        wait_for(lambda: json.loads(get(conn, "/health")[1])["checks"]["warmup"], 5, what="warm-up over")
        assert time.monotonic() - started >= 1
        r, body = get(conn, "/health")
        assert r.status == 503, "healthy without its config file"
        assert json.loads(body)["checks"] == {"warmup": True, "config": False}
        config.write_text("{}")
        r, body = get(conn, "/health")
        assert r.status == 200 and json.loads(body)["status"] == "ok"
        assert get(conn, "/version")[1] == b"v7\n"
    finally:
        proc.terminate()
        proc.wait(10)


def test_graceful_sigterm_finishes_in_flight_request(release):
    _deploy, release_dir = release
    port = free_port(("127.0.0.11",))
    proc = start_app(release_dir, port)
    conn = http.client.HTTPConnection("127.0.0.11", port, timeout=20)
    assert get(conn, "/version")[0].status == 200  # the connection is accepted and served
    idle = http.client.HTTPConnection("127.0.0.11", port, timeout=20)
    assert get(idle, "/version")[0].status == 200  # an idle keep-alive connection

    sent = time.monotonic()
    conn.request("GET", "/version?delay=2")
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: refused("127.0.0.11", port), 1.5, what="the listener to close")
    assert time.monotonic() - sent < 2, "listener closed only after the in-flight request"

    r = conn.getresponse()
    assert r.status == 200 and r.read() == b"v7\n"
    assert r.headers.get("Connection") == "close"
    assert time.monotonic() - sent >= 2
    assert proc.wait(10) == 0
    log = proc.stderr.read().decode()
    assert "stop requested" in log and "stop: clean" in log, log
    with pytest.raises((OSError, http.client.HTTPException)):
        get(idle, "/version")


class InProcessApp:
    """The demo app's server in this process on 127.0.0.201, so a test can hold a handler at a chosen
    point and then run the same shutdown sequence as ``main()``."""

    def __init__(self, monkeypatch, hold_before_parse=False):
        from tests.fixtures.fleet import app

        self.entered = threading.Event()  # a handler has read a request line and is held
        self.release = threading.Event()
        if hold_before_parse:
            original = app.Handler.parse_request

            def held_parse(handler):
                if not self.release.is_set():
                    self.entered.set()
                    self.release.wait(20)
                return original(handler)

            monkeypatch.setattr(app.Handler, "parse_request", held_parse)
        opts = app.parse_args(["--bind", "127.0.0.201", "--port", "0", "--require-file", "", "--grace", "10"])
        self.srv = app.AppServer(("127.0.0.201", 0), opts, app.Log())
        opts.port = self.port = self.srv.server_address[1]
        self.loop = threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.loop.start()

    def connect(self):
        return http.client.HTTPConnection("127.0.0.201", self.port, timeout=10)

    def stop(self):
        """main()'s shutdown steps; returns the wait_drained thread and its result list."""
        self.srv.stopping.set()
        self.srv.shutdown()
        self.srv.socket.close()
        self.srv.close_idle()
        result = []
        waiter = threading.Thread(target=lambda: result.append(self.srv.wait_drained(10)), daemon=True)
        waiter.start()
        return waiter, result


def test_shutdown_answers_a_request_read_but_not_yet_parsed(monkeypatch):
    """The race CI hit: the handler has read the next request on a keep-alive connection and is
    descheduled before parsing it when the shutdown closes idle connections. That request must still be
    answered, and the shutdown must wait for it."""
    app = InProcessApp(monkeypatch, hold_before_parse=True)
    app.release.set()
    conn = app.connect()
    assert get(conn, "/version")[0].status == 200
    app.release.clear()
    conn.request("GET", "/version")
    assert app.entered.wait(10), "the handler never read the request"
    waiter, result = app.stop()
    waiter.join(0.5)
    assert waiter.is_alive(), "shutdown stopped waiting while a read request was unanswered"
    app.release.set()
    r = conn.getresponse()
    assert r.status == 200 and r.headers.get("Connection") == "close"
    assert r.read() == b"unknown\n"
    waiter.join(10)
    assert result == [0]


def test_pipelined_requests_are_all_answered_and_an_idle_connection_is_closed(monkeypatch):
    app = InProcessApp(monkeypatch)
    idle = app.connect()
    assert get(idle, "/version")[0].status == 200
    with socket.create_connection(("127.0.0.201", app.port), timeout=5) as s:
        s.sendall(b"GET /version HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 200") < 2:
            chunk = s.recv(65536)  # times out (fails) if the second request waits for more input
            assert chunk, "closed after %r" % data
            data += chunk
    waiter, result = app.stop()
    waiter.join(10)
    assert result == [0]
    with pytest.raises((OSError, http.client.HTTPException)):
        get(idle, "/version")


# ---------------------------------------------------------------------------------------- app-ctl


def test_app_ctl_stop_start_status(demo_fleet):
    h = demo_fleet.host("app2")
    sock = demo_fleet.admin_socket

    def ctl(action, *extra):
        argv = [sys.executable, APP_CTL, action, h["deploy_path"], h["address"], str(h["port"])] + list(extra)
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    assert ctl("status").returncode == 0
    old_pid = demo_fleet.host_pid("app2")
    assert old_pid

    stop = ctl("stop")
    assert stop.returncode == 0, stop.stderr
    assert not pid_alive(old_pid)
    assert refused(h["address"], h["port"])
    assert ctl("status").returncode == 3
    assert ctl("stop").returncode == 0, "stop of a stopped app must succeed"
    wait_for(lambda: stat(sock)["app2"]["status"] == "DOWN", 10, what="haproxy to see app2 DOWN")

    start = ctl("start", "--", "--grace", "10")
    assert start.returncode == 0, start.stderr
    new_pid = demo_fleet.host_pid("app2")
    assert new_pid and new_pid != old_pid
    assert not refused(h["address"], h["port"])
    assert ctl("status").returncode == 0
    again = ctl("start")
    assert again.returncode == 0 and "already running" in again.stdout
    assert demo_fleet.host_pid("app2") == new_pid
    wait_status(sock, "app2", "UP", 10)


def test_app_ctl_start_reports_a_failing_app(tmp_path):
    deploy = tmp_path / "broken"
    (deploy / "releases" / "v1").mkdir(parents=True)
    (deploy / "releases" / "v1" / "app.py").write_text("import sys\nprint('boom', file=sys.stderr)\nsys.exit(3)\n")
    (deploy / "current").symlink_to("releases/v1")
    port = free_port(("127.0.0.11",))
    r = subprocess.run(
        [sys.executable, APP_CTL, "start", str(deploy), "127.0.0.11", str(port)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 1 and "boom" in r.stderr


# ---------------------------------------------------------------------------------------- fleet CLI


def test_build_artifact_cli_is_reproducible(tmp_path):
    out = subprocess.run(
        [sys.executable, FLEET_PY, "build-artifact", "--version", "v2", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sha, path = out.split()
    assert path == str(tmp_path / "app-v2.tar.gz")
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == sha
    with tarfile.open(path) as tar:
        assert sorted(tar.getnames()) == ["VERSION", "app.py"]
        assert tar.extractfile("VERSION").read() == b"v2\n"
    assert build_artifact("v2", str(tmp_path / "again"))[1] == sha


def test_fleet_cli_up_status_down_leaves_nothing_running():
    d = short_tmpdir()

    def cli(*args):
        return subprocess.run(
            [sys.executable, FLEET_PY] + list(args), capture_output=True, text=True, timeout=120, check=False
        )

    up = cli("up", "--dir", d, "--hosts", "2", "--port", "0", "--check-inter-ms", "200", "--no-check", "app2")
    try:
        assert up.returncode == 0, up.stderr
        with open(os.path.join(d, "fleet.json")) as f:
            data = json.load(f)
        for key in ("frontend_url", "admin_socket", "admin_tcp", "backend", "hosts", "haproxy_pid", "sockets", "lbs"):
            assert data.get(key), key
        assert data["sockets"] == [data["admin_socket"], data["admin_tcp"]]
        assert data["admin_tcp"].startswith("tcp://127.0.0.1:")
        assert [h["address"] for h in data["hosts"]] == ["127.0.0.11", "127.0.0.12"]
        for h in data["hosts"]:
            assert os.readlink(os.path.join(h["deploy_path"], "current")) == "releases/v1"
            assert os.path.exists(os.path.join(h["deploy_path"], "shared", "config.json"))
            for key in ("name", "port", "pidfile", "start_command", "stop_command", "status_command"):
                assert h.get(key), key
        statuses = {n: s["status"] for n, s in stat(data["admin_socket"]).items()}
        assert statuses == {"app1": "UP", "app2": "no check"}
        assert {n: s["status"] for n, s in stat(data["admin_tcp"]).items()} == statuses

        pids = [data["haproxy_pid"]] + [read_pidfile(h["pidfile"]) for h in data["hosts"]]
        assert all(pid_alive(p) for p in pids)
        assert cli("status", "--dir", d).returncode == 0
    finally:
        down = cli("down", "--dir", d)
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(p) for p in pids), "processes left after down"
    assert all(refused(h["address"], h["port"]) for h in data["hosts"])
    host, port = data["frontend_url"][len("http://") :].split(":")
    assert refused(host, int(port))
    assert not os.path.exists(data["admin_socket"])
    assert cli("down", "--dir", d).returncode == 0, "down must be idempotent"
    assert cli("status", "--dir", d).returncode == 3


# ---------------------------------------------------------------------------------------- load generator


def test_loadgen_records_successes(demo_fleet):
    gen = LoadGenerator(demo_fleet.frontend_url, rate=50).start()
    wait_for(lambda: len(gen.records) >= 25, 10, what="25 requests")
    summary = gen.stop()
    assert summary.total >= 25
    assert summary.failed == 0, summary.format()
    assert summary.versions() == {"v1": summary.total}
    assert summary.p50 is not None and summary.p99 >= summary.p50
    assert {r.served_by for r in summary.records} == {"%s:%d" % (h["address"], h["port"]) for h in demo_fleet.hosts}


def test_loadgen_counts_failures_without_retrying():
    port = free_port()
    gen = LoadGenerator("http://127.0.0.1:%d" % port, rate=20).start()
    wait_for(lambda: len(gen.records) >= 5, 10, what="5 requests")
    summary = gen.stop()
    assert summary.failed == summary.total >= 5
    assert set(summary.outcomes()) == {"ConnectionError"}


def test_loadgen_sees_a_500(tmp_path):
    """A non-2xx answer is a failure (an HTTP server that only answers 500)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.11", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        gen = LoadGenerator("http://127.0.0.11:%d/" % srv.server_address[1], rate=20).start()
        wait_for(lambda: len(gen.records) >= 3, 10, what="3 requests")
        summary = gen.stop()
    finally:
        srv.shutdown()
        srv.server_close()
    assert summary.failed == summary.total and set(summary.outcomes()) == {"500"}
