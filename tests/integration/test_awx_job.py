"""The rolling update run the way AWX runs a job: ansible-runner's Python API on a private data dir
(inventory/hosts, env/extravars from a survey, env/settings, env/envvars), without the container.

It is also the installed-copy test: the collection comes from a tarball built with ``ansible-galaxy
collection build`` and installed into an empty collections path, with the source tree off every path
(no ``.cache/collections`` symlink, no sys.path scan, cwd outside the checkout). A file the build leaves
out (galaxy.yml ``build_ignore``) breaks this rollout, not only a user's.
"""

import json
import os
import shutil
import subprocess
import sys

import ansible_runner
import pytest
import yaml

from conftest import destroy_fleet, make_fleet
from tests.fixtures.fleet.loadgen import LoadGenerator
from tests.fixtures.fleet.playbook import versions, write_inventory
from tests.fixtures.fleet.release import build_artifact

pytestmark = [pytest.mark.integration, pytest.mark.latest_only]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
PLAYBOOK = "zerodowntime.rollout.rolling_update"
AWX_JOB_ID = 4242

# One host's runbook as the job events show it: (phase, task name prefix in roles/rolling_update/tasks), one
# module call each; the replace call reports its own steps.
STEPS = [
    ("drain", "Take this host out of rotation on every load balancer"),
    ("replace", "Stop the app, switch, start it and wait until it is ready"),
    ("enable", "Put this host back on every load balancer"),
]
REPLACE_STEPS = ["stop", "deploy", "start", "ready"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """An ANSIBLE_COLLECTIONS_PATH holding only the installed tarball and the offline amazon.aws."""
    work = tmp_path_factory.mktemp("installed")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_NOCOLOR="1")
    galaxy = os.path.join(BIN, "ansible-galaxy")
    subprocess.run(
        [galaxy, "collection", "build", "--force", "--output-path", str(work / "dist")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    (tarball,) = (work / "dist").glob("zerodowntime-rollout-*.tar.gz")
    collections = work / "collections"
    subprocess.run(
        [galaxy, "collection", "install", "--offline", "--no-deps", "-p", str(collections), str(tarball)],
        cwd=str(work),
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    shutil.copytree(
        os.path.join(ROOT, ".cache", "deps", "ansible_collections", "amazon", "aws"),
        str(collections / "ansible_collections" / "amazon" / "aws"),
        symlinks=True,
    )
    copy = collections / "ansible_collections" / "zerodowntime" / "rollout"
    assert not copy.is_symlink() and (copy / "MANIFEST.json").is_file()
    return str(collections)


def private_data_dir(path, installed, inventory_from=None, extravars=None):
    """Lay out a private data dir as AWX does. Returns its path."""
    pdd = os.path.join(path, "pdd")
    for sub in ("inventory", "env", "project"):
        os.makedirs(os.path.join(pdd, sub), exist_ok=True)
    if inventory_from is not None:
        write_inventory(inventory_from, os.path.join(pdd, "inventory", "hosts"))
    else:
        with open(os.path.join(pdd, "inventory", "hosts"), "w") as f:
            f.write("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    with open(os.path.join(pdd, "env", "extravars"), "w") as f:
        json.dump(extravars or {}, f)
    with open(os.path.join(pdd, "env", "settings"), "w") as f:
        yaml.safe_dump({"process_isolation": False, "job_timeout": 600, "suppress_ansible_output": True}, f)
    envvars = {
        "ANSIBLE_COLLECTIONS_PATH": installed,  # the installed copy only: no source tree, no .cache
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_HOME": os.path.join(path, "ansible-home"),  # not ~/.ansible (molecule installs there)
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        # runner starts `ansible-playbook` from PATH: this venv's, i.e. the ansible-core under test
        "PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
    }
    assert shutil.which("ansible-playbook", path=envvars["PATH"]) == os.path.join(BIN, "ansible-playbook")
    with open(os.path.join(pdd, "env", "envvars"), "w") as f:
        yaml.safe_dump(envvars, f)
    return pdd


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """ansible-runner seeds the job's environment from ours: drop anything that could point ansible at
    the checkout, and run from outside it."""
    for name in ("ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS", "PYTHONPATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(str(tmp_path))
    return tmp_path


@pytest.fixture
def fleet3():
    fleet, d = make_fleet(hosts=3, version="v1", first_address="127.0.0.81", retries=0)
    try:
        yield fleet
    finally:
        destroy_fleet(fleet, d)


def step_of(task):
    return next((step for step, prefix in STEPS if (task or "").startswith(prefix)), None)


# runner forks ansible-playbook (pexpect) while the load generator's threads run; the child execs at once.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_awx_job_rolls_the_fleet_from_the_installed_collection_under_load(installed, clean_env, fleet3):
    tmp = clean_env
    names = [h["name"] for h in fleet3.data["hosts"]]
    assert versions(fleet3) == dict.fromkeys(names, "v1")
    artifact, sha = build_artifact("v2", str(tmp / "artifacts"))
    lock_path = str(tmp / "rollout.lock")
    # What a job template with a survey passes (plus the awx_* variables AWX adds to every job).
    extravars = {
        "rolling_update_version": "v2",
        "rolling_update_artifact": artifact,
        "rolling_update_artifact_checksum": "sha256:" + sha,
        "rollout_serial": 1,
        "rollout_lock_path": lock_path,
        "rolling_update_health_interval": 0.2,
        "awx_job_id": AWX_JOB_ID,
        "awx_job_template_name": "rollout app",
        "tower_job_id": AWX_JOB_ID,
    }
    pdd = private_data_dir(str(tmp), installed, inventory_from=fleet3, extravars=extravars)
    assert ROOT not in installed and ".cache" not in installed

    load = LoadGenerator(fleet3.data["frontend_url"] + "/version", rate=50).start()
    try:
        r = ansible_runner.run(private_data_dir=pdd, playbook=PLAYBOOK, quiet=True)
    finally:
        summary = load.stop()
    stdout = r.stdout.read()
    assert (r.status, r.rc) == ("successful", 0), stdout[-6000:]
    events = list(r.events)

    # The whole runbook ran for every host, in order, from the job events.
    seen = {n: [] for n in names}
    for ev in events:
        data = ev.get("event_data", {})
        step = step_of(data.get("task"))
        if ev["event"] == "runner_on_ok" and step and data.get("host") in seen:
            seen[data["host"]].append(step)
            assert data["res"]["changed"] is True, (data["host"], data["task"], data["res"])
            if step == "replace":
                assert [x["name"] for x in data["res"]["steps"]] == REPLACE_STEPS, data["res"]
    assert seen == {n: [step for step, _label in STEPS] for n in names}, seen
    assert not [ev for ev in events if ev["event"] in ("runner_on_failed", "runner_on_unreachable")]

    # Installed-copy test: every task of the collection came from the installed tarball, none from the checkout.
    paths = {ev["event_data"].get("task_path", "").rsplit(":", 1)[0] for ev in events if ev["event"] == "runner_on_ok"}
    ours = sorted(p for p in paths if "/zerodowntime/rollout/" in p)
    assert ours and all(p.startswith(installed) for p in ours), ours
    assert not [p for p in paths if p.startswith(ROOT)], sorted(paths)
    assert any(p.endswith("roles/rolling_update/tasks/replace.yml") for p in ours), ours

    # The rollout lock was held by this AWX job (owner names the job) and released at the end.
    locks = [
        ev["event_data"]["res"]["lock"]
        for ev in events
        if ev["event"] == "runner_on_ok" and ev["event_data"].get("task") == "Take the rollout lock"
    ]
    assert len(locks) == 1 and locks[0]["owner"].endswith("awx-job %d" % AWX_JOB_ID), locks
    assert not os.path.exists(lock_path)

    # The fleet is on v2 and no user noticed.
    assert versions(fleet3) == dict.fromkeys(names, "v2")
    assert summary.total >= 50, summary.format()
    assert summary.failed == 0, summary.format()
    assert summary.versions().get("v1") and summary.versions().get("v2"), summary.format()


def test_awx_project_playbook_imports_the_collection_playbook(installed, clean_env):
    """An AWX job template picks a playbook file from its project: a one-line wrapper imports the
    collection's playbook by FQCN, and resolves it from the installed copy."""
    pdd = private_data_dir(str(clean_env), installed)
    with open(os.path.join(pdd, "project", "rollout.yml"), "w") as f:
        f.write("---\n- name: Zero-downtime rolling update\n  ansible.builtin.import_playbook: %s\n" % PLAYBOOK)
    r = ansible_runner.run(
        private_data_dir=pdd,
        playbook="rollout.yml",
        cmdline="--list-tasks",
        quiet=True,
    )
    stdout = r.stdout.read()
    assert (r.status, r.rc) == ("successful", 0), stdout[-4000:]
    # The lock is released in the last play's always section (--list-tasks shows no rescue/always tasks).
    assert "Take the rollout lock" in stdout and "Finish the rollout" in stdout, stdout[-4000:]
