# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller_run lookup and its /proc reading, on a fake proc root and on the real one."""

import multiprocessing
import os
import socket
import sys

import pytest
from ansible.errors import AnsibleLookupError

from ansible_collections.zerodowntime.rollout.plugins.lookup.controller_run import LookupModule
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils import _controller_run as cr

ON_LINUX_PROC = sys.platform.startswith("linux") and os.path.isfile("/proc/self/stat")


def stat_line(pid, comm, starttime, state="S"):
    # pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime cutime
    # cstime priority nice num_threads itrealvalue starttime vsize ...
    rest = [state, "1", str(pid), str(pid), "0", "-1", "4194560", "10", "0", "0", "0", "3", "1", "0", "0", "20", "0"]
    rest += ["1", "0", str(starttime), "12345678", "900", "18446744073709551615"]
    return ("%d (%s) %s\n" % (pid, comm, " ".join(rest))).encode()


def add_process(root, pid, argv, comm="python3", starttime=1000):
    d = root / str(pid)
    d.mkdir()
    (d / "stat").write_bytes(stat_line(pid, comm, starttime))
    (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))


@pytest.fixture
def proc(tmp_path):
    root = tmp_path / "proc"
    root.mkdir()
    (root / "self").mkdir()  # not a pid: ignored
    (root / "meminfo").write_text("MemTotal: 1 kB\n")
    return root


# -- /proc/<pid>/stat ----------------------------------------------------------------------------


def test_start_time_is_field_22(proc):
    add_process(proc, 42, ["x"], starttime=987654)
    assert cr.process_started(42, str(proc)) == "987654"


@pytest.mark.parametrize("comm", ["ansible-playboo", "a b c", "x) 1 2 (y", ") S 9 9 9", "((("])
def test_comm_with_spaces_and_parentheses(proc, comm):
    add_process(proc, 43, ["x"], comm=comm, starttime=31337)
    assert cr.process_started(43, str(proc)) == "31337"


def test_missing_or_garbled_stat_is_none(proc):
    assert cr.process_started(44, str(proc)) is None
    (proc / "45").mkdir()
    (proc / "45" / "stat").write_bytes(b"45 (short) S 1 2")
    assert cr.process_started(45, str(proc)) is None
    (proc / "46").mkdir()
    (proc / "46" / "stat").write_bytes(b"46 no parenthesis at all")
    assert cr.process_started(46, str(proc)) is None


# -- which processes are ansible-playbook --------------------------------------------------------


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["/venv/bin/python3", "/venv/bin/ansible-playbook", "-i", "inv", "site.yml"], True),
        (["ansible-playbook", "site.yml"], True),
        (["/usr/bin/ansible-playbook"], True),
        (["/venv/bin/ansible", "all", "-m", "ping"], False),
        (["/venv/bin/ansible-playbook-wrapper", "site.yml"], False),
        (["vim", "ansible-playbook.md"], False),
        (["python3", "-c", "print('ansible-playbook')"], False),
        ([], False),
    ],
)
def test_is_playbook_cmdline(argv, expected):
    assert cr.is_playbook_cmdline(b"".join(a.encode() + b"\0" for a in argv)) is expected


def test_running_lists_ansible_playbook_processes_by_pid(proc):
    add_process(proc, 300, ["/v/bin/python", "/v/bin/ansible-playbook", "b.yml"], starttime=3000)
    add_process(proc, 20, ["ansible-playbook", "a.yml"], comm="ansible-playboo", starttime=200)
    add_process(proc, 21, ["/v/bin/ansible-lint"], starttime=210)
    add_process(proc, 22, ["sleep", "60"], starttime=220)
    (proc / "23").mkdir()  # a process gone between listing and reading
    (proc / "24").mkdir()  # a zombie: empty command line
    (proc / "24" / "cmdline").write_bytes(b"")
    (proc / "24" / "stat").write_bytes(stat_line(24, "ansible-playboo", 240, state="Z"))
    assert cr.running_playbooks(str(proc)) == [{"pid": 20, "started": "200"}, {"pid": 300, "started": "3000"}]


def test_running_includes_the_given_pid_even_when_its_command_line_does_not_name_ansible_playbook(proc):
    add_process(proc, 20, ["ansible-playbook", "a.yml"], starttime=200)
    add_process(proc, 7, ["python3", "-m", "ansible.cli.playbook"], starttime=70)
    assert cr.running_playbooks(str(proc), include=7) == [{"pid": 7, "started": "70"}, {"pid": 20, "started": "200"}]
    assert cr.running_playbooks(str(proc), include=20) == [{"pid": 20, "started": "200"}]
    assert cr.running_playbooks(str(proc), include=8) is None  # cannot read our own start time


def test_no_proc_means_unknown(tmp_path):
    assert cr.running_playbooks(str(tmp_path / "missing")) is None
    run = cr.controller_run(proc_root=str(tmp_path / "missing"), pid=123, hostname="ctl")
    assert run == {"controller": "ctl", "pid": 123, "started": None, "running": None}


def test_controller_run_on_a_fake_proc(proc):
    add_process(proc, 20, ["ansible-playbook", "a.yml"], starttime=200)
    add_process(proc, 30, ["ansible-playbook", "b.yml"], starttime=300)
    assert cr.controller_run(proc_root=str(proc), pid=30, hostname="ctl") == {
        "controller": "ctl",
        "pid": 30,
        "started": "300",
        "running": [{"pid": 20, "started": "200"}, {"pid": 30, "started": "300"}],
    }


# -- which pid is "this run" ---------------------------------------------------------------------


def test_playbook_pid_outside_a_worker_is_this_process():
    assert multiprocessing.parent_process() is None
    assert cr.playbook_pid() == os.getpid()


def _report_pid(queue):
    queue.put(cr.playbook_pid())


@pytest.mark.skipif(sys.platform == "win32", reason="fork start method")
def test_playbook_pid_in_a_forked_worker_is_its_parent():
    # Ansible's workers are multiprocessing processes of the "fork" context, as here.
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    worker = ctx.Process(target=_report_pid, args=(queue,))
    worker.start()
    try:
        assert queue.get(timeout=30) == os.getpid()
    finally:
        worker.join(30)
    assert worker.exitcode == 0


# -- the real /proc ------------------------------------------------------------------------------


@pytest.mark.skipif(not ON_LINUX_PROC, reason="needs Linux /proc")
def test_this_process_on_the_real_proc():
    with open("/proc/self/stat", "rb") as f:
        expected = f.read().rpartition(b")")[2].split()[19].decode()
    run = cr.controller_run()
    assert run["controller"] == socket.gethostname() and run["pid"] == os.getpid()
    assert run["started"] == expected
    assert {"pid": os.getpid(), "started": expected} in run["running"]
    assert cr.process_started(os.getpid()) == expected


# -- the lookup plugin -----------------------------------------------------------------------------


def test_lookup_returns_one_dict():
    result = LookupModule().run([], variables={})
    assert isinstance(result, list) and len(result) == 1
    assert set(result[0]) == {"controller", "pid", "started", "running"}
    assert result[0]["pid"] == os.getpid()


@pytest.mark.parametrize("terms, options", [(["x"], {}), ([], {"pid": 1})])
def test_lookup_takes_no_terms_and_no_options(terms, options):
    with pytest.raises(AnsibleLookupError, match="takes no terms and no options"):
        LookupModule().run(terms, variables={}, **options)
