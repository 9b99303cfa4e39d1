"""The rollout_report callback on real rollouts of a two-host demo fleet: a clean one, and one whose
new release never becomes ready (rolled back, rollout halted).

Every report is checked three ways: the JSON against docs/rollout-report.schema.json, the HTML parsed
(every host and every step it ran in the SVG timeline and the table), and the page rendered by a real
headless Chromium, without console errors or outside requests, to ``rollout-report.png`` in the test's
tmp_path, whose pixels show the timeline's step colours."""

import json
import os
import shutil
import tempfile
from html.parser import HTMLParser

import jsonschema
import pytest
from headless_chromium import read_png, render

from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.steps import STEP_COLOURS
from conftest import destroy_fleet, make_fleet
from tests.fixtures.fleet.playbook import ROOT, run_playbook, write_inventory
from tests.fixtures.fleet.release import APP_PY, build_artifact

pytestmark = pytest.mark.integration

TRANSACTION = ["unpack", "drain", "stop", "deploy", "start", "ready", "enable"]
REPLACE = ["stop", "deploy", "start", "ready"]  # the steps app_replace returns, in one call
SCHEMA_PATH = os.path.join(ROOT, "docs", "rollout-report.schema.json")
TIMELINE_WIDTH = 900  # px of the SVG the run's span is drawn over (render_html)


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="zd-rr-", dir="/tmp")  # unix socket paths must stay short
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fleet2():
    fleet, d = make_fleet(hosts=2, version="v1", first_address="127.0.0.71", retries=0)
    try:
        yield fleet
    finally:
        destroy_fleet(fleet, d)


def app_that_never_gets_ready(directory):
    """The demo app whose readiness waits for a file that is never created."""
    with open(APP_PY) as f:
        src = f.read()
    path = os.path.join(directory, "app_not_ready.py")
    with open(path, "w") as f:
        f.write('import sys\nsys.argv += ["--require-file", "/nonexistent/zdt-report-never-ready"]\n' + src)
    return path


class Timeline(HTMLParser):
    """The machine-readable marks of the report page: step bars (with their <title>), host labels and
    out-of-rotation bands inside the SVG, and table rows."""

    def __init__(self):
        super().__init__()
        self.in_svg = 0
        self.bars, self.labels, self.bands, self.rows = [], [], [], []
        self._title_of = None
        self._title = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg":
            self.in_svg += 1
        elif tag == "title" and self._title_of is not None:
            self._title = []
        elif "data-host" in a:
            cls = (a.get("class") or "").split()
            if "data-step" in a:
                assert self.in_svg and "step" in cls, (tag, a)
                self._title_of = {"host": a["data-host"], "step": a["data-step"], "result": a["data-result"]}
                self.bars.append(self._title_of)
            elif tag == "text" and "host" in cls:
                assert self.in_svg, a
                self.labels.append(a["data-host"])
            elif "out-of-rotation" in cls:
                assert self.in_svg, a
                self.bands.append(a["data-host"])
            elif tag == "tr":
                assert not self.in_svg, a
                self.rows.append(a["data-host"])

    def handle_data(self, data):
        if self._title is not None:
            self._title.append(data)

    def handle_endtag(self, tag):
        if tag == "svg":
            self.in_svg -= 1
        elif tag == "title" and self._title is not None:
            self._title_of["title"] = "".join(self._title)
            self._title = self._title_of = None


def check_json(report):
    with open(SCHEMA_PATH) as f:
        validator = jsonschema.Draft202012Validator(json.load(f))
    errors = ["%s: %s" % (e.json_path, e.message) for e in validator.iter_errors(report)]
    assert not errors, errors


def check_html(report, page):
    """Every host has a label, a table row and (when drained) an out-of-rotation band; every step it ran
    is a bar, in order, titled with the host and the step."""
    timeline = Timeline()
    timeline.feed(page)
    timeline.close()
    hosts = list(report["hosts"])
    assert hosts and timeline.labels == hosts and timeline.rows == hosts
    drained = [n for n, h in report["hosts"].items() for _interval in h["out_of_rotation"]["intervals"]]
    assert timeline.bands == drained
    expected = [(n, s["step"], s["result"]) for n, h in report["hosts"].items() for s in h["steps"]]
    assert [(b["host"], b["step"], b["result"]) for b in timeline.bars] == expected
    for step_bar in timeline.bars:
        assert step_bar["title"].startswith("%s %s: " % (step_bar["host"], step_bar["step"])), step_bar


def check_browser(report, html_path, out_dir):
    """Chromium renders the page without errors, asks for nothing but the file itself, and draws it."""
    url = "file://" + os.path.abspath(html_path)
    png_path = os.path.join(out_dir, "rollout-report.png")
    page = render(url, png_path, width=1400, height=900, clips={"timeline": "svg.timeline"})
    assert page.errors == [], page.errors
    assert page.warnings == [], page.warnings
    assert set(page.requests) == {url}, page.requests

    with open(png_path, "rb") as f:
        width, height, colours = read_png(f.read())
    assert (width, height) == (1400, 900)
    background = max(colours.values())
    assert len(colours) > 100 and background < 0.98 * width * height, (len(colours), background)

    # The timeline itself: every step wide enough to have a pixel of its own colour shows it. The steps the
    # modules return last what they measured: a drain or an enable may be a few milliseconds wide.
    _w, _h, drawn = read_png(page.clips["timeline"])
    span = max(report["end"] - report["start"], 0.001)
    widest = {}
    for h in report["hosts"].values():
        for s in h["steps"]:
            widest[s["step"]] = max(widest.get(s["step"], 0), s["seconds"] / span * TIMELINE_WIDTH)
    wide = sorted(step for step, px in widest.items() if px >= 4)
    assert {"preflight", "ready"} <= set(wide), widest
    missing = [step for step in wide if not drawn.get(bytes.fromhex(STEP_COLOURS[step][1:]))]
    assert not missing, "step colours not in the timeline: %s (steps: %s)" % (missing, widest)


def check_report(report, page, report_dir, out_dir):
    """Schema, HTML structure and the browser; the files are kept next to the PNG in ``out_dir``."""
    for name in ("rollout-report.json", "rollout-report.html"):
        shutil.copy(os.path.join(report_dir, name), os.path.join(out_dir, name))
    check_json(report)
    check_html(report, page)
    check_browser(report, os.path.join(out_dir, "rollout-report.html"), out_dir)


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ('throw new Error("zdt-page-error")', "uncaught: Error: zdt-page-error"),
        ('console.error("zdt-console-error")', "console.error: zdt-console-error"),
    ],
)
@pytest.mark.latest_only
def test_browser_check_sees_page_errors(tmp_path, script, expected):
    """The browser check can fail: an uncaught exception or a console error in the page is reported."""
    html_path = tmp_path / "broken.html"
    html_path.write_text("<!DOCTYPE html><html><body><p>report</p><script>%s</script></body></html>" % script)
    page = render("file://%s" % html_path, str(tmp_path / "broken.png"))
    assert len(page.errors) == 1 and page.errors[0].startswith(expected), page.errors
    # and a damaged PNG is refused
    png = bytearray(page.png)
    assert read_png(bytes(png))[:2] == (1400, 900)
    png[40] ^= 0xFF
    with pytest.raises(ValueError, match="CRC"):
        read_png(bytes(png))


def rollout_with_report(fleet, workdir, out_dir, app_py=None):
    kwargs = {"app_py": app_py} if app_py else {}
    artifact, sha = build_artifact("v2", os.path.join(workdir, "artifacts"), **kwargs)
    inv = write_inventory(fleet, os.path.join(workdir, "inventory.yml"))
    report_dir = os.path.join(workdir, "report")
    proc = run_playbook(
        inv,
        {
            "rolling_update_version": "v2",
            "rolling_update_artifact": artifact,
            "rolling_update_artifact_checksum": "sha256:" + sha,
            "rolling_update_health_interval": 0.2,
            "rolling_update_health_timeout": 4,
            "rollout_serial": 1,
            "rollout_lock_path": os.path.join(workdir, "rollout.lock"),
        },
        env={
            "ANSIBLE_CALLBACKS_ENABLED": "zerodowntime.rollout.rollout_report",
            "ZDT_ROLLOUT_REPORT_DIR": report_dir,
        },
    )
    json_path = os.path.join(report_dir, "rollout-report.json")
    assert os.path.exists(json_path), proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(json_path) as f:
        raw = f.read()
    with open(os.path.join(report_dir, "rollout-report.html")) as f:
        page = f.read()
    report = json.loads(raw)
    check_report(report, page, report_dir, out_dir)
    return proc, report, raw, page, artifact


def test_report_of_a_clean_rollout(fleet2, workdir, tmp_path):
    proc, report, raw, page, artifact = rollout_with_report(fleet2, workdir, str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert list(report["hosts"]) == ["app1", "app2"]
    first_drain = min(h["out_of_rotation"]["intervals"][0]["start"] for h in report["hosts"].values())
    for batch, name in enumerate(["app1", "app2"], start=1):
        host = report["hosts"][name]
        assert host["batch"] == batch and host["result"] == "changed", host
        assert not host["failed"] and not host["rolled_back"] and not host["skipped"]
        names = [s["step"] for s in host["steps"]]
        assert [n for n in names if n in TRANSACTION] == TRANSACTION, names
        assert "rollback" not in names
        starts = [s["start"] for s in host["steps"]]
        assert starts == sorted(starts)
        steps = {s["step"]: s for s in host["steps"]}
        out = host["out_of_rotation"]
        assert 0 < out["seconds"] < host["seconds"], host
        (interval,) = out["intervals"]
        assert interval["back_in_rotation"] is True
        # The playbook unpacks every host in its first play, while they all still serve: before any drain.
        unpack = steps["unpack"]
        assert unpack["result"] == "changed" and unpack["end"] <= first_drain, (unpack, first_drain)
        # One app_replace call: its four steps back to back, inside the time out of rotation.
        replace = [steps[n] for n in REPLACE]
        assert all(s["tasks"] == 1 and s["result"] == "changed" for s in replace), replace
        assert all(abs(a["end"] - b["start"]) <= 0.002 for a, b in zip(replace, replace[1:])), replace
        assert steps["drain"]["end"] <= replace[0]["start"] and replace[-1]["end"] <= steps["enable"]["start"]
        # Out of rotation: from the drain command (inside the drain step, as the module measured it) to the
        # end of the enable step, when HAProxy reported the server UP.
        assert steps["drain"]["start"] <= interval["start"] <= steps["drain"]["end"], (steps["drain"], interval)
        assert interval["end"] == steps["enable"]["end"], (steps["enable"], interval)
        assert interval["start"] <= replace[0]["start"] and replace[-1]["end"] <= interval["end"]
    # app2 was drained only after app1 was back in rotation (serial 1)
    assert (
        report["hosts"]["app1"]["out_of_rotation"]["intervals"][0]["end"]
        <= report["hosts"]["app2"]["out_of_rotation"]["intervals"][0]["start"]
    )
    assert [b["hosts"] for b in report["batches"]] == [["app1"], ["app2"]]
    assert report["totals"]["changed"] == 2 and report["start"] < report["end"]
    assert artifact not in raw  # task arguments are never recorded

    assert "<svg" in page and "app1" in page and "app2" in page
    assert 'class="out-of-rotation"' in page and "step-rollback" not in page

    out = proc.stdout
    assert "ROLLOUT REPORT" in out
    table = out[out.index("ROLLOUT REPORT") :].splitlines()
    header = next(line for line in table if line.startswith("host "))
    assert header.split()[:4] == ["host", "batch", "result", "out-of-rot"]
    assert any(line.split()[:3] == ["app1", "1", "changed"] for line in table), out[-2000:]
    assert any(line.split()[:3] == ["app2", "2", "changed"] for line in table), out[-2000:]


@pytest.mark.latest_only
def test_report_of_a_rolled_back_rollout(fleet2, workdir, tmp_path):
    proc, report, _raw, page, _artifact = rollout_with_report(
        fleet2, workdir, str(tmp_path), app_that_never_gets_ready(workdir)
    )
    assert proc.returncode != 0, proc.stdout[-3000:]
    app1 = report["hosts"]["app1"]
    assert app1["result"] == "failed" and app1["failed"] and app1["rolled_back"], app1
    assert "Rollout halted on app1" in app1["message"]
    steps = {s["step"]: s for s in app1["steps"]}
    assert steps["ready"]["result"] == "rescued" and "not ready" in steps["ready"]["message"]
    assert steps["rollback"]["result"] == "failed"
    names = [s["step"] for s in app1["steps"]]
    assert names.index("rollback") == len(names) - 1 and "enable" not in names
    # the failed app_replace call returned its steps up to the failed one
    assert [n for n in names if n in TRANSACTION] == TRANSACTION[:-1], names
    assert all(steps[n]["result"] == "changed" for n in REPLACE[:-1]), steps
    # the rollback put the ready v1 back in rotation
    assert app1["out_of_rotation"]["intervals"][0]["back_in_rotation"] is True
    assert steps["rollback"]["start"] <= app1["out_of_rotation"]["intervals"][0]["end"] <= steps["rollback"]["end"]
    # the rollout halted before app2's batch; it was only preflighted and prepared with the others
    app2 = report["hosts"]["app2"]
    assert (app2["result"], app2["batch"], app2["out_of_rotation"]["seconds"]) == ("not_reached", None, None)
    assert [s["step"] for s in app2["steps"]] == ["preflight", "unpack"], app2["steps"]

    assert 'class="step step-rollback result-failed"' in page
    assert 'class="marker failure"' in page and "app1" in page and "app2" in page
    assert "ROLLOUT REPORT" in proc.stdout
