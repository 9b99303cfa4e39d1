# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The rollout plan: batches, per-host decisions and capacity verdicts, from state already read.

Plain Python, no Ansible import. ``playbooks/plan.yml`` reads every host (release, load balancers,
readiness) through the role's own read-only tasks and hands the findings to the
``zerodowntime.rollout.rollout_plan`` filter, which calls :func:`build_plan`.

The batches are cut exactly as ansible-core cuts a play's hosts for ``serial``
(``PlaybookExecutor._get_serialized_batches`` with ``ansible.utils.helpers.pct_to_int``): a number,
a percentage of the play's host count (rounded down, at least 1), or a list whose last value repeats;
a value of 0 or less takes every remaining host at once.
"""

import copy
from collections.abc import Sequence

from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws_capacity import (
    back_in_rotation as back_in_rotation_rows,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws_capacity import evaluate_targets
from ansible_collections.zerodowntime.rollout.plugins.module_utils._capacity import evaluate, evaluate_aws
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError

_SERIAL_HINT = "a number, a percentage such as '25%', or a list of them such as [1, '25%', '100%']"


# --------------------------------------------------------------------------- batches


def parse_serial(serial):
    """The ``serial`` value as the list ansible-core iterates over. Values it could not use are refused.

    ``[]`` means no serial (one batch of every host), as for a play without ``serial``. ``None`` is
    refused (ansible-core stops with an unexpected exception), and so are booleans, although
    ansible-core would take ``true`` for 1: they are always a mistake.
    """
    if serial is None:
        raise ValidationError("rollout_serial is null; give %s." % _SERIAL_HINT)
    items = list(serial) if isinstance(serial, Sequence) and not isinstance(serial, str) else [serial]
    items = [_plain(item) for item in items]
    for item in items:
        batch_size(item, 1)  # raises on anything ansible-core could not turn into a batch size
    return items


def _plain(item):
    """A plain ``str``/``int``/``float`` (templating engines hand over subclasses), other types as they are."""
    for kind in (bool, str, int, float):
        if isinstance(item, kind):
            return kind(item)
    return item


def batch_size(item, total):
    """One ``serial`` value as a host count, like ansible-core's ``pct_to_int(item, total)``.

    ``'30%'`` of 10 hosts is 3; a percentage that rounds down to 0 becomes 1. The float arithmetic is
    ansible-core's own, so its rounding quirks (``'29%'`` of 100 is 28) are reproduced, not fixed.
    """
    if isinstance(item, bool) or not isinstance(item, (int, float, str)):
        raise ValidationError("rollout_serial: %r is not %s." % (item, _SERIAL_HINT))
    try:
        if isinstance(item, str) and item.endswith("%"):
            pct = int(item.replace("%", ""))
            return int((pct / 100.0) * total) or 1
        return int(item)
    except (ValueError, OverflowError):
        hint = ""
        if isinstance(item, str) and item.strip().startswith("["):
            hint = ' Give a list as JSON, not as a string: -e \'{"rollout_serial": [1, "25%"]}\'.'
        raise ValidationError("rollout_serial: %r is not %s.%s" % (item, _SERIAL_HINT, hint)) from None


def serial_batches(hosts, serial):
    """Split ``hosts`` (the play's hosts, in order) into the batches ``serial`` gives."""
    items = parse_serial(serial) or [-1]
    remaining = list(hosts)
    total = len(remaining)
    batches = []
    index = 0
    while remaining:
        size = batch_size(items[index], total)
        if size <= 0:
            batches.append(remaining)
            break
        batches.append(remaining[:size])
        remaining = remaining[size:]
        index = min(index + 1, len(items) - 1)
    return batches


# --------------------------------------------------------------------------- per host


def capacity_rows(results, backend, back_in_rotation=()):
    """Rows for :func:`_capacity.evaluate` from registered ``haproxy_server_info`` results.

    ``back_in_rotation``: ``(backend, server)`` pairs that earlier batches of the plan put back in
    rotation (their hosts were rolled), counted as in rotation whatever the read said.
    """
    if isinstance(results, dict):
        results = results.get("results", [results])
    back = {tuple(x) for x in back_in_rotation}
    rows = []
    for result in results or []:
        lb = result.get("item") or "localhost"
        for sock in result.get("sockets", []):
            servers = sock.get("backends", {}).get(backend, {}).get("servers", {})
            rows.append(
                {
                    "where": "%s:%s" % (lb, sock.get("socket")),
                    "servers": {
                        name: (backend, name) in back or (bool(s.get("healthy")) and s.get("admin_state") == "ready")
                        for name, s in servers.items()
                    },
                }
            )
    return rows


def _one_line(text):
    return " ".join(str(text).split())


def _release_name(target):
    """``releases/v2`` or ``/srv/app/releases/v2/`` -> ``v2``."""
    if not target:
        return None
    return str(target).rstrip("/").rsplit("/", 1)[-1] or None


def lb_states(record):
    """One ``{where, state, in_rotation}`` per load balancer (HAProxy socket, target group, Classic ELB)."""
    out = []
    for row in record.get("lbs") or []:
        if row.get("found", True):
            state = "%s/%s" % (row.get("status") or "?", row.get("admin_state") or "?")
        else:
            state = "not found"
        out.append({"where": row.get("where"), "state": state, "in_rotation": bool(row.get("in_rotation"))})
    for place in record.get("aws_places") or []:
        before = place.get("before") or {}
        if "target_group_arn" in place:
            name = place.get("target_group_name") or place["target_group_arn"]
            where = "%s:%s" % (name, place.get("port"))
        else:
            where = place.get("load_balancer_name")
        state = before.get("state") or "?"
        out.append({"where": where, "state": state, "in_rotation": state in ("healthy", "InService")})
    return out


def host_decision(record):
    """``(action, reason)`` for one host: ``roll``, ``skip``, ``fail`` (preflight refuses) or ``unknown``."""
    if not record:
        return "unknown", "nothing was read from this host (unreachable?)"
    if record.get("error"):
        return "fail", "preflight refuses: %s" % _one_line(record["error"])
    target = record.get("version")
    current = _release_name(record.get("current"))
    on_target = current is not None and current == target
    lbs = lb_states(record)
    everywhere = bool(lbs) and all(lb["in_rotation"] for lb in lbs)
    admin_down_skip = record.get("admin_down") and record.get("admin_down_mode") == "skip" and not record.get("marker")
    if record.get("skip"):
        if admin_down_skip:
            return "skip", "out of rotation, not by this collection (rolling_update_admin_down: skip)"
        return "skip", "already runs %s, is ready and in rotation" % target
    notes = []
    if record.get("marker"):
        notes.append("an interrupted run drained it; the rollout completes it")
    if record.get("admin_down") and not record.get("marker"):
        notes.append(
            "out of rotation, not by this collection (rolling_update_admin_down: %s)" % record.get("admin_down_mode")
        )
    if on_target:
        if record.get("ready") is False:
            notes.append("runs %s but is not ready" % target)
        elif record.get("lb") != "none" and not everywhere:
            notes.append("runs %s but is not in rotation everywhere" % target)
    return "roll", "; ".join(notes)


# --------------------------------------------------------------------------- the plan


def _aws_back_in_rotation(result, target_ids):
    """A copy of an ``elbv2_target`` or ``elb_classic_lb_info`` result where ``target_ids`` are healthy."""
    result = copy.deepcopy(dict(result or {}))
    for group in result.get("target_groups") or []:
        for target in group.get("group_targets") or []:
            if target.get("id") in target_ids:
                target["state"] = "healthy"
    for elb in result.get("elbs") or []:
        for key in ("instances_outofservice", "instances_unknownservice"):
            back = [i for i in elb.get(key) or [] if i in target_ids]
            if back:
                elb[key] = [i for i in elb[key] if i not in target_ids]
                elb["instances_inservice"] = list(elb.get("instances_inservice") or []) + back
    return result


def _host_verdict(rec, entries, records, back_in_rotation):
    """What the drain's capacity guard would decide on one rolled host of the batch, or why it checks nothing."""
    lb = rec.get("lb")
    if str(rec.get("min_healthy")) in ("0", "0%"):
        return "rolling_update_min_healthy is 0"
    if lb == "haproxy":
        servers = [e["server"] for e in entries]
        back = {(b, s) for kind, b, s in back_in_rotation if kind == "haproxy"}
        rows = capacity_rows(rec.get("haproxy_info") or [], rec.get("backend"), back)
        return evaluate(rows, servers, rec.get("min_healthy"))
    if lb in ("elbv2", "elb_classic"):
        places = rec.get("aws_places") or []
        if not places:
            return "the target is not registered with any load balancer"
        targets = [(records.get(e["host"]) or {}).get("target_id") or "" for e in entries]
        names = [p.get("load_balancer_name") for p in places] if lb == "elb_classic" else None
        back = {entry[2] for entry in back_in_rotation if entry[0] == "aws"}
        capacity = rec.get("aws_capacity") or {}
        if "rows" in capacity:
            # The rows the rotation module's read returned (the drain evaluates the same rows on its own read).
            return evaluate_targets(back_in_rotation_rows(capacity["rows"], back), targets, rec.get("min_healthy"))
        return evaluate_aws(_aws_back_in_rotation(capacity, back), targets, rec.get("min_healthy"), names)
    return "no load balancer (rolling_update_lb: %s)" % lb


def _batch_capacity(entries, records, back_in_rotation):
    """The capacity guard's verdict for one batch, as each rolled host of it would evaluate it
    (as the drain's guard does: the whole batch counts as drained, the state as read, earlier batches' rolled
    hosts back)."""
    rolled = [e for e in entries if e["action"] == "roll"]
    if not rolled:
        why = "every host of this batch is skipped" if entries and all(e["action"] == "skip" for e in entries) else None
        return {"status": "not checked", "reason": why or "no host of this batch would roll", "lbs": [], "msg": ""}
    verdicts, reasons = [], []
    for e in rolled:
        verdict = _host_verdict(records[e["host"]], entries, records, back_in_rotation)
        (verdicts if isinstance(verdict, dict) else reasons).append(verdict)
    if not verdicts:
        return {"status": "not checked", "reason": reasons[0], "lbs": [], "msg": ""}
    bad = [v for v in verdicts if not v["ok"]]
    chosen = bad[0] if bad else verdicts[0]
    lbs = chosen["lbs"]
    if bad:
        reason = "; ".join(
            "%s keeps %d of %d in rotation, needs %d (already out: %s)"
            % (lb["where"], lb["remaining"], lb["total"], lb["required"], ", ".join(lb["down"]) or "none")
            for lb in lbs
            if not lb["ok"]
        )
    else:
        reason = "; ".join(
            "%s keeps %d of %d in rotation (needs %d)" % (lb["where"], lb["remaining"], lb["total"], lb["required"])
            for lb in lbs
        )
    return {"status": "refuse" if bad else "ok", "reason": reason, "lbs": lbs, "msg": chosen["msg"]}


def build_plan(hosts, serial, records=None, surge=None):
    """The plan of a rolling update of ``hosts`` (the play's hosts, in order) with ``serial``.

    ``records``: host name -> what the role read on that host (see ``roles/rolling_update/tasks/plan.yml``):
    ``version`` (target), ``current`` (target of the ``current`` symlink), ``ready``, ``marker``, ``lb``,
    ``lbs`` (``haproxy_server_view`` rows), ``aws_places``, ``skip``, ``admin_down``, ``admin_down_mode``,
    ``server``, ``backend``, ``min_healthy``, ``haproxy_info`` (registered ``haproxy_server_info`` results),
    ``target_id`` and ``aws_capacity`` (``{"rows": ...}`` from ``rotation state=read``; an ``elbv2_target`` check or
    ``elb_classic_lb_info`` result is still understood), or
    ``error`` (why preflight refused the host). Without records only the batches are worked out.

    ``surge`` (``rollout_surge_hosts``): ``{"hosts": {name: record}, "keep": bool}``, the standby hosts read as the
    role reads a host (the same record as ``records``). They come up before the first batch and count as in
    rotation from then on; every batch must be no larger than their number (:func:`surge_plan`).

    Later batches are evaluated as if the earlier ones succeeded: the hosts they roll are back in
    rotation. Returns a JSON-able dict; ``lines`` is the plan as text.
    """
    hosts = [str(h) for h in hosts]
    if len(set(hosts)) != len(hosts):
        raise ValidationError(
            "the host list has duplicates: %s" % ", ".join(sorted(h for h in set(hosts) if hosts.count(h) > 1))
        )
    items = parse_serial(serial)
    records = records or {}
    back_in_rotation = set()
    batches = []
    halts_at = None
    cut = serial_batches(hosts, items)
    surge_part = None
    if surge is not None:
        surge_part = surge_plan(surge, cut, records)
        if surge_part["comes_up"]:
            for e in surge_part["hosts"]:
                back_in_rotation.add(("haproxy", e["backend"], e["server"]))
    for number, batch in enumerate(cut, 1):
        entries = []
        for name in batch:
            rec = records.get(name) or {}
            action, reason = host_decision(rec) if records else ("unknown", "not read")
            entries.append(
                {
                    "host": name,
                    "server": rec.get("server") or name,
                    "current": _release_name(rec.get("current")),
                    "target": rec.get("version"),
                    "ready": rec.get("ready"),
                    "lbs": lb_states(rec),
                    "action": action,
                    "reason": reason,
                }
            )
        capacity = (
            _batch_capacity(entries, records, back_in_rotation)
            if records
            else {"status": "not checked", "reason": "not read", "lbs": [], "msg": ""}
        )
        for e in entries:
            if e["action"] == "roll":
                rec = records[e["host"]]
                back_in_rotation.add(("haproxy", rec.get("backend"), e["server"]))
                if rec.get("target_id"):
                    back_in_rotation.add(("aws", None, rec["target_id"]))
        if capacity["status"] == "refuse" and halts_at is None:
            halts_at = number
        batches.append({"batch": number, "hosts": entries, "capacity": capacity})
    errors = [
        {"host": e["host"], "msg": _one_line(records[e["host"]]["error"])}
        for b in batches
        for e in b["hosts"]
        if e["action"] == "fail"
    ]
    if surge_part is not None:
        errors += surge_part["errors"]
    targets = sorted({str(r.get("version")) for r in records.values() if r and r.get("version")})
    plan = {
        "version": targets[0] if len(targets) == 1 else targets or None,
        "serial": items,
        "host_count": len(hosts),
        "batch_count": len(batches),
        "batches": batches,
        "preflight_errors": errors,
        "halts_at": halts_at,
        "would_complete": bool(records)
        and not errors
        and halts_at is None
        and all(e["action"] in ("roll", "skip") for b in batches for e in b["hosts"]),
        "surge": surge_part,
        "capacity_steps": capacity_steps(batches, records, surge_part) if surge_part is not None else [],
    }
    plan["lines"] = render(plan)
    return plan


# --------------------------------------------------------------------------- surge hosts


def _surge_host(name, rec, target):
    """One surge host of the plan: what the rollout would do with it before the first batch."""
    rec = rec or {}
    entry = {
        "host": name,
        "server": rec.get("server") or name,
        "backend": rec.get("backend"),
        "current": _release_name(rec.get("current")),
        "target": rec.get("version") or target,
        "ready": rec.get("ready"),
        "lbs": lb_states(rec),
        "action": "surge",
        "reason": "",
    }
    if not rec:
        entry.update(action="unknown", reason="nothing was read from this host (unreachable?)")
    elif rec.get("error"):
        entry.update(action="fail", reason="preflight refuses: %s" % _one_line(rec["error"]))
    elif rec.get("skip"):
        entry["reason"] = "already runs %s, is ready and in rotation: stays" % entry["target"]
    else:
        entry["reason"] = "deploy %s, start, wait ready, put in rotation before batch 1" % entry["target"]
    return entry


def _boolean(value):
    """``(value as a bool, whether it was one)``: a bool, or one of the strings Ansible's ``bool`` filter takes."""
    if isinstance(value, bool):
        return value, True
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True, True
    if text in ("false", "no", "off", "0", ""):
        return False, True
    return False, False


def surge_plan(surge, batches, records):
    """The surge part of the plan: the standby hosts, whether they come up, and what preflight refuses.

    ``batches``: the regular hosts' batches (lists of names). ``surge["hosts"]`` may also be a list of names
    (the rollout's preflight, which refuses with these same errors before anything is read). Refused: no surge
    host, a batch larger than the number of surge hosts, surge hosts left out by ``surge["limit"]`` (the hosts
    of ``--limit``, when given), a ``keep`` that is not a boolean, and any load balancer but HAProxy (in the
    records, or in ``surge["lbs"]``, the regular hosts' ``rolling_update_lb`` values).
    """
    surge = surge or {}
    recs = surge.get("hosts") or {}
    if isinstance(recs, (list, tuple)):  # names only (the rollout's preflight, before any surge host is read)
        recs = {str(name): {} for name in recs}
    keep, keep_ok = _boolean(surge.get("keep", False))
    every = list(records.values()) + list(recs.values())
    targets = sorted({str(r.get("version")) for r in every if r and r.get("version")})
    target = targets[0] if len(targets) == 1 else None
    hosts = [_surge_host(str(name), recs[name], target) for name in recs]
    largest = max((len(b) for b in batches), default=0)
    errors = []
    if not hosts:
        errors.append(
            {
                "host": "rollout_surge_hosts",
                "msg": "rollout_surge_hosts matches no host of the inventory (or of --limit): name the standby hosts.",
            }
        )
    elif largest > len(hosts):
        errors.append(
            {
                "host": "rollout_serial",
                "msg": "rollout_serial gives a batch of %d hosts but there are %d surge hosts (%s): with surge hosts "
                "no batch may be larger than their number, or the servers in rotation would drop below the count at "
                "the start. Lower rollout_serial (at most %d) or add surge hosts."
                % (largest, len(hosts), ", ".join(e["host"] for e in hosts), len(hosts)),
            }
        )
    limit = surge.get("limit")
    left_out = sorted(name for name in recs if limit is not None and name not in limit)
    if left_out:
        errors.append(
            {
                "host": "rollout_surge_hosts",
                "msg": "--limit leaves out the surge hosts %s: add them to --limit." % ", ".join(left_out),
            }
        )
    if not keep_ok:
        errors.append({"host": "rollout_surge_keep", "msg": "rollout_surge_keep must be true or false."})
    lbs = sorted({str(r.get("lb")) for r in every if r and r.get("lb")} | {str(lb) for lb in surge.get("lbs") or ()})
    if [lb for lb in lbs if lb != "haproxy"]:
        errors.append(
            {
                "host": "rolling_update_lb",
                "msg": "rollout_surge_hosts works with HAProxy only (rolling_update_lb is %s): for AWS load balancers "
                "surge hosts are not supported yet. Leave rollout_surge_hosts unset." % ", ".join(lbs),
            }
        )
    errors += [{"host": e["host"], "msg": _one_line(recs[e["host"]]["error"])} for e in hosts if e["action"] == "fail"]
    rolls = any(host_decision(records.get(h) or {})[0] == "roll" for b in batches for h in b) if records else True
    if not rolls:
        for e in hosts:
            if e["action"] == "surge":
                e["reason"] = "not needed: no regular host would roll"
    return {
        "hosts": hosts,
        "count": len(hosts),
        "largest_batch": largest,
        "keep": keep,
        "comes_up": rolls and bool(hosts),
        "errors": errors,
    }


def capacity_steps(batches, records, surge_part):
    """Servers in rotation at every step of the rollout, per load balancer (as read, then as each step leaves it).

    Steps: before the rollout, surge hosts in rotation, each batch while it is out of rotation (its rolled hosts
    drained; the hosts of earlier batches back), and after the last batch (surge hosts drained unless kept).
    """
    source = next((r for r in records.values() if r and r.get("haproxy_info")), None)
    if source is None:
        return []
    rows = capacity_rows(source.get("haproxy_info"), source.get("backend"))
    state = {row["where"]: dict(row["servers"]) for row in rows}

    def snapshot(step, hosts=()):
        counts = {where: sum(1 for up in servers.values() if up) for where, servers in state.items()}
        return {"step": step, "hosts": list(hosts), "in_rotation": counts, "min": min(counts.values(), default=0)}

    def put(servers, value):
        for where in state:
            for name in servers:
                if name in state[where]:
                    state[where][name] = value

    steps = [snapshot("before the rollout")]
    surge_servers = [e["server"] for e in surge_part["hosts"] if e["action"] == "surge"]
    if surge_part["comes_up"]:
        put(surge_servers, True)
        steps.append(snapshot("surge hosts in rotation", [e["host"] for e in surge_part["hosts"]]))
    for b in batches:
        rolled = [e for e in b["hosts"] if e["action"] == "roll"]
        put([e["server"] for e in rolled], False)
        steps.append(snapshot("batch %d out of rotation" % b["batch"], [e["host"] for e in rolled]))
        put([e["server"] for e in rolled], True)
    if surge_part["comes_up"]:
        if surge_part["keep"]:
            steps.append(snapshot("after the last batch, surge hosts kept in rotation (rollout_surge_keep)"))
        else:
            put(surge_servers, False)
            steps.append(snapshot("after the last batch, surge hosts drained, in MAINT, stopped"))
    return steps


# --------------------------------------------------------------------------- text


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
