# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for the release and http_health integration tests: archives, local HTTP servers, a reader process."""

import contextlib
import hashlib
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile

# --- archives --------------------------------------------------------------------------------------


def write_tar(path, files, links=(), hardlinks=()):
    """A .tar.gz (or .tar, by suffix) holding ``files`` {name: bytes}, symlinks and hard links (name, target)."""
    mode = "w:gz" if path.endswith((".tar.gz", ".tgz")) else "w"
    with tarfile.open(path, mode) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
        for kind, pairs in ((tarfile.SYMTYPE, links), (tarfile.LNKTYPE, hardlinks)):
            for name, target in pairs:
                info = tarfile.TarInfo(name)
                info.type, info.linkname = kind, target
                tar.addfile(info)
    return path


def write_zip(path, files):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in sorted(files.items()):
            zf.writestr(name, data)
    return path


def sha256_of(path):
    with open(path, "rb") as handle:
        return "sha256:" + hashlib.sha256(handle.read()).hexdigest()


def version_archive(directory, version, fmt="tar.gz", extra=None):
    files = {"VERSION": ("%s\n" % version).encode()}
    files.update(extra or {})
    path = os.path.join(str(directory), "%s.%s" % (version, fmt))
    return write_zip(path, files) if fmt == "zip" else write_tar(path, files)


def tree(root):
    """Every path under ``root`` (relative), with link targets, to compare before/after."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, str(root))
            if os.path.islink(path):
                result[rel] = "-> " + os.readlink(path)
            elif os.path.isdir(path):
                result[rel] = "dir"
            else:
                with open(path, "rb") as handle:
                    result[rel] = hashlib.sha256(handle.read()).hexdigest()
    return result


# --- local HTTP servers ----------------------------------------------------------------------------


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        with server.lock:
            server.requests.append({"path": self.path, "headers": dict(self.headers), "time": time.monotonic()})
            status, body, headers = server.respond(self)
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def http_server(address, respond):
    """Serve on ``address`` (127.0.0.x) an ephemeral port; ``respond(handler) -> (status, body, headers)``.

    Yields the server: ``server.base_url`` and ``server.requests`` (one dict per request).
    """
    server = http.server.ThreadingHTTPServer((address, 0), _QuietHandler)
    server.daemon_threads = True
    server.respond = respond
    server.requests = []
    server.lock = threading.Lock()
    server.base_url = "http://%s:%d" % (address, server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def file_responder(directory):
    """Serve files of ``directory`` by name (404 otherwise)."""

    def respond(handler):
        name = os.path.basename(handler.path.split("?", 1)[0])
        path = os.path.join(str(directory), name)
        if not name or not os.path.isfile(path):
            return 404, b"not found", {}
        with open(path, "rb") as handle:
            return 200, handle.read(), {"Content-Type": "application/octet-stream"}

    return respond


def sequence_responder(answers, per_path=False):
    """Answer with ``answers[n]`` for the n-th request (the last one repeats); items are (status, body)."""
    counters = {}

    def respond(handler):
        key = handler.path if per_path else None
        n = counters.get(key, 0)
        counters[key] = n + 1
        status, body = answers[min(n, len(answers) - 1)]
        return status, body, {"Content-Type": "application/json" if body[:1] in (b"{", b"[") else "text/plain"}

    return respond


def unused_port(address):
    """A port on ``address`` that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


# --- reader process --------------------------------------------------------------------------------

READER = r"""
import json, os, sys
os.nice(10)  # read as fast as possible, but leave the CPU to ansible-playbook when it needs it
target, ready, stop = sys.argv[1], sys.argv[2], sys.argv[3]
allowed = set(sys.argv[4].split(","))
reads = failures = transitions = loops = 0
last = None
errors = []
seen = set()
while True:
    try:
        with open(target) as handle:
            value = handle.read().strip()
        if value not in allowed:
            failures += 1
            errors.append("unexpected content %r" % value)
        reads += 1
        if value != last:
            transitions += 1
            last = value
            seen.add(value)
    except OSError as exc:
        if reads:  # before the first successful read, current may simply not exist yet
            failures += 1
            errors.append(str(exc))
    loops += 1
    if reads == 1 and not os.path.exists(ready):
        open(ready, "w").close()
    if loops % 50 == 0 and os.path.exists(stop):
        break
print(json.dumps({"reads": reads, "failures": failures, "transitions": transitions,
                  "seen": sorted(seen), "errors": errors[:10]}))
"""


class ReaderProcess:
    """A separate Python process reading ``target`` in a tight loop until told to stop.

    It counts as failures only what happens after its first successful read, and touches ``ready``
    after that read, so a playbook can wait for it (``ansible.builtin.wait_for: path=...``).
    """

    def __init__(self, workdir, target, allowed):
        self.ready = os.path.join(str(workdir), "reader.ready")
        self.stop_file = os.path.join(str(workdir), "reader.stop")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", READER, target, self.ready, self.stop_file, ",".join(allowed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None:
                raise AssertionError("reader exited early: %s" % self.proc.stderr.read())
            if time.monotonic() > deadline:
                raise AssertionError("reader did not start reading within %ss" % timeout)
            time.sleep(0.01)

    def stop(self, timeout=20):
        open(self.stop_file, "w").close()
        out, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise AssertionError("reader failed (rc %s): %s" % (self.proc.returncode, err))
        return json.loads(out)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
