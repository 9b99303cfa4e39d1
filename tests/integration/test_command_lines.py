"""Start and stop commands are command lines run by /bin/sh (issue #14), through the real playbook on the demo fleet.

The hosts' commands use shell syntax, as a capistrano or ansistrano hook would: ``cd DIR && VAR=value ./ctl start
&& echo ...``. ``ctl`` is a small control script that takes the deploy path, address and port from its environment
and runs the fleet's bin/app-ctl. The rollout succeeds under load with no failed request. A mistyped program in the stop
command is refused in preflight, while every host still serves: HAProxy's server state, read from its admin socket,
is the same before and after, and no app was stopped.
"""

import os
import shlex
import sys

import pytest
import yaml

from conftest import destroy_fleet, make_fleet, server_snapshot
from tests.fixtures.fleet.fleet import APP_CTL
from tests.fixtures.fleet.loadgen import LoadGenerator
from tests.fixtures.fleet.playbook import host_version as version_of
from tests.fixtures.fleet.playbook import run_playbook, write_inventory
from tests.fixtures.fleet.release import build_artifact
from tests.fixtures.fleet.sampler import RotationSampler

pytestmark = pytest.mark.integration

RATE = 50.0


@pytest.fixture(scope="module")
def fleet():
    f, directory = make_fleet(hosts=2, version="v1", first_address="127.0.0.226", retries=0)
    try:
        yield f
    finally:
        destroy_fleet(f, directory)


@pytest.fixture(scope="module")
def tools(fleet):
    """A directory with ``ctl``, which reads DEPLOY, BIND and PORT from its environment (it is useless without the
    shell's assignments in front of it), and where the start lines append to ``started.log``."""
    d = os.path.join(fleet.dir, "tools")
    os.makedirs(d, exist_ok=True)
    ctl = os.path.join(d, "ctl")
    app_args = shlex.join(fleet.data["app_args"])
    with open(ctl, "w") as f:
        f.write(
            "#!/bin/sh\n"
            ': "${DEPLOY:?}" "${BIND:?}" "${PORT:?}"\n'
            'case "$1" in\n'
            '  start) exec %(py)s %(ctl)s start "$DEPLOY" "$BIND" "$PORT" -- %(args)s ;;\n'
            '  stop) exec %(py)s %(ctl)s stop "$DEPLOY" "$BIND" "$PORT" --timeout 35 ;;\n'
            '  *) echo "usage: ctl start|stop" >&2; exit 2 ;;\n'
            "esac\n" % {"py": shlex.quote(sys.executable), "ctl": shlex.quote(APP_CTL), "args": app_args}
        )
    os.chmod(ctl, 0o755)
    return d


def env_words(h):
    return "DEPLOY=%s BIND=%s PORT=%d" % (shlex.quote(h["deploy_path"]), h["address"], h["port"])


def start_line(h, tools):
    started = shlex.quote(os.path.join(tools, "started.log"))
    return 'cd %s && %s ./ctl start && echo "started %s" >> %s' % (shlex.quote(tools), env_words(h), h["name"], started)


def stop_line(h, tools, program="ctl"):
    return "%s %s stop" % (env_words(h), shlex.quote(os.path.join(tools, program)))


def inventory(fleet, tools, path, stop_program="ctl"):
    """The demo inventory with each host's start and stop commands replaced by shell command lines."""
    write_inventory(fleet, path)
    with open(path) as f:
        inv = yaml.safe_load(f)
    hosts = inv["all"]["children"]["app"]["hosts"]
    for h in fleet.data["hosts"]:
        hosts[h["name"]]["rolling_update_start_command"] = start_line(h, tools)
        hosts[h["name"]]["rolling_update_stop_command"] = stop_line(h, tools, stop_program)
    with open(path, "w") as f:
        yaml.safe_dump(inv, f, sort_keys=False)
    return path


def rollout_under_load(fleet, inv, version, artifact, sha, lock):
    extra = {
        "rolling_update_version": version,
        "rolling_update_artifact": artifact,
        "rolling_update_artifact_checksum": "sha256:" + sha,
        "rolling_update_health_interval": 0.2,
        "rollout_lock_path": lock,
    }
    sampler = RotationSampler(fleet.data["admin_socket"], fleet.data["backend"]).start()
    load = LoadGenerator(fleet.data["frontend_url"] + "/version", rate=RATE).start()
    try:
        proc = run_playbook(inv, extra)
    finally:
        summary = load.stop()
        sampler.stop()
    return proc, summary, sampler


def test_a_mistyped_program_in_the_stop_command_is_refused_in_preflight(fleet, tools, tmp_path):
    hosts = fleet.data["hosts"]
    names = [h["name"] for h in hosts]
    pids = {n: fleet.host_pid(n) for n in names}
    versions = {h["name"]: version_of(h) for h in hosts}
    artifact, sha = build_artifact("v9", str(tmp_path / "artifacts"))
    inv = inventory(fleet, tools, str(tmp_path / "inventory.yml"), stop_program="clt")
    before = server_snapshot(fleet.data["admin_socket"])

    proc, summary, sampler = rollout_under_load(fleet, inv, "v9", artifact, sha, str(tmp_path / "rollout.lock"))

    out = proc.stdout
    assert proc.returncode != 0, out[-3000:]
    program = os.path.join(tools, "clt")
    expected = "stop_command runs %s, which is not an executable program on this host" % program
    assert expected in out, out[-3000:]
    assert "rolling_update_stop_command" in out and stop_line(hosts[0], tools, "clt") in out, out[-3000:]
    assert "No host was drained, stopped or switched" in out, out[-3000:]
    # nothing changed: HAProxy's server state, the apps' processes and versions, no release unpacked
    assert server_snapshot(fleet.data["admin_socket"]) == before
    assert sampler.out_of_rotation_seconds() == dict.fromkeys(names, 0), sampler.out_of_rotation_seconds()
    assert {n: fleet.host_pid(n) for n in names} == pids
    assert {h["name"]: version_of(h) for h in hosts} == versions
    for h in hosts:
        assert not os.path.exists(os.path.join(h["deploy_path"], "releases", "v9"))
    assert not os.path.exists(os.path.join(tools, "started.log"))
    assert summary.failed == 0, summary.format()


def test_start_and_stop_command_lines_with_shell_syntax_roll_the_fleet(fleet, tools, tmp_path):
    hosts = fleet.data["hosts"]
    names = [h["name"] for h in hosts]
    pids = {n: fleet.host_pid(n) for n in names}
    artifact, sha = build_artifact("v2", str(tmp_path / "artifacts"))
    inv = inventory(fleet, tools, str(tmp_path / "inventory.yml"))

    proc, summary, sampler = rollout_under_load(fleet, inv, "v2", artifact, sha, str(tmp_path / "rollout.lock"))

    out = proc.stdout
    assert proc.returncode == 0, out[-3000:]
    # every host stopped and started through its lines: a new process on v2, and the part after '&&' ran
    for h in hosts:
        assert version_of(h) == "v2"
        assert fleet.host_pid(h["name"]) not in (None, pids[h["name"]])
    with open(os.path.join(tools, "started.log")) as f:
        assert f.read().splitlines() == ["started %s" % n for n in names]
    # one host out of rotation at a time, both back in; no request lost
    assert not sampler.errors(), sampler.errors()[:3]
    assert sampler.max_out_of_rotation() == 1
    assert all(sampler.out_of_rotation_seconds()[n] > 0 for n in names), sampler.out_of_rotation_seconds()
    assert all(sampler.samples[-1][1][n] for n in names), sampler.samples[-1]
    assert summary.failed == 0, summary.format()
    assert set(summary.versions()) == {"v1", "v2"}, summary.format()
