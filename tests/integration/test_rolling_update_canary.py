"""Canary: with rolling_update_canary, the first batch is analysed against the rest of the backend
before the rollout goes on. A good release passes and the rollout completes; a release that serves
errors is rolled back on the canary and the rollout halts with the other hosts untouched."""

import os
import sys

import pytest

from demo.fleet import APP_PY, Fleet, build_artifact
from demo.loadgen import LoadGenerator
from demo.rollout import run_playbook, versions, write_inventory

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_canary_analysis import faulty_app  # noqa: E402  (the release that answers 500 to 3 in 10 requests)

pytestmark = pytest.mark.integration


@pytest.fixture
def fleet(tmp_path):
    f = Fleet.up(
        str(tmp_path / "fleet"),
        hosts=3,
        version="v1",
        check_inter_ms=200,
        port=0,
        first_address="127.0.0.121",
        retries=0,
    )
    try:
        yield f
    finally:
        f.down()


def roll(fleet, tmp_path, app_py=APP_PY):
    artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"), app_py=app_py)
    inv = write_inventory(fleet, str(tmp_path / "inventory.yml"))
    load = LoadGenerator(fleet.data["frontend_url"] + "/version", rate=50.0).start()
    try:
        proc = run_playbook(
            inv,
            {
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
            },
        )
    finally:
        summary = load.stop()
    return proc, summary


def test_good_canary_passes_and_the_rollout_completes(fleet, tmp_path):
    proc, summary = roll(fleet, tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Canary verdict: pass" in proc.stdout
    assert proc.stdout.count("Canary verdict:") == 1  # only the first batch is a canary
    assert versions(fleet) == {"app1": "v2", "app2": "v2", "app3": "v2"}
    assert summary.failed == 0, summary.format()


def test_failing_canary_is_rolled_back_and_the_rollout_halts(fleet, tmp_path):
    pids = {h["name"]: fleet.host_pid(h["name"]) for h in fleet.data["hosts"]}
    proc, summary = roll(fleet, tmp_path, app_py=faulty_app(tmp_path))
    assert proc.returncode != 0
    assert "error_rate" in proc.stdout and "Rollout halted on app1" in proc.stdout, proc.stdout[-4000:]
    assert "Rolled back to release v1" in proc.stdout
    assert versions(fleet) == {"app1": "v1", "app2": "v1", "app3": "v1"}
    assert fleet.host_pid("app2") == pids["app2"] and fleet.host_pid("app3") == pids["app3"]
    assert all(s["status"] == "UP" for s in fleet.servers().values()), fleet.servers()
    # The canary's errors reached some users (that is what a canary limits), but only while it was in.
    assert 0 < summary.failed < summary.total * 0.2, summary.format()
