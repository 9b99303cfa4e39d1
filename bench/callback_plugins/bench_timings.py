# Benchmark-only callback for zerodowntime.rollout: not part of the collection (bench/ is excluded
# from the build). Enabled by bench/rollout_bench.py through ANSIBLE_CALLBACK_PLUGINS and
# ANSIBLE_CALLBACKS_ENABLED; writes one JSON file to $BENCH_TIMINGS_FILE when the playbook ends.

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: bench_timings
type: aggregate
short_description: Record when each task started and ended on each host, as JSON
description:
  - For the benchmark in bench/rollout_bench.py only.
  - One record per (host, task) with wall-clock start and end, the task's file and line, its action,
    its outcome, and the C(elapsed) value a module returned (per loop item too).
  - When a module returns C(steps) (a list of C({name, seconds}), as zerodowntime.rollout.rotation and
    zerodowntime.rollout.app_replace do), the record keeps that list, so the benchmark can use the
    step durations the module measured instead of guessing the step from the task's file.
  - Writes the records to the file named by the environment variable E(BENCH_TIMINGS_FILE).
requirements:
  - enabled in ANSIBLE_CALLBACKS_ENABLED
"""


def _elapsed(res):
    """``elapsed`` of a module result, or of each loop item (a list), or None."""
    if not isinstance(res, dict):
        return None
    if isinstance(res.get("results"), list):
        vals = [r.get("elapsed") for r in res["results"] if isinstance(r, dict)]
        return [v for v in vals if isinstance(v, (int, float))] or None
    v = res.get("elapsed")
    return v if isinstance(v, (int, float)) else None


def _steps(res):
    """The ``steps`` a module returned (``[{"name": str, "seconds": float}]``), of each loop item
    too, in order; None when there are none."""
    if not isinstance(res, dict):
        return None
    items = res["results"] if isinstance(res.get("results"), list) else [res]
    out = []
    for item in items:
        steps = item.get("steps") if isinstance(item, dict) else None
        if not isinstance(steps, list):
            continue
        for s in steps:
            if isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("seconds"), (int, float)):
                out.append({"name": s["name"], "seconds": float(s["seconds"])})
    return out or None


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timings"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._t0 = time.time()
        self._plays = []
        self._open = {}  # (host, task uuid) -> record
        self._records = []

    # ---- helpers
    @staticmethod
    def _rhost(result):
        return getattr(result, "host", None) or result._host

    @staticmethod
    def _rtask(result):
        return getattr(result, "task", None) or result._task

    @staticmethod
    def _rdata(result):
        data = getattr(result, "result", None)
        return data if isinstance(data, dict) else getattr(result, "_result", {})

    def _finish(self, result, status):
        host, task = self._rhost(result), self._rtask(result)
        key = (host.get_name(), task._uuid)
        rec = self._open.pop(key, None)
        now = time.time()
        if rec is None:  # no runner_on_start (should not happen): still count it
            rec = self._new(host.get_name(), task, now)
        rec["end"] = now
        rec["status"] = status
        data = self._rdata(result)
        rec["elapsed"] = _elapsed(data)
        rec["changed"] = bool(data.get("changed"))
        steps = _steps(data)
        if steps:
            rec["steps"] = steps
        self._records.append(rec)

    def _new(self, host, task, now):
        return {
            "play": len(self._plays) - 1,
            "host": host,
            "task": task.get_name(),
            "path": task.get_path() or "",
            "action": task.action,
            "start": now,
        }

    # ---- events
    def v2_playbook_on_start(self, playbook):
        self._t0 = time.time()

    def v2_playbook_on_play_start(self, play):
        self._plays.append({"name": play.get_name(), "start": time.time(), "serial": play.serial})

    def v2_runner_on_start(self, host, task):
        self._open[(host.get_name(), task._uuid)] = self._new(host.get_name(), task, time.time())

    def v2_runner_on_ok(self, result):
        self._finish(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._finish(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._finish(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._finish(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("BENCH_TIMINGS_FILE")
        if not path:
            return
        for rec in self._open.values():  # started, never reported (e.g. an include): keep, mark open
            rec.update(end=None, status="open", elapsed=None, changed=False)
            self._records.append(rec)
        data = {"playbook_start": self._t0, "end": time.time(), "plays": self._plays, "records": self._records}
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
