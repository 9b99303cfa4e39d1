"""Fault matrix of issue #6, the scenarios not covered elsewhere: R5, R7, R8 and R10.

Each scenario runs the real playbook (``zerodowntime.rollout.rolling_update``) on a real demo fleet
(app processes on 127.0.0.x behind HAProxy) while a load generator sends steady traffic through
HAProxy, and asserts that no request failed and that the fleet ends in the stated state, read back
from the HAProxy sockets, the release symlinks, the apps' /version answers and the app pids.

- R5  one HAProxy of an HA pair is unreachable: refused in preflight, naming it; nothing changed.
- R7  two rollouts at the same time: the second is refused naming the owner of the first, which
      completes; so is a second run by the same owner while the first is alive on this controller.
- R8  a backend or server name that could smuggle a second command to the Runtime API (``;``,
      newline): refused in preflight for every host before a single command reaches HAProxy.
- R10 a session that outlasts the drain deadline: ``fail`` restores the host untouched and halts;
      ``shutdown_sessions`` cuts that session and completes.
"""

import copy
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import pytest
import yaml

from conftest import ROOT, destroy_fleet, hap, make_fleet, server_snapshot, stat, wait_for
from tests.fixtures.fleet.loadgen import LoadGenerator
from tests.fixtures.fleet.playbook import (
    PLAYBOOK,
    ansible_env,
    fleet_version,
    resume_record_path,
    run_playbook,
    versions,
    write_inventory,
)
from tests.fixtures.fleet.release import build_artifact
from tests.fixtures.fleet.sampler import RotationSampler

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- helpers


def rollout_vars(tmp_path, version="v2", **extra):
    """Extra vars of one rollout to ``version``: verified artifact, short probe and LB poll intervals,
    the lock in the test's own directory."""
    art_dir = tmp_path / "artifacts"
    artifact, sha = build_artifact(version, str(art_dir))
    out = {
        "rolling_update_version": version,
        "rolling_update_artifact": artifact,
        "rolling_update_artifact_checksum": "sha256:" + sha,
        "rolling_update_health_interval": 0.2,
        "rolling_update_lb_poll_interval": 0.1,
        "rolling_update_drain_timeout": 20,
        "rolling_update_enable_timeout": 20,
        "rollout_lock_path": str(tmp_path / "rollout.lock"),
    }
    out.update(extra)
    return out


def host_facts(fleet, sockets=None):
    """Per host: app pid, release ``current`` points to, releases on disk, resume record present (on the LB host)."""
    out = {}
    for h in fleet.hosts:
        dp = h["deploy_path"]
        out[h["name"]] = {
            "pid": fleet.host_pid(h["name"]),
            "current": os.readlink(os.path.join(dp, "current")),
            "releases": sorted(os.listdir(os.path.join(dp, "releases"))),
            "marker": os.path.exists(resume_record_path(fleet, h["name"], sockets)),
        }
    return out


def edit_inventory(path, host_vars):
    """Set host variables (``{host: {var: value}}``) in an inventory written by write_inventory."""
    with open(path) as f:
        data = yaml.safe_load(f)
    for host, values in host_vars.items():
        data["all"]["children"]["app"]["hosts"][host].update(values)
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)


def recap(output):
    """``{host: {"ok": n, "changed": n, "failed": n, ...}}`` from the PLAY RECAP of a run."""
    out = {}
    for line in output.split("PLAY RECAP", 1)[-1].splitlines():
        m = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if m:
            out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return out


def failures(output):
    """``[(host, msg)]`` of every failed result of a run (``fatal: [h]: FAILED! => {...}`` and looped
    ``failed: [h -> lb] (item=...) => {...}`` lines), the message decoded from the result's JSON."""
    out = []
    for line in output.splitlines():
        m = re.match(r"^(?:fatal|failed): \[([^\] ]+)[^\]]*\].*? => (\{.*\})$", line)
        if m:
            out.append((m.group(1), json.loads(m.group(2)).get("msg", "")))
    return out


def failure_text(output):
    return "\n".join("%s: %s" % f for f in failures(output))


def task_names(output):
    return re.findall(r"^TASK \[(.*?)\] \**$", output, re.M)


def read_lock(path):
    """The lock record, or None while there is none (or it is being written)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def playbook_cmd(inventory, extra_vars):
    bindir = os.path.dirname(sys.executable)
    return [os.path.join(bindir, "ansible-playbook"), "-i", inventory, PLAYBOOK, "-e", json.dumps(extra_vars)]


class CommandRecorder:
    """A unix socket in front of a real HAProxy admin socket: every connection's command is recorded,
    passed on to HAProxy unchanged, and HAProxy's answer relayed back (the Runtime API's
    non-interactive mode: one command per connection)."""

    def __init__(self, path, upstream):
        self.path, self.upstream = path, upstream
        self.commands = []
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        self._server.listen(16)
        self._server.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _peer = self._server.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(5)
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                with self._lock:
                    self.commands.append(data.decode("utf-8", "replace"))
                up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                up.settimeout(5)
                with up:
                    up.connect(self.upstream)
                    up.sendall(data)
                    while True:
                        chunk = up.recv(65536)
                        if not chunk:
                            break
                        conn.sendall(chunk)

    def take(self):
        with self._lock:
            out, self.commands = self.commands, []
        return out

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self._server.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


class LongRequest:
    """One HTTP request through HAProxy that the app answers only after ``seconds`` (``?delay=``), on a
    raw socket of its own, outside the load generator. ``status`` is the HTTP status it got (None while
    in flight, 0 when the connection closed without an answer); :meth:`close` hangs up."""

    def __init__(self, url, seconds):
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
        self.sock.settimeout(0.1)
        request = "GET /version?delay=%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (seconds, parts.netloc)
        self.sock.sendall(request.encode())
        self.status = None
        self.answer = b""
        self.ended = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._stop.is_set():
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                break
            self.answer += chunk
        m = re.match(rb"HTTP/1\.[01] (\d{3})", self.answer)
        self.status = int(m.group(1)) if m else 0
        self.ended = time.monotonic()

    @property
    def in_flight(self):
        return self._thread.is_alive() and not self.answer

    def wait(self, timeout):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the long request is still in flight after %ss" % timeout
        return self.status

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def pin_long_request(fleet, target, seconds):
    """Open a LongRequest that HAProxy sends to ``target``: the other servers are drained for the moment
    it is balanced, then put back and waited for, so the fleet is whole again before the rollout."""
    sock = fleet.admin_socket
    others = [h["name"] for h in fleet.hosts if h["name"] != target]
    for name in others:
        assert hap(sock, "set server app/%s state drain" % name).strip() == ""
    try:
        long_request = LongRequest(fleet.frontend_url, seconds)
        wait_for(lambda: stat(sock)[target]["scur"] == 1, 10, what="the long request on %s" % target)
    finally:
        for name in others:
            assert hap(sock, "set server app/%s state ready" % name).strip() == ""
    wait_for(lambda: all(stat(sock)[n]["status"] == "UP" for n in others), 10, what="%s back UP" % others)
    return long_request


class Gate:
    """A hook task file for the role (``rolling_update_before_*_tasks``) that records which host reached it,
    then waits until the test opens the gate: a real wait inside the real rollout, so the test acts while the
    rollout is known to stand at that step. Hosts reaching it after the gate opened go straight through."""

    def __init__(self, directory):
        self.arrived = directory / "gate-arrived"
        self.gate = directory / "gate-open"
        self.hook = directory / "gate-hook.yml"
        tasks = [
            {
                "name": "Tell the test which host stands at the gate",
                "ansible.builtin.copy": {
                    "dest": str(self.arrived),
                    "content": "{{ inventory_hostname }}\n",
                    "mode": "0644",
                },
            },
            {
                "name": "Wait until the test opens the gate",
                "ansible.builtin.wait_for": {"path": str(self.gate), "timeout": 300},
            },
        ]
        self.hook.write_text(yaml.safe_dump(tasks, sort_keys=False))

    def wait_arrival(self, host, running, timeout=120):
        def at_gate():
            assert running(), "the rollout ended before %s reached the gate" % host
            return self.arrived.exists() and self.arrived.read_text().strip() == host

        wait_for(at_gate, timeout, what="%s at the gate" % host)

    def open(self):
        self.gate.write_text("open\n")


class Rollout:
    """run_playbook (tests/fixtures/fleet/playbook.py) in a thread, for a test that acts while the rollout runs."""

    def __init__(self, inventory, extra_vars, args=()):
        self.proc = None
        self._thread = threading.Thread(target=self._run, args=(inventory, extra_vars, args), daemon=True)
        self._thread.start()

    def _run(self, inventory, extra_vars, args):
        self.proc = run_playbook(inventory, extra_vars, args=args)

    def running(self):
        return self._thread.is_alive()

    def wait(self, timeout=300):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the rollout did not end within %ss" % timeout
        return self.proc


def host_versions(fleet):
    """``{host: version}``; a host that does not answer reads as 'unreachable (...)'."""
    return {h["name"]: fleet_version(h) for h in fleet.hosts}


# --------------------------------------------------------------------------- fleets


@pytest.fixture
def fleet_factory():
    made = []

    def make(first_address, hosts=3):
        fleet, d = make_fleet(hosts=hosts, first_address=first_address, retries=0)
        made.append((fleet, d))
        return fleet

    yield make
    for fleet, d in made:
        destroy_fleet(fleet, d)


# --------------------------------------------------------------------------- R5


def test_r5_one_lb_of_a_pair_unreachable_is_refused_in_preflight(fleet_factory, tmp_path):
    fleet = fleet_factory("127.0.0.141")
    lb1 = fleet.lbs[0]
    lb2 = fleet.add_lb("lb2")
    sockets = [lb1.admin_socket, lb2.admin_tcp]
    inv = write_inventory(fleet, str(tmp_path / "inventory.yml"), {"rolling_update_haproxy_sockets": sockets})
    extra = rollout_vars(tmp_path)
    # Both members of the pair answer and know every server before one of them goes away.
    assert set(stat(lb2.admin_tcp)) == {"app1", "app2", "app3"}
    assert lb2.stop() == "terminated"

    before_lb1 = server_snapshot(lb1.admin_socket)
    before_hosts = host_facts(fleet)
    load = LoadGenerator(fleet.frontend_url + "/version", rate=50.0).start()
    try:
        proc = run_playbook(inv, extra)
    finally:
        summary = load.stop()

    out = proc.stdout
    assert proc.returncode != 0, out[-3000:]
    # Refused in preflight, before the lock, naming the LB that did not answer (its socket, from where it was read).
    msg = failure_text(out)
    assert "HAProxy could not be read for app1: [localhost] Connection refused by %s" % lb2.admin_tcp in msg, msg
    assert "Refused in preflight: nothing was changed on any load balancer or host." in msg, msg
    assert "Take the rollout lock" not in task_names(out)
    assert not [t for t in task_names(out) if "Drain" in t or "traffic" in t], task_names(out)
    # Nothing changed on the LB that answered, on any host, and no lock was left.
    assert server_snapshot(lb1.admin_socket) == before_lb1
    assert host_facts(fleet) == before_hosts
    assert versions(fleet) == {"app1": "v1", "app2": "v1", "app3": "v1"}
    assert not os.path.exists(extra["rollout_lock_path"])
    assert summary.total > 0 and summary.failed == 0, summary.format()


# --------------------------------------------------------------------------- R7


@pytest.mark.latest_only
def test_r7_concurrent_rollout_is_refused_and_the_first_completes(fleet_factory, tmp_path):
    fleet = fleet_factory("127.0.0.145", hosts=2)
    sock = fleet.admin_socket
    inv = write_inventory(fleet, str(tmp_path / "inventory.yml"))
    lock = tmp_path / "rollout.lock"
    # Rollout A holds on its first host, drained and already running v2, before it is enabled again,
    # until the test opens the gate: A is mid-transaction, holding the lock, for as long as B runs.
    gate = Gate(tmp_path)
    extra_a = rollout_vars(
        tmp_path, rollout_lock_owner="alice@controller-a", rolling_update_before_enable_tasks=str(gate.hook)
    )
    extra_b = {k: v for k, v in extra_a.items() if k != "rolling_update_before_enable_tasks"}
    extra_b["rollout_lock_owner"] = "bob@controller-b"
    # The same rollout again by the owner of A (the default owner is USER@controller, so two terminals of
    # one operator look like this): A is alive on this controller, so B may not take the lock over.
    extra_b_same_owner = dict(extra_b, rollout_lock_owner="alice@controller-a")
    pids = {h["name"]: fleet.host_pid(h["name"]) for h in fleet.hosts}

    sampler = RotationSampler(sock, fleet.backend).start()
    load = LoadGenerator(fleet.frontend_url + "/version", rate=50.0).start()
    log_a = open(tmp_path / "rollout-a.log", "w")  # noqa: SIM115 - closed in finally
    a = subprocess.Popen(
        playbook_cmd(inv, extra_a), env=ansible_env(), cwd=ROOT, stdout=log_a, stderr=subprocess.STDOUT
    )
    try:

        def a_holds_lock():
            assert a.poll() is None, "rollout A ended before it took the lock"
            return read_lock(lock)

        holder = wait_for(a_holds_lock, 120, what="rollout A to take the lock")
        assert holder["owner"] == "alice@controller-a"
        # The lock names A's ansible-playbook process (the controller_run lookup), by pid and start time.
        with open("/proc/%d/stat" % a.pid) as f:
            a_started = f.read().rpartition(")")[2].split()[19]
        assert (holder["controller"], holder["controller_pid"], holder["controller_pid_started"]) == (
            socket.gethostname(),
            a.pid,
            a_started,
        ), holder
        gate.wait_arrival("app1", lambda: a.poll() is None)
        assert stat(sock)["app1"]["status"] in ("DRAIN", "DOWN") and host_versions(fleet)["app1"] == "v2"
        lock_bytes = lock.read_bytes()
        snapshot = server_snapshot(sock)
        facts = host_facts(fleet)

        def assert_refused_and_nothing_changed(proc_b, expected):
            assert a.poll() is None, "rollout A ended while B ran: the two did not overlap"
            out_b = proc_b.stdout
            assert proc_b.returncode != 0, out_b[-3000:]
            msg = failure_text(out_b)
            assert expected in msg, msg
            assert recap(out_b) and all(r["changed"] == 0 for r in recap(out_b).values()), out_b[-2000:]
            assert not [t for t in task_names(out_b) if "Drain" in t or "traffic" in t], task_names(out_b)
            assert lock.read_bytes() == lock_bytes
            assert server_snapshot(sock) == snapshot
            assert host_facts(fleet) == facts
            return msg

        # B (another owner) was refused by the lock, naming A's owner, and changed nothing.
        assert_refused_and_nothing_changed(
            run_playbook(inv, extra_b),
            "Another rollout holds the lock %s: alice@controller-a (run %s" % (lock, holder["run_id"]),
        )
        # B with A's owner was refused too: A's run is alive on this controller.
        msg = assert_refused_and_nothing_changed(
            run_playbook(inv, extra_b_same_owner),
            "The lock %s is held by the same owner in a run that is still running on this controller: "
            "alice@controller-a (run %s" % (lock, holder["run_id"]),
        )
        assert "ansible-playbook pid %d." % a.pid in msg and "rollout_lock_owner" in msg, msg

        gate.open()
        rc_a = a.wait(timeout=300)
    finally:
        if a.poll() is None:
            a.kill()
            a.wait(10)
        log_a.close()
        summary = load.stop()
        sampler.stop()

    out_a = (tmp_path / "rollout-a.log").read_text()
    assert rc_a == 0, out_a[-4000:]
    assert versions(fleet) == {"app1": "v2", "app2": "v2"}
    after = host_facts(fleet)
    for name, pid in pids.items():
        assert after[name]["current"] == "releases/v2" and not after[name]["marker"]
        assert after[name]["pid"] != pid
    assert all(s["status"] == "UP" for s in stat(sock).values()), stat(sock)
    assert not lock.exists()
    assert sampler.max_out_of_rotation() == 1 and not sampler.errors()
    assert summary.total > 0 and summary.failed == 0, summary.format()


# --------------------------------------------------------------------------- R8


@pytest.fixture(scope="module")
def r8_fleet():
    fleet, d = make_fleet(hosts=3, first_address="127.0.0.149", retries=0)
    yield fleet
    destroy_fleet(fleet, d)


@pytest.mark.parametrize(
    "variable, bad",
    [
        ("rolling_update_haproxy_server", "app3;disable server app/app2"),
        ("rolling_update_haproxy_backend", "app\nset server app/app1 state maint"),
    ],
    ids=["server-with-semicolon", "backend-with-newline"],
)
def test_r8_injected_name_on_the_last_host_is_refused_before_any_command(r8_fleet, tmp_path, variable, bad):
    fleet = r8_fleet
    recorder = CommandRecorder(str(tmp_path / "rec.sock"), fleet.admin_socket).start()
    try:
        # The recorder passes commands through (the control), and it is the only socket the role gets.
        assert "# pxname" in hap(recorder.path, "show stat app 4 -1")
        assert recorder.take() == ["show stat app 4 -1\n"]
        inv = write_inventory(
            fleet, str(tmp_path / "inventory.yml"), {"rolling_update_haproxy_sockets": [recorder.path]}
        )
        edit_inventory(inv, {"app3": {variable: bad}})
        extra = rollout_vars(tmp_path)
        before_state = hap(fleet.admin_socket, "show servers state app")
        before_snap = server_snapshot(fleet.admin_socket)
        before_hosts = host_facts(fleet)
        load = LoadGenerator(fleet.frontend_url + "/version", rate=50.0).start()
        try:
            proc = run_playbook(inv, extra)
        finally:
            summary = load.stop()
        sent = recorder.take()
    finally:
        recorder.stop()

    out = proc.stdout
    assert proc.returncode != 0, out[-3000:]
    # Not one command reached HAProxy: not a change, not even a read.
    assert sent == [], sent
    # Only the last host failed, in preflight, and the message names it, the variable, the value and the rule.
    assert sorted({host for host, _msg in failures(out)}) == ["app3"], out[-3000:]
    msg = failure_text(out)
    assert "Refusing app3: invalid HAProxy name in %s %s" % (variable, json.dumps(bad)) in msg, msg
    assert "only contain letters, digits, '-', '_', '.' and ':'" in msg, msg
    assert "Nothing was sent to HAProxy" in msg
    assert "Take the rollout lock" not in task_names(out)
    # HAProxy state identical (admin and operational state, weights), nobody drained, nothing deployed.
    assert server_snapshot(fleet.admin_socket) == before_snap
    assert [ln.split()[:9] for ln in hap(fleet.admin_socket, "show servers state app").splitlines()[2:]] == [
        ln.split()[:9] for ln in before_state.splitlines()[2:]
    ]
    assert all(s["status"] == "UP" and s["weight"] == 1 for s in stat(fleet.admin_socket).values())
    assert host_facts(fleet) == before_hosts
    assert versions(fleet) == {"app1": "v1", "app2": "v1", "app3": "v1"}
    assert not os.path.exists(extra["rollout_lock_path"])
    assert summary.total > 0 and summary.failed == 0, summary.format()


# --------------------------------------------------------------------------- R10


def r10_start(fleet, tmp_path, on_timeout):
    """Start a rollout that stops just before its first drain; there, pin a long request on app1 (still in
    rotation), start the load, then let the drain begin. Returns (rollout, long request, extra vars, sampler, load)."""
    gate = Gate(tmp_path)
    inv = write_inventory(fleet, str(tmp_path / "inventory.yml"))
    extra = rollout_vars(
        tmp_path,
        rolling_update_drain_timeout=3,
        rolling_update_drain_on_timeout=on_timeout,
        rolling_update_before_drain_tasks=str(gate.hook),
    )
    try:
        rollout = Rollout(inv, extra, args=("-v",))
        gate.wait_arrival("app1", rollout.running)
        long_request = pin_long_request(fleet, "app1", LONG_SECONDS)
    except BaseException:
        gate.open()
        raise
    # Load and samples from here on (so app1's one session is the long request while it is pinned; and
    # pinning drained the other server for a moment, the rollout did not).
    load = LoadGenerator(fleet.frontend_url + "/version", rate=50.0).start()
    sampler = RotationSampler(fleet.admin_socket, fleet.backend).start()
    gate.open()
    return rollout, long_request, extra, sampler, load


LONG_SECONDS = 60  # HAProxy's 'timeout server' of the demo fleet is 65 s


@pytest.mark.latest_only
def test_r10_session_outlasting_drain_fails_and_restores_the_host(fleet_factory, tmp_path):
    """on_timeout=fail: the host is put back untouched (never stopped, old release), the rollout halts,
    and the long session is not cut."""
    fleet = fleet_factory("127.0.0.153", hosts=2)
    sock = fleet.admin_socket
    before = host_facts(fleet)
    rollout, long_request, extra, sampler, load = r10_start(fleet, tmp_path, "fail")
    try:
        proc = rollout.wait()
        # The session the drain waited for was never cut: still open on app1, or answered in full.
        assert (long_request.in_flight and stat(sock)["app1"]["scur"] >= 1) or long_request.status == 200, (
            long_request.status,
            long_request.answer[:200],
        )
    finally:
        summary = load.stop()
        sampler.stop()
        long_request.close()

    out = proc.stdout
    assert proc.returncode != 0, out[-3000:]
    assert {host for host, _msg in failures(out)} == {"app1"}, out[-3000:]
    halted = [msg for _host, msg in failures(out) if msg.startswith("Rollout halted")]
    assert halted, out[-3000:]
    halted = halted[-1]
    assert halted.startswith(
        "Rollout halted on app1: step 'Take this host out of rotation on every load balancer and wait for its in-flight"
    ), halted
    assert "waiting for app/app1 to drain" in halted and "DRAIN, 1 sessions" in halted, halted
    assert "rolling_update_drain_on_timeout: shutdown_sessions" in halted, halted
    assert "The release was not switched" in halted and "ready and back in rotation" in halted, halted
    # app1: same process, old release, back in rotation, no resume record; app2 never drained. v2 was unpacked
    # on every host before the first batch (prepare.yml) and stays there, complete but never activated.
    expected = copy.deepcopy(before)
    for name in expected:
        expected[name]["releases"] = ["v1", "v2"]
    assert host_facts(fleet) == expected
    assert versions(fleet) == {"app1": "v1", "app2": "v1"}
    assert all(s["status"] == "UP" for s in stat(sock).values()), stat(sock)
    assert all(state[1] == "0" for state in server_snapshot(sock).values())  # admin state ready everywhere
    out_secs = sampler.out_of_rotation_seconds()
    assert out_secs["app1"] > 0 and out_secs["app2"] == 0, out_secs
    assert not os.path.exists(extra["rollout_lock_path"])
    assert summary.total > 0 and summary.failed == 0, summary.format()


@pytest.mark.latest_only
def test_r10_session_outlasting_drain_is_shut_down_and_rollout_completes(fleet_factory, tmp_path):
    """on_timeout=shutdown_sessions: the long session is cut at the deadline, the rollout completes."""
    fleet = fleet_factory("127.0.0.157", hosts=2)
    sock = fleet.admin_socket
    pids = {h["name"]: fleet.host_pid(h["name"]) for h in fleet.hosts}
    rollout, long_request, extra, sampler, load = r10_start(fleet, tmp_path, "shutdown_sessions")
    opened = time.monotonic()
    try:
        status = long_request.wait(LONG_SECONDS)
        proc = rollout.wait()
    finally:
        summary = load.stop()
        sampler.stop()
        long_request.close()

    out = proc.stdout
    assert proc.returncode == 0, out[-4000:]
    # The long session was cut by HAProxy, well before the app would have answered it, and the drain said so.
    # (HAProxy answers 502 for a session it shuts down, or just closes the connection: 0.)
    assert status in (0, 502) and long_request.ended - opened < LONG_SECONDS - 10, (status, long_request.answer[:200])
    assert "It did not drain within" in out and "shut down 1 remaining session(s)" in out, out[-4000:]
    assert versions(fleet) == {"app1": "v2", "app2": "v2"}
    after = host_facts(fleet)
    for name, pid in pids.items():
        assert after[name]["current"] == "releases/v2" and not after[name]["marker"]
        assert after[name]["pid"] != pid
    assert all(s["status"] == "UP" for s in stat(sock).values()), stat(sock)
    assert sampler.max_out_of_rotation() == 1
    assert not os.path.exists(extra["rollout_lock_path"])
    # Every other request succeeded (the long session is not one of the load generator's).
    assert summary.total > 0 and summary.failed == 0, summary.format()
