"""A page rendered by a real headless Chromium, driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages ending in a NUL byte, commands on fd 3, answers on fd 4).

:func:`render` loads a URL in a fresh profile and returns what the page did: its console errors,
uncaught exceptions and failed requests, every URL it requested, and a PNG screenshot.
:func:`read_png` checks a PNG without Pillow (signature, chunk CRCs, IHDR) and decodes its pixels.
"""

import base64
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import tempfile
import time
import zlib

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",  # root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--remote-debugging-pipe",
]


class ChromiumError(AssertionError):
    pass


class Rendered:
    """What one page load did: ``errors`` (console errors, uncaught exceptions, failed loads, each a
    string), ``warnings`` (console warnings), ``requests`` (every URL requested), ``png`` (the viewport,
    PNG bytes) and ``clips`` (name -> PNG bytes of one element)."""

    def __init__(self):
        self.errors = []
        self.warnings = []
        self.requests = []
        self.png = None
        self.clips = {}


def chromium_path():
    path = shutil.which("chromium") or CHROMIUM
    if not os.path.exists(path):
        raise ChromiumError(
            "Chromium is missing: `make venv` installs it (apt-get install -y --no-install-recommends "
            "chromium fonts-liberation)"
        )
    return path


class _Pipe:
    """One DevTools connection; events for the page's session are handed to ``on_event``."""

    def __init__(self, proc, write_fd, read_fd, log_path, on_event):
        self.proc, self.write_fd, self.read_fd, self.log_path = proc, write_fd, read_fd, log_path
        self.on_event = on_event
        self.buffer = b""
        self.next_id = 0
        self.answers = {}
        self.seen = []

    def _log_tail(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self.write_fd, data) :]
        return self.next_id

    def _read_one(self, deadline):
        """Block until one message has arrived (or fail at ``deadline``); dispatch it."""
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChromiumError("Chromium did not answer in time; its log:\n" + self._log_tail())
            ready, _writable, _errors = select.select([self.read_fd], [], [], left)
            if ready:
                chunk = os.read(self.read_fd, 1 << 16)
                if not chunk:
                    raise ChromiumError(
                        "Chromium closed the DevTools pipe (exit %s); its log:\n%s"
                        % (self.proc.poll(), self._log_tail())
                    )
                self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        msg = json.loads(raw)
        if "id" in msg:
            self.answers[msg["id"]] = msg
        else:
            self.seen.append(msg["method"])
            self.on_event(msg)
        return msg

    def call(self, method, params=None, session=None, timeout=30.0):
        msg_id = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while msg_id not in self.answers:
            self._read_one(deadline)
        answer = self.answers.pop(msg_id)
        if "error" in answer:
            raise ChromiumError("%s failed: %s" % (method, answer["error"]))
        return answer.get("result", {})

    def wait_event(self, method, timeout=30.0):
        deadline = time.monotonic() + timeout
        start = len(self.seen)
        while method not in self.seen[start:]:
            self._read_one(deadline)


def _console_text(args):
    parts = []
    for a in args:
        if "value" in a:
            parts.append(a["value"] if isinstance(a["value"], str) else json.dumps(a["value"]))
        else:
            parts.append(a.get("description") or a.get("type", "?"))
    return " ".join(parts)


def render(url, png_path=None, width=1400, height=900, clips=None, timeout=60.0):
    """Load ``url`` in a new headless Chromium with an empty profile and collect, from before the first
    byte of the page runs, every console error, uncaught exception, failed request and requested URL;
    then take a ``width`` x ``height`` PNG screenshot (written to ``png_path`` when given), and one of
    the element matched by each CSS selector in ``clips`` (name -> selector)."""
    chromium = chromium_path()
    result = Rendered()
    profile = tempfile.mkdtemp(prefix="zd-chromium-")
    log_path = os.path.join(profile, "chromium.log")
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()

    def child_fds():  # in the child, before exec: the pipe ends on fds 3 and 4, as Chromium expects
        r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
        w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
        os.dup2(r, 3)
        os.dup2(w, 4)
        os.close(r)
        os.close(w)

    session = {}

    def on_event(msg):
        if msg.get("sessionId") != session.get("id"):
            return
        method, p = msg["method"], msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            result.errors.append("uncaught: %s" % ((d.get("exception") or {}).get("description") or d.get("text")))
        elif method == "Runtime.consoleAPICalled":
            text = "console.%s: %s" % (p["type"], _console_text(p.get("args", [])))
            if p["type"] in ("error", "assert"):
                result.errors.append(text)
            elif p["type"] == "warning":
                result.warnings.append(text)
        elif method == "Log.entryAdded":
            e = p["entry"]
            text = "%s %s: %s %s" % (e.get("source"), e["level"], e.get("text"), e.get("url") or "")
            if e["level"] == "error":
                result.errors.append(text)
            elif e["level"] == "warning":
                result.warnings.append(text)
        elif method == "Network.requestWillBeSent":
            result.requests.append(p["request"]["url"])
        elif method == "Network.loadingFailed" and not p.get("canceled"):
            result.errors.append("request failed: %s" % p.get("errorText"))

    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [chromium, *FLAGS, "--user-data-dir=" + profile, "--window-size=%d,%d" % (width, height), "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            close_fds=False,  # Python's own descriptors are not inheritable; fds 3 and 4 are
            preexec_fn=child_fds,
        )
    os.close(to_child_r)
    os.close(from_child_w)
    pipe = _Pipe(proc, to_child_w, from_child_r, log_path, on_event)
    try:
        target = pipe.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
        session["id"] = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            pipe.call(domain + ".enable", session=session["id"])
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        pipe.call("Emulation.setDeviceMetricsOverride", metrics, session=session["id"])
        nav = pipe.call("Page.navigate", {"url": url}, session=session["id"], timeout=timeout)
        if nav.get("errorText"):
            raise ChromiumError("could not load %s: %s" % (url, nav["errorText"]))
        pipe.wait_event("Page.loadEventFired", timeout=timeout)
        shot = pipe.call("Page.captureScreenshot", {"format": "png"}, session=session["id"], timeout=timeout)
        result.png = base64.b64decode(shot["data"])
        for name, selector in (clips or {}).items():
            box = pipe.call(
                "Runtime.evaluate",
                {
                    "expression": "(() => { const r = document.querySelector(%s).getBoundingClientRect();"
                    " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()" % json.dumps(selector),
                    "returnByValue": True,
                },
                session=session["id"],
            )
            if "exceptionDetails" in box:
                raise ChromiumError("no element %s: %s" % (selector, box["exceptionDetails"].get("text")))
            clip = dict(box["result"]["value"], scale=1)
            shot = pipe.call("Page.captureScreenshot", {"format": "png", "clip": clip}, session=session["id"])
            result.clips[name] = base64.b64decode(shot["data"])
        if png_path:
            with open(png_path, "wb") as f:
                f.write(result.png)
        pipe.send("Browser.close")
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(to_child_w)
        os.close(from_child_r)
        shutil.rmtree(profile, ignore_errors=True)
    return result


# --------------------------------------------------------------------------- PNG, without Pillow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel (8-bit, no palette)


def _unfilter(raw, width, height, bpp):
    """Undo the per-scanline filters (PNG spec, section 9) and return the rows."""
    stride = width * bpp
    if len(raw) != height * (stride + 1):
        raise ValueError("IDAT holds %d bytes, %d expected" % (len(raw), height * (stride + 1)))
    rows = []
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        cur = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(bpp, stride):
                cur[i] = (cur[i] + cur[i - bpp]) & 0xFF
        elif kind == 2:
            for i in range(stride):
                cur[i] = (cur[i] + prev[i]) & 0xFF
        elif kind == 3:
            for i in range(stride):
                left = cur[i - bpp] if i >= bpp else 0
                cur[i] = (cur[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        elif kind != 0:
            raise ValueError("row %d: unknown filter type %d" % (y, kind))
        rows.append(bytes(cur))
        prev = cur
    return rows


def read_png(data):
    """Check a PNG (signature, every chunk's CRC, IHDR first and IEND last) and decode it.

    Returns ``(width, height, colours)``: ``colours`` maps every distinct pixel value (bytes, one per
    channel) to its pixel count. Only 8-bit, non-interlaced, non-palette images (what Chromium writes)."""
    if data[:8] != PNG_SIGNATURE:
        raise ValueError("not a PNG: bad signature %r" % data[:8])
    pos, chunks = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise ValueError("chunk %r: CRC mismatch" % kind)
        chunks.append((kind, body))
        pos += 12 + length
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        raise ValueError("chunks out of order: %r" % [k for k, _chunk in chunks])
    width, height, depth, colour_type, _comp, _filter, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if depth != 8 or colour_type not in _CHANNELS or interlace:
        raise ValueError("unsupported PNG: depth %d, colour type %d, interlace %d" % (depth, colour_type, interlace))
    bpp = _CHANNELS[colour_type]
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    colours = {}
    for row in _unfilter(raw, width, height, bpp):
        for i in range(0, len(row), bpp):
            px = row[i : i + bpp]
            colours[px] = colours.get(px, 0) + 1
    return width, height, colours
