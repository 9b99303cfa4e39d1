# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the zerodowntime.rollout collection: no compatibility promise outside it.
"""The rollout report's steps: the one list of them (with their colours), and which step a task belongs to,
from the ``steps`` a module result carries or, for tasks without them, from the role file and tags.

Plain Python with no import from Ansible or the collection: ``bench/rollout_bench.py`` loads this file on its
own for ``STEPS``."""

import math
import os
import re

# The one list of steps, in display order; bench/ uses it too. The modules name most of them in the ``steps``
# their results carry: ``drain`` and ``enable`` (zerodowntime.rollout.rotation), ``stop``, ``deploy`` (the switch
# of ``current``), ``start`` and ``ready`` (zerodowntime.rollout.app_replace). ``unpack`` is the prepare phase
# (the release unpacked while the host still serves), ``hook`` a user hook file.
STEPS = (
    "preflight",
    "unpack",
    "drain",
    "stop",
    "deploy",
    "start",
    "ready",
    "enable",
    "stabilize",
    "hook",
    "rollback",
)
# Steps a module result may name in its ``steps`` (hook and rollback are the role's own).
MODULE_STEPS = frozenset(STEPS) - {"hook", "rollback"}

STEP_COLOURS = {
    "preflight": "#9aa5b1",
    "unpack": "#a9c4ee",
    "drain": "#f0a43a",
    "stop": "#e36a5c",
    "deploy": "#4f7fd9",
    "start": "#39a7b8",
    "ready": "#7cbf4b",
    "enable": "#2e9a5a",
    "stabilize": "#b9d88a",
    "hook": "#d4a5c9",
    "rollback": "#8b1e3f",
}

ROLE_MARKER = "roles/rolling_update/tasks/"

# Role task file (relative to the role's tasks/) -> step, for tasks whose result carries no ``steps``.
FILE_STEPS = {
    "begin.yml": "preflight",
    "preflight.yml": "preflight",
    "read_lb.yml": "preflight",
    "prepare.yml": "unpack",
    "drain.yml": "drain",
    # The steps app_replace returns; a call that failed before its first step counts as deploy.
    "replace.yml": "deploy",
    "replace_around_hook.yml": "deploy",
    "enable.yml": "enable",
    "stabilize.yml": "stabilize",
    "rollback.yml": "rollback",
    "revert.yml": "rollback",
}
# Files whose tasks take their steps from the module result; a task there without steps that neither failed
# nor changed anything is the role's bookkeeping and belongs to no step.
MODULE_FILES = frozenset(("replace.yml", "replace_around_hook.yml"))

TAG_STEPS = {
    "rolling_update_preflight": "preflight",
    "rolling_update_prepare": "unpack",
    "rolling_update_drain": "drain",
    "rolling_update_enable": "enable",
    "rolling_update_stabilize": "stabilize",
    "rolling_update_hooks": "hook",
    "rolling_update_rollback": "rollback",
}

# Out of rotation, for results without ``steps``: from the first task of these files ...
DRAIN_FILES = frozenset(("drain.yml",))
# ... to the last successful task of these (in the enable step or in a rollback).
ENABLE_FILES = frozenset(("enable.yml",))

_LINE_SUFFIX = re.compile(r":\d+$")


def role_task_file(path):
    """``.../roles/rolling_update/tasks/drain.yml:12`` -> ``drain.yml``; None when the
    task does not come from the rolling_update role."""
    if not path:
        return None
    path = _LINE_SUFFIX.sub("", str(path)).replace(os.sep, "/")
    idx = path.rfind(ROLE_MARKER)
    if idx < 0:
        return None
    return path[idx + len(ROLE_MARKER) :]


def step_from_tags(tags):
    """The step named by a ``rolling_update_<phase>`` tag; rollback wins over the others."""
    found = [TAG_STEPS[t] for t in (tags or ()) if isinstance(t, str) and t in TAG_STEPS]
    if not found:
        return None
    if "rollback" in found:
        return "rollback"
    return min(found, key=STEPS.index)


def step_for_task(path, tags=(), current=None, via=()):
    """The step a task belongs to when its result carries no ``steps``, or None.

    ``path`` is ``task.get_path()``, ``tags`` the task's (inherited) tags, ``current`` the step the
    host is in within this play, ``via`` the paths of the blocks and include/import tasks the task
    sits in, nearest first. A role task is rollback while the host rolls back: rollback.yml and
    revert.yml re-use drain.yml and enable.yml, so a role task included from them (``via``), tagged
    ``rolling_update_rollback``, or run once the host's current step is rollback is rollback. Otherwise
    the role's file decides (replace.yml: deploy, or hook for its hook include), then the step tags. Tasks
    from outside the role (hook files) belong to an open hook step."""
    tags = [t for t in (tags or ()) if isinstance(t, str)]
    rel = role_task_file(path)
    parents = [r for r in (role_task_file(p) for p in (via or ())) if r is not None]
    if rel is not None and (
        current == "rollback"
        or "rolling_update_rollback" in tags
        or any(FILE_STEPS.get(p) == "rollback" for p in parents)
    ):
        return "rollback"
    step = FILE_STEPS.get(rel) if rel is not None else None
    if rel in MODULE_FILES and "rolling_update_hooks" in tags:
        return "hook"
    if step:
        return step
    step = step_from_tags(tags)
    if step:
        return step
    if rel is None and current == "hook":
        return "hook"
    return None


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


def module_steps(result):
    """The steps a module result carries (zerodowntime.rollout.rotation, app_replace), in order, as
    ``[{"name": str, "seconds": float}]`` plus ``waited`` (seconds) where the module measured it;
    a loop's items one after another. [] when there are none. Entries that are not a step (no name,
    no duration) are dropped."""
    if not isinstance(result, dict):
        return []
    if isinstance(result.get("steps"), list):
        items = [result]
    elif isinstance(result.get("results"), list):
        items = result["results"]
    else:
        return []
    out = []
    for item in items:
        steps = item.get("steps") if isinstance(item, dict) else None
        if not isinstance(steps, list):
            continue
        for s in steps:
            if not isinstance(s, dict) or not isinstance(s.get("name"), str):
                continue
            seconds = _number(s.get("seconds"))
            if seconds is None:
                continue
            step = {"name": s["name"], "seconds": seconds}
            waited = _number(s.get("waited"))
            if waited is not None:
                step["waited"] = waited
            out.append(step)
    return out


def layout_steps(steps, start, end):
    """Lay module-measured ``steps`` out on the controller's clock inside one call's ``[start, end]``:
    back to back, each with its measured duration, the last ending at ``end``; what the call took
    beyond them (module start-up) lands before the first. None starts before ``start``: a step longer
    than the time left is cut at its start. Returns ``[(step, start, end)]`` in order."""
    end = max(end, start)
    out = []
    cursor = end
    for step in reversed(list(steps)):
        begin = max(start, cursor - step["seconds"])
        out.append((step, begin, cursor))
        cursor = begin
    out.reverse()
    return out
