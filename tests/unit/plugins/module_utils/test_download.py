# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""URL downloads of release archives (issue #13, item 6): one deadline for the whole download, and a size
budget (min_free_space, max_size) checked against Content-Length before the body and against a running count.

Every peer is an HTTP server on 127.0.0.1 in a thread; trickling and flooding handlers are bounded and stop
when the test ends.
"""

import contextlib
import http.server
import os
import threading
import time

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils import _download
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release import manage_release

MiB = 1024 * 1024
SECRET = "hunter2-secret"
MARGIN = 1.5  # seconds past the deadline that a cut download may take (thread wake-up, a loaded CI machine)

# --- servers ---------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        try:
            self.server.script(self, self.server.stop)
        except OSError:  # the client went away: that is what a cut download does
            pass
        finally:
            self.close_connection = True


@contextlib.contextmanager
def serve(script):
    """An HTTP server on 127.0.0.1 whose GET runs ``script(handler, stop_event)``; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.script = script
    server.stop = threading.Event()
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1], server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def trickle_body(interval=0.25, count=40):
    """Announce ``count`` bytes, then send one every ``interval`` seconds (bounded: ``count`` bytes)."""

    def script(handler, stop):
        handler.send_response(200)
        handler.send_header("Content-Length", str(count))
        handler.end_headers()
        handler.wfile.flush()
        for _i in range(count):
            if stop.wait(interval):
                return
            handler.wfile.write(b"x")
            handler.wfile.flush()

    return script


def trickle_headers(interval=0.25, count=40):
    """Send a status line, then one byte of an endless header line every ``interval`` seconds."""

    def script(handler, stop):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        handler.wfile.flush()
        for _i in range(count):
            if stop.wait(interval):
                return
            handler.wfile.write(b"a")
            handler.wfile.flush()

    return script


def trickle_chunk_size(interval=0.25, count=40):
    """A chunked body whose first chunk-size line never ends (one digit every ``interval`` seconds)."""

    def script(handler, stop):
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.wfile.flush()
        for _i in range(count):
            if stop.wait(interval):
                return
            handler.wfile.write(b"0")
            handler.wfile.flush()

    return script


def body(data, announce=None, length=True):
    """Send ``data``; announce ``announce`` bytes (default: its length), or no length at all (close ends it)."""

    def script(handler, stop):
        handler.send_response(200)
        if length:
            handler.send_header("Content-Length", str(len(data) if announce is None else announce))
        else:
            handler.send_header("Connection", "close")
        handler.end_headers()
        for start in range(0, len(data), 64 * 1024):
            if stop.is_set():
                return
            handler.wfile.write(data[start : start + 64 * 1024])

    return script


def not_found(handler, stop):
    handler.send_error(404, "File not found")


class FakeStatvfs:
    def __init__(self, free, total=1024 * MiB):
        self.f_frsize = self.f_bsize = 4096
        self.f_bavail = free // 4096
        self.f_blocks = total // 4096


@pytest.fixture
def small_disk(monkeypatch):
    """Make every filesystem look like it has ``free`` bytes free (1 MiB unless set)."""
    state = {"free": 1 * MiB}
    monkeypatch.setattr(os, "fstatvfs", lambda fd: FakeStatvfs(state["free"]))
    return state


def with_refusal(fetch, base, handle, match, url=None):
    """``fetch`` of ``base/a.tar.gz`` (or ``url``) into ``handle`` must raise a RolloutError matching ``match``."""
    with pytest.raises(RolloutError, match=match) as info:
        fetch(url or base + "/a.tar.gz", handle)
    return info.value.msg


def secret_url(base, name="release.tar.gz"):
    return base.replace("http://", "http://deploy:%s@" % SECRET) + "/" + name + "?token=" + SECRET


# --- the deadline ----------------------------------------------------------------------------------


TRICKLERS = [trickle_body, trickle_headers, trickle_chunk_size]


@pytest.mark.parametrize("trickler", TRICKLERS, ids=[t.__name__ for t in TRICKLERS])
def test_a_trickling_server_is_cut_at_the_deadline(tmp_path, monkeypatch, trickler):
    """Each byte comes well within a per-read timeout; only a deadline for the whole download stops it."""
    monkeypatch.setattr(_download, "DOWNLOAD_TIMEOUT", 2)
    with serve(trickler()) as (base, server), open(str(tmp_path / "download"), "w+b") as handle:
        started = time.monotonic()
        with pytest.raises(RolloutError) as info:
            _download.download(secret_url(base), handle)
        elapsed = time.monotonic() - started
    assert elapsed < 2 + MARGIN, elapsed
    assert "download_timeout" in info.value.msg and "2 s" in info.value.msg, info.value.msg
    assert SECRET not in info.value.msg and "/release.tar.gz" in info.value.msg
    assert server.requests == ["/release.tar.gz?token=" + SECRET]


def test_a_cut_download_leaves_nothing_in_rollout_tmp(tmp_path, monkeypatch):
    """Through manage_release, as the module runs it: the lock is held no longer than the deadline."""
    monkeypatch.setattr(_download, "DOWNLOAD_TIMEOUT", 2)
    root = tmp_path / "app"
    with serve(trickle_body(interval=0.5, count=30)) as (base, _server):
        started = time.monotonic()
        with pytest.raises(RolloutError) as info:
            manage_release(
                str(root),
                state="active",
                version="v1",
                src=base + "/v1.tar.gz",
                checksum="sha256:" + "0" * 64,
                fetch=_download.download,
            )
        elapsed = time.monotonic() - started
    assert elapsed < 2 + MARGIN, elapsed
    assert "download_timeout" in info.value.msg, info.value.msg
    assert os.listdir(str(root / ".rollout-tmp")) == []
    assert not os.path.lexists(str(root / "current"))
    assert not os.path.exists(str(root / "releases" / "v1"))


def test_make_fetch_sets_the_deadline(tmp_path):
    fetch = _download.make_fetch(timeout=1)
    with serve(trickle_body()) as (base, _server), open(str(tmp_path / "download"), "w+b") as handle:
        started = time.monotonic()
        with pytest.raises(RolloutError, match=r"within 1 s \(download_timeout\)"):
            fetch(base + "/a.tar.gz", handle)
        assert time.monotonic() - started < 1 + MARGIN


# --- the size budget -------------------------------------------------------------------------------


def test_a_content_length_above_free_space_is_refused_before_any_byte_is_written(tmp_path, small_disk):
    data = os.urandom(8 * MiB)
    path = tmp_path / "download"
    with serve(body(data)) as (base, _server), open(str(path), "w+b") as handle:
        with pytest.raises(RolloutError) as info:
            _download.download(secret_url(base), handle)
        handle.flush()
    assert path.stat().st_size == 0
    msg = info.value.msg
    assert "Content-Length is 8.0 MiB" in msg and "only 1.0 MiB" in msg, msg
    assert "Nothing was downloaded" in msg and SECRET not in msg


def test_a_flood_without_content_length_is_cut_at_the_free_space(tmp_path, small_disk):
    path = tmp_path / "download"
    with serve(body(bytes(16 * MiB), length=False)) as (base, _server), open(str(path), "w+b") as handle:
        with pytest.raises(RolloutError) as info:
            _download.download(base + "/flood.tar.gz", handle)
        handle.flush()
    assert path.stat().st_size <= 1 * MiB
    assert "stopped downloading" in info.value.msg and "cannot take more" in info.value.msg, info.value.msg


def test_min_free_space_is_kept_free_by_the_download(tmp_path, small_disk):
    small_disk["free"] = 60 * MiB  # of 1 GiB: 10% (102.4 MiB) is already more than is free
    fetch = _download.make_fetch(min_free_space="56M")  # 4 MiB may be written
    refused = r"Content-Length is 5\.0 MiB.*only 4\.0 MiB while keeping 56\.0 MiB"
    with serve(body(bytes(5 * MiB))) as (base, _server), open(str(tmp_path / "d1"), "w+b") as handle:
        with_refusal(fetch, base, handle, refused)
    with serve(body(bytes(5 * MiB), length=False)) as (base, _server), open(str(tmp_path / "d2"), "w+b") as handle:
        with pytest.raises(RolloutError, match=r"keeping 56\.0 MiB free \(min_free_space\)"):
            fetch(base + "/a.tar.gz", handle)
        assert handle.tell() <= 4 * MiB
    with serve(body(bytes(3 * MiB))) as (base, _server), open(str(tmp_path / "d3"), "w+b") as handle:
        fetch(base + "/a.tar.gz", handle)
        assert handle.tell() == 3 * MiB
    with serve(body(bytes(MiB))) as (base, _server), open(str(tmp_path / "d4"), "w+b") as handle:
        with_refusal(_download.make_fetch(min_free_space="10%"), base, handle, r"keeping 10% of the filesystem free")


def test_max_size(tmp_path):
    fetch = _download.make_fetch(max_size="1M")
    with serve(body(bytes(2 * MiB))) as (base, _server), open(str(tmp_path / "d1"), "w+b") as handle:
        with pytest.raises(RolloutError, match=r"Content-Length is 2\.0 MiB, above max_size \(1\.0 MiB\)"):
            fetch(base + "/a.tar.gz", handle)
        assert handle.tell() == 0
    with serve(body(bytes(2 * MiB), length=False)) as (base, _server), open(str(tmp_path / "d2"), "w+b") as handle:
        with pytest.raises(RolloutError, match=r"larger than max_size \(1\.0 MiB\)"):
            fetch(base + "/a.tar.gz", handle)
        assert handle.tell() <= MiB
    with serve(body(bytes(MiB))) as (base, _server), open(str(tmp_path / "d3"), "w+b") as handle:
        fetch(base + "/a.tar.gz", handle)
        assert handle.tell() == MiB


def test_a_body_shorter_than_its_content_length_is_an_error(tmp_path):
    with serve(body(b"x" * 1000, announce=5000)) as (base, _server), open(str(tmp_path / "d"), "w+b") as handle:
        with_refusal(_download.download, base, handle, r"announced 4\.9 KiB but the connection ended after 1000 B")


# --- plain downloads and failures ------------------------------------------------------------------


def test_a_download_writes_the_body_as_sent(tmp_path):
    data = os.urandom(3 * MiB + 17)
    with serve(body(data)) as (base, _server), open(str(tmp_path / "d"), "w+b") as handle:
        _download.download(base + "/a.tar.gz", handle)
        handle.seek(0)
        assert handle.read() == data


def test_http_errors_are_fetch_errors_without_secrets(tmp_path):
    with serve(not_found) as (base, _server), open(str(tmp_path / "d"), "w+b") as handle:
        msg = with_refusal(_download.download, base, handle, "404", url=secret_url(base))
    assert SECRET not in msg, msg


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"timeout": 0}, "download_timeout"),
        ({"timeout": -5}, "download_timeout"),
        ({"timeout": "soon"}, "download_timeout"),
        ({"max_size": "5%"}, "max_size"),
        ({"max_size": "lots"}, "max_size"),
        ({"min_free_space": "lots"}, "min_free_space"),
    ],
)
def test_make_fetch_refuses_bad_limits(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        _download.make_fetch(**kwargs)


def test_parse_max_size():
    assert _download.parse_max_size(None) is None
    assert _download.parse_max_size("0") is None
    assert _download.parse_max_size("512M") == 512 * MiB
    assert _download.parse_max_size(1048576) == MiB
