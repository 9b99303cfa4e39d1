# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""A target in an ELBv2 target group, in the words of :mod:`.elbv2`: plain functions over AWS's answers.

A target group's summary, a target's health (``absent`` when the group does not list it), what the waits
call healthy or drained, whether a target id fits a group's target type, and what check mode predicts.
"""

import ipaddress
import re

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError

# Our name for "not in the target group" (AWS lists nothing, or says unused/Target.NotRegistered).
ABSENT = "absent"
_NOT_REGISTERED = "Target.NotRegistered"
_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")  # fullmatch: "$" accepts a final newline


def group_summary(raw):
    return {
        "arn": raw["TargetGroupArn"],
        "name": raw["TargetGroupName"],
        "port": raw.get("Port"),
        "protocol": raw.get("Protocol"),
        "target_type": raw.get("TargetType", "instance"),
        "load_balancer_arns": list(raw.get("LoadBalancerArns") or []),
    }


def target_health(description):
    """A TargetHealthDescription (or None) -> ``{"state", "reason", "description"}``."""
    if description is None:
        return {"state": ABSENT, "reason": None, "description": None}
    health = description.get("TargetHealth") or {}
    state = health.get("State")
    reason = health.get("Reason")
    if state == "unused" and reason == _NOT_REGISTERED:
        state = ABSENT
    return {"state": state, "reason": reason, "description": health.get("Description")}


def is_registered(health):
    """Registered and not on its way out (draining counts as leaving)."""
    return health["state"] not in (ABSENT, "draining")


def is_healthy(health):
    return health["state"] == "healthy"


def is_drained(health):
    return health["state"] in (ABSENT, "unused")


def entry_key(entry):
    return "%s:%s" % (entry["target_group_name"], entry["port"])


def describe_health(health):
    text = health["state"]
    if health.get("reason") or health.get("description"):
        text += " (%s)" % ": ".join(part for part in (health.get("reason"), health.get("description")) if part)
    return text


def validate_target(target_id, port):
    if not isinstance(target_id, str) or not target_id.strip() or target_id != target_id.strip():
        raise ValidationError("target_id must be a non-empty instance id or IP address, got %r." % (target_id,))
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
        raise ValidationError("port must be between 1 and 65535, got %r." % (port,))


def check_target_type(target_id, group):
    """Refuse a target that cannot belong to ``group`` (an IP in an instance group, a Lambda group...)."""
    kind = group["target_type"]
    if kind == "instance":
        ok = bool(_INSTANCE_ID.fullmatch(target_id))
        wanted = "an EC2 instance id (i-...)"
    elif kind == "ip":
        try:
            ipaddress.ip_address(target_id)
            ok = True
        except ValueError:
            ok = False
        wanted = "an IP address"
    elif kind == "alb":
        ok = target_id.startswith("arn:")
        wanted = "an Application Load Balancer ARN"
    else:
        return "target group %s has target type %r, which this module does not manage." % (group["name"], kind)
    if not ok:
        return "target group %s has target type %r and needs %s as target_id, got %r." % (
            group["name"],
            kind,
            wanted,
            target_id,
        )
    return None


def entry_group(entry):
    return {"arn": entry["target_group_arn"], "name": entry["target_group_name"]}


def predict(entry, state, wait):
    """What check mode expects: the target after the change (and after the wait, when waiting)."""
    if not entry["changed"] and not wait:
        return dict(entry["before"])
    if state == "registered":
        return {"state": "healthy" if wait else "initial", "reason": None, "description": None}
    return {"state": ABSENT if wait else "draining", "reason": None, "description": None}
