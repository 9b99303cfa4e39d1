# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Service: argv building (systemctl; /bin/sh -c LINE for command lines), real tiny commands with a deadline, and
the port-closed wait after a stop."""

import os
import shutil
import socket
import subprocess
import time

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._service import (
    OUTPUT_CAP,
    Service,
    ServiceError,
    deadline_runner,
    port_open,
    validate_unit,
)
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.haproxy.fake_haproxy import FakeClock


class FakeRun:
    """Stands in for a deadline_runner: records (argv, timeout) and answers from a queue (default rc 0)."""

    def __init__(self, *answers):
        self.calls = []
        self.answers = list(answers)

    def __call__(self, argv, timeout):
        self.calls.append((list(argv), timeout))
        return self.answers.pop(0) if self.answers else (0, b"", b"")


class PortCheck:
    """Answers 'open' for the first ``open_polls`` checks, then 'closed' (or 'open' forever when None)."""

    def __init__(self, open_polls):
        self.open_polls = open_polls
        self.calls = []

    def __call__(self, host, port):
        self.calls.append((host, port))
        return self.open_polls is None or len(self.calls) <= self.open_polls


# --- unit names and arguments ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["app", "app.service", "app@1.service", "my-app_2:x.target", "a\\x2db.socket"])
def test_valid_unit_names(name):
    assert validate_unit(name) == name


@pytest.mark.parametrize(
    "name", ["", None, "-app", "app service", "app;reboot", "../app", "app/x", "x" * 256, "app\n", "$(id)"]
)
def test_invalid_unit_names(name):
    with pytest.raises(ValidationError):
        validate_unit(name)


def test_systemd_argv_is_built_without_running_systemctl():
    run = FakeRun()
    service = Service("systemd", name="app.service", stop_timeout=7, start_timeout=9, run=run)
    service.stop()
    service.start()
    assert run.calls == [(["systemctl", "stop", "app.service"], 7.0), (["systemctl", "start", "app.service"], 9.0)]
    assert service.describe("stop") == "systemctl stop app.service"


def test_systemd_refuses_a_bad_unit_before_running_anything():
    run = FakeRun()
    with pytest.raises(ValidationError):
        Service("systemd", name="app; rm -rf /", run=run)
    assert run.calls == []


def test_command_manager_runs_each_line_with_sh():
    run = FakeRun()
    service = Service("command", stop_command="/opt/app/bin/ctl stop 'a b'", start_command="ctl start", run=run)
    service.stop()
    service.start()
    assert [argv for argv, _timeout in run.calls] == [
        ["/bin/sh", "-c", "/opt/app/bin/ctl stop 'a b'"],
        ["/bin/sh", "-c", "ctl start"],
    ]
    assert service.describe("start") == "ctl start"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"manager": "upstart", "name": "app"},
        {"manager": "command", "start_command": "x"},
        {"manager": "command", "stop_command": "x", "start_command": "  "},
        {"manager": "systemd", "name": "app", "stop_timeout": 0},
        {"manager": "systemd", "name": "app", "start_timeout": -1},
        {"manager": "systemd", "name": "app", "app_port": 70000},
        {"manager": "systemd", "name": "app", "app_port": True},
    ],
)
def test_invalid_arguments(kwargs):
    with pytest.raises(ValidationError):
        Service(run=FakeRun(), **kwargs)


# --- failures ----------------------------------------------------------------------------------------


def test_failed_start_names_the_command_and_its_stderr():
    service = Service("systemd", name="app", run=FakeRun((1, b"out", b"Job failed\n")))
    with pytest.raises(ServiceError) as info:
        service.start()
    assert info.value.msg == "Starting the app failed: systemctl start app exited with 1: Job failed"
    assert info.value.details["rc"] == 1


def test_failed_stop_without_output():
    port_check = PortCheck(None)
    service = Service("systemd", name="app", app_port=8080, run=FakeRun((5, b"", b"")), port_check=port_check)
    with pytest.raises(ServiceError, match="Stopping the app failed: .* exited with 5: no output"):
        service.stop()
    assert port_check.calls == []


def test_long_output_is_capped():
    service = Service("systemd", name="app", run=FakeRun((2, b"", b"x" * 5000 + b"END")))
    with pytest.raises(ServiceError) as info:
        service.start()
    assert info.value.msg.endswith("END") and "..." in info.value.msg
    assert len(info.value.msg) < OUTPUT_CAP + 200


# --- the port-closed wait ----------------------------------------------------------------------------


def test_stop_waits_until_the_port_is_closed():
    clock = FakeClock()
    port_check = PortCheck(2)
    service = Service(
        "systemd", name="app", app_port=8080, run=FakeRun(), clock=clock, sleep=clock.sleep, port_check=port_check
    )
    service.stop()
    assert port_check.calls == [("127.0.0.1", 8080)] * 3
    assert clock.sleeps == [0.05, 0.05]


def test_stop_fails_when_the_port_stays_open():
    clock = FakeClock()
    service = Service(
        "systemd",
        name="app",
        app_host="10.0.0.5",
        app_port=8080,
        stop_timeout=1,
        run=FakeRun(),
        clock=clock,
        sleep=clock.sleep,
        port_check=PortCheck(None),
    )
    with pytest.raises(ServiceError, match="still accepts connections on 10.0.0.5:8080"):
        service.stop()
    assert 0.95 <= clock.now - clock.start <= 1.1


def test_stop_without_port_does_not_probe():
    port_check = PortCheck(None)
    Service("systemd", name="app", run=FakeRun(), port_check=port_check).stop()
    assert port_check.calls == []


def test_port_open_on_a_real_loopback_socket():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        assert port_open("127.0.0.1", port) is True
    finally:
        listener.close()
    assert port_open("127.0.0.1", port) is False


# --- real commands -----------------------------------------------------------------------------------


def run_command(argv, expand_user_and_vars=True):
    """What AnsibleModule.run_command does for these tests: run without a shell, stdin from /dev/null; like it,
    expand ``~`` and ``$VAR`` in every argument unless told not to."""
    if expand_user_and_vars:
        argv = [os.path.expanduser(os.path.expandvars(a)) for a in argv]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)  # noqa: S603
    return proc.returncode, proc.stdout, proc.stderr


run_argv = deadline_runner(run_command, shutil.which("timeout"))


def test_run_argv_success_and_exit_code():
    assert run_argv(["/bin/true"], 5) == (0, b"", b"")
    assert run_argv(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], 5) == (3, b"out\n", b"err\n")


def test_run_argv_stdin_is_dev_null():
    assert run_argv(["/bin/sh", "-c", "cat"], 5) == (0, b"", b"")


def test_run_argv_kills_at_the_deadline():
    start = time.monotonic()
    with pytest.raises(ServiceError) as info:
        run_argv(["sleep", "5"], 0.3)
    assert time.monotonic() - start < 3
    assert info.value.details["timed_out"] is True
    assert "sleep 5 did not finish" in info.value.msg


def test_without_timeout_the_command_runs_unwrapped():
    seen = []
    runner = deadline_runner(lambda argv, **kwargs: seen.append(argv) or (0, "", ""), None)
    assert runner(["ctl", "stop"], 5) == (0, "", "")
    assert seen == [["ctl", "stop"]]


def test_run_argv_missing_program():
    rc, _out, err = run_argv(["/nonexistent/prog"], 1)
    assert rc == 127 and b"/nonexistent/prog" in err


def test_a_service_needs_a_runner():
    with pytest.raises(ValidationError, match="command runner"):
        Service("command", stop_command="/bin/true", start_command="/bin/true")


def test_command_service_with_real_commands():
    service = Service(
        "command",
        stop_command="/bin/true",
        start_command="/bin/sh -c 'echo cannot bind >&2; exit 3'",
        stop_timeout=5,
        run=run_argv,
    )
    service.stop()
    with pytest.raises(ServiceError) as info:
        service.start()
    assert info.value.details["rc"] == 3 and info.value.msg.endswith("exited with 3: cannot bind")


def test_command_service_stop_deadline():
    service = Service("command", stop_command="sleep 5", start_command="/bin/true", stop_timeout=0.3, run=run_argv)
    start = time.monotonic()
    with pytest.raises(ServiceError, match="did not finish within"):
        service.stop()
    assert time.monotonic() - start < 3


# --- the check before anything changes (app_prepare) ---------------------------------------------------


def test_check_accepts_a_loaded_unit_as_root():
    run = FakeRun((0, b"loaded\n", b""))
    Service("systemd", name="app.service", run=run).check(0, shutil.which)
    assert run.calls[0][0] == ["systemctl", "show", "--property=LoadState", "--value", "app.service"]


def test_check_refuses_a_unit_systemd_does_not_know():
    run = FakeRun((0, b"not-found\n", b""))
    with pytest.raises(ServiceError, match=r"app\.srvice is not known on this host \(LoadState=not-found\)"):
        Service("systemd", name="app.srvice", run=run).check(0, shutil.which)
    assert len(run.calls) == 1  # only the read: nothing stopped


def test_check_refuses_systemd_without_root_and_names_become():
    run = FakeRun((0, b"loaded\n", b""))
    with pytest.raises(ServiceError, match="needs root.*uid 1000.*become"):
        Service("systemd", name="app.service", run=run).check(1000, shutil.which)


def test_check_refuses_when_systemd_cannot_be_asked():
    run = FakeRun((1, b"", b"System has not been booted with systemd as init system (PID 1)."))
    with pytest.raises(ServiceError, match="Cannot ask systemd about app.service.*not been booted"):
        Service("systemd", name="app.service", run=run).check(0, shutil.which)


def test_check_finds_the_command_programs(tmp_path):
    script = tmp_path / "ctl"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    Service("command", start_command="%s start" % script, stop_command="sh -c 'exit 0'", run=run_argv).check(
        1000, shutil.which
    )
    script.chmod(0o644)
    with pytest.raises(ServiceError, match="stop_command runs .*/ctl, which is not an executable program"):
        Service("command", start_command="true", stop_command="%s stop" % script, run=run_argv).check(0, shutil.which)
    with pytest.raises(ServiceError, match=r"start_command runs app-ctll, .* \(not found on PATH\)"):
        Service("command", start_command="app-ctll start", stop_command="true", run=run_argv).check(0, shutil.which)


def test_check_names_become_when_a_non_root_user_cannot_ask_systemd():
    run = FakeRun((1, b"", b"Failed to connect to bus: Permission denied"))
    with pytest.raises(ServiceError, match="runs as uid 1000 here: run it with become"):
        Service("systemd", name="app.service", run=run).check(1000, shutil.which)
