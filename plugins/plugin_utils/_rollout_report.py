# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the zerodowntime.rollout collection: no compatibility promise outside it.
"""The rollout report's model: the steps the modules return (laid out on the controller's clock) or,
for tasks without them, the step of the role file; per-host step timelines and out-of-rotation
intervals; the JSON, HTML and text renderings. Plain Python, no Ansible import: the callback plugin
``zerodowntime.rollout.rollout_report`` feeds it events and timestamps, unit tests feed it synthetic ones.

Every string the report shows goes through the collection's redaction (``_redact.redact_text``) twice: when
a message is recorded and again when the report is rendered, so that no URL credentials, query strings or
secret-looking ``key=value`` values reach the files or the summary, whatever a task printed."""

import contextlib
import html
import json
import math
import os
import re
import tempfile
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_data, redact_text

SCHEMA_VERSION = 1

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

HIDDEN = "output hidden"
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


def _round(t):
    return None if t is None else round(float(t), 3)


def _text(msg):
    """A task's message as one redacted string."""
    if msg is None:
        return None
    if not isinstance(msg, str):
        try:
            msg = json.dumps(msg, sort_keys=True, default=str)
        except (TypeError, ValueError):
            msg = str(msg)
    return redact_text(msg)


class Segment:
    """One continuous stretch of a step on a host."""

    def __init__(self, name, start, end, play_seq, batch):
        self.name = name
        self.start = start
        self.end = end
        self.play_seq = play_seq
        self.batch = batch
        self.result = "ok"
        self.tasks = 0
        self.message = None

    @property
    def seconds(self):
        return max(0.0, self.end - self.start)

    def as_dict(self):
        d = {
            "step": self.name,
            "start": _round(self.start),
            "end": _round(self.end),
            "seconds": _round(self.seconds),
            "result": self.result,
            "tasks": self.tasks,
        }
        if self.message is not None:
            d["message"] = self.message
        return d


class HostRecord:
    def __init__(self, name, order):
        self.name = name
        self.order = order
        self.segments = []
        self.batch = None  # (play key, number) from a play with serial batches
        self.plain_batch = None  # the same, from the first play without serial (fallback)
        self.failed = False
        self.message = None
        self.rolled_back = False
        self.out = []  # [start, end or None, whether a module's enable step set the end]
        self.pending_failure = None  # the segment whose failure a later task may have rescued
        self.pending_play = None

    def current(self, play_seq):
        if self.segments and self.segments[-1].play_seq == play_seq:
            return self.segments[-1]
        return None


class RolloutModel:
    """Per-host step timelines from playbook events. Every method takes explicit epoch timestamps."""

    def __init__(self):
        self.playbook = None
        self.start = None
        self.end = None
        self.hosts = {}
        self.batches = []  # {"play", "number", "start", "batched", "hosts"}
        self._play_counts = {}
        self._play = None  # (key, name, batched, number, seq)
        self._play_seq = 0
        self._task_starts = {}
        self._items = {}  # (host, task key) -> [(end, steps)] of a loop's items, in order
        self.any_batched = False

    # ------------------------------------------------------------------ events
    def playbook_start(self, name, t):
        self.playbook = name
        if self.start is None:
            self.start = t

    def play_start(self, key, name, batched, t):
        """Called for every serial batch: ansible-core sends play_start once per batch, same play key."""
        if self.start is None:
            self.start = t
        n = self._play_counts.get(key, 0) + 1
        self._play_counts[key] = n
        self._play_seq += 1
        self._play = (key, name, bool(batched), n, self._play_seq)
        self.any_batched = self.any_batched or bool(batched)
        self._task_starts.clear()
        self._items.clear()
        if self.batches:
            self.batches[-1]["end"] = t
        self.batches.append({"play": name, "number": n, "start": t, "batched": bool(batched), "hosts": [], "plain": []})

    def task_start(self, host, task_key, t):
        self._task_starts[(host, task_key)] = t

    def item_result(self, host, task_key, t, steps=None):
        """One loop item of a task ended at ``t``; ``steps`` as :func:`module_steps` gives them."""
        self._items.setdefault((host, task_key), []).append((t, list(steps or ())))

    def task_result(
        self,
        host,
        task_key,
        path,
        tags,
        status,
        t,
        changed=False,
        msg=None,
        ignore_errors=False,
        no_log=False,
        is_include=False,
        via=(),
        steps=None,
    ):
        """One task result. ``status``: ok, failed, skipped or unreachable. ``via``: the paths of the
        blocks and include tasks around the task, nearest first. ``steps``: the steps the result
        carries (:func:`module_steps`); for a loop whose items were reported (:meth:`item_result`),
        each item's steps are laid out before that item's end instead."""
        if self.start is None:
            self.start = t
        start = self._task_starts.pop((host, task_key), t)
        items = self._items.pop((host, task_key), None)
        rec = self._host(host)
        seq = self._play[4] if self._play else 0
        failing = status == "unreachable" or (status == "failed" and not ignore_errors)

        # A host that runs anything after a failure in the same play was rescued.
        if rec.pending_failure is not None or rec.failed:
            if rec.pending_play == seq:
                rec.failed = False
                step = step_for_task(path, tags, self._current_step(rec, seq), via)
                if step is not None and rec.pending_failure is not None and rec.pending_failure.result == "failed":
                    rec.pending_failure.result = "rescued"
            rec.pending_failure = None

        if failing:
            rec.failed = True
            rec.pending_play = seq
            rec.message = HIDDEN if no_log else (_text(msg) or "failed without a message")
        if status == "skipped":
            return None

        rel = role_task_file(path)
        step = step_for_task(path, tags, self._current_step(rec, seq), via)
        spans = self._spans(start, t, steps, items)
        # replace.yml's bookkeeping (no steps, no change, no failure) belongs to no step.
        bookkeeping = rel in MODULE_FILES and step == FILE_STEPS[rel] and not (spans or failing or changed)
        if step is None or bookkeeping:
            return None
        self._assign_batch(rec)
        sub = [(s["name"], a, b) for s, a, b in spans if s["name"] in MODULE_STEPS]
        if step in ("rollback", "hook") or not sub:
            sub = [(step, start, t)]
        touched = []
        for name, a, b in sub:
            seg = rec.current(seq)
            if seg is None or seg.name != name:
                seg = Segment(name, a, b, seq, self._play[3] if self._play else None)
                rec.segments.append(seg)
            seg.end = max(seg.end, b)
            if seg not in touched:
                touched.append(seg)
                seg.tasks += 1
            if changed and seg.result == "ok":
                seg.result = "changed"
        if failing:
            seg = touched[-1]
            seg.result = "failed"
            seg.message = rec.message
            rec.pending_failure = seg
        if step == "rollback":
            rec.rolled_back = True
        self._rotation(rec, rel, spans, start, t, failing, changed, is_include)
        return touched[-1].name

    @staticmethod
    def _spans(start, end, steps, items):
        """The module steps of one task on the controller's clock: ``[(step, start, end)]``."""
        if items and any(item_steps for _t, item_steps in items):
            spans = []
            lower = start
            for item_end, item_steps in items:
                item_end = min(max(item_end, lower), max(end, lower))
                spans += layout_steps(item_steps, lower, item_end)
                lower = item_end
            return spans
        return layout_steps(steps or (), start, end)

    @staticmethod
    def _rotation(rec, rel, spans, start, end, failing, changed, is_include):
        """Out of rotation: from the drain command (the end of the drain step minus the time the module
        then waited for in-flight requests) to the end of the successful enable step (the load balancer
        reports the server UP). Without module steps (AWS): from the first task of the drain files to
        the last successful task of the enable files."""
        is_open = bool(rec.out) and rec.out[-1][1] is None
        drains = [(s, a, b) for s, a, b in spans if s["name"] == "drain"]
        enables = [(s, a, b) for s, a, b in spans if s["name"] == "enable"]
        # A drain that failed without changing anything (the capacity guard, an LB that did not answer)
        # left the host in rotation.
        if not is_open and not (failing and not changed):
            if drains:
                step, a, b = drains[0]
                waited = step.get("waited")
                rec.out.append([a if waited is None else max(a, b - waited), None, False])
            elif rel in DRAIN_FILES and not spans and not is_include:
                rec.out.append([start, None, False])
        if failing or not rec.out:
            return
        last = rec.out[-1]
        if enables:
            if last[1] is None:
                last[1], last[2] = enables[-1][2], True
        elif rel in ENABLE_FILES and not spans and not is_include and (last[1] is None or not last[2]):
            last[1], last[2] = end, False

    def finish(self, t):
        self.end = t
        if self.start is None:
            self.start = t

    # ------------------------------------------------------------------ helpers
    def _host(self, name):
        rec = self.hosts.get(name)
        if rec is None:
            rec = self.hosts[name] = HostRecord(name, len(self.hosts))
        return rec

    @staticmethod
    def _current_step(rec, seq):
        seg = rec.current(seq)
        return seg.name if seg is not None else None

    def _assign_batch(self, rec):
        if self._play is None:
            return
        key, _name, batched, number, _seq = self._play
        if batched and rec.batch is None:
            rec.batch = (key, number)
            self.batches[-1]["hosts"].append(rec.name)
        elif not batched and rec.plain_batch is None:
            rec.plain_batch = (key, number)
            self.batches[-1]["plain"].append(rec.name)

    # ------------------------------------------------------------------ views
    def host_view(self, rec, run_end):
        segs = rec.segments
        if rec.batch is not None:
            batch = rec.batch[1]
        elif not self.any_batched and rec.plain_batch is not None:
            batch = rec.plain_batch[1]
        else:
            batch = None
        # The playbook runs preflight and prepare (unpack) for every host before the first batch: a host
        # that never reached its batch did nothing else; one that reached it and only ran preflight
        # tasks there was skipped (already on the target version).
        work = [s for s in segs if s.name not in ("preflight", "unpack")]
        skipped = not rec.failed and batch is not None and all(s.name == "preflight" for s in segs)
        if rec.failed:
            result = "failed"
        elif rec.rolled_back:
            result = "rolled_back"
        elif skipped:
            result = "skipped"
        elif not segs or (batch is None and not work):
            result = "not_reached"
        elif any(s.result == "changed" for s in segs):
            result = "changed"
        else:
            result = "ok"
        intervals = []
        out_secs = 0.0
        for start, end, _measured in rec.out:
            stop = end if end is not None else run_end
            out_secs += max(0.0, stop - start)
            intervals.append({"start": _round(start), "end": _round(stop), "back_in_rotation": end is not None})
        step_seconds = {}
        for s in segs:
            step_seconds[s.name] = step_seconds.get(s.name, 0.0) + s.seconds
        start = segs[0].start if segs else None
        end = max(s.end for s in segs) if segs else None
        return {
            "name": rec.name,
            "batch": batch,
            "result": result,
            "skipped": skipped,
            "rolled_back": rec.rolled_back,
            "failed": rec.failed,
            "message": rec.message,
            "start": _round(start),
            "end": _round(end),
            "seconds": _round(end - start) if segs else 0.0,
            "out_of_rotation": {"seconds": _round(out_secs) if rec.out else None, "intervals": intervals},
            "step_seconds": {k: _round(v) for k, v in sorted(step_seconds.items(), key=lambda kv: STEPS.index(kv[0]))},
            "steps": [s.as_dict() for s in segs],
        }

    def _ordered(self):
        def key(rec):
            if rec.batch is not None:
                return (0, rec.batch[1], rec.order)
            return (1, 0, rec.order)

        return sorted(self.hosts.values(), key=key)

    def as_dict(self):
        end = self.end if self.end is not None else time.time()
        start = self.start if self.start is not None else end
        hosts = {}
        for rec in self._ordered():
            hosts[rec.name] = self.host_view(rec, end)
        counts = dict.fromkeys(("ok", "changed", "skipped", "failed", "rolled_back", "not_reached"), 0)
        step_totals = {}
        outs = []
        for h in hosts.values():
            counts[h["result"]] += 1
            for k, v in h["step_seconds"].items():
                step_totals[k] = step_totals.get(k, 0.0) + v
            if h["out_of_rotation"]["seconds"] is not None:
                outs.append(h["out_of_rotation"]["seconds"])
        # Without any serial play (the role in a play of its own), the first play is the one batch. A serial
        # batch in which no host started the role (a later serial play of the playbook) is not listed.
        field = "hosts" if self.any_batched else "plain"
        batched = [b for b in self.batches if b["batched"] and b["hosts"]] if self.any_batched else self.batches[:1]
        batches = []
        for b in batched:
            batches.append(
                {
                    "play": b["play"],
                    "number": b["number"],
                    "start": _round(b["start"]),
                    "end": _round(b.get("end", end)),
                    "hosts": list(b[field]),
                }
            )
        return {
            "schema_version": SCHEMA_VERSION,
            "playbook": self.playbook,
            "start": _round(start),
            "end": _round(end),
            "seconds": _round(end - start),
            "steps": list(STEPS),
            "batches": batches,
            "hosts": hosts,
            "totals": dict(
                counts,
                hosts=len(hosts),
                batches=len(batches),
                out_of_rotation_seconds=_round(sum(outs)),
                max_out_of_rotation_seconds=_round(max(outs)) if outs else None,
                step_seconds={k: _round(step_totals[k]) for k in STEPS if k in step_totals},
            ),
        }


# ---------------------------------------------------------------------- renderings


def to_json(report):
    return json.dumps(redact_data(report), indent=2, sort_keys=False) + "\n"


def _secs(v):
    return "-" if v is None else "%.1f" % v


def summary_lines(report):
    """A fixed-width table: host, batch, result, out of rotation, then seconds per step."""
    report = redact_data(report)
    steps = [s for s in STEPS if s in report["totals"]["step_seconds"]]
    header = ["host", "batch", "result", "out-of-rot"] + steps
    rows = []
    for h in report["hosts"].values():
        row = [h["name"], "-" if h["batch"] is None else str(h["batch"]), h["result"]]
        row.append(_secs(h["out_of_rotation"]["seconds"]))
        row += [_secs(h["step_seconds"].get(s)) for s in steps]
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]

    def fmt(r):
        cells = [str(c).ljust(widths[i]) if i < 3 else str(c).rjust(widths[i]) for i, c in enumerate(r)]
        return "  ".join(cells).rstrip()

    t = report["totals"]
    lines = [fmt(header)] + [fmt(r) for r in rows]
    lines.append(
        "%d host(s) in %s s: %d changed, %d ok, %d skipped, %d failed (%d rolled back), %d not reached"
        % (
            t["hosts"],
            _secs(report["seconds"]),
            t["changed"],
            t["ok"],
            t["skipped"],
            t["failed"] + t["rolled_back"],
            sum(1 for h in report["hosts"].values() if h["rolled_back"]),
            t["not_reached"],
        )
    )
    for h in report["hosts"].values():
        if h["message"] and h["failed"]:
            lines.append("%s: %s" % (h["name"], h["message"]))
    return lines


def _e(value):
    return html.escape("" if value is None else str(value), quote=True)


def _utc(t):
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) if t is not None else "-"


def _tick_step(span):
    raw = span / 8.0 if span > 0 else 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1f2933;background:#fff}
h1{font-size:20px;margin:0 0 4px}
.meta{color:#52606d;margin:0 0 16px}
.legend{display:flex;flex-wrap:wrap;gap:12px;margin:8px 0 12px;font-size:13px}
.legend span{display:inline-flex;align-items:center;gap:4px}
.legend i{display:inline-block;width:14px;height:10px;border-radius:2px}
svg{font-size:12px;max-width:100%;height:auto}
svg text{fill:#1f2933}
svg text.failure{fill:#b00020}
table{border-collapse:collapse;font-size:13px;margin-top:16px}
th,td{border:1px solid #d9e2ec;padding:4px 8px;text-align:right}
th:first-child,td:first-child,td.l{text-align:left}
tr.failed td{background:#fdecea}
tr.skipped td{color:#7b8794}
.r-failed,.r-rolled_back{color:#b00020;font-weight:600}
.msg{max-width:520px;white-space:pre-wrap;text-align:left}
"""


def render_html(report):
    """A self-contained page: inline CSS, an inline SVG timeline, and the per-host table. Every string
    from the run (host names, messages, the playbook) goes through html.escape. For machines, the host
    labels, out-of-rotation bands and table rows carry ``data-host``, and every step bar ``data-host``,
    ``data-step`` and ``data-result``."""
    report = redact_data(report)
    hosts = list(report["hosts"].values())
    t0 = report["start"]
    t1 = max([report["end"]] + [h["end"] for h in hosts if h["end"] is not None])
    span = max(t1 - t0, 0.001)
    gutter, width, row_h, top = 170, 900, 26, 34
    height = top + row_h * max(len(hosts), 1) + 12
    total_w = gutter + width + 20

    def x(t):
        return gutter + (t - t0) / span * width

    parts = []
    parts.append(
        '<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="%d" height="%d" viewBox="0 0 %d %d" '
        'role="img" aria-label="rollout timeline">' % (total_w, height, total_w, height)
    )
    parts.append(
        "<defs>"
        '<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="3" height="6" fill="#ffffff" fill-opacity="0.35"/></pattern></defs>'
    )
    # time axis
    step = _tick_step(span)
    tick = 0.0
    while tick <= span + 1e-9:
        tx = x(t0 + tick)
        parts.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e4e7eb"/>' % (tx, top - 6, tx, height - 8))
        parts.append('<text x="%.1f" y="%d" text-anchor="middle">%ss</text>' % (tx, top - 10, _e("%g" % tick)))
        tick += step
    # batch boundaries
    for b in report["batches"]:
        if b["number"] > 1:
            bx = x(b["start"])
            parts.append(
                '<line class="batch" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#52606d" stroke-dasharray="4 3">'
                "<title>%s</title></line>"
                % (bx, top - 6, bx, height - 8, _e("batch %d starts (%s)" % (b["number"], b["play"])))
            )
    for i, h in enumerate(hosts):
        y = top + i * row_h
        label = h["name"] if h["batch"] is None else "%s  (batch %s)" % (h["name"], h["batch"])
        parts.append(
            '<text class="host" data-host="%s" x="6" y="%d"><title>%s</title>%s</text>'
            % (_e(h["name"]), y + row_h // 2 + 4, _e("%s: %s" % (h["name"], h["result"])), _e(label))
        )
        if i % 2:
            parts.append('<rect x="%d" y="%d" width="%d" height="%d" fill="#f5f7fa"/>' % (gutter, y, width, row_h))
        for iv in h["out_of_rotation"]["intervals"]:
            ox, ow = x(iv["start"]), max(1.0, x(iv["end"]) - x(iv["start"]))
            state = "back in rotation" if iv["back_in_rotation"] else "still out of rotation at the end"
            parts.append(
                '<rect class="out-of-rotation" data-host="%s" x="%.1f" y="%d" width="%.1f" height="%d" fill="#d64545" '
                'fill-opacity="0.12" stroke="#d64545" stroke-opacity="0.5" stroke-dasharray="3 2">'
                "<title>%s</title></rect>"
                % (
                    _e(h["name"]),
                    ox,
                    y + 1,
                    ow,
                    row_h - 2,
                    _e("%s out of rotation %.1f s (%s)" % (h["name"], iv["end"] - iv["start"], state)),
                )
            )
        for s in h["steps"]:
            sx, sw = x(s["start"]), max(1.5, x(s["end"]) - x(s["start"]))
            colour = STEP_COLOURS.get(s["step"], "#7b8794")
            title = "%s %s: %.2f s, %s (%d task%s)" % (
                h["name"],
                s["step"],
                s["seconds"],
                s["result"],
                s["tasks"],
                "" if s["tasks"] == 1 else "s",
            )
            if s.get("message"):
                title += " - " + s["message"]
            stroke = ""
            if s["result"] == "failed":
                stroke = ' stroke="#b00020" stroke-width="2"'
            elif s["result"] == "rescued":
                stroke = ' stroke="#b00020" stroke-width="1.5" stroke-dasharray="3 2"'
            parts.append(
                '<rect class="step step-%s result-%s" data-host="%s" data-step="%s" data-result="%s" '
                'x="%.1f" y="%d" width="%.1f" height="%d" rx="2" fill="%s"%s><title>%s</title></rect>'
                % (
                    _e(s["step"]),
                    _e(s["result"]),
                    _e(h["name"]),
                    _e(s["step"]),
                    _e(s["result"]),
                    sx,
                    y + 5,
                    sw,
                    row_h - 10,
                    colour,
                    stroke,
                    _e(title),
                )
            )
            if s["step"] == "rollback":
                parts.append(
                    '<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="url(#hatch)" pointer-events="none"/>'
                    % (sx, y + 5, sw, row_h - 10)
                )
            if s["result"] in ("failed", "rescued"):
                mark = "rollback: %s" % s["result"] if s["step"] == "rollback" else "%s %s" % (s["step"], s["result"])
                parts.append(
                    '<text class="marker failure" x="%.1f" y="%d" fill="#b00020" font-weight="700" '
                    'text-anchor="middle">&#x2716;<title>%s</title></text>'
                    % (sx + sw, y + 9, _e("%s: %s - %s" % (h["name"], mark, s.get("message") or "")))
                )
    parts.append("</svg>")
    svg = "\n".join(parts)

    legend = "".join(
        '<span><i style="background:%s"></i>%s</span>' % (STEP_COLOURS[s], _e(s))
        for s in STEPS
        if s in report["totals"]["step_seconds"]
    )
    legend += (
        '<span><i style="background:#d64545;opacity:.25;outline:1px dashed #d64545"></i>out of rotation</span>'
        '<span><i style="background:#fff;outline:2px solid #b00020"></i>failed (&#x2716;)</span>'
        '<span><i style="background:#fff;outline:1px dashed #b00020"></i>rescued</span>'
    )

    steps = [s for s in STEPS if s in report["totals"]["step_seconds"]]
    rows = []
    for h in hosts:
        cls = "failed" if h["result"] in ("failed", "rolled_back") else h["result"]
        cells = [
            "<td>%s</td>" % _e(h["name"]),
            "<td>%s</td>" % _e("-" if h["batch"] is None else h["batch"]),
            '<td class="l r-%s">%s%s</td>' % (_e(h["result"]), _e(h["result"]), " (rolled back)" * h["rolled_back"]),
            "<td>%s</td>" % _e(_secs(h["out_of_rotation"]["seconds"])),
        ]
        cells += ["<td>%s</td>" % _e(_secs(h["step_seconds"].get(s))) for s in steps]
        cells.append('<td class="msg">%s</td>' % _e(h["message"] if h["failed"] or h["rolled_back"] else ""))
        rows.append('<tr class="%s" data-host="%s">%s</tr>' % (_e(cls), _e(h["name"]), "".join(cells)))
    head = "".join("<th>%s</th>" % _e(c) for c in ["host", "batch", "result", "out of rotation (s)"] + steps)
    head += "<th>message</th>"
    t = report["totals"]
    meta = "%s &middot; %s &rarr; %s &middot; %s s &middot; %d host(s), %d batch(es), %d failed, %d skipped" % (
        _e(report["playbook"] or "playbook"),
        _e(_utc(report["start"])),
        _e(_utc(report["end"])),
        _e(_secs(report["seconds"])),
        t["hosts"],
        t["batches"],
        t["failed"] + t["rolled_back"],
        t["skipped"],
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>Rollout report</title>\n<style>%s</style>\n</head>\n<body>\n"
        '<h1>Rollout report</h1>\n<p class="meta">%s</p>\n'
        '<div class="legend">%s</div>\n%s\n'
        "<table>\n<thead><tr>%s</tr></thead>\n<tbody>\n%s\n</tbody>\n</table>\n"
        "</body>\n</html>\n" % (_CSS, meta, legend, svg, head, "\n".join(rows))
    )


REPORT_MODE = 0o644


def write_atomic(path, text, mode=REPORT_MODE):
    """Write ``text`` to ``path`` whole or not at all, with ``mode`` whatever the umask.

    The temporary file is a new one made by ``mkstemp`` next to ``path`` (``O_EXCL``, so nothing planted in
    the directory, a symlink least of all, is opened or followed), then renamed over ``path``; a symlink at
    ``path`` is replaced, not followed. On any failure the temporary file is removed."""
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix="." + name + ".", suffix=".tmp", dir=directory or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
