# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""canary_analysis against a real HAProxy in front of three demo apps under steady load: a healthy
canary passes; a canary whose release answers 500 to 30% of requests fails, naming error_rate.
With two HAProxies, the canary's traffic through either counts, whether the module reads both
sockets itself or is given the counters read on each load balancer (the rolling_update role's way)."""

import re

import pytest
from helpers import run_tasks

from conftest import destroy_fleet, make_fleet
from tests.fixtures.fleet.loadgen import LoadGenerator
from tests.fixtures.fleet.release import APP_PY, build_artifact

pytestmark = pytest.mark.integration

# Injected before the app's entry point: every request except /health counts, and the first FAIL of
# every EVERY get a 500 (deterministic), so the server stays UP for HAProxy's checks.
FAULTY_PATCH = """
import itertools as _itertools

_faulty_counter = _itertools.count()
_healthy_serve = Handler._serve


def _faulty_serve(self, head):
    if urlsplit(self.path).path != "/health" and next(_faulty_counter) % EVERY < FAIL:
        return self._send(500, "text/plain", "injected failure\\n", head)
    return _healthy_serve(self, head)


Handler._serve = _faulty_serve

"""


def faulty_app(tmp_path, fail=3, every=10):
    """app.py that answers 500 to ``fail`` requests in ``every`` (by default 3 in 10)."""
    with open(APP_PY) as f:
        src = f.read()
    marker = 'if __name__ == "__main__":'
    assert src.count(marker) == 1
    patch = FAULTY_PATCH.replace("EVERY", str(int(every))).replace("FAIL", str(int(fail)))
    path = tmp_path / ("app_faulty_%d_in_%d.py" % (fail, every))
    path.write_text(src.replace(marker, patch + marker))
    return str(path)


@pytest.fixture(scope="module")
def fleet():
    fleet, d = make_fleet(hosts=3, version="v1", first_address="127.0.0.111", retries=0)
    try:
        load = LoadGenerator(fleet.data["frontend_url"] + "/version", rate=50.0).start()
        try:
            yield fleet
        finally:
            load.stop()
    finally:
        destroy_fleet(fleet, d)


def analysis(fleet, **options):
    args = {
        "sockets": [fleet.data["admin_socket"]],
        "backend": fleet.data["backend"],
        "canary": ["app1"],
        "window": 4,
        "min_requests": 20,
        # The machine may be busy (CI): tolerate latency noise, this test is about errors.
        "max_latency_increase": 3.0,
    }
    args.update(options)
    return {"name": "canary analysis", "zerodowntime.rollout.canary_analysis": args}


def test_healthy_canary_passes_in_check_mode_too(fleet):
    results, proc = run_tasks(
        [
            analysis(fleet),
            dict(analysis(fleet), check_mode=True),
            analysis(fleet, canary=["ghost"]),
        ]
    )
    real, check, ghost = results
    for result in (real, check):
        assert not result.get("failed"), result.get("msg") or proc.stdout[-3000:]
        assert result["verdict"] == "pass", result["msg"]
        assert result["changed"] is False
        assert result["canary"] == ["app1"] and result["baseline"] == ["app2", "app3"]
        assert result["metrics"]["requests"]["canary"] >= 20
        assert result["metrics"]["error_rate"]["canary"] == 0.0
        assert result["window"] >= 4
    assert ghost["failed"] and ghost["changed"] is False
    assert "has no server ghost on any socket (it has: app1, app2, app3)" in ghost["msg"]


def test_canary_serving_errors_fails_naming_error_rate(fleet, tmp_path):
    path, sha = build_artifact("v1-faulty", str(tmp_path / "artifacts"), app_py=faulty_app(tmp_path))
    fleet.data["artifacts"]["v1-faulty"] = {"path": path, "sha256": sha}
    fleet.deploy("app1", "v1-faulty")
    fleet.stop_host("app1")
    fleet.start_host("app1")
    fleet.wait_ready(timeout=30)

    results, proc = run_tasks([analysis(fleet), analysis(fleet, fail_on_verdict=False)])
    failed, decided = results
    assert failed.get("failed"), proc.stdout[-3000:]
    assert failed["verdict"] == "fail" and failed["changed"] is False
    assert "Canary analysis failed for app1" in failed["msg"]
    assert re.search(r"error_rate: canary 0\.\d+, baseline 0, threshold 0\.01", failed["msg"]), failed["msg"]
    assert failed["metrics"]["error_rate"]["passed"] is False
    assert failed["metrics"]["error_rate_ratio"]["passed"] is False
    assert failed["metrics"]["error_rate"]["baseline"] == 0.0
    # With fail_on_verdict: false the caller decides: same verdict, the task itself did not fail.
    assert not decided.get("failed"), decided.get("msg")
    assert decided["verdict"] == "fail"
    assert 0.25 <= decided["groups"]["canary"]["error_rate"] <= 0.35, decided["groups"]


@pytest.fixture
def two_lbs():
    """Three apps behind two HAProxies, no load of its own."""
    fleet, d = make_fleet(hosts=3, version="v1", first_address="127.0.0.114", retries=0)
    try:
        fleet.add_lb("lb2", retries=0)
        fleet.wait_ready(timeout=30)
        yield fleet
    finally:
        destroy_fleet(fleet, d)


def test_traffic_through_the_second_haproxy_counts(two_lbs):
    lb1, lb2 = two_lbs.lbs
    both = [lb1.admin_socket, lb2.admin_socket]
    read = {"zerodowntime.rollout.haproxy_server_info": {"sockets": ["{{ item }}"], "backend": "app"}, "loop": both}
    tasks = [
        analysis(two_lbs, sockets=both, window=3, min_requests=20, on_inconclusive="fail", fail_on_verdict=False),
        # The rolling_update role's way: read on each "LB host" (here one per socket), wait, read, compare.
        dict(read, name="read start", register="start"),
        {"name": "canary window", "ansible.builtin.wait_for": {"timeout": 3}},
        dict(read, name="read end", register="end"),
        analysis(
            two_lbs,
            window=3,
            min_requests=20,
            fail_on_verdict=False,
            counters={"start": "{{ start.results }}", "end": "{{ end.results }}"},
        ),
    ]
    del tasks[-1]["zerodowntime.rollout.canary_analysis"]["sockets"]
    # Load through lb2 only: the canary's requests are all on the second HAProxy.
    load = LoadGenerator(lb2.frontend_url + "/version", rate=40.0).start()
    try:
        results, proc = run_tasks(tasks)
    finally:
        summary = load.stop()
    summed, start, _wait, end, counted = results
    assert not summed.get("failed"), summed.get("msg") or proc.stdout[-3000:]
    assert summed["verdict"] == "pass", summed["msg"]
    assert summed["sockets"] == both
    assert summed["groups"]["canary"]["requests"] >= 20, summed["groups"]
    # Each HAProxy's own reading: lb1 saw none of the canary's requests, lb2 all of them.
    served = [
        sum(e["sockets"][0]["backends"]["app"]["servers"]["app1"]["responses"].values())
        - sum(s["sockets"][0]["backends"]["app"]["servers"]["app1"]["responses"].values())
        for s, e in zip(start["results"], end["results"])
    ]
    assert served[0] == 0 and served[1] >= 20, served
    # Given the counters of each reading, the module sums them the same way.
    assert not counted.get("failed"), counted.get("msg") or proc.stdout[-3000:]
    assert counted["verdict"] == "pass", counted["msg"]
    assert counted["sockets"] == ["%s %s" % (s, s) for s in both]
    assert counted["groups"]["canary"]["requests"] >= 20 and counted["window"] == 3
    assert summary.failed == 0, summary.format()
