# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the zerodowntime.rollout collection: no compatibility promise outside it.
"""The rollout report as one self-contained HTML page: inline CSS, an inline SVG timeline and the per-host
table. This file lays the timeline out (where each bar, band and label goes, and the words of every title); the
markup is the Jinja2 template ``templates/report.html.j2`` next to it, rendered with autoescape on."""

import functools
import html
import math
import os
import time

import jinja2
from markupsafe import Markup

from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_data
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.steps import STEP_COLOURS, STEPS
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.text import seconds_text

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
TEMPLATE = "report.html.j2"

# The timeline's geometry, in SVG units: the host labels' gutter, the time axis' width, a host's row, the axis.
GUTTER, WIDTH, ROW_H, TOP = 170, 900, 26, 34
OTHER_COLOUR = "#7b8794"


def _escape(value):
    """Every ``{{ }}`` of the template: None as nothing, anything else as text with ``& < > " '`` escaped
    (``html.escape``'s spelling, ``&quot;``). Autoescape stays on behind it: what this returns is Markup, so it
    is escaped exactly once."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


@functools.lru_cache(maxsize=None)
def _template():
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        finalize=_escape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["f1"] = lambda value: "%.1f" % value
    return env.get_template(TEMPLATE)


def _utc(t):
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) if t is not None else "-"


def _tick_step(span):
    raw = span / 8.0 if span > 0 else 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _bar(h, s, x, y):
    """One step of a host: its bar, and the failure marker at its end when it failed or was rescued."""
    sx, sw = x(s["start"]), max(1.5, x(s["end"]) - x(s["start"]))
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
    marker = None
    if s["result"] in ("failed", "rescued"):
        mark = "rollback: %s" % s["result"] if s["step"] == "rollback" else "%s %s" % (s["step"], s["result"])
        marker = {"x": sx + sw, "y": y + 9, "title": "%s: %s - %s" % (h["name"], mark, s.get("message") or "")}
    return {
        "step": s["step"],
        "result": s["result"],
        "x": sx,
        "y": y + 5,
        "width": sw,
        "height": ROW_H - 10,
        "colour": STEP_COLOURS.get(s["step"], OTHER_COLOUR),
        "title": title,
        "hatch": s["step"] == "rollback",
        "marker": marker,
    }


def _row(i, h, x):
    """One host's row of the timeline: label, background stripe, out-of-rotation bands, step bars."""
    y = TOP + i * ROW_H
    bands = []
    for iv in h["out_of_rotation"]["intervals"]:
        state = "back in rotation" if iv["back_in_rotation"] else "still out of rotation at the end"
        bands.append(
            {
                "x": x(iv["start"]),
                "y": y + 1,
                "width": max(1.0, x(iv["end"]) - x(iv["start"])),
                "height": ROW_H - 2,
                "title": "%s out of rotation %.1f s (%s)" % (h["name"], iv["end"] - iv["start"], state),
            }
        )
    return {
        "host": h["name"],
        "y": y,
        "label_y": y + ROW_H // 2 + 4,
        "label": h["name"] if h["batch"] is None else "%s  (batch %s)" % (h["name"], h["batch"]),
        "title": "%s: %s" % (h["name"], h["result"]),
        "stripe": bool(i % 2),
        "bands": bands,
        "bars": [_bar(h, s, x, y) for s in h["steps"]],
    }


def _timeline(report, hosts):
    """The SVG timeline: its size, the time axis' ticks, the batch boundaries and one row per host."""
    t0 = report["start"]
    t1 = max([report["end"]] + [h["end"] for h in hosts if h["end"] is not None])
    span = max(t1 - t0, 0.001)
    height = TOP + ROW_H * max(len(hosts), 1) + 12

    def x(t):
        return GUTTER + (t - t0) / span * WIDTH

    ticks = []
    step = _tick_step(span)
    tick = 0.0
    while tick <= span + 1e-9:
        ticks.append({"x": x(t0 + tick), "label": "%g" % tick})
        tick += step
    batches = [
        {"x": x(b["start"]), "title": "batch %d starts (%s)" % (b["number"], b["play"])}
        for b in report["batches"]
        if b["number"] > 1
    ]
    return {
        "width": GUTTER + WIDTH + 20,
        "height": height,
        "axis_top": TOP - 6,
        "axis_bottom": height - 8,
        "label_y": TOP - 10,
        "ticks": ticks,
        "batches": batches,
        "stripe": {"x": GUTTER, "width": WIDTH, "height": ROW_H},
        "rows": [_row(i, h, x) for i, h in enumerate(hosts)],
    }


def _table(hosts, steps):
    """The per-host table under the timeline."""
    rows = []
    for h in hosts:
        rows.append(
            {
                "cls": "failed" if h["result"] in ("failed", "rolled_back") else h["result"],
                "host": h["name"],
                "batch": "-" if h["batch"] is None else h["batch"],
                "result": h["result"],
                "rolled_back": h["rolled_back"],
                "out_of_rotation": seconds_text(h["out_of_rotation"]["seconds"]),
                "steps": [seconds_text(h["step_seconds"].get(s)) for s in steps],
                "message": h["message"] if h["failed"] or h["rolled_back"] else "",
            }
        )
    return {"head": ["host", "batch", "result", "out of rotation (s)"] + steps, "rows": rows}


def render_html(report):
    """A self-contained page: inline CSS, an inline SVG timeline, and the per-host table. Every string
    from the run (host names, messages, the playbook) is escaped by the template. For machines, the host
    labels, out-of-rotation bands and table rows carry ``data-host``, and every step bar ``data-host``,
    ``data-step`` and ``data-result``."""
    report = redact_data(report)
    hosts = list(report["hosts"].values())
    steps = [s for s in STEPS if s in report["totals"]["step_seconds"]]
    t = report["totals"]
    meta = {
        "playbook": report["playbook"] or "playbook",
        "start": _utc(report["start"]),
        "end": _utc(report["end"]),
        "seconds": seconds_text(report["seconds"]),
        "hosts": t["hosts"],
        "batches": t["batches"],
        "failed": t["failed"] + t["rolled_back"],
        "skipped": t["skipped"],
    }
    return _template().render(
        meta=meta,
        legend=[{"step": s, "colour": STEP_COLOURS[s]} for s in steps],
        timeline=_timeline(report, hosts),
        table=_table(hosts, steps),
    )
