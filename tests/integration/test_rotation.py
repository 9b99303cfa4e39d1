"""zerodowntime.rollout.rotation against a real HAProxy: in the controller's worker (local connection) and as a
module (the same task with become), each four ways: check mode, for real, again, and bad input.

Effects are read on HAProxy itself (socat, see conftest) and on disk (the resume record and its modes)."""

import os
import stat as st

import pytest
from helpers import run_tasks

from conftest import BACKEND, server_snapshot, stat

pytestmark = pytest.mark.integration

MODULE = "zerodowntime.rollout.rotation"
PATHS = {
    # A local connection without become: the action plugin runs the logic in its worker.
    "in_process": {},
    # With become (su, as root here, needs no password) the action runs the module through AnsiballZ.
    "module": {"become": True, "become_method": "ansible.builtin.su", "become_user": "root"},
}


def task(fleet, state_dir, state, path, **options):
    args = {"backend": BACKEND, "server": "app1", "sockets": [fleet.admin_socket], "state": state}
    args["state_dir"] = state_dir
    args.update(options)
    return dict({"name": "rotation %s" % state, MODULE: args}, **PATHS[path])


def records(state_dir):
    folder = os.path.join(state_dir, "rotation")
    return sorted(n for n in os.listdir(folder) if n.endswith(".json")) if os.path.isdir(folder) else []


def shipped_modules(remote_tmp):
    """AnsiballZ payloads left in the remote temporary folder (kept by ANSIBLE_KEEP_REMOTE_FILES)."""
    return [n for _d, _s, files in os.walk(remote_tmp) for n in files if n.startswith("AnsiballZ_rotation")]


@pytest.mark.parametrize("path", sorted(PATHS))
def test_out_and_in_four_ways(clean_fleet, tmp_path, path):
    fleet = clean_fleet
    state_dir = str(tmp_path / "state")
    before = server_snapshot(fleet.admin_socket)

    (check,), _proc = run_tasks([task(fleet, state_dir, "out", path)], check=True, diff=True)
    assert check["changed"] is True and not check.get("failed"), check
    assert "diff" in check and check["steps"][0]["name"] == "drain"
    assert server_snapshot(fleet.admin_socket) == before and records(state_dir) == []

    remote_tmp = str(tmp_path / "remote-tmp")
    keep = {"ANSIBLE_REMOTE_TEMP": remote_tmp, "ANSIBLE_KEEP_REMOTE_FILES": "1"}
    (out,), _proc = run_tasks([task(fleet, state_dir, "out", path, min_healthy="2", batch=["app1"])], env=keep)
    assert out["changed"] is True and not out.get("failed"), out
    # The module was shipped and run only with become; in the worker nothing is shipped.
    assert bool(shipped_modules(remote_tmp)) == (path == "module"), shipped_modules(remote_tmp)
    assert stat(fleet.admin_socket)["app1"]["status"] == "DRAIN"
    assert out["capacity"]["ok"] is True and out["steps"][0]["name"] == "drain"
    (name,) = records(state_dir)
    record = os.path.join(state_dir, "rotation", name)
    assert st.S_IMODE(os.stat(record).st_mode) == 0o600
    assert st.S_IMODE(os.stat(os.path.dirname(record)).st_mode) == 0o700

    (again, read), _proc = run_tasks([task(fleet, state_dir, "out", path), task(fleet, state_dir, "read", path)])
    assert again["changed"] is False and not again.get("failed"), again
    assert read["in_rotation"] is False and read["record"]["server"] == "app1", read

    (back,), _proc = run_tasks([task(fleet, state_dir, "in", path)])
    assert back["changed"] is True and not back.get("failed"), back
    assert stat(fleet.admin_socket)["app1"]["status"] == "UP" and records(state_dir) == []
    assert back["steps"][0]["name"] == "enable"


@pytest.mark.parametrize("path", sorted(PATHS))
def test_bad_input_and_the_capacity_guard_change_nothing(clean_fleet, tmp_path, path):
    fleet = clean_fleet
    state_dir = str(tmp_path / "state")
    before = server_snapshot(fleet.admin_socket)
    results, _proc = run_tasks(
        [
            task(fleet, state_dir, "out", path, server="app1;shutdown sessions server app/app2"),
            task(fleet, state_dir, "out", path, batch=["app1", "app2", "app3"], min_healthy="1"),
            task(fleet, state_dir, "out", path, min_healthy="lots"),
        ]
    )
    injected, guarded, junk = results
    assert injected["failed"] and "Invalid server name" in injected["msg"], injected
    assert guarded["failed"] and "Capacity guard: draining app1, app2, app3 would leave too few" in guarded["msg"]
    assert junk["failed"] and "min_healthy" in junk["msg"], junk
    assert server_snapshot(fleet.admin_socket) == before and records(state_dir) == []
