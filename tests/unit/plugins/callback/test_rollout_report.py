"""The rollout report: step mapping, the timeline model fed with synthetic events, JSON and HTML."""

import copy
import json
import os
from html.parser import HTMLParser

import jsonschema
import pytest

from ansible_collections.zerodowntime.rollout.plugins.callback import rollout_report as cb_mod
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._rollout_report import (
    HIDDEN,
    SCHEMA_VERSION,
    STEPS,
    RolloutModel,
    render_html,
    role_task_file,
    step_for_task,
    summary_lines,
    to_json,
)

ROLE = "/c/ansible_collections/zerodowntime/rollout/roles/rolling_update/tasks/"
PLAYBOOK = "/c/ansible_collections/zerodowntime/rollout/playbooks/rolling_update.yml"
COLLECTION = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
)
SCHEMA_PATH = os.path.join(COLLECTION, "docs", "rollout-report.schema.json")


def schema_validator():
    with open(SCHEMA_PATH) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def assert_valid(report):
    """``report`` (through its JSON text, as written) follows docs/rollout-report.schema.json."""
    errors = ["%s: %s" % (e.json_path, e.message) for e in schema_validator().iter_errors(json.loads(to_json(report)))]
    assert not errors, errors


# --------------------------------------------------------------------------- step mapping


@pytest.mark.parametrize(
    ("path", "tags", "current", "step"),
    [
        (ROLE + "drain.yml:12", [], None, "drain"),
        (ROLE + "haproxy/drain.yml:4", ["rolling_update", "rolling_update_drain"], "drain", "drain"),
        (ROLE + "haproxy/enable.yml:10", [], None, "enable"),
        (ROLE + "enable.yml:6", [], "enable", "enable"),
        (ROLE + "preflight.yml:2", [], None, "preflight"),
        (ROLE + "skip.yml:4", ["rolling_update_preflight"], "preflight", "check"),
        (ROLE + "capacity.yml:4", [], None, "check"),
        (ROLE + "stop.yml:8", [], None, "stop"),
        (ROLE + "deploy.yml:2", [], None, "deploy"),
        (ROLE + "start.yml:8", [], None, "start"),
        (ROLE + "ready.yml:2", [], None, "ready"),
        (ROLE + "stabilize.yml:4", [], None, "stabilize"),
        (ROLE + "rollback.yml:5", [], None, "rollback"),
        # haproxy/check.yml serves preflight (per run and per batch) and the stabilisation window.
        (ROLE + "haproxy/check.yml:2", [], None, "preflight"),
        (ROLE + "haproxy/check.yml:2", [], "preflight", "preflight"),
        (ROLE + "haproxy/check.yml:2", [], "stabilize", "stabilize"),
        (ROLE + "haproxy/check.yml:2", ["rolling_update", "rolling_update_preflight"], None, "preflight"),
        # main.yml only orchestrates: its include tasks carry the step tags.
        (ROLE + "main.yml:18", ["rolling_update_preflight", "rolling_update"], None, "preflight"),
        (ROLE + "main.yml:94", ["rolling_update_rollback", "rolling_update"], "ready", "rollback"),
        (ROLE + "main.yml:41", ["rolling_update_hooks", "rolling_update"], "check", "hook"),
        (ROLE + "main.yml:41", ["rolling_update"], None, None),
        # rollback.yml re-uses stop.yml, start.yml and enable.yml, without a rollback tag.
        (ROLE + "stop.yml:13", ["rolling_update"], "rollback", "rollback"),
        (ROLE + "start.yml:8", ["rolling_update"], "rollback", "rollback"),
        (ROLE + "haproxy/enable.yml:10", ["rolling_update"], "rollback", "rollback"),
        # outside the role: a hook file belongs to an open hook step, the playbook's own tasks to none
        ("/srv/hooks/warm_cache.yml:3", [], "hook", "hook"),
        ("/srv/hooks/warm_cache.yml:3", [], "drain", None),
        (PLAYBOOK + ":79", [], "rollback", None),
        (PLAYBOOK + ":31", [], None, None),
        ("/srv/site.yml:9", ["rolling_update_drain"], None, "drain"),
        (None, ["rolling_update_enable"], None, "enable"),
        (None, None, None, None),
    ],
)
def test_step_for_task(path, tags, current, step):
    assert step_for_task(path, tags, current) == step


def test_role_task_file():
    assert role_task_file(ROLE + "haproxy/drain.yml:12") == "haproxy/drain.yml"
    assert role_task_file("roles/rolling_update/tasks/drain.yml") == "drain.yml"
    assert role_task_file(PLAYBOOK + ":3") is None
    assert role_task_file("") is None


# --------------------------------------------------------------------------- synthetic runs


class Run:
    """Drives a RolloutModel with a fake clock: every task takes ``dt`` seconds."""

    def __init__(self):
        self.m = RolloutModel()
        self.t = 1000.0
        self.n = 0
        self.m.playbook_start("rolling_update.yml", self.t)

    def play(self, name="Zero-downtime rolling update", key="play2", batched=True):
        self.m.play_start(key, name, batched, self.t)

    def task(self, host, rel, status="ok", dt=1.0, tags=(), changed=False, msg=None, **kw):
        self.n += 1
        path = rel if rel.startswith("/") else ROLE + rel
        self.m.task_start(host, "uuid-%d" % self.n, self.t)
        self.t += dt
        return self.m.task_result(host, "uuid-%d" % self.n, path, list(tags), status, self.t, changed, msg, **kw)

    def transaction(self, host, stabilize=False):
        self.task(host, "main.yml:18", tags=["rolling_update_preflight"])
        self.task(host, "haproxy/check.yml:2", tags=["rolling_update_preflight"])
        self.task(host, "skip.yml:4")
        self.task(host, "skip.yml:27", status="skipped")
        self.task(host, "capacity.yml:4")
        self.task(host, "unpack.yml:7", changed=True)
        self.task(host, "drain.yml:2")
        self.task(host, "haproxy/drain.yml:4", status="skipped")
        self.task(host, "haproxy/drain.yml:12", changed=True, dt=2.0)
        self.task(host, "stop.yml:8", changed=True)
        self.task(host, "deploy.yml:2", changed=True)
        self.task(host, "start.yml:8", changed=True)
        self.task(host, "ready.yml:2", dt=3.0)
        self.task(host, "enable.yml:2", is_include=True)
        self.task(host, "haproxy/enable.yml:10", changed=True)
        self.task(host, "enable.yml:6", changed=True)
        if stabilize:
            self.task(host, "main.yml:85", tags=["rolling_update_stabilize"], is_include=True)
            self.task(host, "stabilize.yml:4", dt=5.0)
            self.task(host, "haproxy/check.yml:2")
        else:
            self.task(host, "main.yml:85", status="skipped", tags=["rolling_update_stabilize"])


def preflight_play(run, hosts):
    run.play("Preflight every host, then take the rollout lock", key="play1", batched=False)
    for h in hosts:
        run.task(h, PLAYBOOK + ":31", is_include=True)
        run.task(h, "preflight.yml:2")
        run.task(h, "haproxy/check.yml:2")


def test_two_batches_in_order_with_out_of_rotation():
    run = Run()
    preflight_play(run, ["app1", "app2"])
    run.play()
    run.transaction("app1")
    run.play()
    run.transaction("app2", stabilize=True)
    run.play("Release the rollout lock", key="play3", batched=False)
    run.task("app1", PLAYBOOK + ":100", changed=True)
    # a later serial play where no host starts the role adds no batch
    for _round in range(2):
        run.play("Revert the hosts this run updated", key="play4", batched=True)
        run.task("app1", PLAYBOOK + ":140", status="skipped")
    run.m.finish(run.t)
    r = run.m.as_dict()
    assert_valid(r)

    assert list(r["hosts"]) == ["app1", "app2"]
    a1, a2 = r["hosts"]["app1"], r["hosts"]["app2"]
    assert (a1["batch"], a2["batch"]) == (1, 2)
    assert [b["hosts"] for b in r["batches"]] == [["app1"], ["app2"]]
    names = [s["step"] for s in a1["steps"]]
    assert names == ["preflight", "preflight", "check", "unpack", "drain", "stop", "deploy", "start", "ready", "enable"]
    assert [s["step"] for s in a2["steps"]][-2:] == ["enable", "stabilize"]
    # skipped tasks opened nothing: no stabilize step on app1 and no hook step anywhere
    assert "stabilize" not in a1["step_seconds"] and "hook" not in r["totals"]["step_seconds"]
    steps = {s["step"]: s for s in a1["steps"]}
    assert steps["drain"]["seconds"] == 4.0 and steps["drain"]["tasks"] == 2
    assert steps["drain"]["result"] == "changed" and steps["ready"]["result"] == "ok"
    # out of rotation: first drain task's start to the last enable task's end
    out = a1["out_of_rotation"]
    assert out["seconds"] == steps["enable"]["end"] - steps["drain"]["start"] == 13.0
    interval = {"start": steps["drain"]["start"], "end": steps["enable"]["end"], "back_in_rotation": True}
    assert out["intervals"] == [interval]
    assert 0 < out["seconds"] < a1["seconds"]
    # stabilisation runs back in rotation, and its haproxy/check.yml belongs to it
    s2 = {s["step"]: s for s in a2["steps"]}
    assert a2["out_of_rotation"]["seconds"] == s2["enable"]["end"] - s2["drain"]["start"]
    assert s2["stabilize"]["tasks"] == 3
    assert (a1["result"], a1["failed"], a1["skipped"], a1["rolled_back"]) == ("changed", False, False, False)
    assert r["totals"]["changed"] == 2 and r["totals"]["batches"] == 2
    assert r["totals"]["max_out_of_rotation_seconds"] == 13.0
    # steps are in time order and do not overlap
    for h in (a1, a2):
        spans = h["steps"]
        assert all(prev["end"] <= nxt["start"] for prev, nxt in zip(spans, spans[1:]))


def rollback_run(reenable=True):
    run = Run()
    preflight_play(run, ["app1", "app2"])
    run.play()
    run.task("app1", "main.yml:18", tags=["rolling_update_preflight"])
    run.task("app1", "skip.yml:4")
    run.task("app1", "unpack.yml:7", changed=True)
    run.task("app1", "drain.yml:2")
    run.task("app1", "haproxy/drain.yml:12", changed=True)
    run.task("app1", "stop.yml:8", changed=True)
    run.task("app1", "deploy.yml:2", changed=True)
    run.task("app1", "start.yml:8", changed=True)
    run.task("app1", "ready.yml:2", status="failed", msg="not ready after 4s", dt=4.0)
    # the role's rescue
    run.task("app1", "main.yml:94", tags=["rolling_update_rollback", "rolling_update"], is_include=True)
    run.task("app1", "rollback.yml:5")
    run.task("app1", "rollback.yml:11", changed=True)
    run.task("app1", "stop.yml:2", status="skipped", tags=["rolling_update"])
    run.task("app1", "stop.yml:8", status="failed", msg="already stopped", ignore_errors=True, tags=["rolling_update"])
    run.task("app1", "start.yml:8", changed=True, tags=["rolling_update"])
    run.task("app1", "rollback.yml:35")
    run.task("app1", "rollback.yml:42", status="ok" if reenable else "skipped", is_include=True)
    if reenable:
        run.task("app1", "enable.yml:2", is_include=True, tags=["rolling_update"])
        run.task("app1", "haproxy/enable.yml:10", changed=True, tags=["rolling_update"])
        run.task("app1", "enable.yml:6", changed=True, tags=["rolling_update"])
    enabled_at = run.t
    run.task("app1", "rollback.yml:46", status="failed", msg="Rollout halted on app1: step 'ready' failed")
    # the playbook's rescue: release the lock, fail the host
    run.task("app1", PLAYBOOK + ":69", changed=True)
    run.task("app1", PLAYBOOK + ":79", status="failed", msg="Rollout halted on app1: step 'ready' failed")
    run.m.finish(run.t + 1.0)
    return run.m.as_dict(), enabled_at


def test_rollback_is_marked_and_rescued_failure_kept():
    r, enabled_at = rollback_run()
    assert_valid(r)
    a1 = r["hosts"]["app1"]
    names = [s["step"] for s in a1["steps"]]
    assert names == [
        "preflight",
        "preflight",
        "check",
        "unpack",
        "drain",
        "stop",
        "deploy",
        "start",
        "ready",
        "rollback",
    ]
    steps = {s["step"]: s for s in a1["steps"]}
    assert steps["ready"]["result"] == "rescued" and steps["ready"]["message"] == "not ready after 4s"
    rb = steps["rollback"]
    assert rb["result"] == "failed" and rb["message"].startswith("Rollout halted on app1")
    # stop.yml/start.yml/enable.yml inside the rollback belong to it; the ignored failure does not fail it
    assert rb["tasks"] == 11
    assert (a1["result"], a1["failed"], a1["rolled_back"]) == ("failed", True, True)
    assert a1["message"] == "Rollout halted on app1: step 'ready' failed"
    # back in rotation when the rollback re-enabled it
    out = a1["out_of_rotation"]
    assert out["intervals"][0]["back_in_rotation"] is True
    assert out["intervals"][0]["end"] == enabled_at
    # the second host never got its batch
    a2 = r["hosts"]["app2"]
    assert (a2["result"], a2["batch"], a2["out_of_rotation"]["seconds"]) == ("not_reached", None, None)
    assert r["totals"]["failed"] == 1 and r["totals"]["not_reached"] == 1
    assert [b["hosts"] for b in r["batches"]] == [["app1"]]


def test_never_reenabled_host_is_out_of_rotation_until_the_end():
    r = rollback_run(reenable=False)[0]
    assert_valid(r)
    out = r["hosts"]["app1"]["out_of_rotation"]
    assert out["intervals"][0]["back_in_rotation"] is False
    assert out["intervals"][0]["end"] == r["end"]
    steps = {s["step"]: s for s in r["hosts"]["app1"]["steps"]}
    assert out["seconds"] == pytest.approx(r["end"] - steps["drain"]["start"])


def test_skipped_host_and_unbatched_play():
    run = Run()
    run.play("My own play", key="p", batched=False)
    run.task("app1", "main.yml:18", tags=["rolling_update_preflight"])
    run.task("app1", "skip.yml:4")
    run.task("app1", "skip.yml:27")  # "Report a host that is skipped"
    run.task("app1", "capacity.yml:4", status="skipped")
    for rel in ("drain.yml:2", "stop.yml:8", "deploy.yml:2", "start.yml:8", "ready.yml:2", "enable.yml:6"):
        run.task("app1", rel, status="skipped")
    run.m.finish(run.t)
    r = run.m.as_dict()
    assert_valid(r)
    a1 = r["hosts"]["app1"]
    assert (a1["result"], a1["skipped"], a1["batch"]) == ("skipped", True, 1)
    assert [s["step"] for s in a1["steps"]] == ["preflight", "check"]
    assert a1["out_of_rotation"] == {"seconds": None, "intervals": []}
    assert r["batches"][0]["hosts"] == ["app1"] and r["totals"]["skipped"] == 1


def test_no_log_failure_hides_the_message_and_unreachable_fails():
    run = Run()
    run.play()
    run.task("app1", "drain.yml:2", status="failed", msg="password=hunter2", no_log=True)
    run.task("app2", "preflight.yml:2", status="unreachable", msg={"detail": "ssh: connect refused"})
    run.m.finish(run.t)
    r = run.m.as_dict()
    assert_valid(r)
    assert r["hosts"]["app1"]["message"] == HIDDEN and "hunter2" not in to_json(r)
    assert r["hosts"]["app1"]["steps"][0]["message"] == HIDDEN
    assert r["hosts"]["app2"]["failed"] is True and "connect refused" in r["hosts"]["app2"]["message"]


# --------------------------------------------------------------------------- renderings


def test_json_schema():
    r = rollback_run()[0]
    data = json.loads(to_json(r))
    assert set(data) == {"schema_version", "playbook", "start", "end", "seconds", "steps", "batches", "hosts", "totals"}
    assert data["schema_version"] == 1 and data["steps"] == list(STEPS)
    assert set(data["batches"][0]) == {"play", "number", "start", "end", "hosts"}
    host = data["hosts"]["app1"]
    assert set(host) == {
        "name",
        "batch",
        "result",
        "skipped",
        "rolled_back",
        "failed",
        "message",
        "start",
        "end",
        "seconds",
        "out_of_rotation",
        "step_seconds",
        "steps",
    }
    assert set(host["out_of_rotation"]) == {"seconds", "intervals"}
    for s in host["steps"]:
        assert {"step", "start", "end", "seconds", "result", "tasks"} <= set(s) <= set(s) | {"message"}
        assert s["step"] in STEPS and s["result"] in ("ok", "changed", "failed", "rescued")
        assert isinstance(s["start"], float) and s["end"] >= s["start"]
    assert set(data["totals"]) >= {"hosts", "ok", "changed", "skipped", "failed", "rolled_back", "not_reached"}
    assert set(data["totals"]) >= {"out_of_rotation_seconds", "max_out_of_rotation_seconds", "step_seconds"}


def _break(path, value=None, delete=False):
    """A mutation of a valid report: set (or delete) the item at ``path``, a tuple of keys."""

    def mutate(report):
        node = report
        for key in path[:-1]:
            node = node[key]
        if delete:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return mutate


def _move_step_seconds(report):
    seconds = report["hosts"]["app1"]["step_seconds"]
    seconds["warmup"] = seconds.pop("ready")


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(_break(("hosts", "app1", "result"), delete=True), id="host without result"),
        pytest.param(_break(("totals",), delete=True), id="no totals"),
        pytest.param(_break(("schema_version",), delete=True), id="no schema_version"),
        pytest.param(_break(("hosts", "app1", "steps", 0, "tasks"), delete=True), id="step without tasks"),
        pytest.param(_break(("batches", 0, "hosts"), delete=True), id="batch without hosts"),
        pytest.param(_break(("hosts", "app1", "steps", 0, "step"), "warmup"), id="unknown step name"),
        pytest.param(_break(("steps", 0), "warmup"), id="unknown step in the step list"),
        pytest.param(_move_step_seconds, id="unknown step in step_seconds"),
        pytest.param(_break(("hosts", "app1", "result"), "done"), id="unknown host result"),
        pytest.param(_break(("hosts", "app1", "steps", 0, "result"), "skipped"), id="unknown step result"),
        pytest.param(_break(("hosts", "app1", "batch"), "1"), id="batch as a string"),
        pytest.param(_break(("hosts", "app1", "steps", 0, "start"), None), id="step without a start time"),
        pytest.param(_break(("hosts", "app1", "surprise"), 1), id="unknown host field"),
        pytest.param(_break(("totals", "surprise"), 1), id="unknown totals field"),
        pytest.param(_break(("schema_version",), SCHEMA_VERSION + 1), id="other schema version"),
        pytest.param(_break(("hosts", "app1", "failed"), False), id="failed result but not failed"),
        pytest.param(_break(("hosts", "app2", "skipped"), True), id="skipped flag on a not reached host"),
        pytest.param(_break(("hosts", "app1", "steps", 0, "message"), "x"), id="message on an ok step"),
        pytest.param(_break(("hosts", "app1", "steps", -1, "message"), delete=True), id="failed step, no message"),
        pytest.param(_break(("hosts", "app2", "out_of_rotation", "seconds"), 1.0), id="out of rotation, no interval"),
        pytest.param(_break(("hosts", "app1", "out_of_rotation", "intervals", 0, "end"), None), id="open interval"),
        pytest.param(_break(("totals", "failed"), -1), id="negative count"),
        pytest.param(_break(("hosts", "app1", "steps", 0, "tasks"), 0), id="step without tasks run"),
    ],
)
def test_schema_rejects_a_broken_report(mutate):
    report = json.loads(to_json(rollback_run()[0]))
    validator = schema_validator()
    assert not list(validator.iter_errors(report))
    broken = copy.deepcopy(report)
    mutate(broken)
    assert broken != report
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_schema_matches_the_model():
    with open(SCHEMA_PATH) as f:
        schema = json.load(f)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert schema["$defs"]["step_name"]["enum"] == list(STEPS)
    assert set(schema["required"]) == set(schema["properties"]) == set(rollback_run()[0])


class _DataMarkers(HTMLParser):
    """Every element carrying a ``data-host`` attribute, as (tag, attributes), and whether it is in the SVG."""

    def __init__(self):
        super().__init__()
        self.marked = []
        self.svg = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.svg += tag == "svg"
        if "data-host" in attrs:
            self.marked.append((tag, attrs, self.svg > 0))

    def handle_endtag(self, tag):
        self.svg -= tag == "svg"


def _markers(page):
    parser = _DataMarkers()
    parser.feed(page)
    parser.close()
    return parser.marked


def test_html_marks_every_host_and_step():
    r = rollback_run()[0]
    marked = _markers(render_html(r))
    bars = [(a["data-host"], a["data-step"], a["data-result"]) for tag, a, in_svg in marked if "data-step" in a]
    assert bars == [(h["name"], s["step"], s["result"]) for h in r["hosts"].values() for s in h["steps"]]
    assert all(in_svg for tag, a, in_svg in marked if tag != "tr")
    labels = [a["data-host"] for tag, a, _text in marked if tag == "text"]
    rows = [a["data-host"] for tag, a, _text in marked if tag == "tr"]
    assert labels == rows == ["app1", "app2"]
    bands = [a["data-host"] for tag, a, _text in marked if "out-of-rotation" in a.get("class", "")]
    assert bands == ["app1"]


def test_html_escapes_every_string_and_marks_failures():
    evil = "<script>alert(1)</script>"
    run = Run()
    run.m.playbook_start('<img src=x onerror="x">', run.t)
    run.play(name="<b>play</b>")
    run.task(evil, "drain.yml:2")
    run.task(evil, "stop.yml:8", status="failed", msg='bad <i>thing</i> & "quotes"')
    run.task(evil, "main.yml:94", tags=["rolling_update_rollback"])
    run.task(evil, "rollback.yml:46", status="failed", msg="halted <now>")
    run.m.finish(run.t)
    report = run.m.as_dict()
    assert_valid(report)
    page = render_html(report)
    # the attributes are escaped too, and parse back to the name
    assert {a["data-host"] for _tag, a, _svg in _markers(page)} == {evil}
    assert "<script>" not in page and "<img" not in page and "<b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "halted &lt;now&gt;" in page and "bad &lt;i&gt;thing&lt;/i&gt; &amp; &quot;quotes&quot;" in page
    assert "<svg" in page and "</svg>" in page and "<style>" in page
    assert 'class="step step-rollback result-failed"' in page
    assert 'class="step step-stop result-rescued"' in page
    assert 'class="marker failure"' in page and 'class="out-of-rotation"' in page
    # self-contained: no external assets
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    assert "<link" not in page and "src=" not in page.replace("&lt;img src=x", "")


def test_summary_table():
    r = rollback_run()[0]
    lines = summary_lines(r)
    assert lines[0].split() == ["host", "batch", "result", "out-of-rot", "preflight", "check"] + [
        "unpack",
        "drain",
        "stop",
        "deploy",
        "start",
        "ready",
        "rollback",
    ]
    assert lines[1].split()[:3] == ["app1", "1", "failed"]
    assert lines[2].split()[:3] == ["app2", "-", "not_reached"]
    assert any(line.startswith("app1: Rollout halted") for line in lines)


# --------------------------------------------------------------------------- the callback, with fake Ansible objects


class FakeDisplay:
    def __init__(self):
        self.lines = []
        self.verbosity = 0

    def display(self, msg="", *args, **kwargs):
        self.lines.append(msg)

    def banner(self, msg, *args, **kwargs):
        self.lines.append("== %s" % msg)

    def warning(self, msg, *args, **kwargs):
        self.lines.append("WARNING %s" % msg)

    def __getattr__(self, name):  # vvv, debug, deprecated, ...
        return lambda *a, **k: None


class FakeHost:
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


class FakeTask:
    def __init__(self, uuid, path, tags=(), action="ansible.builtin.command", no_log=False):
        self._uuid, self.path, self.tags, self.action, self.no_log = uuid, path, list(tags), action, no_log

    def get_path(self):
        return self.path


class FakeResult:
    def __init__(self, host, task, data):
        self._host, self._task, self._result = host, task, data


class FakePlay:
    def __init__(self, name, uuid, serial):
        self.name, self._uuid, self.serial = name, uuid, serial

    def get_name(self):
        return self.name


def test_callback_records_and_writes(tmp_path, monkeypatch):
    display = FakeDisplay()
    cb = cb_mod.CallbackModule(display=display)
    opts = {"output_dir": str(tmp_path / "out"), "html": True, "json": True, "summary": True}
    monkeypatch.setattr(cb, "get_option", opts.__getitem__)
    clock = iter(float(t) for t in range(100, 200))
    cb.clock = lambda: next(clock)

    host = FakeHost("web<1>")
    cb.v2_playbook_on_play_start(FakePlay("rollout", "p2", [1]))
    tasks = [
        (FakeTask("t1", ROLE + "drain.yml:2"), "ok", {"changed": True}),
        (FakeTask("t2", ROLE + "haproxy/drain.yml:4"), "skipped", {"skipped": True}),
        (FakeTask("t3", ROLE + "stop.yml:8"), "ok", {"changed": True, "cmd": "secret-arg"}),
        (FakeTask("t4", ROLE + "ready.yml:2", no_log=True), "failed", {"msg": "token=abc", "censored": "hidden"}),
        (FakeTask("t5", ROLE + "main.yml:94", ["rolling_update_rollback"], "ansible.builtin.include_tasks"), "ok", {}),
        (FakeTask("t6", ROLE + "haproxy/enable.yml:10", ["rolling_update"]), "ok", {"changed": True}),
        (FakeTask("t7", ROLE + "rollback.yml:46"), "failed", {"msg": "Rollout halted"}),
    ]
    for task, status, data in tasks:
        cb.v2_runner_on_start(host, task)
        res = FakeResult(host, task, data)
        {"ok": cb.v2_runner_on_ok, "skipped": cb.v2_runner_on_skipped, "failed": cb.v2_runner_on_failed}[status](res)
    cb.v2_playbook_on_stats(None)

    data = json.loads((tmp_path / "out" / "rollout-report.json").read_text())
    assert_valid(data)
    h = data["hosts"]["web<1>"]
    assert [s["step"] for s in h["steps"]] == ["drain", "stop", "ready", "rollback"]
    assert h["steps"][2] == {
        "step": "ready",
        "start": 107.0,
        "end": 108.0,
        "seconds": 1.0,
        "result": "rescued",
        "tasks": 1,
        "message": HIDDEN,
    }
    assert h["result"] == "failed" and h["rolled_back"] and h["batch"] == 1
    assert h["out_of_rotation"]["seconds"] == 112.0 - 101.0
    text = (tmp_path / "out" / "rollout-report.json").read_text()
    assert "secret-arg" not in text and "token=abc" not in text
    page = (tmp_path / "out" / "rollout-report.html").read_text()
    assert "web&lt;1&gt;" in page and "web<1>" not in page
    assert "== ROLLOUT REPORT" in display.lines
    assert any(line.startswith("web<1>") and "failed" in line for line in display.lines)
    assert any(line.startswith("HTML report: ") for line in display.lines)


def test_callback_options_off(tmp_path, monkeypatch):
    display = FakeDisplay()
    cb = cb_mod.CallbackModule(display=display)
    opts = {"output_dir": str(tmp_path / "none"), "html": False, "json": False, "summary": False}
    monkeypatch.setattr(cb, "get_option", opts.__getitem__)
    cb.v2_playbook_on_play_start(FakePlay("rollout", "p2", []))
    task = FakeTask("t1", ROLE + "drain.yml:2")
    cb.v2_runner_on_start(FakeHost("a"), task)
    cb.v2_runner_on_ok(FakeResult(FakeHost("a"), task, {"changed": False}))
    cb.v2_playbook_on_stats(None)
    assert not (tmp_path / "none").exists() and display.lines == []
