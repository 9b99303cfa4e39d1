# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The rollout plan as text: one table, the rows grouped by batch, each batch with its verdict."""


def render(plan):
    """The plan as lines of text: one table, the rows grouped by batch, each batch with its verdict."""
    batches = plan["batches"]
    surge = plan.get("surge")
    surge_hosts = surge["hosts"] if surge else []
    wheres = []
    for e in surge_hosts:
        for lb in e["lbs"]:
            if lb["where"] not in wheres:
                wheres.append(lb["where"])
    for b in batches:
        for e in b["hosts"]:
            for lb in e["lbs"]:
                if lb["where"] not in wheres:
                    wheres.append(lb["where"])
            for lb in b["capacity"]["lbs"]:
                if lb["where"] not in wheres:
                    wheres.append(lb["where"])
    label = {w: "lb%d" % (i + 1) for i, w in enumerate(wheres)}
    version = plan["version"]
    lines = [
        "Rollout plan: %s to %s in %s (rollout_serial %s). Read only: nothing was changed."
        % (
            _count(plan["host_count"], "host"),
            version if isinstance(version, str) else ", ".join(version or []) or "?",
            _count(plan["batch_count"], "batch", "batches"),
            _serial_text(plan["serial"]),
        )
    ]
    lines += ["%s = %s" % (label[w], w) for w in wheres]
    header = ["host", "current -> target"] + [label[w] for w in wheres] + ["decision"]
    rows = []  # table rows, or a plain line (str) between them

    def host_row(e):
        states = {lb["where"]: lb["state"] for lb in e["lbs"]}
        read = e["action"] in ("roll", "skip", "surge")
        version_text = "%s -> %s" % (e["current"] or ("(none)" if read else "?"), e["target"] or "?")
        decision = e["action"] + (": " + e["reason"] if e["reason"] else "")
        return [e["host"], version_text] + [states.get(w, "-") for w in wheres] + [decision]

    if surge:
        rows.append(
            "Surge hosts (rollout_surge_hosts), before batch 1: %s; batches of at most %d (largest: %d)"
            % (", ".join(e["host"] for e in surge_hosts) or "none", surge["count"], surge["largest_batch"])
        )
        rows += [host_row(e) for e in surge_hosts]
    for b in batches:
        entries = b["hosts"]
        rows.append("Batch %d of %d: %s" % (b["batch"], plan["batch_count"], ", ".join(e["host"] for e in entries)))
        rows += [host_row(e) for e in entries]
        cap = b["capacity"]
        word = {"ok": "ok", "refuse": "WOULD REFUSE", "not checked": "not checked"}[cap["status"]]
        reason = cap["reason"]
        for w in sorted(label, key=len, reverse=True):
            reason = reason.replace(w, label[w])
        rows.append("  capacity guard: %s%s" % (word, ": " + reason if reason else ""))
    table = [header] + [r for r in rows if isinstance(r, list)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]

    def fmt(cells):
        return ("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths))).rstrip()

    lines.append(fmt(header))
    lines += [fmt(r) if isinstance(r, list) else r for r in rows]
    if surge and surge["comes_up"]:
        lines.append(
            "After the last batch: %s %s."
            % (
                ", ".join(e["host"] for e in surge_hosts),
                "stay in rotation (rollout_surge_keep)"
                if surge["keep"]
                else "drained, put in MAINT and stopped (rollout_surge_keep: false)",
            )
        )
    if plan.get("capacity_steps"):
        lines.append("Capacity, servers in rotation at every step (lowest over the load balancers):")
        steps = plan["capacity_steps"]
        width = max(len(st["step"]) for st in steps)
        for st in steps:
            detail = ", ".join(st["hosts"])
            lines.append("  %s  %d%s" % (st["step"].ljust(width), st["min"], "  (%s)" % detail if detail else ""))
    if plan["preflight_errors"]:
        lines.append(
            "Verdict: the rollout would stop at preflight (%s) before changing anything."
            % ", ".join(e["host"] for e in plan["preflight_errors"])
        )
    elif plan["halts_at"]:
        lines.append(
            "Verdict: the rollout would halt at batch %d, which the capacity guard refuses%s."
            % (plan["halts_at"], "" if plan["halts_at"] == plan["batch_count"] else "; later batches would not run")
        )
    elif plan["would_complete"]:
        rolled = sum(1 for b in batches for e in b["hosts"] if e["action"] == "roll")
        lines.append(
            "Verdict: the rollout would roll %s and skip %d." % (_count(rolled, "host"), plan["host_count"] - rolled)
        )
    return lines


def _count(n, one, many=None):
    return "%d %s" % (n, one if n == 1 else (many or one + "s"))


def _serial_text(items):
    if not items:
        return "none: every host at once"
    text = ", ".join('"%s"' % i if isinstance(i, str) else str(i) for i in items)
    return text if len(items) == 1 else "[%s]" % text
