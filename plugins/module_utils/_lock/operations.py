# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The rollout lock, one rollout of a service at a time: :func:`acquire` and :func:`release`.

The lock is a small JSON file on a host that every rollout of the service shares (:mod:`.record`):

- a free lock is taken;
- a lock held by the same owner in another run is taken over (a resume after an interrupted run),
  unless that run is known to be alive: recorded on this very controller, and its ansible-playbook
  process (pid and start time) is in ``run["running"]`` (:mod:`.controller_run`). Then the caller is refused.
  When nothing is known (another controller, no ``/proc``, a lock written without ``run``) it is taken over;
- a lock whose TTL has passed is taken over, and the previous holder is reported;
- otherwise the caller is refused with the holder's identity, unless ``force`` (break glass).

Changing hands is a compare-and-swap. The caller reads the lock once when it starts and decides; then,
holding ``flock`` on the guard file next to the lock (:mod:`.guard`), it reads the lock again and writes only
if it is still the lock it decided on. A lock that changed hands meanwhile, or that was taken at or after the
moment the caller started, was won by someone else: the caller is refused, even with ``force``. So whenever
the lock changes hands (free, expired, same owner, forced) exactly one contender wins.

Nothing is trusted on the way (see ``_fs``): the lock's directory is reached without following links
another user could plant, and missing directories are created 0700 by the running user; the lock is
written through a random temporary file in its directory, with mode 0600, and renamed into place. A lock
file that is a symlink, not a regular file or another user's is refused, and so is a lock whose content
is not sane (see :func:`.record.problem`); ``force`` replaces either without following it.

Releasing removes the file only when it belongs to the caller (or with ``force``).
"""

import json
import os
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils import _fs
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._lock.controller_run import (
    holder_run_alive,
    validate_run,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._lock.errors import (
    HINT,
    LockHeldError,
    LockPathError,
    permission_error,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._lock.guard import guard
from ansible_collections.zerodowntime.rollout.plugins.module_utils._lock.record import (
    MAX_TTL,
    bad_lock_error,
    describe,
    number,
    read_holder,
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
            "directory that only root (or the user running the rollout) can write. %s" % (path, exc.msg, HINT)
        ) from None


def _write(dir_fd, name, path, record):
    data = json.dumps(record, sort_keys=True).encode("utf-8")
    try:
        _fs.write_file(dir_fd, name, data, mode=0o600)
    except PermissionError:
        raise permission_error(path, "write") from None
    except IsADirectoryError:
        _fs.remove_entry(dir_fd, name)
        _fs.write_file(dir_fd, name, data, mode=0o600)


def _check_path(path):
    if not path or not isinstance(path, str) or not os.path.isabs(path):
        raise ValidationError("lock path must be an absolute path, got %r" % (path,))
    if os.path.basename(path) in ("", ".", ".."):
        raise ValidationError("lock path must name a file, got %r" % (path,))


def _decide(seen, holder, record, owner, run_id, run, force, now, path):
    """The result of taking the lock from ``holder`` (what is there now), given ``seen`` (what was there when the
    caller started), and whether the lock must be written. Raises LockHeldError when refused."""
    taken = {"changed": True, "acquired": True, "lock": record}
    if holder.state == "free":
        return dict(taken, previous=None, msg="lock taken"), True
    if holder.state != "ok":
        if not force:
            raise bad_lock_error(holder, path)
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
            % (path, describe(lock, now)),
            holder=lock,
        )
    expired = now > float(lock["started"]) + float(lock["ttl"])
    alive = holder_run_alive(lock, run) if same_owner else None
    if not ((same_owner and not alive) or expired or force):
        if same_owner:
            raise LockHeldError(
                "The lock %s is held by the same owner in a run that is still running on this controller: %s, "
                "ansible-playbook pid %s. Wait for that run to finish, or give every person and job its own lock "
                "owner (rollout_lock_owner); if that run hangs, take the lock over with the break-glass option "
                "(force)." % (path, describe(lock, now), lock.get("controller_pid")),
                holder=lock,
            )
        raise LockHeldError(
            "Another rollout holds the lock %s: %s. Wait for it to finish, or if it is dead, wait for the TTL "
            "or take the lock over with the break-glass option (force)." % (path, describe(lock, now)),
            holder=lock,
        )
    if same_owner and not alive:
        reason = "same owner, its run is gone" if alive is False else "same owner"
    else:
        reason = "expired" if expired else "forced"
    msg = "lock taken over (%s) from %s" % (reason, describe(lock, now))
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
    seconds = number(ttl)
    if seconds is None or seconds <= 0 or seconds > MAX_TTL:
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
        seen = read_holder(dir_fd, name, path, now)
        result, write = _decide(seen, seen, record, owner, run_id, run, force, now, path)
        if check_mode or not write:
            if check_mode and seen.state == "free":
                result["msg"] = "would take the lock"
            return result
        with guard(dir_fd, name, path, force):
            holder = read_holder(dir_fd, name, path, now)
            result, write = _decide(seen, holder, record, owner, run_id, run, force, now, path)
            if write:
                _write(dir_fd, name, path, record)
        return result
    finally:
        os.close(dir_fd)


def _may_release(holder, owner, run_id, force, path, now):
    if holder.state != "ok":
        if not force:
            raise bad_lock_error(holder, path)
        return
    lock = holder.record
    ours = lock.get("owner") == owner and (run_id is None or lock.get("run_id") == run_id)
    if not (ours or force):
        raise LockHeldError(
            "The lock %s belongs to %s, not to %s; left in place." % (path, describe(lock, now), owner),
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
        holder = read_holder(dir_fd, name, path, now)
        if holder.state == "free":
            return nothing
        _may_release(holder, owner, run_id, force, path, now)
        if not check_mode:
            with guard(dir_fd, name, path, force):
                holder = read_holder(dir_fd, name, path, now)
                if holder.state == "free":
                    return nothing
                _may_release(holder, owner, run_id, force, path, now)
                try:
                    _fs.remove_entry(dir_fd, name)
                except PermissionError:
                    raise permission_error(path, "remove") from None
                _fs.fsync_dir(dir_fd)
        return {"changed": True, "released": True, "previous": holder.summary(), "msg": "lock released"}
    finally:
        os.close(dir_fd)
