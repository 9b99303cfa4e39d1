#!/usr/bin/env python3
"""Fixed-rate HTTP load generator for the zerodowntime.rollout demo.

CLI::

    python demo/loadgen.py http://127.0.0.1:PORT/version --rate 100 --duration 30 [--json records.json]

(no ``--duration``: run until Ctrl-C or SIGTERM). Python API::

    gen = LoadGenerator(url, rate=100).start()
    ...                      # roll the fleet
    summary = gen.stop()     # Summary: .total, .failed, .records, .p50, .p99, .versions_over_time()

Requests are sent on a fixed schedule (``rate`` per second) from a thread pool; each worker thread
keeps its own ``requests.Session`` (keep-alive, like real clients). Every request is recorded: when
it was scheduled and sent, its latency, its outcome (HTTP status or exception class) and the version
that served it (``X-Version`` header, else the body of ``/version``). A request fails when it gets a
non-2xx status or an exception; nothing is retried (the adapter has ``max_retries=0``).
"""

import argparse
import json
import re
import signal
import sys
import threading
import time
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

_VERSION_IN_PAGE = re.compile(r"version <b>([^<]+)</b>")


class Record:
    """One request: ``t`` (epoch seconds when sent), ``offset`` (seconds since the run started),
    ``lag`` (seconds it waited for a free worker), ``latency``, ``status`` (int or None),
    ``error`` (exception class name or None), ``version`` (or None), ``ok``."""

    __slots__ = ("t", "offset", "lag", "latency", "status", "error", "version", "served_by")

    def __init__(self, t, offset, lag, latency, status, error, version, served_by=None):
        self.t, self.offset, self.lag, self.latency = t, offset, lag, latency
        self.status, self.error, self.version, self.served_by = status, error, version, served_by

    @property
    def ok(self):
        return self.error is None and self.status is not None and 200 <= self.status < 300

    @property
    def outcome(self):
        return self.error if self.error else str(self.status)

    def to_dict(self):
        d = {k: getattr(self, k) for k in self.__slots__}
        d["ok"] = self.ok
        return d

    def __repr__(self):
        return "Record(offset=%.3f, outcome=%s, version=%s, latency=%.3f)" % (
            self.offset,
            self.outcome,
            self.version,
            self.latency,
        )


def _percentile(sorted_values, q):
    if not sorted_values:
        return None
    idx = min(len(sorted_values) - 1, max(0, int(round(q / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[idx]


class Summary:
    """The outcome of a run. ``records`` are ordered by send time."""

    def __init__(self, records, duration, rate):
        self.records = sorted(records, key=lambda r: r.t)
        self.duration = duration
        self.rate = rate
        lat = sorted(r.latency for r in self.records if r.ok)
        self.p50 = _percentile(lat, 50)
        self.p99 = _percentile(lat, 99)
        self.max_latency = lat[-1] if lat else None

    total = property(lambda self: len(self.records))
    failures = property(lambda self: [r for r in self.records if not r.ok])
    failed = property(lambda self: len(self.failures))
    ok = property(lambda self: self.total - self.failed)

    def outcomes(self):
        return Counter(r.outcome for r in self.records)

    def versions(self):
        return Counter(r.version for r in self.records if r.ok)

    def versions_over_time(self, bucket=1.0):
        """[(bucket start offset, {version: count})] for successful requests."""
        buckets = OrderedDict()
        for r in self.records:
            if r.ok:
                key = int(r.offset // bucket) * bucket
                buckets.setdefault(key, Counter())[r.version] += 1
        return [(k, dict(v)) for k, v in buckets.items()]

    def to_dict(self, with_records=False):
        d = {
            "total": self.total,
            "failed": self.failed,
            "duration": round(self.duration, 3),
            "rate": self.rate,
            "p50_ms": None if self.p50 is None else round(self.p50 * 1000, 2),
            "p99_ms": None if self.p99 is None else round(self.p99 * 1000, 2),
            "max_ms": None if self.max_latency is None else round(self.max_latency * 1000, 2),
            "outcomes": dict(self.outcomes()),
            "versions": dict(self.versions()),
            "versions_over_time": self.versions_over_time(),
        }
        if with_records:
            d["records"] = [r.to_dict() for r in self.records]
        return d

    def format(self):
        d = self.to_dict()
        lines = [
            "sent %d in %.1fs (target %s/s), failed %d" % (d["total"], d["duration"], self.rate, d["failed"]),
            "latency p50 %s ms, p99 %s ms, max %s ms" % (d["p50_ms"], d["p99_ms"], d["max_ms"]),
            "outcomes: %s" % ", ".join("%s=%d" % kv for kv in sorted(d["outcomes"].items())),
            "versions over time:",
        ]
        for start, counts in d["versions_over_time"]:
            lines.append("  %5.0fs  %s" % (start, "  ".join("%s:%d" % kv for kv in sorted(counts.items()))))
        for r in self.failures[:20]:
            lines.append("  FAILED at %.3fs: %s (%.3fs)" % (r.offset, r.outcome, r.latency))
        if self.failed > 20:
            lines.append("  ... %d more failures" % (self.failed - 20))
        return "\n".join(lines)


class LoadGenerator:
    """Send GETs to ``url`` at ``rate`` requests/second until :meth:`stop` (or ``duration`` seconds).

    ``url`` without a path gets ``/version``. ``concurrency`` bounds the worker threads (each with its
    own keep-alive Session); a request waits for a free worker rather than being dropped, and that
    wait shows in ``Record.lag``."""

    def __init__(self, url, rate=100.0, duration=None, concurrency=32, timeout=10.0):
        parts = urlsplit(url)
        if not parts.path:
            url = urlunsplit(parts._replace(path="/version"))
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.url = url
        self.rate = float(rate)
        self.duration = duration
        self.timeout = timeout
        self.concurrency = concurrency
        self._records = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._local = threading.local()
        self._sessions = []
        self._pool = None
        self._thread = None
        self._t0 = None
        self._mono0 = None
        self._ended = None

    # ---- running
    def start(self):
        if self._thread:
            raise RuntimeError("already started")
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="loadgen")
        self._t0, self._mono0 = time.time(), time.monotonic()
        self._thread = threading.Thread(target=self._schedule, name="loadgen-scheduler", daemon=True)
        self._thread.start()
        return self

    def _schedule(self):
        i = 0
        while not self._stop.is_set():
            due = self._mono0 + i / self.rate
            if self.duration is not None and due - self._mono0 >= self.duration:
                break
            if self._stop.wait(max(0.0, due - time.monotonic())):  # pacing, not a wait for a condition
                break
            self._pool.submit(self._one, due)
            i += 1
        self._ended = time.monotonic()

    def _session(self):
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.mount("http://", HTTPAdapter(max_retries=0, pool_connections=1, pool_maxsize=1))
            self._local.session = s
            with self._lock:
                self._sessions.append(s)
        return s

    def _one(self, due):
        start = time.monotonic()
        t = time.time()
        status = error = version = served_by = None
        try:
            r = self._session().get(self.url, timeout=self.timeout)
            status = r.status_code
            served_by = r.headers.get("X-Served-By")
            version = r.headers.get("X-Version")
            if version is None and r.ok:
                if self.url.rstrip("/").endswith("/version"):
                    version = r.text.strip()
                else:
                    m = _VERSION_IN_PAGE.search(r.text)
                    version = m.group(1) if m else None
        except Exception as e:  # noqa: BLE001 - every failure is recorded, by class
            error = type(e).__name__
        latency = time.monotonic() - start
        rec = Record(t, start - self._mono0, start - due, latency, status, error, version, served_by)
        with self._lock:
            self._records.append(rec)

    def wait(self, timeout=None):
        """Block until the scheduled duration is over (needs ``duration``), then :meth:`stop`."""
        self._thread.join(timeout)
        return self.stop()

    def stop(self, timeout=None):
        """Stop sending, wait for requests in flight (each bounded by the request timeout), return the Summary."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        if self._pool:
            self._pool.shutdown(wait=True)
        with self._lock:
            for s in self._sessions:
                s.close()
            records = list(self._records)
        ended = self._ended or time.monotonic()
        return Summary(records, ended - (self._mono0 or ended), self.rate)

    @property
    def records(self):
        with self._lock:
            return list(self._records)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    p = argparse.ArgumentParser(description="fixed-rate load generator for the demo fleet")
    p.add_argument("url", help="e.g. http://127.0.0.1:PORT/version (no path: /version)")
    p.add_argument("--rate", type=float, default=100.0, help="requests per second")
    p.add_argument("--duration", type=float, help="seconds (default: until Ctrl-C/SIGTERM)")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout")
    p.add_argument("--json", help="write the summary and every record to this file")
    p.add_argument("--allow-failures", action="store_true", help="exit 0 even if requests failed")
    args = p.parse_args(argv)
    gen = LoadGenerator(args.url, args.rate, args.duration, args.concurrency, args.timeout)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    gen.start()
    try:
        while not stopped.is_set() and gen._thread.is_alive():
            stopped.wait(0.2)
    except KeyboardInterrupt:
        pass
    summary = gen.stop()
    print(summary.format())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary.to_dict(with_records=True), f, indent=1)
    return 0 if args.allow_failures or summary.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
