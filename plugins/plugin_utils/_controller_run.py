# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Which ansible-playbook run is this, and which runs are alive on this controller?

Plain Python, no Ansible import: the lookup ``zerodowntime.rollout.controller_run`` calls
``controller_run()`` on the controller, and the ``rollout_lock`` module compares what it
returns with the run recorded in a lock file, so a lock held by the same owner is only taken over
when the run holding it is gone.

A run is named by the pid of its ansible-playbook process plus that process's start time, so that
a pid the kernel hands out again to a later process does not pass for the old run. The start time
and the list of live ansible-playbook processes come from ``/proc`` (Linux); without it they are
``None``, meaning "cannot be known".
"""

import multiprocessing
import os
import socket

PROC_ROOT = "/proc"
PLAYBOOK_NAME = b"ansible-playbook"

# Field 22 of /proc/<pid>/stat (starttime, in clock ticks since boot). Fields are counted from 1 and
# the split starts after the closing parenthesis of field 2 (comm), that is at field 3.
_STARTTIME_INDEX = 22 - 3


def playbook_pid():
    """The pid of the ansible-playbook process this code runs for.

    Ansible runs tasks, and so lookups, in worker processes that ansible-playbook forks with
    multiprocessing; there ``multiprocessing.parent_process()`` is the ansible-playbook process.
    Code that runs in ansible-playbook itself (no multiprocessing parent) is that process.

    Verified with ``.venv`` (ansible-core 2.21.5, Python 3.13) and ``.venv-min`` (ansible-core 2.17.14,
    Python 3.12): a playbook started with ``subprocess.Popen([".../bin/ansible-playbook", ...])``, with
    forks 1 and 5, got ``Popen.pid`` back from the lookup both in a task's arguments (worker process)
    and in a play name (templated in ansible-playbook itself), and that pid was in ``running`` with the
    start time read from ``/proc/<Popen.pid>/stat``.
    """
    parent = multiprocessing.parent_process()
    if parent is not None:
        return parent.pid
    return os.getpid()


def process_started(pid, proc_root=PROC_ROOT):
    """Start time of process ``pid`` as a string (clock ticks since boot), or None if it cannot be read.

    ``comm`` (field 2) is in parentheses and may itself hold spaces and parentheses, so the fields
    are taken after the last ``)`` of the line.
    """
    try:
        with open(os.path.join(proc_root, str(pid), "stat"), "rb") as f:
            data = f.read()
    except OSError:
        return None
    _head, sep, tail = data.rpartition(b")")
    if not sep:
        return None
    fields = tail.split()
    if len(fields) <= _STARTTIME_INDEX or not fields[_STARTTIME_INDEX].isdigit():
        return None
    return fields[_STARTTIME_INDEX].decode("ascii")


def is_playbook_cmdline(cmdline):
    """True when one argument of a NUL-separated ``/proc/<pid>/cmdline`` has the basename ansible-playbook."""
    return any(arg.rpartition(b"/")[2] == PLAYBOOK_NAME for arg in cmdline.split(b"\0") if arg)


def running_playbooks(proc_root=PROC_ROOT, include=None):
    """``[{"pid": int, "started": str}]`` of every live ansible-playbook process, sorted by pid.

    ``include`` (a pid) is listed too even when its command line does not name ansible-playbook
    (ansible-playbook started in an unusual way still counts itself). Returns None when ``proc_root``
    cannot be listed, or when ``include`` is given and its start time cannot be read: then nothing
    reliable can be said about which runs are alive.
    """
    try:
        names = os.listdir(proc_root)
    except OSError:
        return None
    found = {}
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc_root, name, "cmdline"), "rb") as f:
                cmdline = f.read()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if not is_playbook_cmdline(cmdline):
            continue
        started = process_started(name, proc_root)
        if started is not None:  # None: it ended between the two reads
            found[int(name)] = started
    if include is not None and include not in found:
        started = process_started(include, proc_root)
        if started is None:
            return None
        found[include] = started
    return [{"pid": pid, "started": found[pid]} for pid in sorted(found)]


def controller_run(proc_root=PROC_ROOT, pid=None, hostname=None):
    """This run as the lookup returns it: controller, pid, started and running (see the lookup's docs)."""
    if pid is None:
        pid = playbook_pid()
    started = process_started(pid, proc_root)
    return {
        "controller": hostname if hostname is not None else socket.gethostname(),
        "pid": pid,
        "started": started,
        "running": running_playbooks(proc_root, include=pid) if started is not None else None,
    }
