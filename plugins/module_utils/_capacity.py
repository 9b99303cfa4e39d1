# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Minimum-healthy capacity guard.

Before a batch is drained, every load balancer's view of the backend must still leave at least
``min_healthy`` servers in rotation once the whole batch is out. The batch is taken out as a
unit, so every host of a batch computes the same verdict (no race between hosts of one batch).
"""

import math
import re

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError

_SPEC = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")


def parse_min_healthy(spec):
    """``3`` or ``"3"`` -> ("count", 3); ``"50%"`` -> ("percent", 50.0). Negative or junk is refused."""
    if isinstance(spec, bool):
        raise ValidationError("min_healthy must be a count or a percentage such as '50%%', not %r" % (spec,))
    if isinstance(spec, int):
        if spec < 0:
            raise ValidationError("min_healthy must not be negative (got %d)" % spec)
        return ("count", spec)
    m = _SPEC.match(str(spec))
    if not m:
        raise ValidationError("min_healthy must be a count or a percentage such as '50%%', not %r" % (spec,))
    value = float(m.group(1))
    if m.group(2):
        if value > 100:
            raise ValidationError("min_healthy %s is above 100%%" % spec)
        return ("percent", value)
    if value != int(value):
        raise ValidationError("min_healthy count must be a whole number, not %s" % spec)
    return ("count", int(value))


def required_servers(spec, total):
    """How many servers must stay in rotation for a backend of ``total`` servers (percent rounds up)."""
    kind, value = parse_min_healthy(spec)
    if kind == "count":
        return value
    return int(math.ceil(total * value / 100.0 - 1e-9))


def evaluate(rows, batch_servers, min_healthy):
    """Decide whether draining ``batch_servers`` keeps ``min_healthy`` servers in rotation.

    ``rows``: one dict per (load balancer, socket) with ``where`` and ``servers``, a mapping of
    server name -> ``in_rotation`` (bool). Returns a dict: ``ok``, ``required`` and one entry per
    LB in ``lbs`` with ``total``, ``remaining``, ``required``, ``down`` (servers already out of
    rotation) and ``ok``; ``msg`` explains the verdict for the operator.
    """
    parse_min_healthy(min_healthy)  # a bad value is refused even when there is nothing to compare
    batch = set(batch_servers)
    lbs = []
    for row in rows:
        servers = row["servers"]
        total = len(servers)
        required = required_servers(min_healthy, total)
        down = sorted(n for n, up in servers.items() if not up and n not in batch)
        remaining = sum(1 for n, up in servers.items() if up and n not in batch)
        lbs.append(
            {
                "where": row["where"],
                "total": total,
                "remaining": remaining,
                "required": required,
                "down": down,
                "ok": remaining >= required,
            }
        )
    bad = [lb for lb in lbs if not lb["ok"]]
    if bad:
        msg = "Capacity guard: draining %s would leave too few servers in rotation: %s. Nothing was drained." % (
            ", ".join(sorted(batch)),
            "; ".join(
                "%s keeps %d of %d, needs %d (already out of rotation: %s)"
                % (lb["where"], lb["remaining"], lb["total"], lb["required"], ", ".join(lb["down"]) or "none")
                for lb in bad
            ),
        )
    else:
        msg = "Capacity guard: draining %s leaves %s." % (
            ", ".join(sorted(batch)),
            "; ".join(
                "%s %d of %d (needs %d)" % (lb["where"], lb["remaining"], lb["total"], lb["required"]) for lb in lbs
            ),
        )
    return {"ok": not bad, "lbs": lbs, "msg": msg}
