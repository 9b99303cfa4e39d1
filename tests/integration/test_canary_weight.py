"""Weighted canary (rolling_update_canary_weight) on a real HAProxy in front of four demo hosts, under load.

With a weight of 10 %, the canary serves between 5 % and 20 % of the requests while it is analysed, counted from
the load generator's responses (the demo app names the host that answered); the weights read from the admin socket
are the original ones again after a passing canary and after a failing one; and a failing canary at 10 % costs the
users fewer failed requests than the same failing canary at its round-robin share, over the same fixed window."""

import os
import sys
import threading
import time

import pytest
import yaml

from conftest import destroy_fleet, make_fleet
from tests.fixtures.fleet.haproxy import server_stats
from tests.fixtures.fleet.loadgen import LoadGenerator
from tests.fixtures.fleet.playbook import run_playbook, versions, write_inventory
from tests.fixtures.fleet.release import build_artifact

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_canary_analysis import faulty_app  # noqa: E402  (a release that answers 500 to FAIL in EVERY requests)

pytestmark = [pytest.mark.integration, pytest.mark.latest_only]

ORIGINAL = {"app1": 1, "app2": 1, "app3": 1, "app4": 1}
WEIGHTED = {"app1": 1, "app2": 3, "app3": 3, "app4": 3}  # 1 / (1 + 3 + 3 + 3) = 10 %
WINDOW = 6


class WeightSampler:
    """Reads the backend's weights from the admin socket every 0.1 s: ``samples`` holds (epoch, {server: weight})."""

    def __init__(self, sock, backend):
        self.sock, self.backend = sock, backend
        self.samples = []
        self.statuses = []  # (epoch, {server: HAProxy status}), read with the weights
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            t = time.time()
            try:
                stats = server_stats(self.sock, self.backend)
                self.samples.append((t, {name: s["weight"] for name, s in stats.items()}))
                self.statuses.append((t, {name: s["status"] for name, s in stats.items()}))
            except Exception:  # noqa: BLE001 - a missed sample only narrows the window seen
                pass
            self._stop.wait(0.1)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)
        return self

    def weighted_span(self):
        """(first, last) epoch at which the weights read were the weighted ones, or None."""
        times = [t for t, weights in self.samples if weights == WEIGHTED]
        return (times[0], times[-1]) if times else None

    def unweighted_in_rotation(self, name, before):
        """Epochs at which ``name``, back in rotation after its drain and before ``before``, still had the original
        weights: the time a canary took a round-robin share."""
        out, drained = [], False
        for (t, weights), (_t, statuses) in zip(self.samples, self.statuses):
            status = statuses.get(name, "")
            if not status.startswith("UP"):
                drained = True
            elif drained and t < before and weights == ORIGINAL:
                out.append(t)
        return out

    def other_weights(self):
        """Every set of weights seen that is neither the original nor the weighted one."""
        return [w for _t, w in self.samples if w not in (ORIGINAL, WEIGHTED)]


@pytest.fixture
def fleet():
    f, directory = make_fleet(hosts=4, version="v1", first_address="127.0.0.186", retries=0)
    try:
        yield f
    finally:
        destroy_fleet(f, directory)


def roll(fleet, tmp_path, version, app_py=None, rate=60.0, **options):
    """Roll to ``version`` with the canary on, under load; returns (process, load summary, weight sampler)."""
    kwargs = {"app_py": app_py} if app_py else {}
    artifact, sha = build_artifact(version, str(tmp_path / ("artifacts-" + version)), **kwargs)
    inv = write_inventory(fleet, str(tmp_path / "inventory.yml"))
    extra = {
        "rolling_update_version": version,
        "rolling_update_artifact": artifact,
        "rolling_update_artifact_checksum": "sha256:" + sha,
        "rolling_update_health_interval": 0.2,
        "rolling_update_canary": True,
        "rolling_update_canary_window": WINDOW,
        "rolling_update_canary_min_requests": 15,
        "rolling_update_canary_max_latency_increase": 3.0,  # a loaded CI machine is noisy
        "rollout_serial": [1, "100%"],
    }
    extra.update(options)
    sampler = WeightSampler(fleet.data["admin_socket"], fleet.data["backend"]).start()
    load = LoadGenerator(fleet.data["frontend_url"] + "/version", rate=rate).start()
    try:
        proc = run_playbook(inv, extra)
    finally:
        summary = load.stop()
        sampler.stop()
    return proc, summary, sampler


def weights_now(fleet):
    return {name: s["weight"] for name, s in server_stats(fleet.data["admin_socket"], fleet.data["backend"]).items()}


def served_by(fleet, name):
    host = fleet.host(name)
    return "%s:%d" % (host["address"], host["port"])


def test_weighted_canary_takes_its_share_and_the_weights_come_back_after_a_pass(fleet, tmp_path):
    assert weights_now(fleet) == ORIGINAL
    proc, summary, sampler = roll(fleet, tmp_path, "v2", rolling_update_canary_weight=10)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Canary verdict: pass" in proc.stdout and "Canary weight: 10% of the traffic set (10.0%" in proc.stdout
    assert summary.failed == 0, summary.format()
    assert versions(fleet) == {"app1": "v2", "app2": "v2", "app3": "v2", "app4": "v2"}
    # The weights were 1/3/3/3 while the canary was analysed (nothing else but the original ones on either side) ...
    span = sampler.weighted_span()
    assert span and span[1] - span[0] >= WINDOW - 1, sampler.samples[:5]
    assert sampler.other_weights() == []
    # ... and the original ones once it passed.
    assert weights_now(fleet) == ORIGINAL
    assert sampler.samples[-1][1] == ORIGINAL
    # The canary had its share from its first moment back in rotation: the weights were set before it went back,
    # so no sample shows it in rotation with the original (round-robin) weights between its drain and the weighting.
    assert sampler.unweighted_in_rotation("app1", span[0]) == [], sampler.statuses[:40]
    # The canary's share of the responses inside that span, from the users' side.
    inside = [r for r in summary.records if span[0] <= r.t <= span[1] and r.ok]
    canary = [r for r in inside if r.served_by == served_by(fleet, "app1")]
    assert len(inside) >= 200, summary.format()
    share = len(canary) / len(inside)
    assert 0.05 <= share <= 0.20, (share, len(canary), len(inside))
    # No weights record is left on the LB host.
    state = os.path.join(fleet.dir, "lb-state", "rotation")
    assert [f for f in os.listdir(state) if f.startswith("haproxy_weights-")] == []


def test_weights_left_by_an_interrupted_run_come_back_even_when_nothing_is_drained(fleet, tmp_path):
    """An interrupted run left the backend weighted (its weights record on the HAProxy host). The next run has no
    host to drain (every host runs the release already): it puts the weights back after the lock, once."""
    from helpers import run_tasks

    state_dir = os.path.join(fleet.dir, "lb-state")  # write_inventory's rolling_update_state_dir
    records = os.path.join(state_dir, "rotation")
    weighted, proc = run_tasks(
        [
            {
                "zerodowntime.rollout.rotation": {
                    "state": "weighted",
                    "sockets": [fleet.data["admin_socket"]],
                    "backend": fleet.data["backend"],
                    "server": "app1",
                    "batch": ["app1"],
                    "share": 10,
                    "state_dir": state_dir,
                }
            }
        ]
    )
    assert not weighted[0].get("failed"), (weighted, proc.stdout[-2000:])
    assert weights_now(fleet) == WEIGHTED
    assert [f for f in os.listdir(records) if f.startswith("haproxy_weights-")]
    pids = {name: fleet.host_pid(name) for name in ORIGINAL}
    art = fleet.data["artifacts"]["v1"]
    inv = write_inventory(fleet, str(tmp_path / "inventory.yml"))
    proc = run_playbook(
        inv,
        {
            "rolling_update_version": "v1",
            "rolling_update_artifact": art["path"],
            "rolling_update_artifact_checksum": "sha256:" + art["sha256"],
        },
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert proc.stdout.count("already runs v1, is ready and in rotation: skipped") == 4, proc.stdout[-4000:]
    assert weights_now(fleet) == ORIGINAL
    assert [f for f in os.listdir(records) if f.startswith("haproxy_weights-")] == []
    assert {name: fleet.host_pid(name) for name in ORIGINAL} == pids  # nothing drained or restarted


def test_a_failing_canary_costs_fewer_requests_at_10_percent_and_the_weights_come_back(fleet, tmp_path):
    pids = {h["name"]: fleet.host_pid(h["name"]) for h in fleet.data["hosts"]}
    bad = faulty_app(tmp_path, fail=1, every=2)  # every other request gets a 500
    fixed = {
        # The same fixed window for both runs: fail at once, no extension.
        "rolling_update_canary_on_inconclusive": "fail",
        "rolling_update_canary_max_extensions": 0,
        "rolling_update_canary_min_requests": 10,
    }
    weighted, weighted_load, sampler = roll(fleet, tmp_path, "v2", app_py=bad, rolling_update_canary_weight=10, **fixed)
    assert weighted.returncode != 0
    assert "Canary verdict: fail" in weighted.stdout, weighted.stdout[-4000:]
    assert "Rolled back to release v1" in weighted.stdout, weighted.stdout[-4000:]
    assert sampler.weighted_span() is not None and sampler.other_weights() == []
    assert weights_now(fleet) == ORIGINAL and sampler.samples[-1][1] == ORIGINAL
    assert versions(fleet) == {"app1": "v1", "app2": "v1", "app3": "v1", "app4": "v1"}

    plain, plain_load, plain_sampler = roll(fleet, tmp_path, "v3", app_py=bad, **fixed)
    assert plain.returncode != 0
    assert "Canary verdict: fail" in plain.stdout, plain.stdout[-4000:]
    assert "Rolled back to release v1" in plain.stdout, plain.stdout[-4000:]
    assert plain_sampler.weighted_span() is None and weights_now(fleet) == ORIGINAL
    assert versions(fleet) == {"app1": "v1", "app2": "v1", "app3": "v1", "app4": "v1"}
    for name, pid in pids.items():
        if name != "app1":
            assert fleet.host_pid(name) == pid, name  # the other hosts were never touched

    # Every failure is one of the canary's injected 500s, and the weighted canary cost clearly fewer of them.
    for load in (weighted_load, plain_load):
        assert load.failures and all(r.status == 500 for r in load.failures), load.format()
    assert weighted_load.failed < 0.75 * plain_load.failed, (weighted_load.format(), plain_load.format())


@pytest.mark.parametrize("lb, weight", [("elbv2", 10), ("elb_classic", 10), ("haproxy", 100)])
def test_preflight_refuses_a_weight_with_aws_or_out_of_range(tmp_path, lb, weight):
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Preflight only",
                    "ansible.builtin.include_role": {
                        "name": "zerodowntime.rollout.rolling_update",
                        "tasks_from": "preflight",
                    },
                }
            ],
        }
    ]
    playbook = tmp_path / "preflight.yml"
    playbook.write_text(yaml.safe_dump(play))
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
                    }
                }
            }
        )
    )
    extra = {
        "rolling_update_version": "v2",
        "rolling_update_artifact": "/srv/app-v2.tar.gz",
        "rolling_update_path": str(tmp_path / "app"),
        "rolling_update_lb": lb,
        "rolling_update_aws_target_id": "i-0123456789abcdef0",
        "rolling_update_haproxy_delegate_to": "localhost",
        "rolling_update_service_manager": "command",
        "rolling_update_start_command": "true",
        "rolling_update_stop_command": "true",
        "rolling_update_health_url": "http://127.0.0.1:9/health",
        "rolling_update_canary": True,
        "rolling_update_canary_weight": weight,
    }
    proc = run_playbook(str(inventory), extra, playbook=str(playbook))
    assert proc.returncode != 0
    assert "TASK [zerodowntime.rollout.rolling_update : Check the variables]" in proc.stdout
    assert "rolling_update_canary_weight (a percentage, more than 0 and less than 100) needs" in proc.stdout
    assert "rolling_update_lb=haproxy" in proc.stdout
    # Refused by the assert itself: no load balancer was read.
    assert "Read this host on every load balancer" not in proc.stdout
