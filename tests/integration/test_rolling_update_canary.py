"""Canary: with rolling_update_canary, the first batch is analysed against the rest of the backend
before the rollout goes on. A good release passes and the rollout completes, its traffic counted on
every HAProxy; a release that answers 500 to 1 request in 20 is judged fail, rolled back on the
canary, and the rollout halts with the other hosts untouched and the error budget reported; with
too little traffic the verdict is inconclusive and rolling_update_canary_on_inconclusive decides."""

import math
import os
import re
import sys

import pytest

from conftest import destroy_fleet, make_fleet
from tests.fixtures.fleet.loadgen import LoadGenerator
from tests.fixtures.fleet.playbook import run_playbook, versions, write_inventory
from tests.fixtures.fleet.release import build_artifact

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_canary_analysis import faulty_app  # noqa: E402  (a release that answers 500 to FAIL in EVERY requests)

# Role flow whose ansible-core-sensitive parts the core rollout tests cover on the oldest version.
pytestmark = [pytest.mark.integration, pytest.mark.latest_only]

BUDGET_RE = re.compile(
    r"error budget: (?P<errors>\d+) 5xx of (?P<allowed>[\d.]+) allowed "
    r"\(max_error_rate (?P<rate>[\d.]+) x (?P<requests>\d+) canary requests\), (?P<used>[\d.]+)% used"
)


@pytest.fixture
def fleet():
    f, d = make_fleet(hosts=3, version="v1", first_address="127.0.0.121", retries=0)
    try:
        yield f
    finally:
        destroy_fleet(f, d)


@pytest.fixture
def small_fleet():
    """Two hosts: a canary and a baseline of one, for the runs without load."""
    f, d = make_fleet(hosts=2, version="v1", first_address="127.0.0.121", retries=0)
    try:
        yield f
    finally:
        destroy_fleet(f, d)


def roll(fleet, tmp_path, app_py=None, rate=50.0, url=None, sockets=None, **options):
    """Roll to v2 with the canary on; ``rate=None``: no load at all."""
    kwargs = {"app_py": app_py} if app_py else {}
    artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"), **kwargs)
    group_vars = {"rolling_update_haproxy_sockets": sockets} if sockets else None
    inv = write_inventory(fleet, str(tmp_path / "inventory.yml"), group_vars=group_vars)
    extra = {
        "rolling_update_version": "v2",
        "rolling_update_artifact": artifact,
        "rolling_update_artifact_checksum": "sha256:" + sha,
        "rolling_update_health_interval": 0.2,
        "rolling_update_canary": True,
        "rolling_update_canary_window": 4,
        "rolling_update_canary_min_requests": 15,
        "rolling_update_canary_max_latency_increase": 3.0,  # a loaded CI machine is noisy
        "rollout_serial": [1, "100%"],
        "rollout_lock_path": str(tmp_path / "rollout.lock"),
    }
    extra.update(options)
    load = LoadGenerator((url or fleet.data["frontend_url"]) + "/version", rate=rate).start() if rate else None
    try:
        proc = run_playbook(inv, extra)
    finally:
        summary = load.stop() if load else None
    return proc, summary


def verdict_line(proc):
    lines = [ln for ln in proc.stdout.splitlines() if "Canary verdict:" in ln]
    assert len(lines) == 1, proc.stdout[-4000:]  # only the first batch is a canary
    return lines[0]


def assert_untouched_and_halted(fleet, proc, pids):
    assert proc.returncode != 0
    assert "Rollout halted on app1" in proc.stdout, proc.stdout[-4000:]
    assert "Rolled back to release v1" in proc.stdout
    assert versions(fleet) == {h["name"]: "v1" for h in fleet.data["hosts"]}
    for name, pid in pids.items():
        if name != "app1":
            assert fleet.host_pid(name) == pid, name
    assert all(s["status"] == "UP" for s in fleet.servers().values()), fleet.servers()


def test_good_canary_passes_counting_every_haproxy_and_the_rollout_completes(fleet, tmp_path):
    # All the load goes through a second HAProxy: the canary's requests are counted there, or the
    # analysis would be inconclusive (0 requests on lb1) and the rollout would halt.
    lb2 = fleet.add_lb("lb2", retries=0)
    fleet.wait_ready(timeout=30)
    sockets = [fleet.lb.admin_socket, lb2.admin_socket]
    proc, summary = roll(fleet, tmp_path, url=lb2.frontend_url, sockets=sockets)
    assert proc.returncode == 0, proc.stdout[-4000:]
    line = verdict_line(proc)
    assert "Canary verdict: pass" in line
    budget = BUDGET_RE.search(line)
    assert budget, line
    assert int(budget["errors"]) == 0 and int(budget["requests"]) >= 15 and float(budget["used"]) == 0
    assert versions(fleet) == {"app1": "v2", "app2": "v2", "app3": "v2"}
    assert summary.failed == 0, summary.format()


def test_canary_answering_5_percent_errors_is_rolled_back_and_the_rollout_halts(fleet, tmp_path):
    pids = {h["name"]: fleet.host_pid(h["name"]) for h in fleet.data["hosts"]}
    # 1 request in 20 gets a 500. At least 100 canary requests (the window is extended if the load
    # falls short), where 5 errors against a 1% threshold are significant: the verdict is reliable.
    proc, summary = roll(
        fleet,
        tmp_path,
        app_py=faulty_app(tmp_path, fail=1, every=20),
        rate=75.0,
        rolling_update_canary_min_requests=100,
    )
    assert_untouched_and_halted(fleet, proc, pids)
    line = verdict_line(proc)
    assert "Canary verdict: fail" in line and "error_rate: canary 0.0" in line, line
    budget = BUDGET_RE.search(line)
    assert budget, line
    errors, requests = int(budget["errors"]), int(budget["requests"])
    assert requests >= 100 and float(budget["rate"]) == 0.01
    assert float(budget["allowed"]) == pytest.approx(requests * 0.01, abs=0.001)
    assert errors in (requests // 20, -(-requests // 20)), line  # the canary's errors are its 5%
    assert float(budget["used"]) > 100
    # The users' side: every failure is one of v2's injected 500s (no 502/503, no connection error:
    # the rollback itself cost nothing) ...
    failures = summary.failures
    assert failures and all(r.status == 500 and r.version == "v2" for r in failures), summary.format()
    v2_served = sum(1 for r in summary.records if r.version == "v2")
    assert summary.failed == math.ceil(v2_served / 20), summary.format()
    # ... every 5xx the analysis counted in its window reached a user, and the rest came from the
    # canary's few seconds in rotation outside the window, at the same 1 in 20.
    assert errors <= summary.failed <= errors + math.ceil((v2_served - requests) / 20) + 1, (errors, summary.format())


@pytest.mark.parametrize(
    "on_inconclusive, extra",
    [
        ("fail", {}),
        ("extend", {"rolling_update_canary_max_extensions": 1}),
        ("pass", {}),
    ],
)
def test_too_little_traffic_follows_on_inconclusive(small_fleet, tmp_path, on_inconclusive, extra):
    fleet = small_fleet
    pids = {h["name"]: fleet.host_pid(h["name"]) for h in fleet.data["hosts"]}
    options = {
        "rolling_update_canary_window": 2,
        "rolling_update_canary_min_requests": 50,
        "rolling_update_canary_on_inconclusive": on_inconclusive,
    }
    options.update(extra)
    proc, _summary = roll(fleet, tmp_path, rate=None, **options)  # no load: HAProxy's health checks are not counted
    line = verdict_line(proc)
    assert "inconclusive (not enough requests: 0 < min_requests 50)" in line, line
    windows = proc.stdout.count("TASK [zerodowntime.rollout.rolling_update : Let the canary serve traffic")
    if on_inconclusive == "pass":
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert "Canary verdict: pass (Canary analysis passed by on_inconclusive=pass" in line
        assert versions(fleet) == {"app1": "v2", "app2": "v2"}
        assert windows == 1
        return
    assert_untouched_and_halted(fleet, proc, pids)
    if on_inconclusive == "fail":
        assert "Canary verdict: fail (Canary analysis failed by on_inconclusive=fail" in line
        assert windows == 1
    else:
        assert "Canary verdict: inconclusive" in line
        assert "4.0s window" in line  # the first window and one extension
        assert "not promoted without enough traffic" in proc.stdout and "after 1 extension(s)" in proc.stdout
        assert windows == 2


def test_a_canary_exclusion_given_as_a_string_is_refused_before_anything_is_read(small_fleet, tmp_path):
    """``-e rolling_update_canary_exclude=app2`` is a string: the argument spec accepts it (it converts a copy), and
    the canary's list of exclusions would fail after the canary host was deployed. Preflight refuses it instead."""
    from tests.fixtures.fleet.haproxy import server_snapshot

    fleet = small_fleet
    artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"))
    inv = write_inventory(fleet, str(tmp_path / "inventory.yml"))
    before = server_snapshot(fleet.lb.admin_socket)
    extra = {
        "rolling_update_version": "v2",
        "rolling_update_artifact": artifact,
        "rolling_update_artifact_checksum": "sha256:" + sha,
        "rolling_update_canary": True,
        "rollout_lock_path": str(tmp_path / "rollout.lock"),
    }
    proc = run_playbook(inv, extra, args=["-e", "rolling_update_canary_exclude=app2"])
    assert proc.returncode != 0
    assert 'rolling_update_canary_exclude must be a list of HAProxy server names (got \\"app2\\")' in proc.stdout, (
        proc.stdout[-3000:]
    )
    assert "Read this host on every load balancer" not in proc.stdout
    assert "Take the rollout lock" not in proc.stdout
    assert server_snapshot(fleet.lb.admin_socket) == before
    assert versions(fleet) == {"app1": "v1", "app2": "v1"}
