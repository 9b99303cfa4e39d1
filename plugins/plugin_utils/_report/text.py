# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the zerodowntime.rollout collection: no compatibility promise outside it.
"""The rollout report as text: the fixed-width summary table the callback prints at the end of the run."""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_data
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.steps import STEPS


def seconds_text(v):
    """Seconds as the report prints them: one decimal, ``-`` for none."""
    return "-" if v is None else "%.1f" % v


def summary_lines(report):
    """A fixed-width table: host, batch, result, out of rotation, then seconds per step."""
    report = redact_data(report)
    steps = [s for s in STEPS if s in report["totals"]["step_seconds"]]
    header = ["host", "batch", "result", "out-of-rot"] + steps
    rows = []
    for h in report["hosts"].values():
        row = [h["name"], "-" if h["batch"] is None else str(h["batch"]), h["result"]]
        row.append(seconds_text(h["out_of_rotation"]["seconds"]))
        row += [seconds_text(h["step_seconds"].get(s)) for s in steps]
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
            seconds_text(report["seconds"]),
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
