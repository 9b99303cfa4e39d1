# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The caller's ``run`` (the ``zerodowntime.rollout.controller_run`` lookup's dict): its checks, and whether the
run that holds a lock is still alive on this controller."""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError

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


def holder_run_alive(holder, run):
    """Is the run that holds the lock alive? True or False when this controller can tell, else None."""
    if run is None or run["running"] is None or "controller_pid" not in holder:
        return None
    if holder.get("controller") != run["controller"]:
        return None
    pid, started = holder.get("controller_pid"), holder.get("controller_pid_started")
    return any(entry["pid"] == pid and entry["started"] == started for entry in run["running"])
