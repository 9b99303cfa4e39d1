# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the zerodowntime.rollout collection: no compatibility promise outside it.
"""The rollout report's model: per-host step timelines and out-of-rotation intervals, built from playbook events
(the steps the modules return laid out on the controller's clock or, for tasks without them, the step of the role
file). Plain Python, no Ansible import: the callback plugin ``zerodowntime.rollout.rollout_report`` feeds it events
and timestamps, unit tests feed it synthetic ones; :meth:`RolloutModel.as_dict` gives the report (``view.py``).

A task's message is redacted (``_redact.redact_text``) when it is recorded; the renderings redact again."""

import json

from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_text
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.steps import (
    DRAIN_FILES,
    ENABLE_FILES,
    FILE_STEPS,
    MODULE_FILES,
    MODULE_STEPS,
    layout_steps,
    role_task_file,
    step_for_task,
)
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.view import report_dict

HIDDEN = "output hidden"


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

    # ------------------------------------------------------------------ the report
    def as_dict(self):
        """The report: a JSON-able dict (the layout the callback's documentation gives)."""
        return report_dict(self)
