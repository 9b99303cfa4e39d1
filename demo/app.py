#!/usr/bin/env python3
"""Demo application for zerodowntime.rollout: one self-contained file, Python 3 standard library only.

It is shipped inside every release artifact (``app.py`` and ``VERSION`` at the top level) and runs
on each demo host as ``<deploy_path>/current/app.py``.

Endpoints (GET and HEAD):
  /version  the release version (text/plain), read once at start from ``VERSION`` next to this file
  /health   readiness: 200 once the start-up delay has passed and the required file exists, else 503
  /         a small page naming the version and the address that served it
Every path accepts ``?delay=SECONDS`` to simulate a slow request. Every response carries the headers
``X-Version`` and ``X-Served-By``.

SIGTERM or SIGINT shuts down gracefully: the listening socket is closed at once (new connections are
refused), idle keep-alive connections are closed, requests in flight complete (bounded by
``--grace``), then the process exits 0.
"""

import argparse
import contextlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HERE = os.path.dirname(os.path.realpath(__file__))
MAX_DELAY = 3600.0


def read_version(release_dir):
    try:
        with open(os.path.join(release_dir, "VERSION")) as f:
            return f.read().strip() or "unknown"
    except OSError:
        return "unknown"


def default_require_file(release_dir):
    """``<deploy_path>/shared/config.json`` when running from ``<deploy_path>/releases/<version>/``."""
    releases = os.path.dirname(release_dir)
    if os.path.basename(releases) == "releases":
        return os.path.join(os.path.dirname(releases), "shared", "config.json")
    return None


class Log:
    def __init__(self, path=None):
        self._lock = threading.Lock()
        self._path = path

    def __call__(self, msg, *args):
        line = "%s app[%d] %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), os.getpid(), msg % args if args else msg)
        with self._lock:
            if self._path:
                with open(self._path, "a") as f:
                    f.write(line)
            else:
                sys.stderr.write(line)
                sys.stderr.flush()


class AppServer(ThreadingHTTPServer):
    daemon_threads = True  # the grace timeout, not the threads, bounds how long shutdown waits
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, opts, log):
        self.opts = opts
        self.log = log
        self.version = read_version(HERE)
        self.started = time.monotonic()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._conns = {}  # socket -> "idle" | "busy"
        self._idle_changed = threading.Condition(self._lock)
        super().__init__(addr, Handler)

    # connection bookkeeping, used by the graceful shutdown. A connection is "idle" only while no byte of
    # its next request has been read: a handler claims it "busy" under the lock *before* reading, and
    # close_idle inspects it under the same lock, so a request that was read is always answered.
    def process_request(self, request, client_address):
        self.conn_state(request, "idle")  # tracked from accept on, before its thread runs
        super().process_request(request, client_address)

    def conn_state(self, sock, state):
        with self._lock:
            if state is None:
                self._conns.pop(sock, None)
            else:
                self._conns[sock] = state
            self._idle_changed.notify_all()

    def close_idle(self):
        """Close every idle keep-alive connection; one whose next request is already waiting is kept
        (and counted busy) so that request is answered, with ``Connection: close``."""
        with self._lock:
            for sock, state in self._conns.items():
                if state != "idle":
                    continue
                try:
                    pending, _, _ = select.select([sock], [], [], 0)
                    if pending and sock.recv(1, socket.MSG_PEEK):
                        self._conns[sock] = "busy"
                        continue
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def wait_drained(self, timeout):
        deadline = time.monotonic() + timeout
        with self._lock:
            while any(s == "busy" for s in self._conns.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return sum(1 for s in self._conns.values() if s == "busy")
                self._idle_changed.wait(min(left, 0.5))
        return 0

    def checks(self):
        warm = time.monotonic() - self.started >= self.opts.startup_delay
        req = self.opts.require_file
        config = True if not req else os.path.exists(req)
        return {"warmup": warm, "config": config}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self):
        return "zerodowntime-demo"

    def setup(self):
        super().setup()
        self.timeout_s = self.server.opts.keepalive_timeout
        self.connection.settimeout(self.timeout_s)
        # headers and body are two writes: without NODELAY, Nagle + delayed ACK add ~40 ms per response
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pipelined = False

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.conn_state(self.connection, None)

    def handle_one_request(self):
        try:
            if self._claim_next_request():
                super().handle_one_request()
            else:
                self.close_connection = True  # keep-alive timeout
        except (ConnectionError, socket.timeout):
            self.close_connection = True
        finally:
            if self.server.stopping.is_set():
                self.close_connection = True
            # still busy: bytes of a pipelined request may already sit in rfile's buffer
            self._pipelined = not self.close_connection and self._input_buffered()
            self.server.conn_state(self.connection, "busy" if self._pipelined else "idle")

    def _claim_next_request(self):
        """Wait, reading nothing, until the next request starts arriving (or the peer closes), then mark
        the connection busy. False on keep-alive timeout."""
        if self._pipelined:
            return True
        readable, _, _ = select.select([self.connection], [], [], self.timeout_s)
        if not readable:
            return False
        self.server.conn_state(self.connection, "busy")
        return True

    def _input_buffered(self):
        """True if a next request is already readable without blocking, in rfile's buffer or the socket."""
        try:
            self.connection.setblocking(False)
            return bool(self.rfile.peek(1))
        except (OSError, ValueError):
            return False
        finally:
            with contextlib.suppress(OSError):  # already closed
                self.connection.settimeout(self.timeout_s)

    def log_message(self, fmt, *args):
        if self.server.opts.access_log:
            self.server.log("%s %s", self.address_string(), fmt % args)

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _client_gone(self, seconds):
        """Wait ``seconds``; return True early if the client closed the connection meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([self.connection], [], [], left)
            if not readable:
                return False
            try:
                peek = self.connection.recv(1, socket.MSG_PEEK)
            except OSError:
                return True
            if not peek:
                return True
            # pipelined bytes from a live client: keep waiting without watching the socket
            time.sleep(max(0.0, deadline - time.monotonic()))
            return False

    def _serve(self, head):
        srv = self.server
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        delay = srv.opts.latency
        try:
            delay += min(float(query.get("delay", ["0"])[0]), MAX_DELAY)
        except ValueError:
            return self._send(400, "text/plain", "bad delay\n", head)
        if delay > 0 and self._client_gone(delay):
            self.close_connection = True
            return None
        if url.path == "/version":
            return self._send(200, "text/plain", srv.version + "\n", head)
        if url.path == "/health":
            checks = srv.checks()
            ok = all(checks.values()) and not srv.stopping.is_set()
            body = json.dumps({"status": "ok" if ok else "unavailable", "version": srv.version, "checks": checks})
            return self._send(200 if ok else 503, "application/json", body + "\n", head)
        if url.path == "/":
            page = "<!doctype html><title>demo %s</title><p>version <b>%s</b> served by %s:%d</p>\n" % (
                srv.version,
                srv.version,
                srv.opts.bind,
                srv.opts.port,
            )
            return self._send(200, "text/html; charset=utf-8", page, head)
        return self._send(404, "text/plain", "not found\n", head)

    def _send(self, code, ctype, body, head):
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Version", self.server.version)
        self.send_header("X-Served-By", "%s:%d" % (self.server.opts.bind, self.server.opts.port))
        if self.server.stopping.is_set():
            self.close_connection = True
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(data)
        return None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="zerodowntime.rollout demo app")
    p.add_argument("--bind", default="127.0.0.11")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--startup-delay", type=float, default=0.0, help="seconds before /health reports ready")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    p.add_argument("--pidfile")
    p.add_argument("--log-file", help="append start/stop lines here instead of stderr")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument(
        "--require-file",
        default=None,
        help="/health is 503 until this file exists (default <deploy_path>/shared/config.json when run from "
        "<deploy_path>/releases/<version>/; '' disables the check)",
    )
    p.add_argument("--grace", type=float, default=30.0, help="max seconds to let in-flight requests finish")
    p.add_argument("--keepalive-timeout", type=float, default=60.0, help="idle keep-alive connection timeout")
    opts = p.parse_args(argv)
    if opts.require_file is None:
        opts.require_file = default_require_file(HERE)
    return opts


def write_pidfile(path):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % os.getpid())
    os.replace(tmp, path)


def remove_pidfile(path):
    try:
        with open(path) as f:
            mine = f.read().strip() == str(os.getpid())
        if mine:
            os.unlink(path)
    except OSError:
        pass


def main(argv=None):
    opts = parse_args(argv)
    log = Log(opts.log_file)
    srv = AppServer((opts.bind, opts.port), opts, log)
    if opts.pidfile:
        write_pidfile(opts.pidfile)
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log(
        "start version=%s bind=%s:%d startup_delay=%s require_file=%s release=%s",
        srv.version,
        opts.bind,
        opts.port,
        opts.startup_delay,
        opts.require_file or "-",
        HERE,
    )
    loop = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    loop.start()
    while not stop.wait(0.5):
        if not loop.is_alive():
            log("stop: serve loop died")
            return 1
    log("stop requested: closing listener, grace=%ss", opts.grace)
    srv.stopping.set()
    srv.shutdown()
    srv.socket.close()  # new connections are refused from here on
    srv.close_idle()
    left = srv.wait_drained(opts.grace)
    if opts.pidfile:
        remove_pidfile(opts.pidfile)
    if left:
        log("stop: grace expired with %d request(s) in flight", left)
    else:
        log("stop: clean (version=%s)", srv.version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
