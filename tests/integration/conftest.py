"""Fixtures for integration tests: real HAProxy and real app processes on 127.0.0.x loopback addresses.

The fleet itself (hosts, HAProxy, its admin-socket client, polling) is tests/fixtures/fleet/; what the modules
under test did is read back on the admin sockets through that client, independently of the collection's own code.
The names the test files import from here (``hap``, ``stat``, ``wait_for``...) are that package's functions.
"""

import os
import shutil
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.fixtures.fleet.fleet import Fleet  # noqa: E402
from tests.fixtures.fleet.haproxy import BACKEND, HAPROXY, parse_stat, server_snapshot  # noqa: E402
from tests.fixtures.fleet.haproxy import admin_command as hap  # noqa: E402
from tests.fixtures.fleet.haproxy import server_stats as stat  # noqa: E402
from tests.fixtures.fleet.system import wait_until as wait_for  # noqa: E402

SOCAT = shutil.which("socat")  # the probe task reads HAProxy from inside a playbook with it


def _require_tools():
    missing = [n for n, p in (("haproxy", HAPROXY), ("socat", SOCAT)) if not p or not os.path.exists(p)]
    if missing:
        pytest.fail("integration tests need %s installed (apt-get install haproxy socat)" % " and ".join(missing))


# --------------------------------------------------------------------------- reading HAProxy


def wait_status(sock, server, status, timeout=10.0):
    what = "%s %s on %s" % (server, status, sock)
    return wait_for(lambda: stat(sock)[server]["status"] == status, timeout, what=what)


def admin_flags(sock, server, backend=BACKEND):
    """srv_admin_state bit flags of one server (1 = forced maint, 8 = forced drain, 0 = ready)."""
    return int(server_snapshot(sock)[(backend, server)][1])


def probe_task(sock, name="probe"):
    """A task that reads ``show stat`` through socat on the controller right after the previous task,
    stored as fact ``name``; parse with :func:`probe_result`."""
    address = "TCP:%s" % sock[len("tcp://") :] if sock.startswith("tcp://") else "UNIX-CONNECT:%s" % sock
    cmd = "echo 'show stat %s 4 -1' | %s -t 5 STDIO %s" % (BACKEND, SOCAT, address)
    value = "{{ lookup('ansible.builtin.pipe', %r) }}" % cmd
    return {"name": "probe haproxy with socat", "ansible.builtin.set_fact": {name: value}}


def probe_result(result, name="probe"):
    assert "ansible_facts" in result, "probe task failed: %r" % result
    return parse_stat(result["ansible_facts"][name])


def timestamp_task(name="t_after"):
    """A task that records the controller's wall clock (time.time()) as fact ``name``."""
    value = "{{ lookup('ansible.builtin.pipe', 'date +%s.%N') }}"
    return {"name": "timestamp", "ansible.builtin.set_fact": {name: value}}


# --------------------------------------------------------------------------- fleets


def short_tmpdir():
    """A short directory under /tmp: unix socket paths must stay under 108 bytes."""
    return tempfile.mkdtemp(prefix="zd-", dir="/tmp")


@pytest.fixture(scope="session")
def tools():
    _require_tools()


def make_fleet(**kwargs):
    _require_tools()
    d = short_tmpdir()
    kwargs.setdefault("port", 0)  # a port free on every host address: other fleets may run on this machine
    kwargs.setdefault("check_inter_ms", 200)
    kwargs.setdefault("rise", 2)
    kwargs.setdefault("fall", 2)
    kwargs.setdefault("grace", 10)
    fleet = Fleet.up(d, **kwargs)
    return fleet, d


def destroy_fleet(fleet, d):
    try:
        fleet.down(timeout=10)
        assert not fleet.running_pids(), "fleet down left processes running: %s" % fleet.running_pids()
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def fleet():
    """Three hosts (app1..app3) behind HAProxy ``lb1``; checks every 200 ms, rise 2, fall 2."""
    f, d = make_fleet(hosts=3)
    yield f
    destroy_fleet(f, d)


@pytest.fixture(scope="module")
def pair(fleet):
    """A second, independent HAProxy (``lb2``) in front of app1 and app2 only (it does not know app3).
    Returns ``(unix socket of lb1, TCP admin socket of lb2)``."""
    lb2 = fleet.add_lb("lb2", hosts=fleet.hosts[:2])
    yield fleet.admin_socket, lb2.admin_tcp
    fleet.remove_lb("lb2")


def reset_fleet(f):
    """Every server ready with weight 1 on every load balancer, steady UP, no sessions left."""
    for lb in f.lbs:
        sock = lb.sockets[0]
        for s in lb.data["servers"]:
            hap(sock, "set server %s/%s state ready" % (BACKEND, s["name"]))
            hap(sock, "set server %s/%s weight 1" % (BACKEND, s["name"]))
    for lb in f.lbs:
        sock = lb.sockets[0]
        wait_for(
            lambda s=sock: all(v["status"] in ("UP", "no check") and v["scur"] == 0 for v in stat(s).values()),
            15,
            what="all servers steady and idle on %s" % sock,
        )


@pytest.fixture
def clean_fleet(fleet):
    """The module fleet, reset before the test."""
    for h in fleet.hosts:
        if not fleet.host_pid(h["name"]):
            fleet.start_host(h["name"])
    reset_fleet(fleet)
    return fleet


@pytest.fixture(scope="module")
def slow_fleet():
    """Two hosts, checks every 250 ms with rise 3; ``app2`` has no health check (``no check``)."""
    f, d = make_fleet(hosts=2, check_inter_ms=250, rise=3, fall=2, no_check=["app2"])
    yield f
    destroy_fleet(f, d)
