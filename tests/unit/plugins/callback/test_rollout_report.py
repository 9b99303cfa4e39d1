"""The rollout report: step mapping, the timeline model fed with synthetic events, JSON and HTML."""

import contextlib
import copy
import json
import os
import shutil
import stat
import subprocess
import tempfile
from html.parser import HTMLParser

import jsonschema
import pytest

from ansible_collections.zerodowntime.rollout.plugins.callback import rollout_report as cb_mod
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report import html as html_report
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.html import render_html
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.model import HIDDEN, RolloutModel
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.steps import (
    FILE_STEPS,
    MODULE_STEPS,
    STEP_COLOURS,
    STEPS,
    TAG_STEPS,
    layout_steps,
    module_steps,
    role_task_file,
    step_for_task,
)
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.text import summary_lines
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.view import SCHEMA_VERSION
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.writing import to_json, write_atomic

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
    ("path", "tags", "current", "via", "step"),
    [
        (ROLE + "preflight.yml:2", [], None, [], "preflight"),
        (ROLE + "prepare.yml:7", [], None, [PLAYBOOK + ":78"], "unpack"),
        (ROLE + "prepare.yml:7", ["rolling_update", "rolling_update_prepare"], "preflight", [], "unpack"),
        (ROLE + "drain.yml:4", [], None, [], "drain"),
        (ROLE + "drain.yml:4", ["rolling_update", "rolling_update_drain"], "preflight", [], "drain"),
        # replace.yml: the steps app_replace returns (laid out by the model); without them deploy, and
        # its hook include opens the hook step.
        (ROLE + "replace.yml:8", ["rolling_update", "rolling_update_replace"], "drain", [], "deploy"),
        (ROLE + "replace.yml:20", ["rolling_update_replace", "rolling_update_hooks"], "deploy", [], "hook"),
        (ROLE + "enable.yml:4", [], None, [], "enable"),
        (ROLE + "stabilize.yml:4", [], None, [], "stabilize"),
        (ROLE + "stabilize.yml:10", ["rolling_update_stabilize"], "stabilize", [], "stabilize"),
        (ROLE + "rollback.yml:5", [], None, [], "rollback"),
        (ROLE + "revert.yml:10", [], None, [], "rollback"),
        # main.yml only orchestrates: its tasks carry the phase tags.
        (ROLE + "main.yml:19", ["rolling_update_preflight", "rolling_update"], None, [], "preflight"),
        (ROLE + "main.yml:113", ["rolling_update_rollback", "rolling_update"], "ready", [], "rollback"),
        (ROLE + "main.yml:54", ["rolling_update_hooks", "rolling_update"], "preflight", [], "hook"),
        (ROLE + "main.yml:54", ["rolling_update"], None, [], None),
        # a host that reads the load balancers itself (preflight.yml includes read_lb.yml), with the playbook's tags
        (ROLE + "read_lb.yml:4", [], None, [ROLE + "preflight.yml:34"], "preflight"),
        (ROLE + "canary.yml:3", ["rolling_update", "rolling_update_canary"], "stabilize", [], None),
        # rollback.yml re-uses drain.yml and enable.yml, revert.yml imports them: while a host rolls back,
        # every role task is rollback, whether the host's step, the tag or the including file says so.
        (ROLE + "drain.yml:4", ["rolling_update"], "rollback", [], "rollback"),
        (ROLE + "enable.yml:4", ["rolling_update", "rolling_update_rollback"], "ready", [], "rollback"),
        (ROLE + "drain.yml:4", [], None, [ROLE + "rollback.yml:24", ROLE + "rollback.yml:20"], "rollback"),
        (
            ROLE + "drain.yml:4",
            [],
            None,
            [ROLE + "revert.yml:10", ROLE + "revert.yml:6", PLAYBOOK + ":195"],
            "rollback",
        ),
        (ROLE + "enable.yml:4", [], None, [ROLE + "revert.yml:22"], "rollback"),
        # outside the role: a hook file belongs to an open hook step, the playbook's own tasks to none
        ("/srv/hooks/warm_cache.yml:3", [], "hook", [], "hook"),
        ("/srv/hooks/warm_cache.yml:3", [], "drain", [], None),
        ("/srv/hooks/warm_cache.yml:3", [], None, [ROLE + "rollback.yml:24"], None),
        (PLAYBOOK + ":79", [], "rollback", [], None),
        (PLAYBOOK + ":31", [], None, [], None),
        ("/srv/site.yml:9", ["rolling_update_drain"], None, [], "drain"),
        (None, ["rolling_update_enable"], None, [], "enable"),
        (None, None, None, None, None),
    ],
)
def test_step_for_task(path, tags, current, via, step):
    assert step_for_task(path, tags, current, via) == step


def test_step_list_is_the_one_list():
    """Every step a role file, a tag or a module names is in STEPS, and the HTML has a colour for each."""
    assert "check" not in STEPS and len(set(STEPS)) == len(STEPS)
    named = set(FILE_STEPS.values()) | set(TAG_STEPS.values())
    assert named <= set(STEPS)
    assert set(STEP_COLOURS) == set(STEPS)
    assert {"drain", "stop", "deploy", "start", "ready", "enable"} <= MODULE_STEPS < set(STEPS)


def test_role_task_file():
    assert role_task_file(ROLE + "drain.yml:12") == "drain.yml"
    assert role_task_file("roles/rolling_update/tasks/drain.yml") == "drain.yml"
    assert role_task_file(PLAYBOOK + ":3") is None
    assert role_task_file("") is None


def test_module_steps():
    assert module_steps({"steps": [{"name": "drain", "seconds": 0.41, "waited": 0.3}]}) == [
        {"name": "drain", "seconds": 0.41, "waited": 0.3}
    ]
    # a loop: each item's steps, one item after another; skipped and censored items carry none
    looped = {
        "results": [
            {"steps": [{"name": "enable", "seconds": 1, "waited": 0.5}]},
            {"skipped": True},
            {"censored": "the output has been hidden"},
            {"steps": [{"name": "enable", "seconds": 0.2}]},
        ]
    }
    assert module_steps(looped) == [
        {"name": "enable", "seconds": 1.0, "waited": 0.5},
        {"name": "enable", "seconds": 0.2},
    ]
    # what is not a step is dropped
    broken = {
        "steps": [
            {"name": "stop"},
            {"seconds": 1},
            "ready",
            {"name": "x", "seconds": -1},
            {"name": "y", "seconds": True},
        ]
    }
    assert module_steps(broken) == []
    assert module_steps({"steps": [{"name": "stop", "seconds": 1, "waited": "soon"}]}) == [
        {"name": "stop", "seconds": 1.0}
    ]
    assert module_steps({"changed": True}) == [] and module_steps(None) == [] and module_steps({"steps": []}) == []


def test_layout_steps_end_at_the_call_end():
    steps = [{"name": "stop", "seconds": 1.4}, {"name": "deploy", "seconds": 0.01}, {"name": "ready", "seconds": 1.2}]
    spans = [(s["name"], a, b) for s, a, b in layout_steps(steps, 10.0, 13.0)]
    assert [n for n, _a, _b in spans] == ["stop", "deploy", "ready"]
    assert [t for _n, a, b in spans for t in (a, b)] == pytest.approx([10.39, 11.79, 11.79, 11.8, 11.8, 13.0])
    # steps longer than the call (two clocks): none starts before the call, the first ones are cut
    spans = layout_steps([{"name": "stop", "seconds": 2.0}, {"name": "ready", "seconds": 2.0}], 10.0, 13.0)
    assert [t for _s, a, b in spans for t in (a, b)] == pytest.approx([10.0, 11.0, 11.0, 13.0])
    assert layout_steps([], 10.0, 13.0) == []


# --------------------------------------------------------------------------- synthetic runs


def drain(seconds=0.5, waited=0.3):
    return [{"name": "drain", "seconds": seconds, "waited": waited}]


def enable(seconds=0.6, waited=0.5):
    return [{"name": "enable", "seconds": seconds, "waited": waited}]


REPLACED = [
    {"name": "stop", "seconds": 1.4},
    {"name": "deploy", "seconds": 0.01},
    {"name": "start", "seconds": 0.1},
    {"name": "ready", "seconds": 1.2},
]
RESTORED = [
    {"name": "stop", "seconds": 0.3},
    {"name": "deploy", "seconds": 0.01},
    {"name": "start", "seconds": 0.1},
    {"name": "ready", "seconds": 0.5},
]


class Run:
    """Drives a RolloutModel with a fake clock: every task takes ``dt`` seconds."""

    def __init__(self):
        self.m = RolloutModel()
        self.t = 1000.0
        self.n = 0
        self.m.playbook_start("rolling_update.yml", self.t)

    def play(self, name="Zero-downtime rolling update", key="play2", batched=True):
        self.m.play_start(key, name, batched, self.t)

    def task(
        self, host, rel, status="ok", dt=None, tags=(), changed=False, msg=None, steps=None, items=None, via=(), **kw
    ):
        """One task of ``dt`` seconds (default 1, a skipped one 0). ``items``: a loop, ``[(seconds, steps)]``
        per item, reported as they end; ``dt`` is then the time after the last item. Returns
        ``(start, end, step)``."""
        if dt is None:
            dt = 0.0 if status == "skipped" else 1.0
        self.n += 1
        key = "uuid-%d" % self.n
        path = rel if rel.startswith("/") else ROLE + rel
        via = [v if v.startswith("/") else ROLE + v for v in via]
        start = self.t
        self.m.task_start(host, key, self.t)
        if items is not None:
            for item_dt, item_steps in items:
                self.t += item_dt
                self.m.item_result(host, key, self.t, item_steps)
            steps = [s for _dt, item_steps in items for s in item_steps]
        self.t += dt
        step = self.m.task_result(host, key, path, list(tags), status, self.t, changed, msg, via=via, steps=steps, **kw)
        return start, self.t, step

    def transaction(self, host, stabilize=False):
        """One host's batch as the role runs it (preflight and prepare ran in the first play). Returns the
        (start, end) of the drain, replace and enable calls."""
        ph = ["rolling_update", "rolling_update_preflight"]
        self.task(host, "main.yml:19", status="skipped", tags=ph)  # preflight: done in the first play
        self.task(host, "main.yml:27", status="skipped", tags=["rolling_update", "rolling_update_prepare"])
        self.task(host, "main.yml:37", tags=ph, dt=0.01)  # Start this host's batch
        self.task(host, "main.yml:44", status="skipped", tags=ph)  # Report a host that is skipped
        self.task(host, "main.yml:54", status="skipped", tags=["rolling_update", "rolling_update_hooks"])
        tags = ["rolling_update", "rolling_update_drain"]
        out = self.task(host, "drain.yml:4", changed=True, steps=drain(), tags=tags)
        self.task(host, "drain.yml:17", status="skipped", tags=tags)  # AWS
        self.task(host, "drain.yml:21", status="skipped", tags=tags)  # extra delay
        tags = ["rolling_update", "rolling_update_replace"]
        self.task(host, "replace.yml:4", dt=0.01, tags=tags)  # set_fact: bookkeeping, no step
        replace = self.task(host, "replace.yml:8", changed=True, dt=3.0, steps=REPLACED, tags=tags)
        for line in (16, 20, 27):
            self.task(host, "replace.yml:%d" % line, status="skipped", tags=tags)
        self.task(host, "main.yml:67", status="skipped", tags=["rolling_update", "rolling_update_hooks"])
        tags = ["rolling_update", "rolling_update_enable"]
        back = self.task(host, "enable.yml:4", changed=True, steps=enable(), tags=tags)
        self.task(host, "enable.yml:12", status="skipped", tags=tags)
        self.task(host, "main.yml:79", status="skipped", tags=["rolling_update", "rolling_update_hooks"])
        tags = ["rolling_update", "rolling_update_stabilize"]
        if stabilize:
            self.task(host, "main.yml:87", tags=tags, is_include=True)
            self.task(host, "stabilize.yml:4", dt=5.0, tags=tags)
            self.task(host, "stabilize.yml:10", dt=0.5, tags=tags)
            self.task(host, "stabilize.yml:18", dt=0.01, tags=tags)
        else:
            self.task(host, "main.yml:87", status="skipped", tags=tags)
        return out[:2], replace[:2], back[:2]


def preflight_play(run, hosts, prepare=True, skip=()):
    """The playbook's first play: preflight, then prepare (the unpack) for every host, before any batch."""
    run.play("Preflight every host, then take the rollout lock", key="play1", batched=False)
    for h in hosts:
        run.task(h, PLAYBOOK + ":66", is_include=True)
        run.task(h, "preflight.yml:9", via=["preflight.yml:4", PLAYBOOK + ":66"])
        run.task(h, "preflight.yml:60", via=["preflight.yml:4", PLAYBOOK + ":66"])
        run.task(h, "preflight.yml:70", status="skipped", via=["preflight.yml:4", PLAYBOOK + ":66"])  # AWS
        run.task(h, "preflight.yml:100", via=["preflight.yml:4", PLAYBOOK + ":66"])
    for h in hosts:
        run.task(h, PLAYBOOK + ":71", dt=0.01)
    if prepare:
        for h in hosts:
            if h in skip:
                run.task(h, PLAYBOOK + ":92", status="skipped")
                continue
            run.task(h, PLAYBOOK + ":92", is_include=True)
            run.task(h, "prepare.yml:7", changed=True, dt=2.0, via=[PLAYBOOK + ":92"])
            run.task(h, PLAYBOOK + ":98", dt=0.01)


def test_replace_steps_are_laid_out_inside_the_call():
    """A 3.0 s app_replace call whose result measured stop 1.4, deploy 0.01, start 0.1 and ready 1.2:
    four steps back to back, the last ending with the call; the call's start-up comes before them."""
    run = Run()
    run.play()
    start, end, step = run.task("app1", "replace.yml:8", changed=True, dt=3.0, steps=REPLACED)
    assert step == "ready"
    run.m.finish(run.t)
    r = run.m.as_dict()
    assert_valid(r)
    steps = r["hosts"]["app1"]["steps"]
    assert [s["step"] for s in steps] == ["stop", "deploy", "start", "ready"]
    bounds = [t - start for s in steps for t in (s["start"], s["end"])]
    assert bounds == pytest.approx([0.29, 1.69, 1.69, 1.7, 1.7, 1.8, 1.8, 3.0], abs=1e-3)
    assert [s["seconds"] for s in steps] == pytest.approx([1.4, 0.01, 0.1, 1.2], abs=1e-3)
    assert steps[-1]["end"] == end
    assert all(s["tasks"] == 1 and s["result"] == "changed" for s in steps)
    assert r["hosts"]["app1"]["step_seconds"] == pytest.approx(
        {"stop": 1.4, "deploy": 0.01, "start": 0.1, "ready": 1.2}, abs=1e-3
    )


def test_two_batches_in_order_with_out_of_rotation():
    run = Run()
    preflight_play(run, ["app1", "app2"])
    run.play()
    (d_start, d_end), (r_start, r_end), (e_start, e_end) = run.transaction("app1")
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
    assert names == ["preflight", "unpack", "preflight", "drain", "stop", "deploy", "start", "ready", "enable"]
    assert [s["step"] for s in a2["steps"]][-2:] == ["enable", "stabilize"]
    # skipped tasks opened nothing: no stabilize step on app1 and no hook step anywhere
    assert "stabilize" not in a1["step_seconds"] and "hook" not in r["totals"]["step_seconds"]
    steps = {s["step"]: s for s in a1["steps"]}
    # each step is what the module measured, ending with its call
    assert (steps["drain"]["start"], steps["drain"]["end"]) == pytest.approx((d_end - 0.5, d_end), abs=1e-3)
    assert (steps["enable"]["start"], steps["enable"]["end"]) == pytest.approx((e_end - 0.6, e_end), abs=1e-3)
    assert steps["ready"]["end"] == r_end and steps["stop"]["start"] == pytest.approx(r_end - 2.71, abs=1e-3)
    assert steps["drain"]["result"] == "changed" and steps["drain"]["tasks"] == 1
    # the unpack ran in the first play, while the host still served
    assert steps["unpack"]["result"] == "changed" and steps["unpack"]["end"] < d_start
    # out of rotation: from the drain command (drain step's end minus its wait) to the end of the enable step
    out = a1["out_of_rotation"]
    assert out["intervals"] == [{"start": pytest.approx(d_end - 0.3, abs=1e-3), "end": e_end, "back_in_rotation": True}]
    assert out["seconds"] == pytest.approx(e_end - (d_end - 0.3), abs=1e-3) == pytest.approx(4.31, abs=1e-3)
    assert 0 < out["seconds"] < a1["seconds"]
    # stabilisation runs back in rotation, its rotation read belongs to it
    s2 = {s["step"]: s for s in a2["steps"]}
    assert a2["out_of_rotation"]["intervals"][0]["end"] == s2["enable"]["end"] <= s2["stabilize"]["start"]
    assert s2["stabilize"]["tasks"] == 4
    assert (a1["result"], a1["failed"], a1["skipped"], a1["rolled_back"]) == ("changed", False, False, False)
    assert r["totals"]["changed"] == 2 and r["totals"]["batches"] == 2
    assert r["totals"]["max_out_of_rotation_seconds"] == pytest.approx(4.31, abs=1e-3)
    # steps are in time order and do not overlap
    for h in (a1, a2):
        spans = h["steps"]
        assert all(prev["end"] <= nxt["start"] for prev, nxt in zip(spans, spans[1:]))


def test_looped_rotation_uses_each_items_steps():
    """Two HAProxy hosts: the drain and enable calls loop over them, one item after the other."""
    run = Run()
    run.play()
    t0 = run.t
    # reported item by item: each item's steps end with that item
    run.task("app1", "drain.yml:4", changed=True, dt=0.1, items=[(0.8, drain(0.4, 0.2)), (0.8, drain(0.5, 0.1))])
    run.task("app1", "replace.yml:8", changed=True, dt=3.0, steps=REPLACED)
    t1 = run.t
    run.task("app1", "enable.yml:4", changed=True, dt=0.1, items=[(1.0, enable(0.7, 0.6)), (0.5, enable(0.2, 0.1))])
    t2 = run.t
    run.m.finish(run.t)
    r = run.m.as_dict()
    assert_valid(r)
    h = r["hosts"]["app1"]
    steps = {s["step"]: s for s in h["steps"]}
    assert [s["step"] for s in h["steps"]] == ["drain", "stop", "deploy", "start", "ready", "enable"]
    assert (steps["drain"]["start"], steps["drain"]["end"]) == pytest.approx((t0 + 0.4, t0 + 1.6), abs=1e-3)
    assert steps["drain"]["tasks"] == 1
    assert (steps["enable"]["start"], steps["enable"]["end"]) == pytest.approx((t1 + 0.3, t1 + 1.5), abs=1e-3)
    # out from the first LB's drain command to the last LB's UP
    assert h["out_of_rotation"]["intervals"] == [
        {"start": pytest.approx(t0 + 0.6, abs=1e-3), "end": pytest.approx(t1 + 1.5, abs=1e-3), "back_in_rotation": True}
    ]
    assert t2 == pytest.approx(t1 + 1.6)

    # the same calls seen only through their final results (no item events): the items' steps back to back
    run = Run()
    run.play()
    t0 = run.t
    run.task("app1", "drain.yml:4", changed=True, dt=1.7, steps=drain(0.4, 0.2) + drain(0.5, 0.1))
    run.task("app1", "enable.yml:4", changed=True, dt=1.6, steps=enable(0.7, 0.6) + enable(0.2, 0.1))
    run.m.finish(run.t)
    h = run.m.as_dict()["hosts"]["app1"]
    steps = {s["step"]: s for s in h["steps"]}
    assert (steps["drain"]["start"], steps["drain"]["end"]) == pytest.approx((t0 + 0.8, t0 + 1.7), abs=1e-3)
    assert h["out_of_rotation"]["intervals"][0]["start"] == pytest.approx(t0 + 1.0, abs=1e-3)
    assert h["out_of_rotation"]["intervals"][0]["end"] == pytest.approx(t0 + 3.3, abs=1e-3)


def test_hook_after_deploy_splits_the_replace_call():
    run = Run()
    run.play()
    tags = ["rolling_update", "rolling_update_replace"]
    run.task("app1", "drain.yml:4", changed=True, steps=drain())
    run.task("app1", "replace.yml:4", dt=0.01, tags=tags)
    run.task("app1", "replace.yml:16", changed=True, dt=2.0, steps=REPLACED[:2], tags=tags)
    run.task("app1", "replace.yml:20", tags=tags + ["rolling_update_hooks"], is_include=True, dt=0.01)
    run.task("app1", "/srv/hooks/after_deploy.yml:2", changed=True, dt=0.5, tags=["rolling_update_hooks"])
    run.task("app1", "replace.yml:27", changed=True, dt=2.0, steps=REPLACED[2:], tags=tags)
    run.task("app1", "enable.yml:4", changed=True, steps=enable())
    run.m.finish(run.t)
    r = run.m.as_dict()
    assert_valid(r)
    h = r["hosts"]["app1"]
    assert [s["step"] for s in h["steps"]] == ["drain", "stop", "deploy", "hook", "start", "ready", "enable"]
    assert h["step_seconds"]["hook"] == pytest.approx(0.51, abs=1e-3)
    assert h["out_of_rotation"]["seconds"] == pytest.approx(0.3 + 0.01 + 2.0 + 0.51 + 2.0 + 1.0, abs=1e-3)


def test_replace_without_steps_is_deploy_only_when_it_did_something():
    run = Run()
    run.play()
    assert run.task("app1", "replace.yml:4")[2] is None  # the role's bookkeeping
    assert run.task("app1", "replace.yml:8", changed=True)[2] == "deploy"  # a result without steps
    run.play(key="play3")
    assert run.task("app2", "replace.yml:4")[2] is None
    # refused before its first step (the release is not unpacked): a failed deploy
    msg = "Release v2 is not unpacked and complete under /srv/app/releases; nothing was stopped."
    assert run.task("app2", "replace.yml:8", status="failed", msg=msg, steps=[])[2] == "deploy"
    run.m.finish(run.t)
    r = run.m.as_dict()
    assert [(s["step"], s["result"]) for s in r["hosts"]["app1"]["steps"]] == [("deploy", "changed")]
    assert [(s["step"], s["result"]) for s in r["hosts"]["app2"]["steps"]] == [("deploy", "failed")]


def rollback_run(reenable=True):
    """app1's new release never gets ready: app_replace fails in its ready step, the role rolls back
    (drain again, restore, enable when ready) and halts; app2 never gets its batch."""
    run = Run()
    preflight_play(run, ["app1", "app2"])
    run.play()
    ph = ["rolling_update", "rolling_update_preflight"]
    run.task("app1", "main.yml:37", tags=ph, dt=0.01)
    _start, drained_at, _step = run.task(
        "app1", "drain.yml:4", changed=True, steps=drain(), tags=["rolling_update_drain"]
    )
    run.task("app1", "replace.yml:4", dt=0.01)
    failed = [dict(s) for s in REPLACED]
    failed[-1]["seconds"] = 4.0
    msg = "Step 'ready' failed on release v2: http://127.0.0.1:8001/health was not ready after 4.0s"
    run.task("app1", "replace.yml:8", status="failed", msg=msg, changed=True, dt=6.0, steps=failed)
    # the role's rescue
    rb = ["rolling_update", "rolling_update_rollback"]
    run.task("app1", "main.yml:113", tags=rb, is_include=True)
    run.task("app1", "rollback.yml:5", tags=rb, via=["main.yml:113"])
    run.task("app1", "rollback.yml:24", tags=rb, is_include=True, via=["rollback.yml:20"])
    # drained already: the rotation call waits for nothing
    via = ["rollback.yml:24", "rollback.yml:20", "main.yml:113"]
    run.task("app1", "drain.yml:4", steps=drain(0.2, 0.0), tags=rb, via=via)
    run.task("app1", "drain.yml:17", status="skipped", tags=rb, via=via)
    run.task("app1", "rollback.yml:38", changed=True, dt=1.5, steps=RESTORED, tags=rb, via=["rollback.yml:20"])
    run.task("app1", "rollback.yml:48", status="ok" if reenable else "skipped", tags=rb, is_include=True)
    enabled_at = None
    if reenable:
        via = ["rollback.yml:48", "rollback.yml:46", "main.yml:113"]
        enabled_at = run.task("app1", "enable.yml:4", changed=True, steps=enable(), tags=rb, via=via)[1]
        run.task("app1", "enable.yml:12", status="skipped", tags=rb, via=via)
        run.task("app1", "rollback.yml:50", tags=rb, dt=0.01)
    run.task("app1", "rollback.yml:62", status="failed", msg="Rollout halted on app1: step 'ready' failed", tags=rb)
    # the playbook's rescue: release the lock, fail the host
    run.task("app1", PLAYBOOK + ":134", changed=True)
    run.task("app1", PLAYBOOK + ":140", status="failed", msg="Rollout halted on app1: step 'ready' failed")
    run.m.finish(run.t + 1.0)
    return run.m.as_dict(), drained_at, enabled_at


def test_rollback_is_marked_and_rescued_failure_kept():
    r, drained_at, enabled_at = rollback_run()
    assert_valid(r)
    a1 = r["hosts"]["app1"]
    names = [s["step"] for s in a1["steps"]]
    assert names == ["preflight", "unpack", "preflight", "drain", "stop", "deploy", "start", "ready", "rollback"]
    steps = {s["step"]: s for s in a1["steps"]}
    # the failed call's steps up to the failed one; the failed step carries the message
    assert steps["ready"]["result"] == "rescued" and "not ready after 4.0s" in steps["ready"]["message"]
    assert steps["ready"]["seconds"] == pytest.approx(4.0, abs=1e-3)
    assert steps["stop"]["result"] == "changed" and "message" not in steps["stop"]
    rb = steps["rollback"]
    assert rb["result"] == "failed" and rb["message"].startswith("Rollout halted on app1")
    # drain.yml and enable.yml and the restore inside the rollback belong to it, whatever steps they return
    assert rb["tasks"] == 9
    assert (a1["result"], a1["failed"], a1["rolled_back"]) == ("failed", True, True)
    assert a1["message"] == "Rollout halted on app1: step 'ready' failed"
    # one interval: out from the first drain until the rollback's enable step ended
    out = a1["out_of_rotation"]
    assert out["intervals"] == [
        {"start": pytest.approx(drained_at - 0.3, abs=1e-3), "end": enabled_at, "back_in_rotation": True}
    ]
    # the second host never got its batch, although it was prepared with the others
    a2 = r["hosts"]["app2"]
    assert (a2["result"], a2["batch"], a2["out_of_rotation"]["seconds"]) == ("not_reached", None, None)
    assert [s["step"] for s in a2["steps"]] == ["preflight", "unpack"]
    assert r["totals"]["failed"] == 1 and r["totals"]["not_reached"] == 1
    assert [b["hosts"] for b in r["batches"]] == [["app1"]]


def test_never_reenabled_host_is_out_of_rotation_until_the_end():
    r, drained_at, _enabled_at = rollback_run(reenable=False)
    assert_valid(r)
    out = r["hosts"]["app1"]["out_of_rotation"]
    assert out["intervals"] == [
        {"start": pytest.approx(drained_at - 0.3, abs=1e-3), "end": r["end"], "back_in_rotation": False}
    ]
    assert out["seconds"] == pytest.approx(r["end"] - (drained_at - 0.3), abs=1e-3)


def test_a_rollback_after_enable_drains_again():
    """The stabilisation window failed while the host was back in rotation: the rollback takes it out
    again, so it has two intervals out of rotation."""
    run = Run()
    run.play()
    (_ds, d_end), _replace, (_es, e_end) = run.transaction("app1")
    tags = ["rolling_update", "rolling_update_stabilize"]
    run.task("app1", "main.yml:87", tags=tags, is_include=True)
    run.task("app1", "stabilize.yml:4", status="failed", msg="not ready", dt=2.0, tags=tags)
    rb = ["rolling_update", "rolling_update_rollback"]
    run.task("app1", "main.yml:113", tags=rb, is_include=True)
    via = ["rollback.yml:24", "rollback.yml:20"]
    redrained = run.task("app1", "drain.yml:4", changed=True, steps=drain(0.9, 0.8), tags=rb, via=via)[1]
    run.task("app1", "rollback.yml:38", changed=True, dt=1.5, steps=RESTORED, tags=rb)
    back = run.task("app1", "enable.yml:4", changed=True, steps=enable(), tags=rb, via=["rollback.yml:48"])[1]
    run.task("app1", "rollback.yml:62", status="failed", msg="Rollout halted on app1", tags=rb)
    run.m.finish(run.t)
    r = run.m.as_dict()
    assert_valid(r)
    h = r["hosts"]["app1"]
    assert [s["step"] for s in h["steps"]][-3:] == ["enable", "stabilize", "rollback"]
    assert h["steps"][-2]["result"] == "rescued"
    assert h["out_of_rotation"]["intervals"] == [
        {"start": pytest.approx(d_end - 0.3, abs=1e-3), "end": e_end, "back_in_rotation": True},
        {"start": pytest.approx(redrained - 0.8, abs=1e-3), "end": back, "back_in_rotation": True},
    ]
    assert h["out_of_rotation"]["seconds"] == pytest.approx((e_end - d_end + 0.3) + (back - redrained + 0.8), abs=1e-3)


def test_a_refused_drain_leaves_the_host_in_rotation():
    """The capacity guard refused the drain (no change, no steps): the host never left rotation, although
    the rollback then runs enable.yml."""
    run = Run()
    run.play()
    msg = "Refusing to drain web1: 1 of 2 servers would stay healthy, min_healthy is 2."
    run.task("app1", "drain.yml:4", status="failed", msg=msg, tags=["rolling_update_drain"])
    rb = ["rolling_update", "rolling_update_rollback"]
    run.task("app1", "main.yml:113", tags=rb, is_include=True)
    run.task("app1", "rollback.yml:5", tags=rb)
    run.task("app1", "enable.yml:4", steps=enable(0.1, 0.0), tags=rb, via=["rollback.yml:48"])
    run.task("app1", "rollback.yml:62", status="failed", msg="Rollout halted on app1", tags=rb)
    run.m.finish(run.t)
    r = run.m.as_dict()
    assert_valid(r)
    h = r["hosts"]["app1"]
    assert [(s["step"], s["result"]) for s in h["steps"]] == [("drain", "rescued"), ("rollback", "failed")]
    assert h["out_of_rotation"] == {"seconds": None, "intervals": []}


def test_revert_is_a_rollback():
    """rolling_update_rollback_scope run: a host this run updated is reverted in the playbook's revert play,
    with drain.yml and enable.yml imported into revert.yml."""
    run = Run()
    preflight_play(run, ["app1", "app2"])
    run.play()
    run.transaction("app1")
    for _batch in range(2):
        run.play("Revert the hosts this run updated", key="play4", batched=True)
    run.task("app1", PLAYBOOK + ":195", is_include=True)
    via = ["revert.yml:10", "revert.yml:6", PLAYBOOK + ":195"]
    drained = run.task("app1", "drain.yml:4", changed=True, steps=drain(0.4, 0.2), via=via)[1]
    run.task("app1", "revert.yml:13", changed=True, dt=1.5, steps=RESTORED, via=["revert.yml:6", PLAYBOOK + ":195"])
    back = run.task("app1", "enable.yml:4", changed=True, steps=enable(), via=["revert.yml:20", "revert.yml:6"])[1]
    run.task("app1", "revert.yml:23", via=["revert.yml:6", PLAYBOOK + ":195"], dt=0.01)
    run.task("app1", PLAYBOOK + ":210", dt=0.01)
    run.m.finish(run.t)
    r = run.m.as_dict()
    assert_valid(r)
    h = r["hosts"]["app1"]
    assert [s["step"] for s in h["steps"]][-2:] == ["enable", "rollback"]
    assert h["steps"][-1]["tasks"] == 4 and h["steps"][-1]["result"] == "changed"
    assert (h["result"], h["rolled_back"], h["failed"], h["batch"]) == ("rolled_back", True, False, 1)
    assert h["out_of_rotation"]["intervals"][-1] == {
        "start": pytest.approx(drained - 0.2, abs=1e-3),
        "end": back,
        "back_in_rotation": True,
    }
    assert [b["hosts"] for b in r["batches"]] == [["app1"]]


def test_results_without_steps_use_the_task_files():
    """A drain and an enable whose results carry no steps (a module of an older collection, or a result cut
    short): out of rotation from the start of the drain task to the end of the last successful enable task."""
    run = Run()
    run.play(batched=False)
    run.task("app1", "preflight.yml:40", via=["preflight.yml:4"])
    out_at = run.task("app1", "drain.yml:6", changed=True, dt=3.0)[0]
    run.task("app1", "replace.yml:8", changed=True, dt=3.0, steps=REPLACED)
    back = run.task("app1", "enable.yml:5", changed=True, dt=4.0)[1]
    run.m.finish(run.t + 1.0)
    r = run.m.as_dict()
    assert_valid(r)
    h = r["hosts"]["app1"]
    assert [s["step"] for s in h["steps"]] == ["preflight", "drain", "stop", "deploy", "start", "ready", "enable"]
    assert h["out_of_rotation"]["intervals"] == [{"start": out_at, "end": back, "back_in_rotation": True}]
    assert (h["result"], h["batch"]) == ("changed", 1)


def test_skipped_host_and_unbatched_play():
    run = Run()
    run.play("My own play", key="p", batched=False)
    ph = ["rolling_update", "rolling_update_preflight"]
    run.task("app1", "main.yml:19", tags=ph, is_include=True)
    run.task("app1", "preflight.yml:9", tags=ph)
    run.task("app1", "preflight.yml:100", tags=ph)
    run.task("app1", "main.yml:27", status="skipped", tags=["rolling_update", "rolling_update_prepare"])
    run.task("app1", "main.yml:37", tags=ph, dt=0.01)
    run.task("app1", "main.yml:44", tags=ph)  # "Report a host that is skipped"
    for rel in ("drain.yml:4", "replace.yml:4", "replace.yml:8", "enable.yml:4"):
        run.task("app1", rel, status="skipped")
    run.m.finish(run.t)
    r = run.m.as_dict()
    assert_valid(r)
    a1 = r["hosts"]["app1"]
    assert (a1["result"], a1["skipped"], a1["batch"]) == ("skipped", True, 1)
    assert [s["step"] for s in a1["steps"]] == ["preflight"]
    assert a1["out_of_rotation"] == {"seconds": None, "intervals": []}
    assert r["batches"][0]["hosts"] == ["app1"] and r["totals"]["skipped"] == 1


def test_skipped_host_in_the_playbook():
    """Already on the target version: preflighted, not prepared, and in its batch only the preflight tasks."""
    run = Run()
    preflight_play(run, ["app1", "app2"], skip=["app2"])
    run.play()
    run.transaction("app1")
    run.play()
    ph = ["rolling_update", "rolling_update_preflight"]
    run.task("app2", "main.yml:37", tags=ph, dt=0.01)
    run.task("app2", "main.yml:44", tags=ph, dt=0.01)
    for rel in ("drain.yml:4", "replace.yml:4", "replace.yml:8", "enable.yml:4"):
        run.task("app2", rel, status="skipped")
    run.m.finish(run.t)
    r = run.m.as_dict()
    assert_valid(r)
    a2 = r["hosts"]["app2"]
    assert (a2["result"], a2["skipped"], a2["batch"]) == ("skipped", True, 2)
    assert [s["step"] for s in a2["steps"]] == ["preflight", "preflight"]
    assert r["hosts"]["app1"]["result"] == "changed"
    assert (r["totals"]["skipped"], r["totals"]["changed"]) == (1, 1)


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
    run.task(evil, "drain.yml:4", changed=True, steps=drain())
    stopped = [{"name": "stop", "seconds": 0.5}]
    run.task(evil, "replace.yml:8", status="failed", msg='bad <i>thing</i> & "quotes"', changed=True, steps=stopped)
    run.task(evil, "main.yml:113", tags=["rolling_update_rollback"])
    run.task(evil, "rollback.yml:62", status="failed", msg="halted <now>")
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


class _AllTags(HTMLParser):
    """Every start tag of a page, as (tag, attributes)."""

    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_html_template_escapes_a_hostile_host_name_and_message():
    """The page comes from a Jinja2 template with autoescape on: a host name that tries to close its attribute
    and a message that tries to close its title come out as text, and parse back as they were."""
    assert html_report._template().environment.autoescape is True
    host = "web1\" onmouseover=\"alert('x')\" '<script>"
    msg = '</title><script>alert("x")</script>'
    run = Run()
    run.play()
    run.task(host, "drain.yml:4", changed=True, steps=drain())
    run.task(host, "replace.yml:8", status="failed", msg=msg, changed=True, steps=[{"name": "stop", "seconds": 0.5}])
    run.m.finish(run.t)
    page = render_html(run.m.as_dict())
    assert "<script>" not in page and 'onmouseover="' not in page and "</title><script>" not in page
    parser = _AllTags()
    parser.feed(page)
    parser.close()
    assert not [attrs for _tag, attrs in parser.tags if "onmouseover" in attrs]
    assert {attrs["data-host"] for _tag, attrs in parser.tags if "data-host" in attrs} == {host}
    assert "web1&quot; onmouseover=&quot;alert(&#x27;x&#x27;)&quot; &#x27;&lt;script&gt;" in page
    assert "&lt;/title&gt;&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_summary_table():
    r = rollback_run()[0]
    lines = summary_lines(r)
    assert lines[0].split() == ["host", "batch", "result", "out-of-rot", "preflight"] + [
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


class FakeParent:
    """A block or an include task around a task: its path ("" for an implicit block) and its own parent."""

    def __init__(self, path, parent=None):
        self.path, self._parent = path, parent

    def get_path(self):
        return self.path


class FakeTask:
    def __init__(self, uuid, path, tags=(), action="ansible.builtin.command", no_log=False, parent=None):
        self._uuid, self.path, self.tags, self.action, self.no_log = uuid, path, list(tags), action, no_log
        self._parent = parent

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
    cb.clock = lambda: next(clock)  # one second per event

    host = FakeHost("web<1>")
    cb.v2_playbook_on_play_start(FakePlay("rollout", "p2", [1]))  # 100

    # drain.yml: one rotation call per HAProxy host, each item reported as it ends
    task = FakeTask("t1", ROLE + "drain.yml:4")
    items = [
        {"changed": True, "steps": [{"name": "drain", "seconds": 0.5, "waited": 0.25}]},
        {"changed": True, "steps": [{"name": "drain", "seconds": 0.5, "waited": 0.5}]},
    ]
    cb.v2_runner_on_start(host, task)  # 101
    for item in items:
        cb.v2_runner_item_on_ok(FakeResult(host, task, item))  # 102, 103
    cb.v2_runner_on_ok(FakeResult(host, task, {"changed": True, "results": items}))  # 104

    # a rollback's enable.yml task: no rollback tag, but included from rollback.yml
    rescue = FakeParent(ROLE + "rollback.yml:46", FakeParent(ROLE + "main.yml:113", FakeParent("")))
    in_rollback = FakeParent("", FakeParent(ROLE + "rollback.yml:48", rescue))
    replaced = [
        {"name": "stop", "seconds": 0.25},
        {"name": "deploy", "seconds": 0.125},
        {"name": "start", "seconds": 0.125},
        {"name": "ready", "seconds": 0.25},
    ]
    tasks = [
        (FakeTask("t2", ROLE + "drain.yml:17"), "skipped", {"skipped": True}),  # 105-106
        (FakeTask("t3", ROLE + "replace.yml:4", action="ansible.builtin.set_fact"), "ok", {}),  # 107-108: no step
        (
            FakeTask("t4", ROLE + "replace.yml:8"),
            "failed",
            {"msg": "Step 'ready' failed: not ready", "changed": True, "cmd": "secret-arg", "steps": replaced},
        ),  # 109-110
        (FakeTask("t5", ROLE + "main.yml:113", ["rolling_update_rollback"], "ansible.builtin.include_tasks"), "ok", {}),
        (
            FakeTask("t6", ROLE + "enable.yml:4", ["rolling_update"], parent=in_rollback),
            "ok",
            {"changed": True, "results": [{"steps": [{"name": "enable", "seconds": 0.5, "waited": 0.25}]}]},
        ),  # 113-114
        (
            FakeTask("t7", ROLE + "rollback.yml:62", no_log=True),
            "failed",
            {"msg": "Rollout halted token=abc", "censored": "hidden"},
        ),  # 115-116
    ]
    for task, status, data in tasks:
        cb.v2_runner_on_start(host, task)
        res = FakeResult(host, task, data)
        {"ok": cb.v2_runner_on_ok, "skipped": cb.v2_runner_on_skipped, "failed": cb.v2_runner_on_failed}[status](res)
    cb.v2_playbook_on_stats(None)

    data = json.loads((tmp_path / "out" / "rollout-report.json").read_text())
    assert_valid(data)
    h = data["hosts"]["web<1>"]
    assert [s["step"] for s in h["steps"]] == ["drain", "stop", "deploy", "start", "ready", "rollback"]
    steps = {s["step"]: s for s in h["steps"]}
    # each LB's drain step ends with its item
    assert (steps["drain"]["start"], steps["drain"]["end"], steps["drain"]["tasks"]) == (101.5, 103.0, 1)
    assert (steps["stop"]["start"], steps["stop"]["end"], steps["stop"]["result"]) == (109.25, 109.5, "changed")
    assert steps["ready"] == {
        "step": "ready",
        "start": 109.75,
        "end": 110.0,
        "seconds": 0.25,
        "result": "rescued",
        "tasks": 1,
        "message": "Step 'ready' failed: not ready",
    }
    assert steps["rollback"]["tasks"] == 3 and steps["rollback"]["message"] == HIDDEN
    assert h["result"] == "failed" and h["rolled_back"] and h["batch"] == 1
    # out: from the first drain command (102 - 0.25) to the end of the rollback's enable step
    assert h["out_of_rotation"]["intervals"] == [{"start": 101.75, "end": 114.0, "back_in_rotation": True}]
    text = (tmp_path / "out" / "rollout-report.json").read_text()
    assert "secret-arg" not in text and "token=abc" not in text
    page = (tmp_path / "out" / "rollout-report.html").read_text()
    assert "web&lt;1&gt;" in page and "web<1>" not in page
    assert "== ROLLOUT REPORT" in display.lines
    assert any(line.startswith("web<1>") and "failed" in line for line in display.lines)
    assert any(line.startswith("HTML report: ") for line in display.lines)


def test_callback_via_survives_odd_parents():
    class Broken:
        def get_path(self):
            raise RuntimeError("no path")

    assert cb_mod._via(FakeTask("t", ROLE + "drain.yml:4", parent=Broken())) == []
    chain = FakeParent("a.yml:1", FakeParent("a.yml:1", FakeParent("", FakeParent("b.yml:2"))))
    assert cb_mod._via(FakeTask("t", ROLE + "drain.yml:4", parent=chain)) == ["a.yml:1", "b.yml:2"]
    assert cb_mod._via(object()) == []


def test_callback_options_off(tmp_path, monkeypatch):
    display = FakeDisplay()
    cb = cb_mod.CallbackModule(display=display)
    opts = {"output_dir": str(tmp_path / "none"), "html": False, "json": False, "summary": False}
    monkeypatch.setattr(cb, "get_option", opts.__getitem__)
    cb.v2_playbook_on_play_start(FakePlay("rollout", "p2", []))
    task = FakeTask("t1", ROLE + "drain.yml:4")
    cb.v2_runner_on_start(FakeHost("a"), task)
    cb.v2_runner_on_ok(FakeResult(FakeHost("a"), task, {"changed": False}))
    cb.v2_playbook_on_stats(None)
    assert not (tmp_path / "none").exists() and display.lines == []


# --------------------------------------------------------------------------- hostile input: secrets, planted files

SECRETS = ("deployer", "s3cr3tpw", "t0k3nval", "hunter2", "AKIAXYZ", "b3ar3rtokenvalue")


def assert_no_secret(text):
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, (leaked, text)


def run_callback(cb, failures):
    """One play; each host (``{host: failure message}``) drains, then fails a task with its message."""
    clock = iter(float(t) for t in range(100, 200))
    cb.clock = lambda: next(clock)
    cb.v2_playbook_on_play_start(FakePlay("rollout", "p1", [1]))
    for index, (name, msg) in enumerate(failures.items()):
        host = FakeHost(name)
        task = FakeTask("d%d" % index, ROLE + "drain.yml:4")
        cb.v2_runner_on_start(host, task)
        cb.v2_runner_on_ok(FakeResult(host, task, {"changed": True, "steps": [{"name": "drain", "seconds": 0.5}]}))
        task = FakeTask("r%d" % index, ROLE + "replace.yml:8")
        cb.v2_runner_on_start(host, task)
        cb.v2_runner_on_failed(FakeResult(host, task, {"msg": msg, "changed": False}))
    cb.v2_playbook_on_stats(None)


def test_no_secret_of_a_failure_message_reaches_the_report(tmp_path, monkeypatch):
    display = FakeDisplay()
    cb = cb_mod.CallbackModule(display=display)
    opts = {"output_dir": str(tmp_path / "out"), "html": True, "json": True, "summary": True}
    monkeypatch.setattr(cb, "get_option", opts.__getitem__)
    failures = {
        "web1": "GET http://deployer:s3cr3tpw@host/x?token=t0k3nval failed: connection refused",
        "web2": {"password": "hunter2", "url": "https://deployer:s3cr3tpw@artifacts/app.tgz"},
        "web3": "aws s3 cp failed: X-Amz-Credential=AKIAXYZ&X-Amz-Signature=deadbeef password=hunter2",
        "web4": "probe sent Authorization: Bearer b3ar3rtokenvalue and got 401",
    }
    run_callback(cb, failures)
    json_text = (tmp_path / "out" / "rollout-report.json").read_text()
    html_text = (tmp_path / "out" / "rollout-report.html").read_text()
    for text in (json_text, html_text, "\n".join(display.lines)):
        assert_no_secret(text)
    report = json.loads(json_text)
    assert_valid(report)
    # Every message is there, and still says what failed and where.
    assert [report["hosts"][name]["failed"] for name in failures] == [True] * 4
    messages = {name: report["hosts"][name]["message"] for name in failures}
    assert messages["web1"] == "GET http://***@host/x?*** failed: connection refused"
    assert messages["web2"] == '{"password": "***", "url": "https://***@artifacts/app.tgz"}'
    assert messages["web3"] == "aws s3 cp failed: X-Amz-Credential=***&X-Amz-Signature=*** password=***"
    assert messages["web4"] == "probe sent Authorization: Bearer *** and got 401"
    assert all(report["hosts"][name]["steps"][-1]["message"] == messages[name] for name in failures)
    assert "http://***@host/x?***" in html_text


def test_the_renderings_redact_what_the_model_holds():
    """The last line of defence: whatever the report dict holds, to_json, render_html and the summary redact it."""
    model = RolloutModel()
    model.play_start("p", "rollout", True, 0.0)
    model.task_start("web1", "t1", 0.0)
    model.task_result("web1", "t1", ROLE + "replace.yml:8", [], "failed", 1.0, msg="plain failure")
    model.finish(2.0)
    report = model.as_dict()
    leak = "curl https://deployer:s3cr3tpw@prom:9090/api?token=t0k3nval; api_key=hunter2"
    report["playbook"] = leak
    report["hosts"]["web1"]["message"] = leak
    report["hosts"]["web1"]["steps"][-1]["message"] = leak
    for text in (to_json(report), render_html(report), "\n".join(summary_lines(report))):
        assert_no_secret(text)
        assert "https://***@prom:9090/api?***" in text
    assert report["hosts"]["web1"]["message"] == leak  # the caller's dict is left as it was


@contextlib.contextmanager
def umask(value):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def as_nobody(*argv):
    subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv], check=True)


@pytest.mark.parametrize("planter", ["root", "nobody"])
def test_report_writer_does_not_follow_a_planted_temporary_file(monkeypatch, planter):
    """Symlinks at the old temporary names (rollout-report.json.tmp, .html.tmp) point at root's files: the
    writer neither follows them nor touches them, and writes the reports 0644 under umask 000."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to play another local user")
    base = tempfile.mkdtemp(prefix="zdt-report-")  # in /tmp, which nobody can traverse (unlike tmp_path)
    try:
        os.chmod(base, 0o755)
        out = os.path.join(base, "out")
        os.mkdir(out, 0o755)
        if planter == "nobody":
            os.chown(out, 65534, 65534)  # a report directory that another user controls
        targets = {}
        for kind in ("json", "html"):
            target = os.path.join(base, "root-owned-%s" % kind)
            with open(target, "w") as f:
                f.write("root's own %s data\n" % kind)
            os.chmod(target, 0o600)
            targets[kind] = target
            link = os.path.join(out, "rollout-report.%s.tmp" % kind)
            if planter == "nobody":
                as_nobody("ln", "-s", target, link)
            else:
                os.symlink(target, link)
            assert os.lstat(link).st_uid == (65534 if planter == "nobody" else 0)

        display = FakeDisplay()
        cb = cb_mod.CallbackModule(display=display)
        opts = {"output_dir": out, "html": True, "json": True, "summary": False}
        monkeypatch.setattr(cb, "get_option", opts.__getitem__)
        with umask(0):
            run_callback(cb, {"web1": "failed"})

        assert not [line for line in display.lines if line.startswith("WARNING")], display.lines
        for kind, target in targets.items():
            with open(target) as f:
                assert f.read() == "root's own %s data\n" % kind
            assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
            link = os.path.join(out, "rollout-report.%s.tmp" % kind)
            assert os.path.islink(link) and os.readlink(link) == target
            report = os.path.join(out, "rollout-report.%s" % kind)
            info = os.lstat(report)
            assert stat.S_ISREG(info.st_mode) and info.st_uid == 0
            assert stat.S_IMODE(info.st_mode) == 0o644
        with open(os.path.join(out, "rollout-report.json")) as f:
            assert json.load(f)["hosts"]["web1"]["result"] == "failed"
        # Nothing else is left behind: the two planted links and the two reports.
        assert sorted(os.listdir(out)) == sorted(
            ["rollout-report.json", "rollout-report.html", "rollout-report.json.tmp", "rollout-report.html.tmp"]
        )
    finally:
        shutil.rmtree(base)


def test_write_atomic_replaces_a_symlink_and_cleans_up_on_failure(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("keep\n")
    path = tmp_path / "report.json"
    path.symlink_to(target)
    with umask(0o077):
        assert write_atomic(str(path), "new\n") == str(path)
    assert not path.is_symlink() and path.read_text() == "new\n" and target.read_text() == "keep\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    # A rename that fails (a directory is in the way) leaves no temporary file behind.
    (tmp_path / "blocked").mkdir()
    (tmp_path / "blocked" / "inside").write_text("x")
    with pytest.raises(OSError):
        write_atomic(str(tmp_path / "blocked"), "text\n")
    assert sorted(os.listdir(tmp_path)) == ["blocked", "elsewhere", "report.json"]
