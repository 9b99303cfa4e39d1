# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Download a release archive (the ``fetch`` that the release modules hand to manage_release).

A download holds the release path's lock, so it is bounded in time and in size:

* one deadline for the whole download (name resolution, connection, headers and body): a server that
  trickles its headers or its body is cut when the deadline passes, not after one idle read;
* a size budget: the free-space rule ``min_free_space`` (bytes that must stay free on the filesystem the
  download is written to) and an optional ``max_size``. A ``Content-Length`` above the budget is refused
  before the first byte of the body is read, and a running byte count stops a body that goes past it.

The body is stored as the server sends it (no ``Content-Encoding`` decoding), so the checksum is that of the
published file. Every URL in a message goes through :func:`redact_url`.

The transfer runs in a worker thread that the caller waits for until the deadline, so no read, however
slow, can hold the caller longer; at the deadline the connection is shut down and the worker is told to
write nothing more.
"""

import contextlib
import os
import socket
import threading
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_text, redact_url
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release_errors import FetchError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._values import format_bytes, parse_free_space

DOWNLOAD_TIMEOUT = 300
"""Seconds the whole download may take, unless told otherwise."""

CHUNK = 64 * 1024
_AGENT = "zerodowntime.rollout"


class DownloadError(FetchError):
    """The download was refused or stopped: deadline, size budget, or a short body. Nothing is kept."""


def parse_timeout(value, what="download_timeout"):
    """Seconds as a positive finite number; None -> :data:`DOWNLOAD_TIMEOUT`."""
    if value is None:
        return DOWNLOAD_TIMEOUT
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = None
    if isinstance(value, bool) or seconds is None or not (0 < seconds < float("inf")):
        raise ValidationError("%s must be a positive number of seconds, got %r." % (what, value))
    return seconds


def parse_max_size(value):
    """``max_size`` -> bytes, or None for no limit (None, ``""`` or ``0``). Same syntax as min_free_space,
    without percentages."""
    if value is None or value == "":
        return None
    try:
        kind, amount = parse_free_space(value)
    except ValidationError:
        kind, amount = None, None
    if kind != "bytes":
        raise ValidationError("max_size must be a size such as 2G, 512M or 1048576 (0: no limit), got %r." % (value,))
    return amount or None


def make_fetch(timeout=None, max_size=None, min_free_space=None):
    """A ``fetch(url, fileobj)`` for :func:`manage_release` that applies these limits (module option values;
    ``min_free_space`` as the release module takes it). Raises ValidationError on a bad value."""
    seconds = parse_timeout(timeout)
    cap = parse_max_size(max_size)
    reserve = parse_free_space(min_free_space)

    def fetch(url, fileobj):
        download(url, fileobj, timeout=seconds, max_size=cap, min_free_space=reserve)

    return fetch


class Budget:
    """How many bytes the download may write: ``max_size``, and what the filesystem of the file can take
    while keeping ``min_free_space`` free. The free space is read at the start and again after every chunk."""

    def __init__(self, url, fileobj, max_size, min_free_space, statvfs):
        self.url = url
        self.max_size = max_size
        self.kind, self.amount = min_free_space or ("bytes", 0)
        self.statvfs = statvfs
        self.room = None  # None: not a file on a filesystem (io.BytesIO in tests), nothing to protect
        try:
            self.fd = fileobj.fileno()
            free, reserve = self._free()
        except (AttributeError, OSError, ValueError):
            self.fd = None
            return
        self.room = free - reserve

    def _free(self):
        st = self.statvfs(self.fd)
        block = getattr(st, "f_frsize", 0) or getattr(st, "f_bsize", 0) or 4096
        free = st.f_bavail * block
        reserve = int(st.f_blocks * block * self.amount / 100.0) if self.kind == "percent" else self.amount
        return free, reserve

    def _keeping(self):
        if self.kind == "percent":
            return " while keeping %g%% of the filesystem free (min_free_space)" % self.amount
        if self.amount:
            return " while keeping %s free (min_free_space)" % format_bytes(self.amount)
        return ""

    def check_announced(self, length):
        """Refuse a Content-Length above the budget, before the body is read."""
        if self.max_size is not None and length > self.max_size:
            raise DownloadError(
                "refused to download %s: its Content-Length is %s, above max_size (%s). Nothing was downloaded. "
                "Check the URL, or raise max_size if the archive is that large."
                % (redact_url(self.url), format_bytes(length), format_bytes(self.max_size)),
                content_length=length,
                max_size=self.max_size,
            )
        if self.room is not None and length > self.room:
            raise DownloadError(
                "refused to download %s: its Content-Length is %s, and the filesystem it is downloaded to can take "
                "only %s%s. Nothing was downloaded. Free space there, for example by removing old releases "
                "(state=absent)."
                % (redact_url(self.url), format_bytes(length), format_bytes(max(self.room, 0)), self._keeping()),
                content_length=length,
                room=self.room,
            )

    def check_written(self, written):
        """Stop a body that would go past ``max_size`` or past what the filesystem can take."""
        if self.max_size is not None and written > self.max_size:
            raise DownloadError(
                "stopped downloading %s after %s: the body is larger than max_size (%s). The partial download was "
                "removed. Check the URL, or raise max_size if the archive is that large."
                % (redact_url(self.url), format_bytes(written), format_bytes(self.max_size)),
                written=written,
                max_size=self.max_size,
            )
        if self.room is None:
            return
        over = written > self.room
        if not over:
            free, reserve = self._free()
            over = free < reserve
        if over:
            raise DownloadError(
                "stopped downloading %s after %s: the filesystem it is downloaded to cannot take more%s. The partial "
                "download was removed. Free space there, for example by removing old releases (state=absent)."
                % (redact_url(self.url), format_bytes(written), self._keeping()),
                written=written,
                room=self.room,
            )


def _socket_of(response):
    """The socket under an http.client response, or None (private attributes, looked up defensively)."""
    raw = getattr(getattr(response, "fp", None), "raw", None)
    sock = getattr(raw, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _content_length(response):
    if getattr(response, "chunked", False):  # http.client ignores Content-Length then
        return None
    value = getattr(response, "headers", {}).get("Content-Length")
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else None


class Transfer:
    """One transfer, run by a worker thread (:meth:`wait`) that the caller waits for until the deadline.

    The worker writes to ``fileobj`` only while it holds ``lock`` and the transfer is not cancelled. A subclass
    opens its stream in ``_run``, hands it to :meth:`_hold`, and writes each chunk through :meth:`_store`.
    """

    def __init__(self, fileobj, budget, deadline, clock):
        self.fileobj = fileobj
        self.budget = budget
        self.deadline = deadline
        self.clock = clock
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.cancelled = False
        self.stream = None
        self.written = 0
        self.error = None

    def remaining(self):
        return self.deadline - self.clock()

    def run(self):
        try:
            self._run()
        except BaseException as exc:  # handed to the waiting caller
            self.error = exc
            self._failed(exc)
        finally:
            with self.lock:
                stream, self.stream = self.stream, None
            if stream is not None:
                self._close(stream)
            self.done.set()

    def _run(self):
        raise NotImplementedError

    def _failed(self, exc):
        """Called in the worker with the error it ends with."""

    def _close(self, stream):
        stream.close()

    def _interrupt(self, stream):
        """Called by :meth:`cancel`: make a read in progress on ``stream`` end."""

    def _hold(self, stream):
        """Keep ``stream`` for :meth:`cancel` and the end of the run; False (and ``stream`` closed) when the
        transfer was cancelled meanwhile."""
        with self.lock:
            if self.cancelled:
                stream.close()
                return False
            self.stream = stream
        return True

    def _store(self, chunk):
        """Write ``chunk`` within the budget; False (nothing written) when the transfer was cancelled."""
        self.budget.check_written(self.written + len(chunk))
        with self.lock:
            if self.cancelled:
                return False
            self.fileobj.write(chunk)
            self.written += len(chunk)
        return True

    def cancel(self):
        """Stop the worker: it writes nothing more, and a read in progress is interrupted."""
        with self.lock:
            self.cancelled = True
            stream = self.stream
        if stream is not None:
            self._interrupt(stream)

    def wait(self, thread_name):
        """Run the transfer in a daemon thread and wait for it until the deadline; then cancel it (a worker still
        resolving or connecting closes what it gets and ends on its own). Returns whether it finished in time,
        and raises the collection's own error that it ended with in time."""
        worker = threading.Thread(target=self.run, name=thread_name, daemon=True)
        worker.start()
        finished = self.done.wait(max(self.remaining(), 0))
        if not finished:
            self.cancel()
        if isinstance(self.error, RolloutError) and finished:
            raise self.error
        return finished


class _UrlTransfer(Transfer):
    """The worker side of one URL download."""

    def __init__(self, url, fileobj, deadline, clock, budget, validate_certs):
        super().__init__(fileobj, budget, deadline, clock)
        self.url = url
        self.validate_certs = validate_certs

    def _failed(self, exc):
        if isinstance(exc, Exception) and callable(getattr(exc, "close", None)):  # an HTTPError holds a response
            with contextlib.suppress(Exception):
                exc.close()

    def _interrupt(self, stream):
        sock = _socket_of(stream)
        if sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def _run(self):
        # Imported here: most runs (local src, activation of an unpacked release, rollback) never download.
        from ansible.module_utils.urls import open_url

        remaining = self.remaining()
        if remaining <= 0:
            raise socket.timeout("deadline reached before connecting")
        response = open_url(
            self.url,
            timeout=remaining,
            validate_certs=self.validate_certs,
            http_agent=_AGENT,
            decompress=False,
        )
        if not self._hold(response):
            return
        length = _content_length(response)
        if length is not None:
            self.budget.check_announced(length)
        sock = _socket_of(response)
        read = getattr(response, "read1", None) or response.read
        closed = getattr(response, "isclosed", None) or (lambda: False)
        while not closed():  # http.client closes the response once the announced length is read
            remaining = self.remaining()
            if remaining <= 0:
                raise socket.timeout("deadline reached")
            if sock is not None:
                sock.settimeout(remaining)
            chunk = read(CHUNK)
            if not chunk:
                break
            if not self._store(chunk):
                return
        if length is not None and self.written != length:
            raise DownloadError(
                "downloading %s failed: the server announced %s but the connection ended after %s. The partial "
                "download was removed; try again."
                % (redact_url(self.url), format_bytes(length), format_bytes(self.written)),
                content_length=length,
                written=self.written,
            )


def download(
    url,
    fileobj,
    timeout=None,
    max_size=None,
    min_free_space=None,
    validate_certs=True,
    clock=None,
    statvfs=None,
):
    """Write the body of ``url`` into ``fileobj`` with Ansible's URL code (TLS certificates are validated).

    ``timeout`` (seconds, default :data:`DOWNLOAD_TIMEOUT`) bounds the whole download. ``max_size`` (bytes
    or None) and ``min_free_space`` (as :func:`parse_free_space` returns it; default: the download must fit)
    bound its size on the filesystem of ``fileobj``. Raises :class:`DownloadError` (deadline, size, short
    body) or :class:`FetchError` (anything else, HTTP errors included); the caller removes the file.
    """
    clock = clock or time.monotonic
    seconds = parse_timeout(DOWNLOAD_TIMEOUT if timeout is None else timeout, "timeout")
    deadline = clock() + seconds
    budget = Budget(url, fileobj, max_size, min_free_space, statvfs or os.fstatvfs)
    transfer = _UrlTransfer(url, fileobj, deadline, clock, budget, validate_certs)
    # At the deadline the worker writes nothing more, and a read in progress ends as its connection is shut down.
    finished = transfer.wait("zerodowntime-rollout-download")
    error = transfer.error
    timed_out = isinstance(error, socket.timeout) or isinstance(getattr(error, "reason", None), socket.timeout)
    if not finished or timed_out or (error is not None and transfer.remaining() <= 0):
        raise DownloadError(
            "downloading %s did not finish within %g s (download_timeout): %s had arrived. The partial download "
            "was removed. Check the server, or raise download_timeout for a slow link."
            % (redact_url(url), seconds, format_bytes(transfer.written)),
            timeout=seconds,
            written=transfer.written,
        )
    if error is not None:
        if not isinstance(error, Exception):
            raise error  # KeyboardInterrupt, SystemExit
        raise FetchError("downloading %s failed: %s" % (redact_url(url), redact_text(str(error)))) from None
