# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Replace the app on one host in one call: stop, switch ``current``, start, wait for readiness.

The release must already be unpacked (the release module's ``state=present``, run while the host
still serves), so the time out of rotation holds only these four steps. Each is timed and returned
in ``steps``. ``restore`` is the rollback: back to the release that ran before, restarted only when
needed, and reported (``ready``) rather than failed when it does not come up, so that the caller
can decide whether to put the host back.
"""

import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._activate import ReleaseManager
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._values import validate_version

STEP_NAMES = ("stop", "deploy", "start", "ready")


class ReplaceError(RolloutError):
    """A step of the replacement failed; ``details`` say which, and whether ``current`` was switched."""


class _Steps:
    def __init__(self, clock):
        self.clock = clock
        self.done = []

    def run(self, name, func):
        start = self.clock()
        try:
            return func()
        finally:
            self.done.append({"name": name, "seconds": round(self.clock() - start, 3)})


class StopAfterDelay:
    """``service``, whose stop first waits ``delay`` seconds (counted in the stop step).

    The host is already out of rotation; the delay is for load balancers that keep sending to it briefly after a
    drain (rolling_update_drain_delay). Everything else is ``service``'s own."""

    def __init__(self, service, delay, sleep=time.sleep):
        if delay is None or not delay >= 0:
            raise ValidationError("stop_delay must be 0 or more seconds, got %r." % (delay,))
        self._service = service
        self._delay = delay
        self._sleep = sleep

    def __getattr__(self, name):
        return getattr(self._service, name)

    def stop(self):
        if self._delay:
            self._sleep(self._delay)
        return self._service.stop()


def _manager(path, keep, check_mode, now):
    return ReleaseManager(path, keep=keep, check_mode=check_mode, now=now)


def replace_app(path, version, service, probe, keep=5, steps=STEP_NAMES, check_mode=False, clock=None, now=None):
    """Stop the app, activate ``version``, start it and wait until ``probe`` passes.

    ``steps`` may name a subset, in order (a hook between deploy and start splits the call in two).
    Raises :class:`ReplaceError` naming the failed step; nothing is stopped when ``version`` is not
    unpacked and complete.
    """
    clock = clock or time.monotonic
    validate_version(version)
    steps = list(steps)
    if not steps or any(s not in STEP_NAMES for s in steps) or steps != [s for s in STEP_NAMES if s in steps]:
        raise ValidationError(
            "steps must be a non-empty, ordered subset of %s, got %r." % (", ".join(STEP_NAMES), steps)
        )
    if "ready" in steps and probe is None:
        raise ValidationError("the ready step needs a readiness probe (health url).")
    manager = _manager(path, keep, check_mode, now)
    manager._read()
    before = manager.current
    if "deploy" in steps and not manager._is_complete(version) and not check_mode:
        raise ReplaceError(
            "Release %s is not unpacked and complete under %s/releases; nothing was stopped. Unpack it first "
            "(zerodowntime.rollout.release state=present, which the role runs before the drain)." % (version, path),
            changed=False,
            switched=False,
            current=before,
            steps=[],
        )
    if check_mode:
        would = [s for s in steps if s != "deploy" or before != version]
        return {
            "changed": True,
            "current": before,
            "previous": manager.previous,
            "version": version,
            "switched": False,
            "ready": None,
            "steps": [{"name": s, "seconds": 0.0} for s in would],
            "msg": "check mode: would %s."
            % ", ".join(_WORDS[s] % {"v": version, "c": before or "none"} for s in would),
        }
    timer = _Steps(clock)
    state = {"switched": False, "current": before, "previous": manager.previous, "probe": None}

    def deploy():
        result = manager.run("active", version=version)
        state["switched"] = result["current"] == version and before != version
        state["current"], state["previous"] = result["current"], result["previous"]

    actions = {
        "stop": service.stop,
        "deploy": deploy,
        "start": service.start,
        "ready": lambda: state.__setitem__("probe", probe.run()),
    }
    for name in steps:
        try:
            timer.run(name, actions[name])
        except (RolloutError, OSError) as exc:
            # A stop or start that failed may have changed nothing yet; an OSError comes from the switch itself.
            changed = isinstance(exc, OSError) or bool(timer.done[:-1]) or state["switched"]
            raise ReplaceError(
                "Step '%s' failed on release %s: %s" % (name, version, getattr(exc, "msg", exc)),
                changed=changed,
                failed_step=name,
                switched=state["switched"],
                current=state["current"],
                previous=state["previous"],
                steps=timer.done,
            ) from None
    summary = ", ".join("%s %.1fs" % (s["name"], s["seconds"]) for s in timer.done)
    return {
        "changed": True,
        "current": state["current"],
        "previous": state["previous"],
        "version": version,
        "switched": state["switched"],
        "ready": True if "ready" in steps else None,
        "probe": state["probe"],
        "steps": timer.done,
        "elapsed": round(sum(s["seconds"] for s in timer.done), 3),
        "msg": "Release %s on %s: %s." % (version, path, summary),
    }


_WORDS = {
    "stop": "stop the app",
    "deploy": "switch current from %(c)s to %(v)s",
    "start": "start the app",
    "ready": "wait until it is ready",
}


def restore_app(path, version, service, probe, quick_probe=None, check_mode=False, clock=None, now=None):
    """Make the host run release ``version`` (the one it ran before the rollout) and be ready.

    Nothing is done when it already runs ``version`` and ``quick_probe`` passes. Otherwise the app is
    stopped (best effort), ``current`` switched back when it differs (recorded as a rollback of the
    release it leaves), started, and probed. Returns ``ready`` rather than raising when it does not
    come up; raises only when the switch back itself is impossible.
    """
    clock = clock or time.monotonic
    if version is not None:
        validate_version(version)
    manager = _manager(path, 0, check_mode, now)
    manager._read()
    before = manager.current
    target = version if version is not None else manager.previous
    switch = target is not None and before != target
    if not switch and quick_probe is not None:
        try:
            quick_probe.run()
            return {
                "changed": False,
                "current": before,
                "switched": False,
                "ready": True,
                "steps": [],
                "msg": "The host runs %s and is ready: nothing to restore." % (before or "(no release)"),
            }
        except RolloutError:
            pass
    if switch and not manager._is_complete(target):
        raise ReplaceError(
            "Cannot switch back to release %s: it is not a complete release under %s/releases. Nothing was stopped."
            % (target, path),
            changed=False,
            switched=False,
            current=before,
            ready=None,
            steps=[],
        )
    if check_mode:
        return {
            "changed": True,
            "current": before,
            "switched": False,
            "ready": None,
            "steps": [],
            "msg": "check mode: would restart the app%s." % (" on %s" % target if switch else ""),
        }
    timer = _Steps(clock)
    notes = []
    try:
        timer.run("stop", service.stop)
    except RolloutError as exc:
        notes.append("the stop failed (%s); starting anyway" % exc.msg)
    current = before
    if switch:
        try:
            timer.run("deploy", lambda: manager.run("rollback", version=target))
        except (RolloutError, OSError) as exc:
            msg = getattr(exc, "msg", str(exc))
            raise ReplaceError(
                "Cannot switch back to release %s: %s" % (target, msg),
                changed=True,
                switched=False,
                current=before,
                ready=False,
                steps=timer.done,
            ) from None
        current = target
    ready, why = True, None
    try:
        timer.run("start", service.start)
        timer.run("ready", probe.run)
    except RolloutError as exc:
        ready, why = False, exc.msg
    text = "Switched back from %s to %s" % (before, current) if switch else "Restarted %s" % (current or "the app")
    text += "; it is ready." if ready else "; it is NOT ready: %s" % why
    if notes:
        text += " (" + "; ".join(notes) + ")"
    return {
        "changed": True,
        "current": current,
        "rolled_back_from": before if switch else None,
        "switched": switch,
        "ready": ready,
        "steps": timer.done,
        "elapsed": round(sum(s["seconds"] for s in timer.done), 3),
        "msg": text,
    }
