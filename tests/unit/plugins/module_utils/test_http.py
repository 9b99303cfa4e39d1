# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared HTTP request against real servers on 127.0.0.1: redirects, credentials, one deadline, a body cap.

Another port on 127.0.0.1 is another origin (scheme, host and port), which is what counts for credentials.
Every server runs in a thread with bounded loops and is shut down by its fixture.
"""

import base64
import http.server
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils import _http
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._http_health import RedirectNotFollowed

SECRET = "Bearer s3cr3t-token-value"
API_KEY = "k3y-0f-the-app"


class Server:
    """An HTTP server on 127.0.0.1 (free port). ``routes`` maps a path to (status, headers, body) or a callable
    ``(server) -> (status, headers, body)``; every request is recorded with its headers."""

    def __init__(self, routes, tls=None):
        self.routes = routes
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                server.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                    }
                )
                route = server.routes.get(self.path.split("?")[0], (404, {}, b"not here"))
                status, headers, body = route(server) if callable(route) else route
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = _answer

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.base = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


class TrickleServer:
    """A raw server on 127.0.0.1 that reads a request head, then answers one byte a second (at most LIMIT)."""

    LIMIT = 8  # a client without an overall deadline reads for 8 s

    def __init__(self, part, tls=None):
        self.part = part
        self.tls = tls
        self.stop = threading.Event()
        self.sent = 0
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.base = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)
        self.threads = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        for _i in range(200):  # at most 20 s
            if self.stop.is_set():
                return
            try:
                conn, _peer = self.listener.accept()
            except OSError:
                continue
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(worker)
            worker.start()

    def _serve(self, conn):
        try:
            conn.settimeout(5)
            if self.tls:
                conn = self.tls.wrap_socket(conn, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            if self.part == "body":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.LIMIT)
                unit = b"x"
            elif self.part == "chunked":
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                unit = b"1\r\nx\r\n"
            else:  # headers
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                unit = b"a"
            for _i in range(self.LIMIT):
                if self.stop.wait(1.0):
                    return
                conn.sendall(unit)
                self.sent += 1
            if self.part == "chunked":
                conn.sendall(b"0\r\n\r\n")
            elif self.part == "headers":
                conn.sendall(b"\r\nContent-Length: 2\r\n\r\nok")
        except OSError:
            pass  # the client gave up
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(10)
        for worker in self.threads:
            worker.join(10)
        self.listener.close()


@pytest.fixture
def servers():
    started = []

    def start(kind=Server, *args, **kwargs):
        started.append(kind(*args, **kwargs))
        return started[-1]

    yield start
    for server in started:
        server.close()


def redirect(location, status=302):
    return (status, {"Location": location}, b"moved")


OK = (200, {}, b"ok")


# ---------------------------------------------------------------------------------------------
# redirects
# ---------------------------------------------------------------------------------------------


def test_a_redirect_is_not_followed_by_default(servers):
    other = servers(Server, {"/ready": OK})
    target = "http://user:pw@127.0.0.1:%d/ready?token=abc" % other.port
    app = servers(Server, {"/health": redirect(target)})
    with pytest.raises(RedirectNotFollowed) as info:
        _http.request(app.base + "/health", 5, headers={"Authorization": SECRET})
    message = str(info.value)
    assert message.startswith(
        "redirect (302) to http://***@127.0.0.1:%d/ready?*** not followed: follow_redirects is none." % other.port
    )
    assert "abc" not in message and "pw" not in message and "s3cr3t" not in message
    assert (info.value.status, info.value.body) == (302, b"moved")
    assert other.requests == []
    assert [r["path"] for r in app.requests] == ["/health"]


def test_same_origin_follows_a_redirect_on_the_same_origin_with_its_headers(servers):
    app = servers(Server, {"/old": redirect("/new", 301), "/new": OK})
    status, body = _http.request(
        app.base + "/old", 5, headers={"Authorization": SECRET}, follow_redirects="same_origin"
    )
    assert (status, body) == (200, b"ok")
    assert [(r["path"], r["headers"].get("authorization")) for r in app.requests] == [
        ("/old", SECRET),
        ("/new", SECRET),
    ]


def test_same_origin_refuses_another_port(servers):
    other = servers(Server, {"/": OK})
    app = servers(Server, {"/": redirect("http://127.0.0.1:%d/" % other.port, 307)})
    with pytest.raises(RedirectNotFollowed) as info:
        _http.request(app.base + "/", 5, headers={"Authorization": SECRET}, follow_redirects="same_origin")
    assert str(info.value).startswith(
        "redirect (307) to http://127.0.0.1:%d/ not followed: it leaves http://127.0.0.1:%d, and follow_redirects is "
        "same_origin" % (other.port, app.port)
    )
    assert other.requests == []


def test_all_follows_to_another_origin_without_any_credential(servers):
    other = servers(Server, {"/landing": (200, {}, b"landed")})
    app = servers(Server, {"/start": redirect("http://127.0.0.1:%d/landing" % other.port)})
    headers = {"Authorization": SECRET, "X-Api-Key": API_KEY, "Cookie": "session=abc"}
    status, body = _http.request(app.base + "/start", 5, headers=headers, follow_redirects="all")
    assert (status, body) == (200, b"landed")
    assert app.requests[0]["headers"]["authorization"] == SECRET
    assert app.requests[0]["headers"]["x-api-key"] == API_KEY
    # The other origin never saw a credential, nor any header the user set.
    assert len(other.requests) == 1
    seen = other.requests[0]["headers"]
    assert "authorization" not in seen and "x-api-key" not in seen and "cookie" not in seen
    assert SECRET not in repr(other.requests) and API_KEY not in repr(other.requests)


def test_user_info_is_sent_to_its_origin_only(servers):
    other = servers(Server, {"/": OK})
    app = servers(Server, {"/": redirect("http://127.0.0.1:%d/" % other.port)})
    url = "http://ops:pa%%3Ass@127.0.0.1:%d/" % app.port
    assert _http.request(url, 5, follow_redirects="all") == (200, b"ok")
    assert app.requests[0]["headers"]["authorization"] == "Basic " + base64.b64encode(b"ops:pa:ss").decode()
    assert "authorization" not in other.requests[0]["headers"]


def test_all_sends_the_credentials_again_when_the_redirect_comes_back(servers):
    app = servers(Server, {})
    other = servers(Server, {"/bounce": redirect(app.base + "/final")})
    app.routes.update({"/start": redirect(other.base + "/bounce"), "/final": OK})
    assert _http.request(app.base + "/start", 5, headers={"X-Api-Key": API_KEY}, follow_redirects="all") == (
        200,
        b"ok",
    )
    assert [r["headers"].get("x-api-key") for r in app.requests] == [API_KEY, API_KEY]
    assert "x-api-key" not in other.requests[0]["headers"]


def test_a_redirect_loop_is_bounded(servers):
    app = servers(Server, {"/loop": redirect("/loop")})
    with pytest.raises(RedirectNotFollowed, match=r"more than 5 redirects in a row"):
        _http.request(app.base + "/loop", 5, follow_redirects="all")
    assert len(app.requests) == 6


def test_a_redirect_to_another_scheme_is_refused(servers):
    app = servers(Server, {"/": redirect("file:///etc/shadow")})
    with pytest.raises(RedirectNotFollowed, match=r"to file:///etc/shadow not followed: only http and https"):
        _http.request(app.base + "/", 5, follow_redirects="all")


def test_a_303_after_post_becomes_a_get(servers):
    app = servers(Server, {"/form": redirect("/done", 303), "/done": OK})
    assert _http.request(app.base + "/form", 5, method="POST", follow_redirects="same_origin") == (200, b"ok")
    assert [r["method"] for r in app.requests] == ["POST", "GET"]


def test_an_error_status_is_an_answer(servers):
    app = servers(Server, {"/": (503, {}, b"warming up")})
    assert _http.request(app.base + "/", 5) == (503, b"warming up")


def test_a_bad_follow_redirects_value_is_refused():
    with pytest.raises(ValidationError, match="follow_redirects must be one of none, same_origin, all"):
        _http.make_fetch("http://127.0.0.1/", follow_redirects="safe")


def test_a_header_value_with_a_line_break_is_refused_without_showing_it(servers):
    app = servers(Server, {"/": OK})
    with pytest.raises(ValidationError) as info:
        _http.request(app.base + "/", 5, headers={"Authorization": SECRET + "\r\nX-Injected: 1"})
    assert "header Authorization contains a line break" in info.value.msg
    assert "s3cr3t" not in info.value.msg
    assert app.requests == []


# ---------------------------------------------------------------------------------------------
# one deadline per request, a cap on the body
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("part", ["body", "chunked", "headers"])
def test_a_trickling_answer_ends_at_the_deadline(servers, part):
    server = servers(TrickleServer, part)
    start = time.monotonic()
    with pytest.raises(_http.RequestTimeout) as info:
        _http.request(server.base + "/", 2.5)
    elapsed = time.monotonic() - start
    # Each byte arrives within a second; only a deadline across every read ends this.
    assert 2.4 <= elapsed < 3.5, elapsed
    assert "no complete answer within 2.5s" in str(info.value)
    assert server.sent < TrickleServer.LIMIT


def test_the_deadline_covers_every_redirect(servers):
    slow = servers(TrickleServer, "body")
    app = servers(Server, {"/": redirect(slow.base + "/")})
    start = time.monotonic()
    with pytest.raises(_http.RequestTimeout):
        _http.request(app.base + "/", 2, follow_redirects="all")
    assert time.monotonic() - start < 3.0


def test_the_body_is_capped(servers):
    big = b"y" * (3 * 1024 * 1024)
    app = servers(Server, {"/": (200, {}, big)})
    status, body = _http.request(app.base + "/", 5)
    assert status == 200 and body == big[: _http.MAX_BODY] and _http.MAX_BODY == 1024 * 1024
    assert _http.request(app.base + "/", 5, max_body=10) == (200, b"y" * 10)


# ---------------------------------------------------------------------------------------------
# TLS: the same deadline, and the CA given in ca_path
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context


def test_https_with_ca_path(servers, certificate):
    cert, context = certificate
    app = servers(Server, {"/": OK}, tls=context)
    assert _http.request(app.base + "/", 5, ca_path=cert) == (200, b"ok")
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        _http.request(app.base + "/", 5)
    assert _http.request(app.base + "/", 5, validate_certs=False) == (200, b"ok")


def test_a_trickling_https_body_ends_at_the_deadline(servers, certificate):
    cert, context = certificate
    server = servers(TrickleServer, "body", tls=context)
    start = time.monotonic()
    with pytest.raises(_http.RequestTimeout):
        _http.request(server.base + "/", 2.5, ca_path=cert)
    assert 2.4 <= time.monotonic() - start < 3.5
    assert os.path.exists(cert)
