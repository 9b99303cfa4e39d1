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
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.parse import in_rotation

_SPEC = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(%?)\s*")  # used with fullmatch


def parse_min_healthy(spec):
    """``3`` or ``"3"`` -> ("count", 3); ``"50%"`` -> ("percent", 50.0). Negative or junk is refused."""
    if isinstance(spec, bool):
        raise ValidationError("min_healthy must be a count or a percentage such as '50%%', not %r" % (spec,))
    if isinstance(spec, int):
        if spec < 0:
            raise ValidationError("min_healthy must not be negative (got %d)" % spec)
        return ("count", spec)
    m = _SPEC.fullmatch(str(spec))
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


def evaluate(rows, batch_servers, min_healthy, batch_names=None):
    """Decide whether draining ``batch_servers`` keeps ``min_healthy`` servers in rotation.

    ``rows``: one dict per (load balancer, socket) with ``where`` and ``servers``, a mapping of
    server name -> ``in_rotation`` (bool). Returns a dict: ``ok``, ``required`` and one entry per
    LB in ``lbs`` with ``total``, ``remaining``, ``required``, ``down`` (servers already out of
    rotation) and ``ok``; ``msg`` explains the verdict for the operator (naming the batch as
    ``batch_names``, default ``batch_servers``).
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
    named = ", ".join(sorted(set(batch_names if batch_names is not None else batch)))
    if bad:
        msg = "Capacity guard: draining %s would leave too few servers in rotation: %s. Nothing was drained." % (
            named,
            "; ".join(
                "%s keeps %d of %d, needs %d (already out of rotation: %s)"
                % (lb["where"], lb["remaining"], lb["total"], lb["required"], ", ".join(lb["down"]) or "none")
                for lb in bad
            ),
        )
    else:
        msg = "Capacity guard: draining %s leaves %s." % (
            named,
            "; ".join(
                "%s %d of %d (needs %d)" % (lb["where"], lb["remaining"], lb["total"], lb["required"]) for lb in lbs
            ),
        )
    return {"ok": not bad, "lbs": lbs, "msg": msg}


def haproxy_rows(results, backend, back_in_rotation=()):
    """Rows for :func:`evaluate` from registered ``haproxy_server_info`` results (a result, its ``results``
    list, or a list of them): one per LB socket, where ``where`` is ``LB host:socket`` and a server is in
    rotation when it is healthy and its admin state is ready.

    ``back_in_rotation``: ``(backend, server)`` pairs counted as in rotation whatever the read said (the rollout
    plan's hosts that earlier batches put back).
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
                    "servers": {name: (backend, name) in back or in_rotation(s) for name, s in servers.items()},
                }
            )
    return rows


def _elbv2_rows(check_result):
    """Rows from an elbv2_target result: one per target group, keyed ``id:port``, healthy = in rotation."""
    rows, seen = [], set()
    for entry in check_result.get("target_groups") or []:
        arn = entry.get("target_group_arn")
        if arn in seen:
            continue
        seen.add(arn)
        servers = {}
        for target in entry.get("group_targets") or []:
            servers["%s:%s" % (target.get("id"), target.get("port"))] = target.get("state") == "healthy"
        rows.append({"where": "target group %s" % entry.get("target_group_name", arn), "servers": servers})
    return rows


def _classic_rows(info_result, names=None):
    """Rows from amazon.aws.elb_classic_lb_info: one per ELB (only ``names`` when given), InService = in rotation."""
    rows = []
    for elb in info_result.get("elbs") or []:
        name = elb.get("load_balancer_name")
        if names is not None and name not in names:
            continue
        out = (elb.get("instances_outofservice") or []) + (elb.get("instances_unknownservice") or [])
        servers = dict.fromkeys(out, False)
        servers.update(dict.fromkeys(elb.get("instances_inservice") or [], True))
        rows.append({"where": "Classic ELB %s" % name, "servers": servers})
    return rows


def evaluate_aws(result, batch_ids, min_healthy, load_balancers=None):
    """The capacity verdict for AWS load balancers, as :func:`evaluate` returns it.

    ``result``: an ``elbv2_target`` result (its ``target_groups[].group_targets``), or an
    ``amazon.aws.elb_classic_lb_info`` result (``elbs``; only ``load_balancers`` count when given).
    ``batch_ids``: the target or instance ids drained together (every port of a target counts).
    """
    rows = _classic_rows(result, load_balancers) if "elbs" in result else _elbv2_rows(result)
    ids = set(batch_ids)
    batch = sorted({key for row in rows for key in row["servers"] if key in ids or key.rsplit(":", 1)[0] in ids})
    return evaluate(rows, batch, min_healthy, batch_names=ids)
