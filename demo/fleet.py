#!/usr/bin/env python3
"""Demo fleet for zerodowntime.rollout: N app hosts on loopback behind a real HAProxy.

Usable as a CLI::

    python demo/fleet.py up --dir DIR --hosts 4 [--version v1] [--check-inter-ms 500 --rise 2 --fall 2]
    python demo/fleet.py status --dir DIR
    python demo/fleet.py down --dir DIR
    python demo/fleet.py build-artifact --version v2 --out DIR

and as a Python API (``from demo.fleet import Fleet``; see ``demo/README.md``).

Everything lives under DIR and runs as the calling user; nothing needs root. Each host ``appN`` is
a process on its own loopback address (127.0.0.11, .12, ...) started through ``demo/bin/app-ctl``
from a Capistrano-style deploy path ``DIR/hosts/appN/`` (``releases/<version>/``, ``shared/``,
``current -> releases/<version>``). HAProxy runs daemonised with a pidfile; ``down`` stops every
process that ``up`` started and is idempotent. Standard library only.
"""

import argparse
import csv
import gzip
import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
APP_PY = os.path.join(HERE, "app.py")
APP_CTL = os.path.join(HERE, "bin", "app-ctl")
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
FIRST_ADDRESS = "127.0.0.11"
DEFAULT_PORT = 8080
BACKEND = "app"
SCHEMA = 1
UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL


class FleetError(Exception):
    """Raised when the fleet cannot be brought up, queried or torn down."""


# --------------------------------------------------------------------------- processes and polling


def pid_alive(pid):
    """True when ``pid`` exists and is not a zombie (nothing may reap daemons in a container)."""
    if not pid or pid <= 0:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def read_pidfile(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Poll ``predicate`` until it returns a truthy value (returned) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise FleetError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def terminate(pid, timeout=15.0, expect=None):
    """SIGTERM ``pid``, wait until it is gone (bounded), then SIGKILL. ``expect``: a string that must
    appear in its command line, so a recycled pid is never signalled. Returns how it ended."""
    if not pid_alive(pid):
        return "not running"
    if expect and not any(expect in arg for arg in proc_cmdline(pid)):
        return "pid %d is not ours" % pid
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "not running"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return "terminated"
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "terminated"
    wait_until(lambda: not pid_alive(pid), 5, what="pid %d to die after SIGKILL" % pid)
    return "killed"


def _port_free(address, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((address, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(addresses=("127.0.0.1",), avoid=()):
    """A TCP port that is currently bindable on every address in ``addresses``."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((addresses[0], 0))
        port = s.getsockname()[1]
        s.close()
        if port not in avoid and all(_port_free(a, port) for a in addresses):
            return port
    raise FleetError("no free port on %s" % ", ".join(addresses))


def host_address(first, index):
    """The loopback address of host number ``index`` (0-based), restricted to 127.0.0.x."""
    parts = first.split(".")
    if parts[:3] != ["127", "0", "0"]:
        raise FleetError("host addresses must be 127.0.0.x, got %s" % first)
    last = int(parts[3]) + index
    if not 2 <= last <= 254:
        raise FleetError("host address 127.0.0.%d is out of range" % last)
    return "127.0.0.%d" % last


def http_get(url, timeout=2.0):
    """(status, body) of a GET, or (None, error) if the connection failed."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (OSError, ValueError) as e:
        return None, "%s: %s" % (type(e).__name__, e)


def _tail(path, lines=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _write_json(path, data):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- HAProxy runtime API


def admin_command(sock, command, timeout=5.0):
    """Send one command to an HAProxy admin socket (``/path`` or ``tcp://host:port``); return the answer."""
    if sock.startswith("tcp://"):
        host, _, port = sock[len("tcp://") :].rpartition(":")
        conn = socket.create_connection((host, int(port)), timeout=timeout)
    else:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(timeout)
        try:
            conn.connect(sock)
        except OSError:
            conn.close()
            raise
    with conn:
        conn.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            data = conn.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def parse_show_stat(text):
    """Rows of ``show stat`` CSV as dicts keyed by the header names (``pxname``, ``svname``, ...)."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise FleetError("unexpected 'show stat' answer: %r" % text[:200])
    reader = csv.DictReader(io.StringIO("\n".join([lines[0][2:]] + [ln for ln in lines[1:] if ln.strip()])))
    return [{k: v for k, v in row.items() if k} for row in reader]


def server_stats(sock, backend=BACKEND):
    """``{server: {"status", "weight", "scur", "qcur", "check_status", "addr"}}`` for one backend."""
    rows = parse_show_stat(admin_command(sock, "show stat %s 4 -1" % backend))
    out = {}
    for row in rows:
        if row.get("pxname") != backend:
            continue
        out[row["svname"]] = {
            "status": row.get("status", ""),
            "weight": int(row.get("weight") or 0),
            "scur": int(row.get("scur") or 0),
            "qcur": int(row.get("qcur") or 0),
            "check_status": row.get("check_status", ""),
            "addr": row.get("addr", ""),
        }
    return out


def _steady(status):
    return status in ("UP", "no check")


# --------------------------------------------------------------------------- releases


def build_artifact(version, out_dir, app_py=APP_PY):
    """Write ``out_dir/app-<version>.tar.gz`` holding ``app.py`` and ``VERSION``; return (path, sha256).

    The archive is reproducible: same app.py and version, same bytes (fixed mtimes and owners)."""
    if not version or "/" in version or version.startswith("."):
        raise FleetError("bad version %r" % version)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(os.path.abspath(out_dir), "app-%s.tar.gz" % version)
    with open(app_py, "rb") as f:
        app_bytes = f.read()
    members = [("app.py", app_bytes, 0o755), ("VERSION", (version + "\n").encode(), 0o644)]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0) as g:
        g.write(raw.getvalue())
    data = gz.getvalue()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path, hashlib.sha256(data).hexdigest()


def install_release(deploy_path, artifact, version, activate=True):
    """Unpack ``artifact`` into ``deploy_path/releases/<version>/`` and, if ``activate``, point
    ``current`` at it atomically (relative target ``releases/<version>``). Returns the release dir."""
    release = os.path.join(deploy_path, "releases", version)
    if not os.path.isdir(release):
        tmp = release + ".partial"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        with tarfile.open(artifact) as tar:
            for m in tar.getmembers():
                if not m.isfile() or os.path.isabs(m.name) or ".." in m.name.split("/"):
                    raise FleetError("unexpected member %r in %s" % (m.name, artifact))
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # pragma: no cover - old Pythons; members were checked above
                tar.extractall(tmp)
        os.replace(tmp, release)
    shared = os.path.join(deploy_path, "shared")
    for sub in ("", "run", "log"):
        os.makedirs(os.path.join(shared, sub), exist_ok=True)
    config = os.path.join(shared, "config.json")
    if not os.path.exists(config):
        _write_json(config, {"greeting": "hello"})
    if activate:
        link = os.path.join(deploy_path, "current")
        tmp_link = link + ".tmp"
        if os.path.lexists(tmp_link):
            os.unlink(tmp_link)
        os.symlink(os.path.join("releases", version), tmp_link)
        os.replace(tmp_link, link)
    return release


# --------------------------------------------------------------------------- HAProxy instance


class HAProxyInstance:
    """One HAProxy process balancing the fleet's hosts, with a unix and a TCP admin socket.

    Build with :meth:`create` (picks free ports) and :meth:`start`; rebuild from fleet.json with
    :meth:`from_dict`. The config decisions are explained in demo/README.md."""

    def __init__(self, data):
        self.data = data

    @classmethod
    def create(
        cls,
        directory,
        hosts,
        name="lb1",
        backend=BACKEND,
        check_inter_ms=500,
        rise=2,
        fall=2,
        no_check=(),
        retries=3,
        redispatch=True,
        timeout_server_s=65,
        unix_socket=True,
    ):
        directory = os.path.abspath(directory)
        sock = os.path.join(directory, "admin.sock") if unix_socket else None
        if sock and len(sock.encode()) > UNIX_PATH_MAX:
            raise FleetError("admin socket path is too long for a unix socket (%d bytes): %s" % (len(sock), sock))
        servers = []
        for h in hosts:
            servers.append(
                {"name": h["name"], "address": h["address"], "port": h["port"], "check": h["name"] not in no_check}
            )
        data = {
            "name": name,
            "dir": directory,
            "config": os.path.join(directory, "haproxy.cfg"),
            "pidfile": os.path.join(directory, "haproxy.pid"),
            "log": os.path.join(directory, "haproxy.log"),
            "binary": HAPROXY,
            "backend": backend,
            "admin_socket": sock,
            "admin_tcp": None,
            "frontend_url": None,
            "check": {"inter_ms": check_inter_ms, "rise": rise, "fall": fall},
            "retries": retries,
            "redispatch": redispatch,
            "timeout_server_s": timeout_server_s,
            "servers": servers,
            "pid": None,
        }
        return cls(data)

    @classmethod
    def from_dict(cls, data):
        return cls(dict(data))

    def to_dict(self):
        return dict(self.data)

    name = property(lambda self: self.data["name"])
    backend = property(lambda self: self.data["backend"])
    admin_socket = property(lambda self: self.data["admin_socket"])
    admin_tcp = property(lambda self: self.data["admin_tcp"])
    frontend_url = property(lambda self: self.data["frontend_url"])
    pid = property(lambda self: self.data["pid"])

    @property
    def sockets(self):
        return [s for s in (self.data["admin_socket"], self.data["admin_tcp"]) if s]

    def config_text(self, frontend_port, admin_port):
        d = self.data
        chk = d["check"]
        lines = [
            "# Generated by demo/fleet.py for the zerodowntime.rollout demo fleet. Do not edit.",
            "global",
            "    pidfile %s" % d["pidfile"],
        ]
        if d["admin_socket"]:
            lines.append("    stats socket %s mode 600 level admin" % d["admin_socket"])
        lines += [
            "    stats socket ipv4@127.0.0.1:%d level admin" % admin_port,
            "    stats timeout 30s",
            "    maxconn 4096",
            "",
            "defaults",
            "    mode http",
            "    option http-keep-alive",
            "    timeout connect 2s",
            "    timeout client %ds" % d["timeout_server_s"],
            "    timeout server %ds" % d["timeout_server_s"],
            "    timeout http-request 10s",
            "    timeout http-keep-alive 10s",
            "    timeout queue 10s",
            "    timeout check 2s",
            # A request whose connection to the chosen server failed is retried on another server at
            # once (redispatch 1): it never reached the application, so retrying is safe, and a host
            # that stopped a moment before its health check noticed costs no client an error. Only
            # conn-failure: empty-response would re-send requests the app did receive (a session cut
            # by "shutdown sessions" would run again elsewhere). retries 0 turns this off (README).
            "    retries %d" % d["retries"],
        ]
        if d["retries"] > 0:
            lines.append("    retry-on conn-failure")
            if d["redispatch"]:
                lines.append("    option redispatch 1")
        lines += [
            "",
            "frontend fe_%s" % d["name"],
            "    bind 127.0.0.1:%d" % frontend_port,
            "    default_backend %s" % d["backend"],
            "",
            "backend %s" % d["backend"],
            "    balance roundrobin",
            "    option httpchk GET /health",
            "    http-check expect status 200",
        ]
        for s in d["servers"]:
            opts = " check inter %d rise %d fall %d" % (chk["inter_ms"], chk["rise"], chk["fall"]) if s["check"] else ""
            lines.append("    server %s %s:%d%s" % (s["name"], s["address"], s["port"], opts))
        return "\n".join(lines) + "\n"

    def start(self, timeout=30.0):
        """Start HAProxy (retrying on a port race) and wait until its admin sockets answer."""
        d = self.data
        os.makedirs(d["dir"], exist_ok=True)
        last = ""
        for _attempt in range(5):
            fport = free_port()
            aport = free_port(avoid=(fport,))
            with open(d["config"], "w") as f:
                f.write(self.config_text(fport, aport))
            if d["admin_socket"] and os.path.exists(d["admin_socket"]):
                os.unlink(d["admin_socket"])
            with open(d["log"], "ab") as log:
                proc = subprocess.run(
                    [d["binary"], "-D", "-f", d["config"], "-p", d["pidfile"]],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    timeout=timeout,
                    check=False,
                    start_new_session=True,
                )
            if proc.returncode == 0:
                break
            last = _tail(d["log"])
            if "bind" not in last.lower():
                raise FleetError("haproxy %s failed to start (rc=%d):\n%s" % (d["name"], proc.returncode, last))
        else:
            raise FleetError("haproxy %s could not bind its ports:\n%s" % (d["name"], last))
        d["pid"] = wait_until(lambda: read_pidfile(d["pidfile"]), timeout, what="haproxy pidfile")
        d["frontend_url"] = "http://127.0.0.1:%d" % fport
        d["admin_tcp"] = "tcp://127.0.0.1:%d" % aport
        for sock in self.sockets:
            wait_until(lambda s=sock: self._answers(s), timeout, what="haproxy admin socket %s" % sock)
        return self

    @staticmethod
    def _answers(sock):
        try:
            return "Name: HAProxy" in admin_command(sock, "show info", timeout=1)
        except OSError:
            return False

    def running(self):
        pid = self.data.get("pid") or read_pidfile(self.data["pidfile"])
        return bool(pid) and pid_alive(pid) and any("haproxy" in a for a in proc_cmdline(pid))

    def stop(self, timeout=10.0):
        pid = self.data.get("pid") or read_pidfile(self.data["pidfile"])
        result = terminate(pid, timeout, expect=self.data["config"]) if pid else "not running"
        for path in (self.data["pidfile"], self.data["admin_socket"]):
            if path and os.path.exists(path) and not self.running():
                os.unlink(path)
        return result

    def admin(self, command, sock=None):
        return admin_command(sock or self.sockets[0], command)

    def servers(self, sock=None):
        return server_stats(sock or self.sockets[0], self.backend)

    def wait_servers(self, timeout=30.0, want=None, sock=None):
        """Poll ``show stat`` until every server (or those in ``want``: {name: status}) is steady.
        Steady means ``UP`` or ``no check``; returns the final server stats."""

        def ok():
            stats = self.servers(sock)
            names = want or {s["name"]: None for s in self.data["servers"]}
            for n, status in names.items():
                cur = stats.get(n, {}).get("status")
                if (status is None and not _steady(cur)) or (status is not None and cur != status):
                    return None
            return stats

        try:
            return wait_until(ok, timeout, what="servers steady on haproxy %s" % self.name)
        except FleetError as e:
            raise FleetError("%s; last: %s" % (e, self.servers(sock))) from None


# --------------------------------------------------------------------------- the fleet


class Fleet:
    """A running demo fleet, described by ``DIR/fleet.json``. Create with :meth:`up`, reopen with
    :meth:`load`, tear down with :meth:`down` (idempotent)."""

    def __init__(self, data):
        self.data = data
        self.lbs = [HAProxyInstance.from_dict(lb) for lb in data.get("lbs", [])]

    # ---- construction
    @classmethod
    def up(
        cls,
        directory,
        hosts=4,
        version="v1",
        check_inter_ms=500,
        rise=2,
        fall=2,
        no_check=False,
        port=DEFAULT_PORT,
        first_address=FIRST_ADDRESS,
        startup_delay=0.0,
        latency=0.0,
        grace=30.0,
        retries=3,
        redispatch=True,
        python=None,
        timeout=60.0,
    ):
        """Lay out, start and wait for a fleet. ``no_check``: True (no server is health-checked) or a
        list of host names. ``port=0`` picks a port free on every host address (for parallel runs)."""
        directory = os.path.abspath(directory)
        if os.path.exists(os.path.join(directory, "fleet.json")):
            old = cls.load(directory)
            if old.running_pids():
                raise FleetError("a fleet is already running in %s; run 'down' first" % directory)
        os.makedirs(directory, exist_ok=True)
        for stale in ("hosts", "artifacts") + tuple(n for n in os.listdir(directory) if n.startswith("lb")):
            shutil.rmtree(os.path.join(directory, stale), ignore_errors=True)  # a fresh fleet, no old releases
        python = python or sys.executable
        addresses = [host_address(first_address, i) for i in range(hosts)]
        if not port:
            port = free_port(addresses)
        busy = [a for a in addresses if not _port_free(a, port)]
        if busy:
            raise FleetError("port %d is already in use on %s (another fleet?); use --port 0" % (port, busy))
        artifact, sha = build_artifact(version, os.path.join(directory, "artifacts"))
        host_list = []
        app_args = ["--startup-delay", str(startup_delay), "--latency", str(latency), "--grace", str(grace)]
        for i, addr in enumerate(addresses):
            name = "app%d" % (i + 1)
            dp = os.path.join(directory, "hosts", name)
            install_release(dp, artifact, version)
            start = [python, APP_CTL, "start", dp, addr, str(port), "--"] + app_args
            stop = [python, APP_CTL, "stop", dp, addr, str(port), "--timeout", str(grace + 5)]
            status = [python, APP_CTL, "status", dp, addr, str(port)]
            host_list.append(
                {
                    "name": name,
                    "address": addr,
                    "port": port,
                    "url": "http://%s:%d" % (addr, port),
                    "deploy_path": dp,
                    "pidfile": os.path.join(dp, "shared", "run", "app.pid"),
                    "log": os.path.join(dp, "shared", "log", "app.log"),
                    "start_argv": start,
                    "stop_argv": stop,
                    "status_argv": status,
                    "start_command": shlex.join(start),
                    "stop_command": shlex.join(stop),
                    "status_command": shlex.join(status),
                }
            )
        no_check_names = [h["name"] for h in host_list] if no_check is True else list(no_check or ())
        data = {
            "schema": SCHEMA,
            "dir": directory,
            "python": python,
            "app_ctl": APP_CTL,
            "version": version,
            "artifacts": {version: {"path": artifact, "sha256": sha}},
            "backend": BACKEND,
            "check": {"inter_ms": check_inter_ms, "rise": rise, "fall": fall},
            "no_check": no_check_names,
            "app_args": app_args,
            "hosts": host_list,
            "lbs": [],
        }
        fleet = cls(data)
        fleet.save()  # before anything starts, so that 'down' can clean up a half-started fleet
        try:
            for h in host_list:
                fleet.start_host(h["name"])
            fleet.add_lb(
                "lb1",
                check_inter_ms=check_inter_ms,
                rise=rise,
                fall=fall,
                no_check=no_check_names,
                retries=retries,
                redispatch=redispatch,
                timeout=timeout,
            )
            fleet.wait_ready(timeout=timeout + startup_delay)
        except BaseException:
            fleet.down(timeout=5)
            raise
        return fleet

    @classmethod
    def load(cls, directory):
        path = os.path.join(os.path.abspath(directory), "fleet.json")
        try:
            with open(path) as f:
                return cls(json.load(f))
        except FileNotFoundError:
            raise FleetError("no fleet in %s (fleet.json missing)" % directory) from None

    def save(self):
        self.data["lbs"] = [lb.to_dict() for lb in self.lbs]
        first = self.lbs[0] if self.lbs else None
        self.data.update(
            {
                "frontend_url": first.frontend_url if first else None,
                "admin_socket": first.admin_socket if first else None,
                "admin_tcp": first.admin_tcp if first else None,
                "sockets": first.sockets if first else [],
                "haproxy_pid": first.pid if first else None,
            }
        )
        _write_json(os.path.join(self.dir, "fleet.json"), self.data)

    # ---- accessors
    dir = property(lambda self: self.data["dir"])
    backend = property(lambda self: self.data["backend"])
    hosts = property(lambda self: self.data["hosts"])
    frontend_url = property(lambda self: self.data.get("frontend_url"))
    admin_socket = property(lambda self: self.data.get("admin_socket"))
    admin_tcp = property(lambda self: self.data.get("admin_tcp"))
    sockets = property(lambda self: self.data.get("sockets", []))
    lb = property(lambda self: self.lbs[0])

    def host(self, name):
        for h in self.hosts:
            if h["name"] == name:
                return h
        raise FleetError("no host %r in this fleet" % name)

    # ---- load balancers
    def add_lb(self, name, hosts=None, timeout=30.0, **options):
        """Start another independent HAProxy in front of ``hosts`` (default: all). Recorded in
        fleet.json so that ``down`` stops it too. Returns the :class:`HAProxyInstance`."""
        if any(lb.name == name for lb in self.lbs):
            raise FleetError("load balancer %r already exists" % name)
        options.setdefault("check_inter_ms", self.data["check"]["inter_ms"])
        options.setdefault("rise", self.data["check"]["rise"])
        options.setdefault("fall", self.data["check"]["fall"])
        options.setdefault("no_check", self.data["no_check"])
        lb = HAProxyInstance.create(os.path.join(self.dir, name), hosts or self.hosts, name=name, **options)
        self.lbs.append(lb)
        self.save()
        lb.start(timeout=timeout)
        self.save()
        return lb

    def remove_lb(self, name, timeout=10.0):
        for lb in list(self.lbs):
            if lb.name == name:
                lb.stop(timeout)
                self.lbs.remove(lb)
                self.save()
                return
        raise FleetError("no load balancer %r" % name)

    def admin(self, command, sock=None):
        return admin_command(sock or self.sockets[0], command)

    def servers(self, sock=None):
        return server_stats(sock or self.sockets[0], self.backend)

    def wait_ready(self, timeout=30.0):
        """Every app answers /health 200 and every server is steady on every load balancer."""
        for h in self.hosts:
            url = h["url"] + "/health"
            try:
                wait_until(lambda u=url: http_get(u)[0] == 200, timeout, what="%s healthy" % url)
            except FleetError as e:
                raise FleetError("%s\n%s" % (e, _tail(h["log"]))) from None
        for lb in self.lbs:
            lb.wait_servers(timeout)
        return self

    # ---- hosts
    def _ctl(self, argv, timeout=60.0):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        return proc.returncode, (proc.stdout + proc.stderr).strip()

    def start_host(self, name):
        h = self.host(name)
        rc, out = self._ctl(h["start_argv"])
        if rc != 0:
            raise FleetError("starting %s failed (rc=%d): %s" % (name, rc, out))
        return out

    def stop_host(self, name):
        h = self.host(name)
        rc, out = self._ctl(h["stop_argv"])
        if rc != 0:
            raise FleetError("stopping %s failed (rc=%d): %s" % (name, rc, out))
        return out

    def host_pid(self, name):
        pid = read_pidfile(self.host(name)["pidfile"])
        return pid if pid and pid_alive(pid) else None

    def deploy(self, name, version, activate=True):
        """Install ``version`` (building its artifact if needed) on host ``name``; switch ``current``
        if ``activate``. Does not restart the app: that is the rolling update's job."""
        art = self.data["artifacts"].get(version)
        if not art:
            path, sha = build_artifact(version, os.path.join(self.dir, "artifacts"))
            art = self.data["artifacts"][version] = {"path": path, "sha256": sha}
            self.save()
        return install_release(self.host(name)["deploy_path"], art["path"], version, activate)

    def running_pids(self):
        """{label: pid} of every process of this fleet that is still alive."""
        out = {}
        for h in self.hosts:
            pid = read_pidfile(h["pidfile"])
            if pid and pid_alive(pid):
                out[h["name"]] = pid
        for lb in self.lbs:
            pid = lb.data.get("pid") or read_pidfile(lb.data["pidfile"])
            if pid and pid_alive(pid):
                out["haproxy:" + lb.name] = pid
        return out

    def status(self):
        """A JSON-able report: per host pid/health/version, per load balancer the server states."""
        report = {"dir": self.dir, "frontend_url": self.frontend_url, "hosts": [], "lbs": []}
        for h in self.hosts:
            code, body = http_get(h["url"] + "/health", timeout=1)
            vcode, vbody = http_get(h["url"] + "/version", timeout=1)
            link = os.path.join(h["deploy_path"], "current")
            report["hosts"].append(
                {
                    "name": h["name"],
                    "url": h["url"],
                    "pid": self.host_pid(h["name"]),
                    "health": code,
                    "version": vbody.strip() if vcode == 200 else None,
                    "current": os.readlink(link) if os.path.islink(link) else None,
                }
            )
        for lb in self.lbs:
            entry = {"name": lb.name, "pid": lb.pid, "running": lb.running(), "sockets": lb.sockets}
            try:
                entry["servers"] = lb.servers() if entry["running"] else {}
            except OSError as e:
                entry["error"] = str(e)
            report["lbs"].append(entry)
        return report

    def down(self, timeout=None):
        """Stop every load balancer and app host of this fleet. Safe to call repeatedly."""
        errors = []
        for lb in self.lbs:
            try:
                lb.stop(timeout or 10.0)
            except (OSError, FleetError) as e:
                errors.append("haproxy %s: %s" % (lb.name, e))
        for h in self.hosts:
            pid = read_pidfile(h["pidfile"])
            if not pid:
                continue
            try:
                terminate(pid, timeout or 35.0, expect=os.path.join(h["deploy_path"], "current"))
                if not pid_alive(pid) and os.path.exists(h["pidfile"]):
                    os.unlink(h["pidfile"])
            except (OSError, FleetError) as e:
                errors.append("%s: %s" % (h["name"], e))
        left = self.running_pids()
        if errors or left:
            raise FleetError("fleet down incomplete: %s; still running: %s" % ("; ".join(errors), left))


# --------------------------------------------------------------------------- CLI


def _print_status(report):
    print("frontend %s" % report["frontend_url"])
    for h in report["hosts"]:
        print(
            "  %-6s %-22s pid=%-7s health=%-4s version=%-6s current=%s"
            % (h["name"], h["url"], h["pid"], h["health"], h["version"], h["current"])
        )
    for lb in report["lbs"]:
        print(
            "haproxy %s pid=%s running=%s sockets=%s" % (lb["name"], lb["pid"], lb["running"], " ".join(lb["sockets"]))
        )
        for name, s in sorted(lb.get("servers", {}).items()):
            print("  %-6s %-10s weight=%-3d sessions=%d" % (name, s["status"], s["weight"], s["scur"]))


def main(argv=None):
    p = argparse.ArgumentParser(prog="fleet.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build, lay out and start the fleet; wait until every server is UP")
    up.add_argument("--dir", required=True)
    up.add_argument("--hosts", type=int, default=4)
    up.add_argument("--version", default="v1")
    up.add_argument("--check-inter-ms", type=int, default=500)
    up.add_argument("--rise", type=int, default=2)
    up.add_argument("--fall", type=int, default=2)
    up.add_argument(
        "--no-check", nargs="*", metavar="HOST", help="servers without health checks: all, or the hosts named"
    )
    up.add_argument("--port", type=int, default=DEFAULT_PORT, help="app port on every host (0: pick a free one)")
    up.add_argument("--first-address", default=FIRST_ADDRESS)
    up.add_argument("--startup-delay", type=float, default=0.0)
    up.add_argument("--latency", type=float, default=0.0)
    up.add_argument("--grace", type=float, default=30.0)
    up.add_argument("--retries", type=int, default=3, help="haproxy retries (0: no retry, no redispatch)")
    up.add_argument("--no-redispatch", action="store_true")
    up.add_argument("--lbs", type=int, default=1, help="number of independent haproxy instances")
    up.add_argument("--timeout", type=float, default=60.0)
    for name, helptext in (("down", "stop everything (idempotent)"), ("status", "show hosts and haproxy state")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("--dir", required=True)
        if name == "status":
            sp.add_argument("--json", action="store_true")
    ba = sub.add_parser("build-artifact", help="write app-<version>.tar.gz and print its sha256")
    ba.add_argument("--version", required=True)
    ba.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        if args.cmd == "up":
            no_check = False if args.no_check is None else (args.no_check or True)
            fleet = Fleet.up(
                args.dir,
                hosts=args.hosts,
                version=args.version,
                check_inter_ms=args.check_inter_ms,
                rise=args.rise,
                fall=args.fall,
                no_check=no_check,
                port=args.port,
                first_address=args.first_address,
                startup_delay=args.startup_delay,
                latency=args.latency,
                grace=args.grace,
                retries=args.retries,
                redispatch=not args.no_redispatch,
                timeout=args.timeout,
            )
            try:
                for i in range(2, args.lbs + 1):
                    fleet.add_lb("lb%d" % i, retries=args.retries, redispatch=not args.no_redispatch)
                fleet.wait_ready(args.timeout)
            except BaseException:
                fleet.down(timeout=5)
                raise
            _print_status(fleet.status())
            print("fleet.json: %s" % os.path.join(fleet.dir, "fleet.json"))
        elif args.cmd == "down":
            if not os.path.exists(os.path.join(os.path.abspath(args.dir), "fleet.json")):
                print("no fleet in %s: nothing to stop" % args.dir)
                return 0
            Fleet.load(args.dir).down()
            print("fleet in %s stopped" % args.dir)
        elif args.cmd == "status":
            report = Fleet.load(args.dir).status()
            if args.json:
                print(json.dumps(report, indent=2, sort_keys=True))
            else:
                _print_status(report)
            running = all(h["pid"] for h in report["hosts"]) and all(lb["running"] for lb in report["lbs"])
            return 0 if running else 3
        elif args.cmd == "build-artifact":
            path, sha = build_artifact(args.version, args.out)
            print("%s  %s" % (sha, path))
    except FleetError as e:
        print("fleet.py: error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
