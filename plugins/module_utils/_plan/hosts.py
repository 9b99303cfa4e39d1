# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The rollout plan's per-host part: what the role read on one host, as its load balancers' states and the
decision the rollout would take for it (roll, skip, fail or unknown)."""


def one_line(text):
    return " ".join(str(text).split())


def release_name(target):
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
        return "fail", "preflight refuses: %s" % one_line(record["error"])
    target = record.get("version")
    current = release_name(record.get("current"))
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
