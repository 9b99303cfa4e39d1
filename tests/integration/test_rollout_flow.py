"""The rollout around the batches: expand/contract migration hooks, pauses and a manual gate between
batches, and rolling_update_rollback_scope=run. Real fleet, real HAProxy, real ansible-playbook,
steady load through the LB; every test asserts that no request failed."""

import fcntl
import os
import subprocess
import sys
import termios
import threading
import time

import pytest
import yaml

from conftest import destroy_fleet, make_fleet
from tests.fixtures.fleet.loadgen import LoadGenerator
from tests.fixtures.fleet.playbook import PLAYBOOK, ROOT, ansible_env, run_playbook, versions, write_inventory
from tests.fixtures.fleet.release import build_artifact

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_rollback import never_ready_app  # noqa: E402

pytestmark = pytest.mark.integration

# A hook task file: append one line "<what> <host> <monotonic-ish wall time>" to the log.
HOOK = """---
- name: Log {what}
  ansible.builtin.shell: echo "{what} {{{{ inventory_hostname }}}} $(date +%s.%N)" >> {log}
  changed_when: true
"""


def hooks(tmp_path, *names):
    log = tmp_path / "hooks.log"
    paths = {}
    for what in names:
        p = tmp_path / ("%s.yml" % what)
        p.write_text(HOOK.format(what=what, log=log))
        paths[what] = str(p)
    return log, paths


def events(log):
    if not log.exists():
        return []
    return [(w, h, float(t)) for w, h, t in (ln.split() for ln in log.read_text().splitlines())]


def base_vars(tmp_path, artifact, sha):
    return {
        "rolling_update_version": "v2",
        "rolling_update_artifact": artifact,
        "rolling_update_artifact_checksum": "sha256:" + sha,
        "rolling_update_health_interval": 0.2,
        "rolling_update_lb_poll_interval": 0.1,
        "rollout_lock_path": str(tmp_path / "rollout.lock"),
    }


@pytest.fixture
def fleet():
    f, d = make_fleet(hosts=3, version="v1", first_address="127.0.0.181", retries=0)
    try:
        yield f
    finally:
        destroy_fleet(f, d)


@pytest.mark.latest_only
def test_expand_runs_once_before_and_contract_once_after_with_pauses_between_batches(fleet, tmp_path):
    artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"))
    inv = write_inventory(fleet, str(tmp_path / "inventory.yml"))
    log, paths = hooks(tmp_path, "expand", "contract", "drain", "enable")
    extra = base_vars(tmp_path, artifact, sha)
    extra.update(
        {
            "rollout_expand_tasks": paths["expand"],
            "rollout_contract_tasks": paths["contract"],
            "rolling_update_before_drain_tasks": paths["drain"],
            "rolling_update_after_enable_tasks": paths["enable"],
            "rollout_pause_seconds": 2,
        }
    )
    load = LoadGenerator(fleet.data["frontend_url"] + "/version", rate=50.0).start()
    try:
        proc = run_playbook(inv, extra)
    finally:
        summary = load.stop()
    assert proc.returncode == 0, proc.stdout[-4000:]
    ev = events(log)
    assert [(w, h) for w, h, _t in ev] == [
        ("expand", "app1"),
        ("drain", "app1"),
        ("enable", "app1"),
        ("drain", "app2"),
        ("enable", "app2"),
        ("drain", "app3"),
        ("enable", "app3"),
        ("contract", "app1"),
    ], ev
    # The pause sits between batches (not after the last one).
    t = {(w, h): ts for w, h, ts in ev}
    assert t[("drain", "app2")] - t[("enable", "app1")] >= 2.0
    assert t[("drain", "app3")] - t[("enable", "app2")] >= 2.0
    assert proc.stdout.count("Pausing for 2 seconds") == 2, proc.stdout[-4000:]
    assert versions(fleet) == {"app1": "v2", "app2": "v2", "app3": "v2"}
    assert not (tmp_path / "rollout.lock").exists()
    assert summary.failed == 0, summary.format()


def test_rollback_scope_run_reverts_every_updated_host_and_never_contracts(fleet, tmp_path):
    good, good_sha = build_artifact("v2", str(tmp_path / "artifacts"))
    bad, bad_sha = build_artifact("v2", str(tmp_path / "artifacts-bad"), app_py=never_ready_app(tmp_path))
    inv = write_inventory(
        fleet,
        str(tmp_path / "inventory.yml"),
        group_vars={"rolling_update_artifact": good, "rolling_update_artifact_checksum": "sha256:" + good_sha},
    )
    # app2 gets a release that never becomes ready: the rollout fails on the second batch.
    with open(inv) as f:
        data = yaml.safe_load(f)
    data["all"]["children"]["app"]["hosts"]["app2"].update(
        {"rolling_update_artifact": bad, "rolling_update_artifact_checksum": "sha256:" + bad_sha}
    )
    with open(inv, "w") as f:
        yaml.safe_dump(data, f)
    log, paths = hooks(tmp_path, "expand", "contract")
    extra = base_vars(tmp_path, good, good_sha)
    for key in ("rolling_update_artifact", "rolling_update_artifact_checksum"):
        del extra[key]  # extra vars would beat app2's host variables
    extra.update(
        {
            "rolling_update_health_timeout": 4,
            "rolling_update_rollback_scope": "run",
            "rollout_expand_tasks": paths["expand"],
            "rollout_contract_tasks": paths["contract"],
        }
    )
    pid3 = fleet.host_pid("app3")
    load = LoadGenerator(fleet.data["frontend_url"] + "/version", rate=50.0).start()
    try:
        proc = run_playbook(inv, extra)
    finally:
        summary = load.stop()
    out = proc.stdout
    assert proc.returncode != 0, out[-4000:]
    assert "Rollout halted on app2" in out and "reverted app1 to the release they ran before" in out, out[-4000:]
    # Everything is back on v1 and in rotation; app3 was never touched; expand ran, contract never.
    assert versions(fleet) == {"app1": "v1", "app2": "v1", "app3": "v1"}
    assert fleet.host_pid("app3") == pid3
    assert all(s["status"] == "UP" for s in fleet.servers().values()), fleet.servers()  # not DRAIN, not MAINT
    assert [(w, h) for w, h, _t in events(log)] == [("expand", "app1")]
    assert not (tmp_path / "rollout.lock").exists()
    assert summary.failed == 0, summary.format()


def gate_run(fleet, tmp_path, stdin_tty, answer=b"yes"):
    artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"))
    inv = write_inventory(fleet, str(tmp_path / "inventory.yml"))
    extra = base_vars(tmp_path, artifact, sha)
    extra["rollout_manual_gate"] = True
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inv, PLAYBOOK]
    cmd += ["-e", yaml.safe_dump(extra, default_flow_style=True).strip()]
    if not stdin_tty:
        return subprocess.run(
            cmd, env=ansible_env(), cwd=ROOT, text=True, capture_output=True, stdin=subprocess.DEVNULL, check=False
        )

    # An operator at a terminal: ansible-playbook gets a pty as its controlling terminal and stdin.
    master, slave = os.openpty()

    def controlling_tty():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        cmd,
        env=ansible_env(),
        cwd=ROOT,
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=controlling_tty,
    )
    os.close(slave)
    lines, prompted, answered = [], threading.Event(), threading.Event()

    def reader():
        # Raw chunks, not lines: the prompt does not end with a line break.
        while chunk := os.read(proc.stdout.fileno(), 65536):
            lines.append(chunk.decode(errors="replace"))
            text = "".join(lines)
            if "type 'yes'" in text:
                prompted.set()
                after = text[text.index("type 'yes'") :]
                if "Halt at a closed gate" in after or "PLAY RECAP" in after:
                    answered.set()  # the prompt returned: the play went on to the next task

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        assert prompted.wait(120), "".join(lines)[-4000:]
        # ansible-core flushes the terminal's input right after it prints the prompt, so an answer typed
        # at once can be thrown away: type it again each second until the play moves on.
        deadline = time.monotonic() + 60
        while not answered.wait(1.0) and proc.poll() is None and time.monotonic() < deadline:
            os.write(master, answer + b"\r")
        proc.wait(timeout=180)
        t.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines), "")


@pytest.fixture
def fleet2():
    f, d = make_fleet(hosts=2, version="v1", first_address="127.0.0.185", retries=0)
    try:
        yield f
    finally:
        destroy_fleet(f, d)


@pytest.mark.latest_only
def test_manual_gate_without_a_terminal_halts_cleanly_after_the_first_batch(fleet2, tmp_path):
    pid2 = fleet2.host_pid("app2")
    started = time.monotonic()
    proc = gate_run(fleet2, tmp_path, stdin_tty=False)
    assert proc.returncode != 0, proc.stdout[-4000:]
    assert "Stopped at the manual gate after app1" in proc.stdout and "approval node" in proc.stdout, proc.stdout[
        -4000:
    ]
    assert versions(fleet2) == {"app1": "v2", "app2": "v1"}
    assert fleet2.host_pid("app2") == pid2
    assert all(s["status"] == "UP" for s in fleet2.servers().values())
    assert not (tmp_path / "rollout.lock").exists()
    assert time.monotonic() - started < 120


@pytest.mark.latest_only
def test_manual_gate_answered_yes_at_a_terminal_rolls_on(fleet2, tmp_path):
    proc = gate_run(fleet2, tmp_path, stdin_tty=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert versions(fleet2) == {"app1": "v2", "app2": "v2"}
    assert not (tmp_path / "rollout.lock").exists()


@pytest.mark.latest_only
def test_manual_gate_answered_no_at_a_terminal_halts_and_says_what_was_typed(fleet2, tmp_path):
    proc = gate_run(fleet2, tmp_path, stdin_tty=True, answer=b"no")
    assert proc.returncode != 0, proc.stdout[-4000:]
    assert 'Stopped at the manual gate after app1 (the answer was "no", not yes)' in proc.stdout, proc.stdout[-4000:]
    assert versions(fleet2) == {"app1": "v2", "app2": "v1"}
    assert not (tmp_path / "rollout.lock").exists()


@pytest.mark.parametrize("serial", ["abc", "", "12.5%"])
def test_a_bad_rollout_serial_is_refused_before_anything_is_read(tmp_path, serial):
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump({"app": {"hosts": {"app1": {"ansible_connection": "local"}}}}))
    proc = run_playbook(str(inv), {"rolling_update_version": "v2", "rollout_serial": serial})
    assert proc.returncode != 0
    assert "rollout_serial" in proc.stdout and "Unexpected Exception" not in proc.stdout + proc.stderr, proc.stdout
    assert "TASK [Check the rollout options]" not in proc.stdout  # it stopped at the first check
