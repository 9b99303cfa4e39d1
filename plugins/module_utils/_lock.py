# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The rollout lock: one rollout of a service at a time.

The lock is a small JSON file on a host that every rollout of the service shares. It records the owner,
the run id, the start time and a TTL, and, when the caller passes its ``run`` (the
``zerodowntime.rollout.controller_run`` lookup), the controller, the pid of its ansible-playbook process
and that process's start time:

- a free lock is taken;
- a lock held by the same owner in another run is taken over (a resume after an interrupted run),
  unless that run is known to be alive: recorded on this very controller, and its ansible-playbook
  process (pid and start time) is in ``run["running"]``. Then the caller is refused. When nothing is
  known (another controller, no ``/proc``, a lock written without ``run``) it is taken over;
- a lock whose TTL has passed is taken over, and the previous holder is reported;
- otherwise the caller is refused with the holder's identity, unless ``force`` (break glass).

Changing hands is a compare-and-swap. The caller reads the lock once when it starts and decides; then,
holding ``flock`` on a guard file next to the lock (``<lock>.guard``: created 0600, opened with
``O_NOFOLLOW``, never replaced or removed), it reads the lock again and writes only if it is still the
lock it decided on. A lock that changed hands meanwhile, or that was taken at or after the moment the
caller started, was won by someone else: the caller is refused, even with ``force``. So whenever the
lock changes hands (free, expired, same owner, forced) exactly one contender wins.

Nothing is trusted on the way (see ``_fs``): the lock's directory is reached without following links
another user could plant, and missing directories are created 0700 by the running user; the lock is
written through a random temporary file in its directory, with mode 0600, and renamed into place. A lock
file that is a symlink, not a regular file or another user's is refused, and so is a lock whose content
is not sane (see :func:`_problem`); ``force`` replaces either without following it.

Releasing removes the file only when it belongs to the caller (or with ``force``).
"""

import contextlib
import errno
import fcntl
import json
import math
import os
import stat
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils import _fs
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError

MAX_LOCK_BYTES = 64 * 1024
# The longest TTL a lock may have (the module refuses a longer one, and a lock file that claims one is corrupt).
MAX_TTL = 7 * 24 * 3600
# How far in the future (by this host's clock) a lock's start time may lie before the lock counts as corrupt.
FUTURE_SLACK = 300
# How long to wait for the guard: the others hold it only while they read and write a small file.
GUARD_WAIT = 30.0
GUARD_SUFFIX = ".guard"

_HINT = (
    "Keep the lock where only root (or the user running the rollout) can write, such as the default under "
    "/var/lib/zerodowntime-rollout/locks, and take it with become."
)


class LockHeldError(RolloutError):
    """Another rollout holds the lock."""


class LockPathError(RolloutError):
    """The lock's directory, the lock file or its guard cannot be used safely."""


def _number(value):
    """``value`` as a finite float, or None (booleans, strings, NaN, infinities and absurd integers are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int):
        return float(value) if abs(value) < 1e18 else None
    return value if math.isfinite(value) else None


def _problem(record, now):
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
    started = _number(record.get("started"))
    if started is None or started < 0 or started > now + FUTURE_SLACK:
        return "started is not a time between 1970 and %d s from now: %.40r" % (FUTURE_SLACK, record.get("started"))
    ttl = _number(record.get("ttl"))
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


class _Holder:
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


def _read(dir_fd, name, path, now):
    try:
        data, info = _fs.read_file(dir_fd, name, MAX_LOCK_BYTES, path)
    except FileNotFoundError:
        return _Holder("free")
    except _fs.FsError as exc:
        try:
            ident = _ident(os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
        except FileNotFoundError:
            return _Holder("free")
        if exc.reason == "too_large":
            return _Holder(
                "corrupt", problem="unreadable lock file: larger than %d bytes" % MAX_LOCK_BYTES, ident=ident
            )
        what = {
            "symlink": "a symlink",
            "not_file": "not a regular file",
            "foreign": "owned by uid %s, not by the user running the rollout (uid %d)" % (exc.uid, os.geteuid()),
            "permission": "not readable by the user running the rollout",
            "links": "a file with other hard links",
        }.get(exc.reason, exc.reason)
        return _Holder("hostile", problem="the lock file is %s" % what, ident=ident)
    ident = _ident(info, data)
    try:
        record = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return _Holder("corrupt", problem="unreadable lock file: not JSON", ident=ident)
    problem = _problem(record, now)
    if problem:
        return _Holder("corrupt", problem="malformed lock file: %s" % problem, ident=ident)
    return _Holder("ok", record=record, ident=ident)


def _bad_lock_error(holder, path):
    if holder.state == "hostile":
        return LockHeldError(
            "The rollout lock %s is refused: %s (another local user may have planted it; nothing was followed or "
            "read). Remove it, or take the lock with the break-glass option (force, rollout_lock_force), which "
            "replaces it without following it. %s" % (path, holder.problem, _HINT),
            holder=holder.summary(),
        )
    return LockHeldError(
        "The rollout lock %s is refused: %s. If no rollout is running, take the lock with the break-glass option "
        "(force, rollout_lock_force), which replaces it." % (path, holder.problem),
        holder=holder.summary(),
    )


def _permission_error(path, doing):
    return LockPathError(
        "Cannot %s the rollout lock %s (permission denied). Run the lock task with become (root), or set "
        "rollout_lock_path to a file in a directory this user owns." % (doing, path)
    )


def _open_lock_dir(path, create):
    """A descriptor of the lock's directory; FileNotFoundError when it is missing and ``create`` is false."""
    directory = os.path.dirname(path)
    try:
        return _fs.open_dir(directory, create=create, mode=0o700)
    except _fs.FsError as exc:
        if exc.reason == "permission":
            raise LockPathError(
                "%s The rollout lock %s is kept there: run the lock task with become (root), or set "
                "rollout_lock_path to a file in a directory this user owns." % (exc.msg, path)
            ) from None
        raise LockPathError(
            "The directory of the rollout lock %s cannot be trusted: %s Set rollout_lock_path to a file in a "
            "directory that only root (or the user running the rollout) can write. %s" % (path, exc.msg, _HINT)
        ) from None


@contextlib.contextmanager
def _guard(dir_fd, name, path, force, wait=GUARD_WAIT):
    """Hold ``flock`` on ``<lock>.guard`` (0600, never followed, never replaced) for the read-decide-write.

    The guard is created with ``O_EXCL`` (then ``fchmod`` 0600) or opened read-only without following it; nothing
    is ever changed on a guard that was there. One that is a link, not a regular file, another user's or
    hard-linked elsewhere is refused, or removed with ``force``. After the flock is granted, the name must still
    be the file that was locked (else it is tried again)."""
    gname = name + GUARD_SUFFIX
    gpath = path + GUARD_SUFFIX
    deadline = time.monotonic() + wait
    common = os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    for _attempt in range(100):
        try:
            fd = os.open(gname, os.O_RDONLY | os.O_CREAT | os.O_EXCL | common, 0o600, dir_fd=dir_fd)
            os.fchmod(fd, 0o600)
        except FileExistsError:
            try:
                fd = os.open(gname, os.O_RDONLY | common, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.EMLINK, errno.EACCES, errno.EPERM, errno.ENXIO):
                    raise
                try:
                    info = os.stat(gname, dir_fd=dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if info.st_uid == os.geteuid() and stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                    raise _permission_error(gpath, "open the guard of") from None
                _hostile_guard(dir_fd, gname, gpath, path, info, force)
                continue
        except PermissionError:
            raise _permission_error(gpath, "create the guard of") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_nlink != 1:
                os.close(fd)
                fd = -1
                _hostile_guard(dir_fd, gname, gpath, path, info, force)
                continue
            _flock(fd, gpath, deadline)
            try:
                now_there = os.stat(gname, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                now_there = None
            if now_there is None or (now_there.st_dev, now_there.st_ino) != (info.st_dev, info.st_ino):
                os.close(fd)
                fd = -1
                continue
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        try:
            yield
        finally:
            os.close(fd)
        return
    raise LockPathError("The guard %s of the rollout lock keeps changing: refused. %s" % (gpath, _HINT))


def _hostile_guard(dir_fd, gname, gpath, path, info, force):
    if stat.S_ISLNK(info.st_mode):
        what = "a symlink"
    elif not stat.S_ISREG(info.st_mode):
        what = "not a regular file"
    elif info.st_uid != os.geteuid():
        what = "owned by uid %d, not by the user running the rollout (uid %d)" % (info.st_uid, os.geteuid())
    else:
        what = "a file with %d hard links" % info.st_nlink
    if not force:
        raise LockHeldError(
            "The guard file %s of the rollout lock %s is refused: it is %s (another local user may have planted it; "
            "nothing was followed). Remove it, or use the break-glass option (force, rollout_lock_force), which "
            "replaces it. %s" % (gpath, path, what, _HINT)
        )
    try:
        again = os.stat(gname, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if (again.st_dev, again.st_ino) == (info.st_dev, info.st_ino):
        try:
            _fs.remove_entry(dir_fd, gname)
        except PermissionError:
            raise _permission_error(gpath, "remove the guard of") from None


def _flock(fd, gpath, deadline):
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockPathError(
                    "Waited %.0f s for the guard %s of the rollout lock: another process keeps it locked. Find it "
                    "(fuser %s) and stop it, then try again." % (GUARD_WAIT, gpath, gpath)
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def _write(dir_fd, name, path, record):
    data = json.dumps(record, sort_keys=True).encode("utf-8")
    try:
        _fs.write_file(dir_fd, name, data, mode=0o600)
    except PermissionError:
        raise _permission_error(path, "write") from None
    except IsADirectoryError:
        _fs.remove_entry(dir_fd, name)
        _fs.write_file(dir_fd, name, data, mode=0o600)


def _describe(holder, now):
    started = float(holder.get("started") or 0)
    return "%s (run %s, started %s, %.0f s ago, ttl %s s)" % (
        holder.get("owner"),
        holder.get("run_id") or "?",
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        now - started,
        holder.get("ttl"),
    )


def _check_path(path):
    if not path or not isinstance(path, str) or not os.path.isabs(path):
        raise ValidationError("lock path must be an absolute path, got %r" % (path,))
    if os.path.basename(path) in ("", ".", ".."):
        raise ValidationError("lock path must name a file, got %r" % (path,))


_RUN_KEYS = ("controller", "pid", "started", "running")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def validate_run(run):
    """Check ``run`` (the controller_run lookup's dict, or None) and return it; raise ValidationError."""
    if run is None:
        return None
    hint = "run must be the result of the zerodowntime.rollout.controller_run lookup"
    if not isinstance(run, dict):
        raise ValidationError("%s (a dict), got %s" % (hint, type(run).__name__))
    missing = [k for k in _RUN_KEYS if k not in run]
    unknown = sorted(str(k) for k in run if k not in _RUN_KEYS)
    if missing or unknown:
        raise ValidationError(
            "%s, with exactly the keys %s; missing: %s, unknown: %s"
            % (hint, ", ".join(_RUN_KEYS), ", ".join(missing) or "none", ", ".join(unknown) or "none")
        )
    if not isinstance(run["controller"], str) or not run["controller"]:
        raise ValidationError("%s: run.controller must be a non-empty string, got %r" % (hint, run["controller"]))
    if not _is_int(run["pid"]) or run["pid"] <= 0:
        raise ValidationError("%s: run.pid must be a positive integer, got %r" % (hint, run["pid"]))
    if run["started"] is not None and not isinstance(run["started"], str):
        raise ValidationError("%s: run.started must be a string or null, got %r" % (hint, run["started"]))
    running = run["running"]
    if running is not None:
        if not isinstance(running, list):
            raise ValidationError("%s: run.running must be a list or null, got %r" % (hint, running))
        for entry in running:
            if (
                not isinstance(entry, dict)
                or set(entry) != {"pid", "started"}
                or not _is_int(entry["pid"])
                or not (entry["started"] is None or isinstance(entry["started"], str))
            ):
                raise ValidationError(
                    "%s: every item of run.running must be a dict with pid (integer) and started (string or null),"
                    " got %r" % (hint, entry)
                )
    return run


def _holder_run_alive(holder, run):
    """Is the run that holds the lock alive? True or False when this controller can tell, else None."""
    if run is None or run["running"] is None or "controller_pid" not in holder:
        return None
    if holder.get("controller") != run["controller"]:
        return None
    pid, started = holder.get("controller_pid"), holder.get("controller_pid_started")
    return any(entry["pid"] == pid and entry["started"] == started for entry in run["running"])


def _decide(seen, holder, record, owner, run_id, run, force, now, path):
    """The result of taking the lock from ``holder`` (what is there now), given ``seen`` (what was there when the
    caller started), and whether the lock must be written. Raises LockHeldError when refused."""
    taken = {"changed": True, "acquired": True, "lock": record}
    if holder.state == "free":
        return dict(taken, previous=None, msg="lock taken"), True
    if holder.state != "ok":
        if not force:
            raise _bad_lock_error(holder, path)
        msg = "lock taken over (forced) from a refused lock file: %s" % holder.problem
        return dict(taken, previous=holder.summary(), taken_over="forced", msg=msg), True
    lock = holder.record
    same_owner = lock.get("owner") == owner
    if same_owner and lock.get("run_id") == run_id:
        return {
            "changed": False,
            "acquired": True,
            "lock": lock,
            "previous": None,
            "msg": "lock already held by us",
        }, False
    if holder.ident != seen.ident or float(lock["started"]) >= now:
        # Compare-and-swap: this is not the lock the caller decided on, or it is no older than the caller.
        raise LockHeldError(
            "The lock %s was taken by %s while this task was taking it: another rollout that started at the same "
            "time won it (or this host's clock went back). Nothing was changed; wait for that rollout to finish."
            % (path, _describe(lock, now)),
            holder=lock,
        )
    expired = now > float(lock["started"]) + float(lock["ttl"])
    alive = _holder_run_alive(lock, run) if same_owner else None
    if not ((same_owner and not alive) or expired or force):
        if same_owner:
            raise LockHeldError(
                "The lock %s is held by the same owner in a run that is still running on this controller: %s, "
                "ansible-playbook pid %s. Wait for that run to finish, or give every person and job its own lock "
                "owner (rollout_lock_owner); if that run hangs, take the lock over with the break-glass option "
                "(force)." % (path, _describe(lock, now), lock.get("controller_pid")),
                holder=lock,
            )
        raise LockHeldError(
            "Another rollout holds the lock %s: %s. Wait for it to finish, or if it is dead, wait for the TTL "
            "or take the lock over with the break-glass option (force)." % (path, _describe(lock, now)),
            holder=lock,
        )
    if same_owner and not alive:
        reason = "same owner, its run is gone" if alive is False else "same owner"
    else:
        reason = "expired" if expired else "forced"
    msg = "lock taken over (%s) from %s" % (reason, _describe(lock, now))
    return dict(taken, previous=lock, taken_over=reason, msg=msg), True


def acquire(path, owner, run_id, ttl, force=False, check_mode=False, clock=time.time, run=None):
    """Take the lock at ``path``. Returns a result dict; raises LockHeldError when refused.

    ``run`` is the caller's ``controller_run`` lookup result (or None): it is recorded in the lock, and
    tells whether the run of a same-owner holder is still alive on this controller. The lock's directory
    is created (0700, the running user's) when it is missing.
    """
    _check_path(path)
    if not owner:
        raise ValidationError("lock owner must not be empty")
    number = _number(ttl)
    if number is None or number <= 0 or number > MAX_TTL:
        raise ValidationError(
            "lock ttl must be a positive number of seconds, at most %d (7 days), got %r" % (MAX_TTL, ttl)
        )
    validate_run(run)
    now = clock()
    record = {"owner": owner, "run_id": run_id, "started": now, "ttl": ttl}
    if run is not None:
        record.update(controller=run["controller"], controller_pid=run["pid"], controller_pid_started=run["started"])
    name = os.path.basename(path)
    try:
        dir_fd = _open_lock_dir(path, create=not check_mode)
    except FileNotFoundError:  # check mode: the directory would be created
        msg = "would create the directory of %s and take the lock" % path
        return {"changed": True, "acquired": True, "lock": record, "previous": None, "msg": msg}
    try:
        seen = _read(dir_fd, name, path, now)
        result, write = _decide(seen, seen, record, owner, run_id, run, force, now, path)
        if check_mode or not write:
            if check_mode and seen.state == "free":
                result["msg"] = "would take the lock"
            return result
        with _guard(dir_fd, name, path, force):
            holder = _read(dir_fd, name, path, now)
            result, write = _decide(seen, holder, record, owner, run_id, run, force, now, path)
            if write:
                _write(dir_fd, name, path, record)
        return result
    finally:
        os.close(dir_fd)


def _may_release(holder, owner, run_id, force, path, now):
    if holder.state != "ok":
        if not force:
            raise _bad_lock_error(holder, path)
        return
    lock = holder.record
    ours = lock.get("owner") == owner and (run_id is None or lock.get("run_id") == run_id)
    if not (ours or force):
        raise LockHeldError(
            "The lock %s belongs to %s, not to %s; left in place." % (path, _describe(lock, now), owner),
            holder=lock,
        )


def release(path, owner, run_id=None, force=False, check_mode=False, clock=time.time):
    """Release the lock when it is ours (same owner; and same run id when one is given), or with ``force``.

    The lock file is removed without following it; a lock file that is a link or another user's is refused
    unless ``force``."""
    _check_path(path)
    name = os.path.basename(path)
    now = clock()
    nothing = {"changed": False, "released": False, "msg": "no lock at %s" % path}
    try:
        dir_fd = _open_lock_dir(path, create=False)
    except FileNotFoundError:
        return nothing
    try:
        holder = _read(dir_fd, name, path, now)
        if holder.state == "free":
            return nothing
        _may_release(holder, owner, run_id, force, path, now)
        if not check_mode:
            with _guard(dir_fd, name, path, force):
                holder = _read(dir_fd, name, path, now)
                if holder.state == "free":
                    return nothing
                _may_release(holder, owner, run_id, force, path, now)
                try:
                    _fs.remove_entry(dir_fd, name)
                except PermissionError:
                    raise _permission_error(path, "remove") from None
                _fs.fsync_dir(dir_fd)
        return {"changed": True, "released": True, "previous": holder.summary(), "msg": "lock released"}
    finally:
        os.close(dir_fd)
