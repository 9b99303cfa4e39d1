# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start and stop commands are command lines run by /bin/sh (issue #14): assignments, cd, &&, quoting and $VAR
behave as in a shell, with the deadline, output cap and messages of before; the preflight check (sh -n, then the
first program word through the shell's command -v) runs nothing of the line and names the role variable.

Every command here runs for real: /bin/sh, coreutils timeout, files in tmp_path."""

import os
import shutil
import subprocess
import time

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._service import (
    OUTPUT_CAP,
    Service,
    ServiceError,
    deadline_runner,
)

TIMEOUT = shutil.which("timeout")


def ansible_like_run_command(argv, expand_user_and_vars=True):
    """AnsibleModule.run_command as far as these tests need it: no shell, stdin from /dev/null, and (its default)
    ``~`` and ``$VAR`` expanded in every argument by Python unless ``expand_user_and_vars=False``."""
    if expand_user_and_vars:
        argv = [os.path.expanduser(os.path.expandvars(a)) for a in argv]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)  # noqa: S603
    return proc.returncode, proc.stdout, proc.stderr


run = deadline_runner(ansible_like_run_command, TIMEOUT)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


@pytest.fixture
def ctl(tmp_path):
    """An app directory with ``./ctl``, a control script that reads IP and PORT from its environment and records
    ``<action> <IP>:<PORT> <cwd>`` in ``calls``; ``ctl fail`` writes to stderr and exits 3."""
    app = tmp_path / "app dir"
    app.mkdir()
    script = app / "ctl"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = fail ]; then echo "cannot bind $IP:$PORT" >&2; exit 3; fi\n'
        'echo "$1 $IP:$PORT $(pwd)" >> "$(dirname "$0")/calls"\n'
    )
    script.chmod(0o755)
    return app


def calls(app):
    path = app / "calls"
    return path.read_text().splitlines() if path.exists() else []


def service(start, stop, **kwargs):
    return Service("command", start_command=start, stop_command=stop, run=run, **kwargs)


# --- the lines run through /bin/sh -----------------------------------------------------------------------


def test_assignments_cd_and_and_run_as_in_a_shell(ctl):
    quoted = "'%s'" % ctl
    svc = service(
        "cd %s && IP=10.0.0.5 PORT=8080 ./ctl start && echo started >> %s/calls" % (quoted, quoted),
        "IP=10.0.0.5 PORT=8080 %s/ctl stop" % quoted,
        stop_timeout=5,
        start_timeout=5,
    )
    svc.stop()
    svc.start()
    assert calls(ctl) == ["stop 10.0.0.5:8080 %s" % os.getcwd(), "start 10.0.0.5:8080 %s" % ctl, "started"]


def test_the_line_reaches_the_shell_unexpanded(ctl, monkeypatch):
    """$VAR and ~ are the shell's to expand: a single-quoted $PORT stays literal, and a variable the line sets is
    the one its command sees (Ansible's run_command would otherwise expand them first, with the module's values)."""
    monkeypatch.setenv("PORT", "9999")
    out = ctl / "seen"
    svc = service("PORT=8080; printf '%%s %%s' \"$PORT\" '$PORT' > '%s'" % out, "true")
    svc.start()
    assert out.read_text() == "8080 $PORT"


def test_runner_asks_run_command_not_to_expand():
    seen = []
    runner = deadline_runner(lambda argv, **kwargs: seen.append((argv, kwargs)) or (0, b"", b""), None)
    runner(["/bin/sh", "-c", "echo $HOME"], 5)
    assert seen == [(["/bin/sh", "-c", "echo $HOME"], {"expand_user_and_vars": False})]


def test_a_failed_line_is_named_with_its_stderr(ctl):
    svc = service("cd '%s' && IP=1.2.3.4 PORT=81 ./ctl fail" % ctl, "true")
    with pytest.raises(ServiceError) as info:
        svc.start()
    assert info.value.msg == (
        "Starting the app failed: cd '%s' && IP=1.2.3.4 PORT=81 ./ctl fail exited with 3: cannot bind 1.2.3.4:81" % ctl
    )
    assert info.value.details["rc"] == 3


def test_a_secret_in_the_line_is_not_shown(ctl):
    svc = service("DB_PASSWORD=hunter2 API_TOKEN=abc123 '%s/ctl' fail" % ctl, "true")
    with pytest.raises(ServiceError) as info:
        svc.start()
    assert "hunter2" not in info.value.msg and "abc123" not in info.value.msg
    assert "DB_PASSWORD=*** API_TOKEN=*** '%s/ctl' fail exited with 3" % ctl in info.value.msg
    assert "hunter2" not in svc.describe("start")


def test_output_of_a_line_is_capped():
    svc = service("head -c 5000 /dev/zero | tr '\\0' x >&2; echo END >&2; exit 2", "true")
    with pytest.raises(ServiceError) as info:
        svc.start()
    assert info.value.msg.endswith("xEND") and "..." in info.value.msg
    assert len(info.value.msg) < OUTPUT_CAP + 200


def test_the_deadline_ends_the_line_and_what_it_started(tmp_path):
    """At the deadline the shell and its children are ended (timeout signals the whole process group)."""
    pidfile = tmp_path / "child.pid"
    line = "sleep 30 & echo $! > '%s'; wait" % pidfile
    svc = service("true", line, stop_timeout=0.5)
    start = time.monotonic()
    with pytest.raises(ServiceError) as info:
        svc.stop()
    assert time.monotonic() - start < 4
    assert info.value.details["timed_out"] is True
    assert info.value.msg == "%s did not finish within 0.5s and was killed." % line
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 6
    while pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child)


def test_an_empty_line_names_the_role_variable():
    with pytest.raises(ValidationError, match=r"stop_command \(rolling_update_stop_command\) is required"):
        service("./start", "  ")


# --- the preflight check -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, program",
    [
        ("IP=1 PORT=2 ./ctl start", "./ctl"),
        ("cd /srv/app && ./start", "cd"),
        ("PORT=1; exec ./z", "exec"),
        ("(cd /srv/app; ./start)", "cd"),
        ("2>/dev/null ./q start", "./q"),
        ('A="x y" "my ctl" start', "my ctl"),
        ("A=1", None),
        ("$APP_HOME/bin/ctl start", None),
        ("X=$(date) ./run", None),
    ],
)
def test_first_program(line, program):
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._service import first_program  # noqa: PLC0415

    assert first_program(line) == program


def test_check_accepts_shell_lines_and_runs_nothing_of_them(ctl):
    """cd is a builtin: command -v resolves it through sh. Nothing of either line runs during the check."""
    marker = ctl / "ran"
    svc = service(
        "cd '%s' && IP=1 PORT=2 ./ctl start; touch '%s'" % (ctl, marker),
        "IP=1 PORT=2 '%s/ctl' stop && touch '%s'" % (ctl, marker),
    )
    svc.check(1000, shutil.which)
    assert not marker.exists() and calls(ctl) == []


def test_check_refuses_a_line_sh_cannot_parse(ctl):
    marker = ctl / "ran"
    line = "touch '%s' && ./ctl start 'unterminated" % marker
    with pytest.raises(ServiceError) as info:
        service(line, "true").check(0, shutil.which)
    msg = info.value.msg
    assert msg.startswith("start_command is not a valid /bin/sh command line: %r: sh -n says: " % line), msg
    assert "rolling_update_start_command" in msg and msg.endswith("Nothing was changed."), msg
    assert not marker.exists()


def test_check_refuses_a_mistyped_program_after_assignments(ctl):
    marker = ctl / "ran"
    line = "IP=1 PORT=2 app-ctll stop; touch '%s'" % marker
    with pytest.raises(ServiceError) as info:
        service("true", line).check(0, shutil.which)
    msg = info.value.msg
    assert msg.startswith(
        "stop_command runs app-ctll, which is not an executable program on this host (not found on PATH); "
        "the line is %r. Fix stop_command (rolling_update_stop_command in the rolling_update role)" % line
    ), msg
    assert not marker.exists()


def test_check_refuses_a_missing_script_in_a_directory(ctl):
    with pytest.raises(ServiceError, match=r"start_command runs .*/ctll, which is not an executable program"):
        service("PORT=2 '%s/ctll' start" % ctl, "true").check(0, shutil.which)


def test_check_hides_a_secret_of_a_refused_line():
    with pytest.raises(ServiceError) as info:
        service("API_TOKEN=s3cr3t nosuchprog-zdt start", "true").check(0, shutil.which)
    assert "s3cr3t" not in info.value.msg and "API_TOKEN=***" in info.value.msg
    assert "runs nosuchprog-zdt" in info.value.msg
