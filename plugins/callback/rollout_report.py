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
    started and ended (C(preflight), C(unpack), C(drain), C(stop), C(deploy), C(start), C(ready), C(enable),
    C(stabilize), C(hook), C(rollback)), the serial batch the host was in, how long it was out of rotation,
    and whether it was skipped (already done), rolled back or failed, with the failure message.
  - The report is keyed on the steps the modules return. When a task's result carries C(steps) (C(drain) and
    C(enable) from M(zerodowntime.rollout.rotation); C(stop), C(deploy), C(start) and C(ready) from
    M(zerodowntime.rollout.app_replace), also in a failed result, up to the failed step), each step is laid out
    inside the task on the controller's clock, back to back with its measured duration, the last one ending
    with the task; what the call took beyond them (module start-up) comes before the first. A looped task (one
    call per HAProxy host) lays out each item's steps before that item's end.
  - A task without C(steps) belongs to the step of the role task file it comes from - C(preflight.yml) is
    C(preflight), C(prepare.yml) C(unpack), C(drain.yml) C(drain), C(enable.yml) C(enable), C(stabilize.yml)
    C(stabilize), C(rollback.yml) and C(revert.yml) C(rollback). In C(replace.yml), a call that
    failed before its first step is C(deploy), the hook include is C(hook), and the role's bookkeeping belongs
    to no step. Otherwise the task belongs to the step named by its C(rolling_update_<phase>) tag, and a task
    from outside the role (a hook file) to an open C(hook) step.
  - Once a host rolls back, every role task it runs is C(rollback) (whatever steps the results carry), although
    C(rollback.yml) and C(revert.yml) re-use C(drain.yml) and C(enable.yml). Skipped tasks do not open a step.
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
  - No task arguments and no task results are recorded, only the C(msg) of a failed task and the names and
    durations of the C(steps) a result carries; when a result is C(no_log), the message is C(output hidden) and
    its steps are not seen.
  - Every message and every other string the report shows, in the files and in the summary, is redacted first
    the way the collection's modules redact theirs; URLs lose their user info and query string
    (V(https://***@host/path?***)), and the values of secret-looking C(key=value) pairs (C(password=),
    C(token=), C(api_key=), C(X-Amz-Signature=)...), of such keys in JSON text and of C(Authorization) headers
    read C(***).
  - The files are written with mode C(0644), whatever the umask, through a new temporary file in O(output_dir)
    (created exclusively, so a file or symbolic link planted there is never opened or followed) that is then
    renamed over the report. Keep O(output_dir) writable only by the user that runs C(ansible-playbook).
  - Callback options are read from the environment and C(ansible.cfg) only; ansible-core does not give
    callbacks playbook variables.
  - "Batches: ansible-core starts a play again for every serial batch; the batch of a host is the number of the
    batch in which it ran its first role task in a play with C(serial). Hosts that never got there have batch C(null).
    The playbook runs C(preflight) and C(unpack) for every host in its first play, before the first batch."
  - "Out of rotation, as the modules measured it: from the moment the drain command went out (the end of the
    C(drain) step minus the C(waited) seconds the module then spent on in-flight requests; of the first load
    balancer, for a looped task) to the end of the successful C(enable) step, when the load balancer reported
    the server UP (of the last load balancer; in the C(enable) phase or in a rollback). A drain that failed
    without changing anything (the capacity guard) leaves the host in rotation. A rollback that drains a host
    back in rotation opens a second interval. For a result without module steps, from the start of the first task
    of C(drain.yml) to the end of the last successful task of C(enable.yml).
    When the host never went back, to the end of the run."
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
    A host's C(result) is C(changed), C(ok), C(skipped) (already on the target version: in its batch it ran
    only C(preflight) tasks), C(failed), C(rolled_back) (rolled back but not failed) or C(not_reached) (the
    rollout halted before its batch).
    C(out_of_rotation.seconds) is null when the host was never drained. C(message) is only set for failed
    and rescued steps."
  - "In the HTML page, every step bar of the SVG timeline carries C(data-host), C(data-step) and C(data-result)
    attributes; host labels and table rows carry C(data-host)."
"""

import os  # noqa: E402
import time  # noqa: E402

from ansible.plugins.callback import CallbackBase  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.html import render_html  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.model import RolloutModel  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.steps import module_steps  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.text import summary_lines  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.writing import (  # noqa: E402
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


def _via(task):
    """The paths of the blocks and include/import tasks around ``task``, nearest first (a task of drain.yml
    included from rollback.yml or revert.yml belongs to the rollback)."""
    out = []
    try:
        parent = getattr(task, "_parent", None)
        for _depth in range(64):
            if parent is None:
                break
            get_path = getattr(parent, "get_path", None)
            path = get_path() if callable(get_path) else None
            if path and (not out or out[-1] != path):
                out.append(path)
            parent = getattr(parent, "_parent", None)
    except Exception:  # a parent chain that cannot be read must not break the run
        pass
    return out


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
            via=_via(task),
            steps=module_steps(data),
        )

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed", ignore_errors)

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def _item(self, result):
        host, task = _host_of(result), _task_of(result)
        self.model.item_result(host.get_name(), task._uuid, self.clock(), module_steps(_data_of(result)))

    def v2_runner_item_on_ok(self, result):
        self._item(result)

    def v2_runner_item_on_failed(self, result):
        self._item(result)

    def v2_runner_item_on_skipped(self, result):
        self._item(result)

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
