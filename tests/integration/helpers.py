"""Helpers for integration tests: run real ansible-playbook against the collection in this checkout."""

import json
import os
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.fixtures.fleet.playbook import BIN, ansible_env  # noqa: E402


def local_inventory(path):
    """Write a one-host inventory (localhost, local connection, this venv's Python)."""
    with open(path, "w") as f:
        f.write("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    return path


def run_playbook(playbook, inventory=None, extra_args=(), env=None, timeout=600):
    """Run ansible-playbook on a playbook file; returns the CompletedProcess (never raises on rc)."""
    with tempfile.TemporaryDirectory() as tmp:
        inv = inventory or local_inventory(os.path.join(tmp, "hosts"))
        cmd = [os.path.join(BIN, "ansible-playbook"), "-i", inv, playbook] + list(extra_args)
        return subprocess.run(
            cmd, env=ansible_env(env), cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )


def run_tasks(tasks, check=False, diff=False, extra_args=(), env=None, timeout=600):
    """Run a list of task dicts on localhost and return their registered results.

    Each task is registered and may fail without stopping the play, so the caller can
    assert on ``failed`` and ``msg``. Returns ``(results, completed_process)`` where
    ``results`` is a list with one result dict per task, in order.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "results.json")
        play_tasks = []
        for i, task in enumerate(tasks):
            t = dict(task)
            t.setdefault("register", "_r%d" % i)
            t.setdefault("ignore_errors", True)
            play_tasks.append(t)
        names = [t["register"] for t in play_tasks]
        dump = "{{ [%s] | to_json }}" % ", ".join("%s | default({})" % n for n in names)
        play_tasks.append(
            {
                "name": "dump results",
                "ansible.builtin.copy": {"content": dump, "dest": out, "mode": "0600"},
                "check_mode": False,
                "diff": False,
            }
        )
        play = [{"hosts": "localhost", "gather_facts": False, "tasks": play_tasks}]
        pb = os.path.join(tmp, "play.yml")
        with open(pb, "w") as f:
            yaml.safe_dump(play, f, sort_keys=False)
        args = list(extra_args)
        if check:
            args.append("--check")
        if diff:
            args.append("--diff")
        proc = run_playbook(pb, extra_args=args, env=env, timeout=timeout)
        if not os.path.exists(out):
            raise AssertionError("playbook did not complete:\nSTDOUT:\n%s\nSTDERR:\n%s" % (proc.stdout, proc.stderr))
        with open(out) as f:
            return json.load(f), proc
