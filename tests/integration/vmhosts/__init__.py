"""VM-like test hosts for the real-host tests: each its own systemd, filesystem view, hostname, sshd and address.

A :class:`Fleet` boots :class:`Host` objects. Every host is a real systemd running as PID 1 of its own pid, mount
and uts namespaces (``unshare --fork --pid --mount --uts --mount-proc``, PID 1 script ``host-init.sh`` next to this
file), in the machine's network namespace with its own loopback address (127.0.1.x: tests/fixtures/fleet/ and the
other tests use 127.0.0.x). Like a VM, a host has:

- its own ``/etc``, ``/var`` and ``/root`` (copy-on-write overlays of the machine's, upper layer in the host's
  directory), ``/srv`` and ``/home`` (bind mounts of empty per-host directories), private tmpfs on ``/run``,
  ``/tmp`` and ``/var/tmp``, a private ``/dev``, its own hostname, machine-id, cgroup tree and SSH host key;
- sshd (Debian's ``ssh.service``) listening on its address and a free port only;
- a ``deploy`` user (created inside the host, so the machine's /etc/passwd is untouched) with an authorized key
  generated per fleet and passwordless sudo (``/etc/sudoers.d/zdt-deploy``);
- app hosts: the demo app as ``app.service`` (``ExecStart`` from ``/srv/app/current``, SIGTERM, ``TimeoutStopSec``),
  release v1 installed in ``/srv/app`` and release artifacts in ``/srv/artifacts``;
- the LB host: Debian's ``haproxy.service`` with the demo fleet's HAProxy configuration, its admin socket at the
  role's default path ``/run/haproxy/admin.sock`` (root only) and a frontend on its own address.

The controller reaches the hosts with ``ansible-playbook`` over SSH (:meth:`Fleet.write_inventory`,
:meth:`Fleet.ansible_env`): user ``deploy``, the fleet's key, host keys checked against a generated known_hosts.

Safety. A systemd started without private ``/tmp`` and ``/var/tmp`` empties the machine's ``/tmp`` (where CI's
clone lives). ``host-init.sh`` mounts them before it execs systemd and refuses to exec it unless they are tmpfs and
the fleet's probe files in the machine's ``/tmp`` and ``/var/tmp`` are invisible; the hosts' tmpfiles.d
configurations that touch ``/tmp`` are masked as well. At teardown the fleet checks that the probes survived.

Teardown ends every host by the pid of its PID 1 (SIGKILL from outside; the kernel then kills the whole pid
namespace and the mounts go with it), checked against the start time recorded when it was started, never by name:
- :meth:`Fleet.stop` (the fixture's finalizer), which also removes the hosts' cgroups and checks the probes;
- an ``atexit`` hook and SIGTERM/SIGHUP handlers installed while a fleet runs;
- ``setpriv --pdeathsig KILL`` and ``unshare --kill-child``: if the test process dies (even by SIGKILL), its
  ``unshare`` children get SIGKILL and take their PID 1s with them;
- a pidfile per host in :data:`REGISTRY`; :func:`sweep_stale` (run by :meth:`Fleet.start`) ends the hosts of
  runs whose test process is gone, and only those (other test sessions may run side by side).
Start fleets from the main thread: the parent-death signal follows the thread that started the host.
"""

import atexit
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.fixtures.fleet.haproxy import HAProxyInstance  # noqa: E402
from tests.fixtures.fleet.release import build_artifact, install_release  # noqa: E402
from tests.fixtures.fleet.system import free_port, http_get  # noqa: E402

INIT = os.path.join(HERE, "host-init.sh")
REGISTRY = os.environ.get("ZDT_VMHOSTS_REGISTRY", "/run/zdt-vmhosts")
SYSTEMD = "/lib/systemd/systemd"
SSHD = "/usr/sbin/sshd"
SUDO = "/usr/bin/sudo"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
HOST_PYTHON = "/usr/bin/python3"
CGROUP_PARENT = "zdt-vmhosts"
USER = "deploy"
BACKEND = "app"
ADMIN_SOCKET = "/run/haproxy/admin.sock"
APP_PATH = "/srv/app"
ARTIFACTS = "/srv/artifacts"
SUDOERS = "/etc/sudoers.d/zdt-deploy"
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Units that would act on the machine rather than on the host (kernel modules, sysctls, udev, the clock, binfmt,
# device nodes), or that only cost boot time here. The host boots zdt-host.target, which requires sysinit.target.
MASKED_UNITS = (
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-modules-load.service",
    "systemd-sysctl.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "proc-sys-fs-binfmt_misc.mount",
    "systemd-tmpfiles-setup-dev.service",
    "systemd-tmpfiles-clean.timer",
    "kmod-static-nodes.service",
    "systemd-remount-fs.service",
    "systemd-timesyncd.service",
    "systemd-repart.service",
    "systemd-pcrphase.service",
    "systemd-pcrphase-sysinit.service",
    "systemd-firstboot.service",
    "systemd-hwdb-update.service",
    "systemd-pstore.service",
    "systemd-random-seed.service",
    "systemd-ask-password-console.path",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-fs-fuse-connections.mount",
    "dev-hugepages.mount",
    "dev-mqueue.mount",
    "systemd-journald-audit.socket",
)
# tmpfiles.d configurations that clean /tmp and /var/tmp at boot ('D /tmp'), or remove files at the machine's /:
# masked in every host in addition to its private tmpfs mounts.
MASKED_TMPFILES = ("tmp.conf", "x11.conf", "systemd-tmp.conf", "legacy.conf")


class VMHostError(Exception):
    """A test host could not be started, reached or torn down."""


# --------------------------------------------------------------------------- requirements


def _mount_fstype(path):
    """The type of the file system mounted exactly at ``path`` (last mount wins), or None."""
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _sep, right = line.partition(" - ")
            fields = left.split()
            if len(fields) > 4 and fields[4] == path and right:
                found = right.split()[0]
    return found


def cgroup_hierarchies():
    """Directories of the cgroup hierarchies a host's systemd uses: the one cgroup2 tree, or (hybrid) the unified
    and name=systemd ones. None when neither layout is found."""
    if _mount_fstype("/sys/fs/cgroup") == "cgroup2":
        return ["/sys/fs/cgroup"]
    hybrid = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"]
    if _mount_fstype(hybrid[0]) == "cgroup2" and _mount_fstype(hybrid[1]) == "cgroup":
        return hybrid
    return None


def missing_requirements():
    """Why this machine cannot run the fleet (empty list: it can)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (namespaces, mounts and a systemd as PID 1 need it)")
    for tool in ("unshare", "nsenter", "setpriv", "ssh", "ssh-keygen", "socat"):
        if not shutil.which(tool):
            missing.append(tool)
    for path, what in (
        (SYSTEMD, "systemd"),
        (SSHD, "sshd (apt-get install openssh-server, or make venv)"),
        (SUDO, "sudo (apt-get install sudo, or make venv)"),
        (HAPROXY, "haproxy"),
        (HOST_PYTHON, "/usr/bin/python3 (the hosts' Python)"),
    ):
        if not os.path.exists(path):
            missing.append(what)
    if os.path.exists("/proc/self/mountinfo") and cgroup_hierarchies() is None:
        missing.append("a cgroup2 or hybrid cgroup layout under /sys/fs/cgroup")
    return missing


# --------------------------------------------------------------------------- processes


def proc_start_time(pid):
    """The start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat), or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError, ValueError):
        return None
    if rest[0] in ("Z", "X"):
        return None
    return int(rest[19])


def _same_process(pid, start):
    return bool(pid) and start is not None and proc_start_time(pid) == start


def _kill(pid, start):
    """SIGKILL ``pid`` if it is still the process that started at ``start``; wait (bounded) until it is gone."""
    if not _same_process(pid, start):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _same_process(pid, start):
        if time.monotonic() > deadline:
            raise VMHostError("pid %d survived SIGKILL for 10 s" % pid)
        time.sleep(0.02)


def _cgroup_empty(path):
    for dirpath, _dirs, files in os.walk(path):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(dirpath, "cgroup.procs")) as f:
                    if f.read().strip():
                        return False
            except OSError:
                pass
    return True


def _remove_cgroup(path):
    """Remove a host's cgroup tree once its processes are gone (bounded wait; cgroups are rmdir'ed bottom-up)."""
    if not path.startswith("/sys/fs/cgroup/") or "/%s/" % CGROUP_PARENT not in path + "/":
        return
    deadline = time.monotonic() + 10
    while os.path.isdir(path) and not _cgroup_empty(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(path))  # the shared parent, once no fleet uses it


def end_record(record):
    """End the host a registry record describes: SIGKILL its PID 1 (and its unshare), remove its cgroups."""
    _kill(record.get("init_pid"), record.get("init_start"))
    _kill(record.get("unshare_pid"), record.get("unshare_start"))
    for cg in record.get("cgroups", []):
        _remove_cgroup(cg)
    for probe in record.get("probes", []):
        if os.path.basename(probe).startswith(".zdt-vmhosts-probe-"):
            with contextlib.suppress(OSError):
                os.unlink(probe)


def sweep_stale(registry=None):
    """End the hosts of test runs whose process is gone (killed runs); returns the names of the hosts ended.
    Hosts of a live test process (this one, or another session running side by side) are left alone."""
    registry = registry or REGISTRY
    ended = []
    try:
        names = sorted(os.listdir(registry))
    except FileNotFoundError:
        return ended
    for name in names:
        if not name.endswith(".json"):
            continue
        path = os.path.join(registry, name)
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if _same_process(record.get("owner_pid"), record.get("owner_start")):
            continue
        end_record(record)
        with contextlib.suppress(OSError):
            os.unlink(path)
        ended.append(record.get("name", name))
    return ended


_LIVE = {}  # id(host) -> host, every host started by this process and not yet ended
_FLEETS = {}  # id(fleet) -> fleet, every fleet started by this process and not yet stopped
_LIVE_LOCK = threading.Lock()
_HANDLERS = {}


def end_all():
    """End every host this process started, and remove its fleets' probe files (atexit, signal handlers)."""
    with _LIVE_LOCK:
        fleets = list(_FLEETS.values())
    for fleet in fleets:
        with contextlib.suppress(Exception):
            fleet.stop()
    with _LIVE_LOCK:
        hosts = list(_LIVE.values())
    for h in hosts:
        with contextlib.suppress(Exception):
            h.kill()


def _on_signal(signum, frame):
    end_all()
    previous = _HANDLERS.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install_handlers():
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        current = signal.getsignal(sig)
        if current is not _on_signal:
            _HANDLERS[sig] = current
            signal.signal(sig, _on_signal)


def _restore_handlers():
    if threading.current_thread() is not threading.main_thread():
        return
    with _LIVE_LOCK:
        if _LIVE:
            return
    for sig, previous in list(_HANDLERS.items()):
        if signal.getsignal(sig) is _on_signal:
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        del _HANDLERS[sig]


atexit.register(end_all)


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


# --------------------------------------------------------------------------- one host


class Host:
    """One VM-like host. ``role`` is ``app`` or ``lb``. Build it through :class:`Fleet`."""

    def __init__(self, fleet, name, role, address):
        self.fleet = fleet
        self.name = name
        self.role = role
        self.address = address
        self.dir = os.path.join(fleet.dir, "hosts", name)
        self.ssh_port = None
        self.app_port = None
        self.frontend_port = None
        self.admin_port = None
        self.init_pid = None
        self.init_start = None
        self.unshare_pid = None
        self.unshare_start = None
        self.cgroups = []
        self.probes = []
        self.record_path = None
        self.host_key_pub = None
        self._proc = None
        self._log = None

    def __repr__(self):
        return "<Host %s %s pid=%s>" % (self.name, self.address, self.init_pid)

    # ---- paths
    def fs(self, path):
        """Where the machine sees the host's ``path`` below /srv or /home (bind-mounted per-host directories)."""
        for top in ("/srv", "/home"):
            if path == top or path.startswith(top + "/"):
                return os.path.join(self.dir, "fs", top[1:], path[len(top) + 1 :]).rstrip("/")
        raise ValueError("only /srv and /home are bind mounts; use root_path() for %s" % path)

    def root_path(self, path):
        """``path`` as the host sees it, reached from the machine through /proc/PID/root (host must run)."""
        if not self.running():
            raise VMHostError("%s is not running" % self.name)
        return "/proc/%d/root%s" % (self.init_pid, path)

    @property
    def url(self):
        return "http://%s:%d" % (self.address, self.app_port)

    @property
    def frontend_url(self):
        return "http://%s:%d" % (self.address, self.frontend_port)

    @property
    def admin_socket(self):
        """The HAProxy admin socket of an LB host, from the machine."""
        return self.root_path(ADMIN_SOCKET)

    # ---- seed
    def seed(self, authorized_key_file, hosts_lines, app_args=()):
        """Write what the host gets on top of the machine's /etc (copied by host-init.sh) and its /srv."""
        seed = os.path.join(self.dir, "seed")
        etc = os.path.join(seed, "etc")
        for d in ("fs/srv", "fs/home"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
            os.chmod(os.path.join(self.dir, d), 0o755)
        _write(os.path.join(etc, "hostname"), self.name + "\n")
        _write(os.path.join(etc, "machine-id"), secrets.token_hex(16) + "\n", 0o444)
        with open("/etc/hosts") as f:
            machine_hosts = f.read()
        _write(os.path.join(etc, "hosts"), machine_hosts.rstrip("\n") + "\n" + hosts_lines)
        units = os.path.join(etc, "systemd", "system")
        os.makedirs(units, exist_ok=True)
        for unit in MASKED_UNITS:
            os.symlink("/dev/null", os.path.join(units, unit))
        tmpfiles = os.path.join(etc, "tmpfiles.d")
        os.makedirs(tmpfiles, exist_ok=True)
        for conf in MASKED_TMPFILES:
            os.symlink("/dev/null", os.path.join(tmpfiles, conf))
        _write(
            os.path.join(etc, "systemd", "system.conf.d", "zdt-vmhost.conf"),
            "[Manager]\n"
            "# the host's cgroup tree is its own; no v1 controller is touched\n"
            "DefaultCPUAccounting=no\nDefaultIOAccounting=no\nDefaultIPAccounting=no\nDefaultBlockIOAccounting=no\n"
            "DefaultMemoryAccounting=no\nDefaultTasksAccounting=no\nDefaultTimeoutStopSec=15s\n",
        )
        _write(
            os.path.join(etc, "systemd", "journald.conf.d", "zdt-vmhost.conf"),
            "[Journal]\nStorage=volatile\nReadKMsg=no\n",
        )
        # dbus.socket: as on a VM, an unprivileged systemctl reaches systemd over the system bus (and is refused
        # by it), instead of failing to connect at all
        wants = ["dbus.socket", "ssh.service", "app.service" if self.role == "app" else "haproxy.service"]
        _write(
            os.path.join(units, "zdt-host.target"),
            "[Unit]\nDescription=VM-like test host %s\nRequires=sysinit.target\nAfter=sysinit.target\n"
            "Wants=%s\nAllowIsolate=yes\n" % (self.name, " ".join(wants)),
        )
        # sshd: Debian's ssh.service with this host's own configuration and host key
        self.ssh_port = free_port((self.address,))
        key = os.path.join(etc, "ssh", "zdt_host_ed25519_key")
        os.makedirs(os.path.dirname(key), exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@" + self.name, "-f", key],
            check=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
        with open(key + ".pub") as f:
            self.host_key_pub = " ".join(f.read().split()[:2])
        _write(
            os.path.join(etc, "ssh", "sshd_config"),
            "# zerodowntime.rollout test host %s\n"
            "ListenAddress %s:%d\n"
            "HostKey /etc/ssh/zdt_host_ed25519_key\n"
            "PermitRootLogin no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\nAuthorizedKeysFile .ssh/authorized_keys\n"
            "# no PAM: there is no logind in the host; accounts have no password ('*'), not a locked one\n"
            "UsePAM no\nUseDNS no\nX11Forwarding no\nPrintMotd no\nAllowUsers %s\n"
            "MaxStartups 64:30:128\nMaxSessions 64\nLoginGraceTime 30\n"
            "Subsystem sftp /usr/lib/openssh/sftp-server\n" % (self.name, self.address, self.ssh_port, USER),
        )
        _write(os.path.join(etc, "sudoers.d", "zdt-deploy"), "%s ALL=(ALL:ALL) NOPASSWD: ALL\n" % USER, 0o440)
        keys = os.path.join(seed, "authorized_keys")
        shutil.copyfile(authorized_key_file, keys)
        _write(os.path.join(seed, "users"), "%s %s\n" % (USER, keys))
        if self.role == "app":
            self._seed_app(units, app_args)
        else:
            self._seed_lb(etc)

    def _seed_app(self, units, app_args):
        self.app_port = free_port((self.address,))
        argv = [HOST_PYTHON, APP_PATH + "/current/app.py", "--bind", self.address, "--port", str(self.app_port)]
        argv += list(app_args)
        _write(
            os.path.join(units, "app.service"),
            "[Unit]\nDescription=zerodowntime.rollout demo app\nAfter=network.target\n\n"
            "[Service]\nType=simple\n"
            "ExecStart=%s\n"
            "WorkingDirectory=%s\n"
            "# the app stops gracefully on SIGTERM: no new connections, requests in flight finish\n"
            "KillSignal=SIGTERM\nTimeoutStopSec=30\nRestart=no\n\n"
            "[Install]\nWantedBy=multi-user.target\n" % (shlex.join(argv), APP_PATH),
        )

    def _seed_lb(self, etc):
        self.frontend_port = free_port((self.address,))
        self.admin_port = free_port((self.address,), avoid=(self.frontend_port,))
        servers = [{"name": h.name, "address": h.address, "port": h.app_port} for h in self.fleet.app_hosts]
        lb = HAProxyInstance.create(
            os.path.dirname(ADMIN_SOCKET),
            servers,
            name=self.name,
            backend=BACKEND,
            **self.fleet.haproxy_options,
        )
        text = lb.config_text(self.frontend_port, self.admin_port)
        text = text.replace("bind 127.0.0.1:", "bind %s:" % self.address)
        text = text.replace("ipv4@127.0.0.1:", "ipv4@%s:" % self.address)
        assert "127.0.0.1" not in text, text
        _write(os.path.join(etc, "haproxy", "haproxy.cfg"), text)

    # ---- life cycle
    def start(self, probes):
        """Start the host's PID 1 (does not wait for the boot: :meth:`wait_booted`)."""
        hierarchies = cgroup_hierarchies()
        if not hierarchies:
            raise VMHostError("no usable cgroup layout under /sys/fs/cgroup")
        leaf = "%s-%s" % (self.fleet.token, self.name)
        self.cgroups = [os.path.join(h, CGROUP_PARENT, leaf) for h in hierarchies]
        for cg in self.cgroups:
            os.makedirs(cg, exist_ok=True)
        os.makedirs(REGISTRY, mode=0o700, exist_ok=True)
        self.record_path = os.path.join(REGISTRY, "%s.json" % leaf)
        argv = ["setpriv", "--pdeathsig", "KILL", "--", "unshare", "--fork", "--pid", "--mount", "--uts"]
        argv += ["--mount-proc", "--kill-child=SIGKILL", INIT, self.dir, self.name, ":".join(self.cgroups)]
        self.probes = list(probes)
        argv += self.probes
        self._log = open(os.path.join(self.dir, "init.log"), "ab")  # noqa: SIM115 - closed in kill()
        with _LIVE_LOCK:
            _LIVE[id(self)] = self
        self._proc = subprocess.Popen(  # noqa: S603
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={"PATH": HOST_PATH, "LANG": "C.UTF-8"},
        )
        self.unshare_pid = self._proc.pid
        self.unshare_start = proc_start_time(self.unshare_pid)
        self._save_record()
        deadline = time.monotonic() + 10
        while self.init_pid is None:
            try:
                with open("/proc/%d/task/%d/children" % (self.unshare_pid, self.unshare_pid)) as f:
                    children = f.read().split()
            except OSError:
                children = []
            if children:
                self.init_pid = int(children[0])
                self.init_start = proc_start_time(self.init_pid)
                break
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise VMHostError("%s: unshare gave no PID 1 (rc=%s):\n%s" % (self.name, self._proc.poll(), self.log()))
            time.sleep(0.01)
        self._save_record()

    def _save_record(self):
        record = {
            "name": self.name,
            "dir": self.dir,
            "owner_pid": os.getpid(),
            "owner_start": proc_start_time(os.getpid()),
            "unshare_pid": self.unshare_pid,
            "unshare_start": self.unshare_start,
            "init_pid": self.init_pid,
            "init_start": self.init_start,
            "cgroups": self.cgroups,
            "probes": self.probes,
        }
        tmp = self.record_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.replace(tmp, self.record_path)

    def running(self):
        return _same_process(self.init_pid, self.init_start)

    def log(self):
        out = []
        for name in ("init.log", "console.log"):
            with contextlib.suppress(OSError), open(os.path.join(self.dir, name), errors="replace") as f:
                out.append("--- %s\n%s" % (name, "".join(f.readlines()[-40:])))
        return "\n".join(out)

    def wait_booted(self, timeout=60.0):
        """Wait until systemd finished booting and the host's units are active; raise with its logs if not."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            if not self.running():
                raise VMHostError("%s: PID 1 exited during boot\n%s" % (self.name, self.log()))
            proc = self.run(
                ["systemctl", "is-system-running", "--wait"], check=False, timeout=deadline - time.monotonic()
            )
            state = proc.stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.1)
        failed = self.run(["systemctl", "--failed", "--no-legend", "--plain"], check=False).stdout.strip()
        units = ["ssh.service", "app.service" if self.role == "app" else "haproxy.service"]
        inactive = [u for u in units if self.show(u, "ActiveState")["ActiveState"] != "active"]
        if state != "running" or failed or inactive:
            details = "\n".join(self.journal(u) for u in inactive or units)
            raise VMHostError(
                "%s did not boot cleanly: state %r, failed units %r, inactive %r\n%s\n%s"
                % (self.name, state, failed, inactive, details, self.log())
            )
        with socket.create_connection((self.address, self.ssh_port), timeout=5) as s:
            banner = s.recv(64)
        if not banner.startswith(b"SSH-"):
            raise VMHostError("%s: no SSH banner on %s:%d: %r" % (self.name, self.address, self.ssh_port, banner))

    def kill(self):
        """End the host: SIGKILL of its PID 1 from outside (its pid namespace and mounts go with it), by pid."""
        try:
            end_record(
                {
                    "init_pid": self.init_pid,
                    "init_start": self.init_start,
                    "unshare_pid": self.unshare_pid,
                    "unshare_start": self.unshare_start,
                    "cgroups": self.cgroups,
                }
            )
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=10)
            if self.record_path:
                with contextlib.suppress(OSError):
                    os.unlink(self.record_path)
        finally:
            with _LIVE_LOCK:
                _LIVE.pop(id(self), None)
            if self._log:
                self._log.close()
                self._log = None

    # ---- inside the host
    def run(self, argv, check=True, timeout=30.0, input=None):
        """Run ``argv`` as root inside the host (its mount, uts and pid namespaces); returns CompletedProcess."""
        if not self.running():
            raise VMHostError("%s is not running" % self.name)
        cmd = ["nsenter", "-t", str(self.init_pid), "-m", "-u", "-p", "--"] + list(argv)
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            timeout=max(timeout, 1.0),
            check=False,
            env={"PATH": HOST_PATH, "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"},
        )
        if check and proc.returncode != 0:
            raise VMHostError(
                "%s: %s exited %d: %s"
                % (self.name, shlex.join(argv), proc.returncode, (proc.stderr or proc.stdout)[-2000:])
            )
        return proc

    def show(self, unit, *props):
        """``systemctl show`` properties of ``unit`` as a dict (``MainPID``, ``ActiveState``, ...)."""
        args = ["systemctl", "show", unit]
        for p in props:
            args += ["-p", p]
        out = self.run(args).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def main_pid(self, unit="app.service"):
        return int(self.show(unit, "MainPID")["MainPID"])

    def journal(self, unit, lines=30):
        proc = self.run(["journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-q"], check=False)
        return "--- journal of %s on %s\n%s" % (unit, self.name, proc.stdout + proc.stderr)

    def version(self):
        """What the app answers on /version (None when it does not answer)."""
        code, body = http_get(self.url + "/version")
        return body.strip() if code == 200 else None


# --------------------------------------------------------------------------- the fleet


class Fleet:
    """App hosts ``app1..appN`` and LB hosts ``lb1..`` on 127.0.1.x, booted in parallel.

    ``directory`` should be short (unix socket paths of SSH control masters live below it)."""

    def __init__(self, directory, app_hosts=2, lb_hosts=1, version="v1", first_octet=None, app_args=(), **haproxy):
        if app_hosts < 1 or lb_hosts < 1:
            raise ValueError("a fleet needs at least one app host and one LB host")
        self.dir = os.path.abspath(directory)
        self.token = secrets.token_hex(4)
        self.version = version
        self.app_args = list(app_args) or ["--grace", "20"]
        self.haproxy_options = {"check_inter_ms": 200, "rise": 2, "fall": 2, "retries": 0}
        self.haproxy_options.update(haproxy)
        # 127.0.1.x: loopback on Linux, and no other test uses it. A random block of 16 addresses keeps fleets of
        # test sessions running side by side apart; their ports are picked free anyway.
        base = first_octet if first_octet is not None else 16 * secrets.randbelow(15) + 16
        total = app_hosts + lb_hosts
        if base < 2 or base + total > 254:
            raise ValueError("addresses 127.0.1.%d.. do not fit" % base)
        self.app_hosts = [Host(self, "app%d" % (i + 1), "app", "127.0.1.%d" % (base + i)) for i in range(app_hosts)]
        self.lb_hosts = [
            Host(self, "lb%d" % (i + 1), "lb", "127.0.1.%d" % (base + app_hosts + i)) for i in range(lb_hosts)
        ]
        self.hosts = self.app_hosts + self.lb_hosts
        self.key = os.path.join(self.dir, "ssh", "id_ed25519")
        self.known_hosts = os.path.join(self.dir, "ssh", "known_hosts")
        self.artifacts = {}  # version -> (path on the hosts, sha256)
        self.probes = []
        self.started = False

    @property
    def lb(self):
        return self.lb_hosts[0]

    def host(self, name):
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    # ---- life cycle
    def start(self, timeout=90.0):
        """Lay out, start and wait for every host; on any failure everything started is ended again."""
        missing = missing_requirements()
        if missing:
            raise VMHostError("cannot run VM-like hosts here: missing %s" % ", ".join(missing))
        sweep_stale()
        os.makedirs(os.path.join(self.dir, "ssh"), exist_ok=True)
        self.started = True
        with _LIVE_LOCK:
            _FLEETS[id(self)] = self
        _install_handlers()
        try:
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "zdt-controller", "-f", self.key],
                check=True,
                stdin=subprocess.DEVNULL,
                capture_output=True,
            )
            hosts_lines = "".join("%s %s\n" % (h.address, h.name) for h in self.hosts)
            for h in self.app_hosts:  # app ports first: the LB configuration names them
                h.seed(self.key + ".pub", hosts_lines, self.app_args)
                self._install_app(h)
            for h in self.lb_hosts:
                h.seed(self.key + ".pub", hosts_lines)
            with open(self.known_hosts, "w") as f:
                for h in self.hosts:
                    f.write("[%s]:%d %s\n" % (h.address, h.ssh_port, h.host_key_pub))
            self.probes = self._make_probes()
            for h in self.hosts:
                h.start(self.probes)
            deadline = time.monotonic() + timeout
            for h in self.hosts:
                h.wait_booted(max(1.0, deadline - time.monotonic()))
            self.wait_lb_up(timeout=max(5.0, deadline - time.monotonic()))
        except BaseException as exc:
            try:
                self.stop()
            except VMHostError as stop_exc:
                if isinstance(exc, Exception):
                    raise VMHostError("%s\n(and then the teardown: %s)" % (exc, stop_exc)) from exc
            raise
        return self

    def _make_probes(self):
        probes = []
        for d in ("/tmp", "/var/tmp"):
            path = os.path.join(d, ".zdt-vmhosts-probe-%s" % self.token)
            with open(path, "w") as f:
                f.write("a VM-like test host must never see or remove this file\n")
            probes.append(path)
        return probes

    def stop(self):
        """End every host (SIGKILL of each PID 1, by pid), remove their cgroups, and check that the machine's
        /tmp and /var/tmp kept the probe files. Idempotent; raises VMHostError on what went wrong."""
        errors = []
        for h in self.hosts:
            try:
                h.kill()
            except Exception as exc:  # noqa: BLE001 - end the others first, report all
                errors.append("%s: %s" % (h.name, exc))
        with _LIVE_LOCK:
            _FLEETS.pop(id(self), None)
        _restore_handlers()
        lost = [p for p in self.probes if not os.path.exists(p)]
        for p in self.probes:
            with contextlib.suppress(OSError):
                os.unlink(p)
        self.probes = []
        left = [h.name for h in self.hosts if h.running()]
        if left:
            errors.append("still running: %s" % ", ".join(left))
        if lost:
            errors.append("probe files lost from the machine: %s (a host cleaned the machine's /tmp)" % lost)
        if errors:
            raise VMHostError("fleet teardown: " + "; ".join(errors))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- releases
    def build_artifact(self, version, app_py=None):
        """Build ``app-<version>.tar.gz`` and stage it in every app host's /srv/artifacts; (path there, sha256)."""
        out = os.path.join(self.dir, "artifacts")
        kwargs = {"app_py": app_py} if app_py else {}
        path, sha = build_artifact(version, out, **kwargs)
        for h in self.app_hosts:
            dest = h.fs(ARTIFACTS + "/" + os.path.basename(path))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(path, dest)
        self.artifacts[version] = (ARTIFACTS + "/" + os.path.basename(path), sha)
        return self.artifacts[version]

    def _install_app(self, h):
        if self.version not in self.artifacts:
            self.build_artifact(self.version)
        local = os.path.join(self.dir, "artifacts", os.path.basename(self.artifacts[self.version][0]))
        install_release(h.fs(APP_PATH), local, self.version)

    # ---- HAProxy on the LB host
    def haproxy(self, command, lb=None):
        """Send one command to the LB host's admin socket (/run/haproxy/admin.sock inside it) with socat."""
        proc = subprocess.run(
            ["socat", "-t", "5", "STDIO", "UNIX-CONNECT:%s" % (lb or self.lb).admin_socket],
            input=command + "\n",
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if proc.returncode != 0:
            raise VMHostError("socat on %s failed: %s" % ((lb or self.lb).name, proc.stderr))
        return proc.stdout

    def server_status(self, lb=None):
        """``{server: status}`` of the backend, read from the LB host's admin socket (``show stat``)."""
        lines = [ln for ln in self.haproxy("show stat %s 4 -1" % BACKEND, lb).splitlines() if ln.strip()]
        if not lines or not lines[0].startswith("# "):
            raise VMHostError("not a show stat answer: %r" % lines[:2])
        header = lines[0][2:].split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") == BACKEND:
                out[row["svname"]] = row["status"]
        return out

    def wait_lb_up(self, timeout=30.0):
        """Wait until every LB host reports every app host UP; returns the last status."""
        deadline = time.monotonic() + timeout
        want = {h.name: "UP" for h in self.app_hosts}
        last = None
        while True:
            for lb in self.lb_hosts:
                try:
                    last = self.server_status(lb)
                except (OSError, VMHostError) as exc:
                    last = str(exc)
                if last != want:
                    break
            else:
                return last
            if time.monotonic() > deadline:
                raise VMHostError("servers not UP after %.0fs: %s" % (timeout, last))
            time.sleep(0.1)

    # ---- Ansible over SSH
    def write_inventory(self, path, app_vars=None, lb_vars=None, group_vars=None):
        """An inventory for ansible-playbook over SSH: group ``app`` (the app hosts), group ``lb`` (the LB hosts),
        every host as ``deploy`` with the fleet's key and ``ansible_become: true``; the rolling-update role is set
        to systemd and to the LB hosts' HAProxy at its default socket path."""
        ssh = {
            "ansible_user": USER,
            "ansible_ssh_private_key_file": self.key,
            "ansible_ssh_common_args": "-F /dev/null -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes "
            "-o IdentitiesOnly=yes -o BatchMode=yes" % self.known_hosts,
            "ansible_python_interpreter": HOST_PYTHON,
            "ansible_become": True,
        }
        apps = {}
        for h in self.app_hosts:
            apps[h.name] = {
                "ansible_host": h.address,
                "ansible_port": h.ssh_port,
                "rolling_update_app_host": h.address,
                "rolling_update_app_port": h.app_port,
                "rolling_update_health_url": "%s/health" % h.url,
                **(app_vars or {}),
            }
        lbs = {
            h.name: {"ansible_host": h.address, "ansible_port": h.ssh_port, **(lb_vars or {})} for h in self.lb_hosts
        }
        gvars = {
            "rolling_update_path": APP_PATH,
            "rolling_update_service_manager": "systemd",
            "rolling_update_service_name": "app.service",
            "rolling_update_lb": "haproxy",
            "rolling_update_haproxy_backend": BACKEND,
            "rolling_update_haproxy_delegate_to": [h.name for h in self.lb_hosts],
        }
        gvars.update(group_vars or {})
        inventory = {
            "all": {
                "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
                "children": {
                    "vmhosts": {"children": {"app": {"hosts": apps, "vars": gvars}, "lb": {"hosts": lbs}}, "vars": ssh}
                },
            }
        }
        import yaml

        with open(path, "w") as f:
            yaml.safe_dump(inventory, f, sort_keys=False)
        return path

    def ansible_env(self):
        """Environment for ansible-playbook against this fleet (on top of the collection paths)."""
        cp = os.path.join(self.dir, "cp")
        os.makedirs(cp, exist_ok=True)
        return {
            "ANSIBLE_PIPELINING": "1",
            "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=60s",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": cp,
            "ANSIBLE_HOST_KEY_CHECKING": "1",
            "ANSIBLE_TIMEOUT": "20",
        }
