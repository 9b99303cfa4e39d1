"""R4: ansible-playbook killed (SIGKILL) in the middle of a host, then run again: the fleet converges
to the new version, no host is left out of rotation, and no request fails across both runs."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import destroy_fleet, make_fleet
from tests.fixtures.fleet.loadgen import LoadGenerator
from tests.fixtures.fleet.playbook import (
    PLAYBOOK,
    ROOT,
    ansible_env,
    host_version,
    resume_record_path,
    run_playbook,
    write_inventory,
)
from tests.fixtures.fleet.release import build_artifact
from tests.fixtures.fleet.sampler import RotationSampler

# Role flow whose ansible-core-sensitive parts the core rollout tests cover on the oldest version.
pytestmark = [pytest.mark.integration, pytest.mark.latest_only]


def rollout_vars(artifact, sha, tmp_path):
    """The rollout of v2 both tests run (the lock in the test's directory)."""
    return {
        "rolling_update_version": "v2",
        "rolling_update_artifact": artifact,
        "rolling_update_artifact_checksum": "sha256:" + sha,
        "rolling_update_health_interval": 0.2,
        "rollout_lock_path": str(tmp_path / "rollout.lock"),
    }


@pytest.fixture
def fleet():
    f, d = make_fleet(hosts=3, version="v1", first_address="127.0.0.61", retries=0)
    try:
        yield f
    finally:
        destroy_fleet(f, d)


def test_killed_mid_host_then_rerun_converges_without_losing_a_request(fleet, tmp_path):
    hosts = fleet.data["hosts"]
    artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"))
    inv = write_inventory(fleet, str(tmp_path / "inventory.yml"))
    extra = rollout_vars(artifact, sha, tmp_path)
    # The resume record on the LB host: written by the drain before its first command.
    marker = resume_record_path(fleet, "app2")

    sampler = RotationSampler(fleet.data["admin_socket"], fleet.data["backend"]).start()
    load = LoadGenerator(fleet.data["frontend_url"] + "/version", rate=100.0).start()
    try:
        cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inv, PLAYBOOK]
        with open(tmp_path / "first-run.log", "w") as log:
            first = subprocess.Popen(
                cmd + ["-e", json.dumps(extra)],
                env=ansible_env(),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            # Kill the whole run (controller and workers) once the second host is out of rotation.
            deadline = time.monotonic() + 180
            while not (os.path.exists(marker) and fleet.servers()["app2"]["status"] != "UP"):
                assert first.poll() is None, "the first run ended before app2 was drained"
                assert time.monotonic() < deadline, "app2 was never drained"
                time.sleep(0.05)
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
        assert fleet.servers()["app2"]["status"] != "UP"  # the interrupted run left app2 out of rotation
        assert os.path.exists(tmp_path / "rollout.lock")  # and its lock behind

        second = run_playbook(inv, extra)
    finally:
        summary = load.stop()
        sampler.stop()

    assert second.returncode == 0, second.stdout[-4000:]
    assert "Another rollout holds the lock" not in second.stdout  # same owner: the lock was taken over
    versions = {}
    for h in hosts:
        import urllib.request

        with urllib.request.urlopen("http://%s:%d/version" % (h["address"], h["port"]), timeout=5) as r:
            versions[h["name"]] = r.read().decode().strip()
        assert not os.path.exists(resume_record_path(fleet, h["name"]))
    assert versions == {"app1": "v2", "app2": "v2", "app3": "v2"}
    assert all(s["status"] == "UP" for s in fleet.servers().values()), fleet.servers()
    assert not os.path.exists(tmp_path / "rollout.lock")
    assert sampler.max_out_of_rotation() <= 1
    assert summary.failed == 0, summary.format()


def test_a_host_with_its_own_state_dir_reads_itself_and_resumes_from_its_own_record(fleet, tmp_path):
    """Preflight reads every host of the batch in one call per HAProxy host, with the first host's settings. app3
    keeps its resume records elsewhere (its own rolling_update_state_dir) and was left drained by a rollout there:
    it must read HAProxy itself, find its record and roll. Read with app1's state_dir, it would look taken out by
    someone else and be refused."""
    import yaml

    own_state = str(tmp_path / "app3-lb-state")
    artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"))
    inv = write_inventory(fleet, str(tmp_path / "inventory.yml"))
    with open(inv) as f:
        data = yaml.safe_load(f)
    data["all"]["children"]["app"]["hosts"]["app3"]["rolling_update_state_dir"] = own_state
    with open(inv, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    # A rollout took app3 out with its own state_dir (the drain writes the record before its command).
    drain = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible"),
            "localhost",
            "-i",
            inv,
            "-m",
            "zerodowntime.rollout.rotation",
            "-a",
            json.dumps(
                {
                    "state": "out",
                    "backend": fleet.data["backend"],
                    "server": "app3",
                    "sockets": [fleet.data["admin_socket"]],
                    "state_dir": own_state,
                }
            ),
        ],
        env=ansible_env(),
        cwd=ROOT,
        text=True,
        capture_output=True,
        check=False,
    )
    assert drain.returncode == 0, drain.stdout[-3000:]
    own_record = resume_record_path(fleet, "app3").replace(os.path.join(fleet.dir, "lb-state"), own_state)
    assert os.path.exists(own_record) and fleet.servers()["app3"]["status"] != "UP"

    extra = rollout_vars(artifact, sha, tmp_path)
    load = LoadGenerator(fleet.data["frontend_url"] + "/version", rate=50.0).start()
    try:
        proc = run_playbook(inv, extra)
    finally:
        summary = load.stop()
    assert proc.returncode == 0, proc.stdout[-4000:]
    # Only app3 read the load balancers itself; app1 and app2 took their part of the batch read.
    included = [line for line in proc.stdout.splitlines() if "read_lb.yml" in line and line.startswith("included:")]
    assert len(included) == 1 and included[0].endswith(" for app3"), included
    assert "drained by an earlier rollout" in proc.stdout
    assert all(host_version(h) == "v2" for h in fleet.data["hosts"])
    assert all(s["status"] == "UP" for s in fleet.servers().values()), fleet.servers()
    assert not os.path.exists(own_record)
    assert summary.failed == 0, summary.format()
