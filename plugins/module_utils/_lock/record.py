# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""What the lock file holds: reading it without trusting it, the rules a sane lock follows, and how a holder is
shown in messages.

The lock is a small JSON file. It records the owner, the run id, the start time and a TTL, and, when the caller
passed its ``run`` (the ``zerodowntime.rollout.controller_run`` lookup), the controller, the pid of its
ansible-playbook process and that process's start time. A lock file that is a symlink, not a regular file or
another user's is ``hostile``; one whose content is not sane (see :func:`problem`) is ``corrupt``.
"""

import json
import math
import os
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils import _fs
from ansible_collections.zerodowntime.rollout.plugins.module_utils._lock.errors import HINT, LockHeldError

MAX_LOCK_BYTES = 64 * 1024
# The longest TTL a lock may have (the module refuses a longer one, and a lock file that claims one is corrupt).
MAX_TTL = 7 * 24 * 3600
# How far in the future (by this host's clock) a lock's start time may lie before the lock counts as corrupt.
FUTURE_SLACK = 300


def number(value):
    """``value`` as a finite float, or None (booleans, strings, NaN, infinities and absurd integers are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int):
        return float(value) if abs(value) < 1e18 else None
    return value if math.isfinite(value) else None


def problem(record, now):
    """Why ``record`` (parsed lock JSON) cannot be a lock, or None. The rules, for a lock written by any version:

    owner a non-empty string; run_id a string or null; started a time between 1970 and FUTURE_SLACK seconds
    ahead of this host's clock; ttl above 0 and at most MAX_TTL; controller_pid, when present, a positive
    integer, controller and controller_pid_started strings (the latter or null). So a lock never claims to
    last beyond now + FUTURE_SLACK + MAX_TTL; NaN, infinities and 1e308 are refused.
    """
    if not isinstance(record, dict):
        return "not a JSON object"
    if not isinstance(record.get("owner"), str) or not record["owner"]:
        return "owner is not a non-empty string"
    if record.get("run_id") is not None and not isinstance(record["run_id"], str):
        return "run_id is not a string"
    started = number(record.get("started"))
    if started is None or started < 0 or started > now + FUTURE_SLACK:
        return "started is not a time between 1970 and %d s from now: %.40r" % (FUTURE_SLACK, record.get("started"))
    ttl = number(record.get("ttl"))
    if ttl is None or ttl <= 0 or ttl > MAX_TTL:
        return "ttl is not a number of seconds between 0 and %d: %.40r" % (MAX_TTL, record.get("ttl"))
    if "controller_pid" in record:
        pid = record["controller_pid"]
        if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 2**31:
            return "controller_pid is not a process id: %.40r" % (pid,)
        if not isinstance(record.get("controller"), str):
            return "controller is not a string"
        if record.get("controller_pid_started") is not None and not isinstance(record["controller_pid_started"], str):
            return "controller_pid_started is not a string"
    return None


class Holder:
    """What is at the lock's name: ``free``, a sane lock (``ok``), a ``corrupt`` one, or a ``hostile`` entry
    (a symlink, not a regular file, another user's). ``ident`` tells one state of the name from another."""

    def __init__(self, state, record=None, problem=None, ident=None):
        self.state = state
        self.record = record
        self.problem = problem
        self.ident = ident

    def summary(self):
        """What a result may show of it: the lock itself when sane, else only what is wrong (never its content)."""
        if self.state == "ok":
            return self.record
        return {"owner": "unknown (%s)" % self.problem, "run_id": None, "started": 0, "ttl": 0, "bad": True}


def _ident(info, data=None):
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size, data)


def read_holder(dir_fd, name, path, now):
    """The :class:`Holder` at ``name`` in the directory ``dir_fd`` (``path`` is how messages call it)."""
    try:
        data, info = _fs.read_file(dir_fd, name, MAX_LOCK_BYTES, path)
    except FileNotFoundError:
        return Holder("free")
    except _fs.FsError as exc:
        try:
            ident = _ident(os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
        except FileNotFoundError:
            return Holder("free")
        if exc.reason == "too_large":
            return Holder("corrupt", problem="unreadable lock file: larger than %d bytes" % MAX_LOCK_BYTES, ident=ident)
        what = {
            "symlink": "a symlink",
            "not_file": "not a regular file",
            "foreign": "owned by uid %s, not by the user running the rollout (uid %d)" % (exc.uid, os.geteuid()),
            "permission": "not readable by the user running the rollout",
            "links": "a file with other hard links",
        }.get(exc.reason, exc.reason)
        return Holder("hostile", problem="the lock file is %s" % what, ident=ident)
    ident = _ident(info, data)
    try:
        record = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return Holder("corrupt", problem="unreadable lock file: not JSON", ident=ident)
    found = problem(record, now)
    if found:
        return Holder("corrupt", problem="malformed lock file: %s" % found, ident=ident)
    return Holder("ok", record=record, ident=ident)


def bad_lock_error(holder, path):
    """The refusal of a lock file that is not a sane lock (``force`` replaces it)."""
    if holder.state == "hostile":
        return LockHeldError(
            "The rollout lock %s is refused: %s (another local user may have planted it; nothing was followed or "
            "read). Remove it, or take the lock with the break-glass option (force, rollout_lock_force), which "
            "replaces it without following it. %s" % (path, holder.problem, HINT),
            holder=holder.summary(),
        )
    return LockHeldError(
        "The rollout lock %s is refused: %s. If no rollout is running, take the lock with the break-glass option "
        "(force, rollout_lock_force), which replaces it." % (path, holder.problem),
        holder=holder.summary(),
    )


def describe(holder, now):
    """``owner (run id, started <UTC time>, N s ago, ttl N s)`` of a lock record."""
    started = float(holder.get("started") or 0)
    return "%s (run %s, started %s, %.0f s ago, ttl %s s)" % (
        holder.get("owner"),
        holder.get("run_id") or "?",
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        now - started,
        holder.get("ttl"),
    )
