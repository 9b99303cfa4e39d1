# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The rollout lock: one rollout of a service at a time.

The lock is a small JSON file on a host that every rollout of the service shares. Taking it is
atomic (``O_CREAT | O_EXCL`` of the file itself, or an atomic rename over a lock that may be taken
over). It records the owner, the run id, the start time and a TTL, and, when the caller passes its
``run`` (the ``zerodowntime.rollout.controller_run`` lookup), the controller, the pid of its
ansible-playbook process and that process's start time:

- a free lock is taken;
- a lock held by the same owner in another run is taken over (a resume after an interrupted run),
  unless that run is known to be alive: recorded on this very controller, and its ansible-playbook
  process (pid and start time) is in ``run["running"]``. Then the caller is refused. When nothing is
  known (another controller, no ``/proc``, a lock written without ``run``) it is taken over;
- a lock whose TTL has passed is taken over, and the previous holder is reported;
- otherwise the caller is refused with the holder's identity, unless ``force`` (break glass).

Releasing removes the file only when it belongs to the caller (or with ``force``).
"""

import contextlib
import json
import os
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError


class LockHeldError(RolloutError):
    """Another rollout holds the lock."""


def _read(path):
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        # An unreadable or half-written lock is still a lock: report it, never silently take it.
        return {
            "owner": "unknown (unreadable lock file: %s)" % exc,
            "run_id": None,
            "started": 0,
            "ttl": 0,
            "bad": True,
        }
    if not isinstance(data, dict):
        return {"owner": "unknown (malformed lock file)", "run_id": None, "started": 0, "ttl": 0, "bad": True}
    return data


def _write_new(path, record):
    """Create the lock file only if it does not exist. Returns False when it already exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    return True


def _replace(path, record):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(record, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _describe(holder, now):
    age = now - float(holder.get("started") or 0)
    return "%s (run %s, started %s, %.0f s ago, ttl %s s)" % (
        holder.get("owner"),
        holder.get("run_id") or "?",
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(holder.get("started") or 0))),
        age,
        holder.get("ttl"),
    )


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


def acquire(path, owner, run_id, ttl, force=False, check_mode=False, clock=time.time, run=None):
    """Take the lock at ``path``. Returns a result dict; raises LockHeldError when refused.

    ``run`` is the caller's ``controller_run`` lookup result (or None): it is recorded in the lock, and
    tells whether the run of a same-owner holder is still alive on this controller.
    """
    if not path or not os.path.isabs(path):
        raise ValidationError("lock path must be an absolute path, got %r" % (path,))
    if not owner:
        raise ValidationError("lock owner must not be empty")
    if ttl <= 0:
        raise ValidationError("lock ttl must be a positive number of seconds, got %r" % (ttl,))
    validate_run(run)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise ValidationError("the folder of the lock file does not exist: %s" % directory)
    now = clock()
    record = {"owner": owner, "run_id": run_id, "started": now, "ttl": ttl}
    if run is not None:
        record.update(controller=run["controller"], controller_pid=run["pid"], controller_pid_started=run["started"])
    holder = _read(path)
    if holder is None:
        if check_mode:
            return {"changed": True, "acquired": True, "lock": record, "previous": None, "msg": "would take the lock"}
        if _write_new(path, record):
            return {"changed": True, "acquired": True, "lock": record, "previous": None, "msg": "lock taken"}
        holder = _read(path) or {}
    expired = not holder.get("bad") and now > float(holder.get("started") or 0) + float(holder.get("ttl") or 0)
    same_owner = holder.get("owner") == owner
    if same_owner and holder.get("run_id") == run_id:
        return {"changed": False, "acquired": True, "lock": holder, "previous": None, "msg": "lock already held by us"}
    alive = _holder_run_alive(holder, run) if same_owner else None
    if not ((same_owner and not alive) or expired or force):
        if same_owner:
            raise LockHeldError(
                "The lock %s is held by the same owner in a run that is still running on this controller: %s, "
                "ansible-playbook pid %s. Wait for that run to finish, or give every person and job its own lock "
                "owner (rollout_lock_owner); if that run hangs, take the lock over with the break-glass option "
                "(force)." % (path, _describe(holder, now), holder.get("controller_pid")),
                holder=holder,
            )
        raise LockHeldError(
            "Another rollout holds the lock %s: %s. Wait for it to finish, or if it is dead, wait for the TTL "
            "or take the lock over with the break-glass option (force)." % (path, _describe(holder, now)),
            holder=holder,
        )
    if same_owner and not alive:
        reason = "same owner, its run is gone" if alive is False else "same owner"
    else:
        reason = "expired" if expired else "forced"
    msg = "lock taken over (%s) from %s" % (reason, _describe(holder, now))
    if not check_mode:
        _replace(path, record)
    return {"changed": True, "acquired": True, "lock": record, "previous": holder, "taken_over": reason, "msg": msg}


def release(path, owner, run_id=None, force=False, check_mode=False, clock=time.time):
    """Release the lock when it is ours (same owner; and same run id when one is given)."""
    holder = _read(path)
    if holder is None:
        return {"changed": False, "released": False, "msg": "no lock at %s" % path}
    ours = holder.get("owner") == owner and (run_id is None or holder.get("run_id") == run_id)
    if not (ours or force):
        raise LockHeldError(
            "The lock %s belongs to %s, not to %s; left in place." % (path, _describe(holder, clock()), owner),
            holder=holder,
        )
    if not check_mode:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return {"changed": True, "released": True, "previous": holder, "msg": "lock released"}
