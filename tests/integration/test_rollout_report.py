"""The rollout_report callback on real rollouts of a two-host demo fleet: a clean one, and one whose
new release never becomes ready (rolled back, rollout halted)."""

import json
import os
import shutil
import tempfile

import pytest

from demo.fleet import APP_PY, Fleet, build_artifact
from demo.rollout import run_playbook, write_inventory

pytestmark = pytest.mark.integration

TRANSACTION = ["drain", "stop", "deploy", "start", "ready", "enable"]


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="zd-rr-", dir="/tmp")  # unix socket paths must stay short
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fleet2(workdir):
    fleet = Fleet.up(
        os.path.join(workdir, "fleet"),
        hosts=2,
        version="v1",
        check_inter_ms=200,
        rise=2,
        fall=2,
        port=0,
        first_address="127.0.0.71",
        retries=0,
    )
    try:
        yield fleet
    finally:
        fleet.down()


def app_that_never_gets_ready(directory):
    """The demo app whose readiness waits for a file that is never created."""
    with open(APP_PY) as f:
        src = f.read()
    path = os.path.join(directory, "app_not_ready.py")
    with open(path, "w") as f:
        f.write('import sys\nsys.argv += ["--require-file", "/nonexistent/zdt-report-never-ready"]\n' + src)
    return path


def rollout_with_report(fleet, workdir, app_py=None):
    kwargs = {"app_py": app_py} if app_py else {}
    artifact, sha = build_artifact("v2", os.path.join(workdir, "artifacts"), **kwargs)
    inv = write_inventory(fleet, os.path.join(workdir, "inventory.yml"))
    report_dir = os.path.join(workdir, "report")
    proc = run_playbook(
        inv,
        {
            "rolling_update_version": "v2",
            "rolling_update_artifact": artifact,
            "rolling_update_artifact_checksum": "sha256:" + sha,
            "rolling_update_health_interval": 0.2,
            "rolling_update_health_timeout": 4,
            "rollout_serial": 1,
            "rollout_lock_path": os.path.join(workdir, "rollout.lock"),
        },
        env={
            "ANSIBLE_CALLBACKS_ENABLED": "zerodowntime.rollout.rollout_report",
            "ZDT_ROLLOUT_REPORT_DIR": report_dir,
        },
    )
    json_path = os.path.join(report_dir, "rollout-report.json")
    assert os.path.exists(json_path), proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(json_path) as f:
        raw = f.read()
    with open(os.path.join(report_dir, "rollout-report.html")) as f:
        page = f.read()
    return proc, json.loads(raw), raw, page, artifact


def test_report_of_a_clean_rollout(fleet2, workdir):
    proc, report, raw, page, artifact = rollout_with_report(fleet2, workdir)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert list(report["hosts"]) == ["app1", "app2"]
    for batch, name in enumerate(["app1", "app2"], start=1):
        host = report["hosts"][name]
        assert host["batch"] == batch and host["result"] == "changed", host
        assert not host["failed"] and not host["rolled_back"] and not host["skipped"]
        names = [s["step"] for s in host["steps"]]
        assert [n for n in names if n in TRANSACTION] == TRANSACTION, names
        assert "rollback" not in names
        starts = [s["start"] for s in host["steps"]]
        assert starts == sorted(starts)
        out = host["out_of_rotation"]
        assert 0 < out["seconds"] < host["seconds"], host
        assert out["intervals"][0]["back_in_rotation"] is True
    # app2 was drained only after app1 was back in rotation (serial 1)
    assert (
        report["hosts"]["app1"]["out_of_rotation"]["intervals"][0]["end"]
        <= report["hosts"]["app2"]["out_of_rotation"]["intervals"][0]["start"]
    )
    assert [b["hosts"] for b in report["batches"]] == [["app1"], ["app2"]]
    assert report["totals"]["changed"] == 2 and report["start"] < report["end"]
    assert artifact not in raw  # task arguments are never recorded

    assert "<svg" in page and "app1" in page and "app2" in page
    assert 'class="out-of-rotation"' in page and "step-rollback" not in page

    out = proc.stdout
    assert "ROLLOUT REPORT" in out
    table = out[out.index("ROLLOUT REPORT") :].splitlines()
    header = next(line for line in table if line.startswith("host "))
    assert header.split()[:4] == ["host", "batch", "result", "out-of-rot"]
    assert any(line.split()[:3] == ["app1", "1", "changed"] for line in table), out[-2000:]
    assert any(line.split()[:3] == ["app2", "2", "changed"] for line in table), out[-2000:]


def test_report_of_a_rolled_back_rollout(fleet2, workdir):
    proc, report, _raw, page, _artifact = rollout_with_report(fleet2, workdir, app_that_never_gets_ready(workdir))
    assert proc.returncode != 0, proc.stdout[-3000:]
    app1 = report["hosts"]["app1"]
    assert app1["result"] == "failed" and app1["failed"] and app1["rolled_back"], app1
    assert "Rollout halted on app1" in app1["message"]
    steps = {s["step"]: s for s in app1["steps"]}
    assert steps["ready"]["result"] == "rescued" and "not ready" in steps["ready"]["message"]
    assert steps["rollback"]["result"] == "failed"
    names = [s["step"] for s in app1["steps"]]
    assert names.index("rollback") == len(names) - 1 and "enable" not in names
    # the rollback put the ready v1 back in rotation
    assert app1["out_of_rotation"]["intervals"][0]["back_in_rotation"] is True
    assert app1["out_of_rotation"]["intervals"][0]["end"] >= steps["rollback"]["start"]
    # the rollout halted before app2's batch
    app2 = report["hosts"]["app2"]
    assert (app2["result"], app2["batch"], app2["out_of_rotation"]["seconds"]) == ("not_reached", None, None)

    assert 'class="step step-rollback result-failed"' in page
    assert 'class="marker failure"' in page and "app1" in page and "app2" in page
    assert "ROLLOUT REPORT" in proc.stdout
