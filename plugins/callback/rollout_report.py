# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: rollout_report
type: aggregate
short_description: Per-host timeline of a rolling update, as a table, JSON and an HTML page
version_added: 0.1.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - Records, for every host, when each step of the M(zerodowntime.rollout.rolling_update) role's transaction
    started and ended (C(preflight), C(check), C(unpack), C(drain), C(stop), C(deploy), C(start), C(ready), C(enable),
    C(stabilize), C(hook), C(rollback)), the serial batch the host was in, how long it was out of rotation,
    and whether it was skipped (already done), rolled back or failed, with the failure message.
  - A task belongs to the step of the role task file it comes from (C(tasks/drain.yml), C(tasks/haproxy/drain.yml)),
    else to the step named by its C(rolling_update_<step>) tag. C(tasks/haproxy/check.yml) belongs to the step the
    host is in (preflight or stabilize). Once a host rolls back, every role task it runs in that batch is C(rollback),
    although C(rollback.yml) re-uses C(stop.yml), C(start.yml) and C(enable.yml). Skipped tasks do not open a step.
  - At the end of the playbook, prints a summary table and writes C(rollout-report.json) and C(rollout-report.html)
    (self-contained, inline CSS and SVG timeline) into O(output_dir).
  - An aggregate callback, it runs next to the stdout callback. Enable it with
    E(ANSIBLE_CALLBACKS_ENABLED=zerodowntime.rollout.rollout_report) or C(callbacks_enabled) in C(ansible.cfg).
requirements:
  - enabled in C(callbacks_enabled) or E(ANSIBLE_CALLBACKS_ENABLED)
options:
  output_dir:
    description: Directory for C(rollout-report.json) and C(rollout-report.html); created when missing.
    type: path
    default: .
    env:
      - name: ZDT_ROLLOUT_REPORT_DIR
    ini:
      - section: callback_rollout_report
        key: output_dir
  html:
    description: Write C(rollout-report.html).
    type: bool
    default: true
    env:
      - name: ZDT_ROLLOUT_REPORT_HTML
    ini:
      - section: callback_rollout_report
        key: html
  json:
    description: Write C(rollout-report.json).
    type: bool
    default: true
    env:
      - name: ZDT_ROLLOUT_REPORT_JSON
    ini:
      - section: callback_rollout_report
        key: json
  summary:
    description: Print the per-host summary table at the end of the playbook.
    type: bool
    default: true
    env:
      - name: ZDT_ROLLOUT_REPORT_SUMMARY
    ini:
      - section: callback_rollout_report
        key: summary
notes:
  - No task arguments and no task results are recorded, only the C(msg) of a failed task; when a result is
    C(no_log), the message is C(output hidden).
  - Callback options are read from the environment and C(ansible.cfg) only; ansible-core does not give
    callbacks playbook variables.
  - "Batches: ansible-core starts a play again for every serial batch; the batch of a host is the number of the
    batch in which it ran its first role task in a play with C(serial). Hosts that never got there have batch C(null)."
  - "Out of rotation: from the start of the first C(drain) task to the end of the last successful task from
    C(enable.yml) or C(haproxy/enable.yml) (in the C(enable) step or in a rollback); when the host never went back,
    to the end of the run."
  - "C(rollout-report.json) format (version 1; JSON Schema C(docs/rollout-report.schema.json) in the collection),
    times in epoch seconds:
    C({schema_version: 1, playbook, start, end, seconds, steps: [step names in display order],
    batches: [{play, number, start, end, hosts: [names]}],
    hosts: {NAME: {name, batch, result, skipped, rolled_back, failed, message, start, end, seconds,
    out_of_rotation: {seconds, intervals: [{start, end, back_in_rotation}]}, step_seconds: {STEP: seconds},
    steps: [{step, start, end, seconds, result, tasks, message}]}},
    totals: {hosts, batches, ok, changed, skipped, failed, rolled_back, not_reached, out_of_rotation_seconds,
    max_out_of_rotation_seconds, step_seconds: {STEP: seconds}}})."
  - "A step's C(result) is C(ok), C(changed), C(failed) or C(rescued) (failed, then the block's rescue ran).
    A host's C(result) is C(changed), C(ok), C(skipped) (already on the target version), C(failed),
    C(rolled_back) (rolled back but not failed) or C(not_reached) (the rollout halted before its batch).
    C(out_of_rotation.seconds) is null when the host was never drained. C(message) is only set for failed
    and rescued steps."
  - "In the HTML page, every step bar of the SVG timeline carries C(data-host), C(data-step) and C(data-result)
    attributes; host labels and table rows carry C(data-host)."
"""

import os  # noqa: E402
import time  # noqa: E402

from ansible.plugins.callback import CallbackBase  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._rollout_report import (  # noqa: E402
    RolloutModel,
    render_html,
    summary_lines,
    to_json,
    write_atomic,
)

JSON_NAME = "rollout-report.json"
HTML_NAME = "rollout-report.html"
_INCLUDES = frozenset(
    (
        "include_tasks",
        "import_tasks",
        "include_role",
        "import_role",
        "ansible.builtin.include_tasks",
        "ansible.builtin.import_tasks",
        "ansible.builtin.include_role",
        "ansible.builtin.import_role",
        "ansible.legacy.include_tasks",
        "ansible.legacy.include_role",
    )
)
_DEFAULTS = {"output_dir": ".", "html": True, "json": True, "summary": True}


def _host_of(result):
    return getattr(result, "host", None) or result._host


def _task_of(result):
    return getattr(result, "task", None) or result._task


def _data_of(result):
    data = getattr(result, "result", None)
    if not isinstance(data, dict):
        data = getattr(result, "_result", None)
    return data if isinstance(data, dict) else {}


def _tags(task):
    try:
        tags = task.tags
    except Exception:  # a tag list that cannot be read must not break the run
        return []
    if isinstance(tags, str):
        return [tags]
    return list(tags or [])


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "zerodowntime.rollout.rollout_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self.model = RolloutModel()
        self.clock = time.time
        self.written = {}

    def _option(self, name):
        try:
            value = self.get_option(name)
        except (KeyError, AttributeError):
            value = None
        return _DEFAULTS[name] if value is None else value

    # ------------------------------------------------------------------ events
    def v2_playbook_on_start(self, playbook):
        self.model.playbook_start(getattr(playbook, "_file_name", None), self.clock())

    def v2_playbook_on_play_start(self, play):
        key = getattr(play, "_uuid", None) or play.get_name()
        self.model.play_start(key, play.get_name(), bool(getattr(play, "serial", None)), self.clock())

    def v2_runner_on_start(self, host, task):
        self.model.task_start(host.get_name(), task._uuid, self.clock())

    def _record(self, result, status, ignore_errors=False):
        host, task = _host_of(result), _task_of(result)
        data = _data_of(result)
        no_log = bool(data.get("_ansible_no_log")) or "censored" in data or getattr(task, "no_log", False) is True
        msg = None
        if status in ("failed", "unreachable"):
            msg = data.get("msg")
        self.model.task_result(
            host.get_name(),
            task._uuid,
            task.get_path(),
            _tags(task),
            status,
            self.clock(),
            changed=bool(data.get("changed")),
            msg=msg,
            ignore_errors=bool(ignore_errors),
            no_log=no_log,
            is_include=getattr(task, "action", None) in _INCLUDES,
        )

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed", ignore_errors)

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        self.model.finish(self.clock())
        report = self.model.as_dict()
        out_dir = self._option("output_dir")
        try:
            if self._option("json") or self._option("html"):
                os.makedirs(out_dir, exist_ok=True)
            if self._option("json"):
                self.written["json"] = write_atomic(os.path.join(out_dir, JSON_NAME), to_json(report))
            if self._option("html"):
                self.written["html"] = write_atomic(os.path.join(out_dir, HTML_NAME), render_html(report))
        except OSError as exc:
            self._display.warning("rollout_report: could not write the report to %s: %s" % (out_dir, exc))
        if self._option("summary") and report["hosts"]:
            self._display.banner("ROLLOUT REPORT")
            for line in summary_lines(report):
                self._display.display(line)
            for kind in ("json", "html"):
                if kind in self.written:
                    self._display.display("%s report: %s" % (kind.upper(), os.path.abspath(self.written[kind])))
            self._display.display("")
