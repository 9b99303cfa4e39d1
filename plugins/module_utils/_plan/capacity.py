# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The rollout plan's capacity: the capacity guard's verdict on each batch, as the drain of each rolled host of
it would evaluate it, and (with surge hosts) the servers in rotation at every step of the rollout."""

import copy

from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.capacity import (
    back_in_rotation as back_in_rotation_rows,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.capacity import evaluate_targets
from ansible_collections.zerodowntime.rollout.plugins.module_utils._capacity import evaluate, evaluate_aws, haproxy_rows


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
        rows = haproxy_rows(rec.get("haproxy_info") or [], rec.get("backend"), back)
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


def batch_capacity(entries, records, back_in_rotation):
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


def capacity_steps(batches, records, surge_part):
    """Servers in rotation at every step of the rollout, per load balancer (as read, then as each step leaves it).

    Steps: before the rollout, surge hosts in rotation, each batch while it is out of rotation (its rolled hosts
    drained; the hosts of earlier batches back), and after the last batch (surge hosts drained unless kept).
    """
    source = next((r for r in records.values() if r and r.get("haproxy_info")), None)
    if source is None:
        return []
    rows = haproxy_rows(source.get("haproxy_info"), source.get("backend"))
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
