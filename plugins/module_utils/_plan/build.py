# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The rollout plan: batches, per-host decisions and capacity verdicts, from state already read.

Plain Python, no Ansible import. ``playbooks/plan.yml`` reads every host (release, load balancers,
readiness) through the role's own read-only tasks and hands the findings to the
``zerodowntime.rollout.rollout_plan`` filter, which calls :func:`build_plan`. The other files of this
package do one part each: ``batches`` (serial), ``hosts`` (one host's decision), ``capacity`` (the
guard's verdicts), ``surge`` (standby hosts) and ``text`` (the plan as lines).
"""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._plan.batches import parse_serial, serial_batches
from ansible_collections.zerodowntime.rollout.plugins.module_utils._plan.capacity import batch_capacity, capacity_steps
from ansible_collections.zerodowntime.rollout.plugins.module_utils._plan.hosts import (
    host_decision,
    lb_states,
    one_line,
    release_name,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._plan.surge import surge_plan
from ansible_collections.zerodowntime.rollout.plugins.module_utils._plan.text import render


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
                    "current": release_name(rec.get("current")),
                    "target": rec.get("version"),
                    "ready": rec.get("ready"),
                    "lbs": lb_states(rec),
                    "action": action,
                    "reason": reason,
                }
            )
        capacity = (
            batch_capacity(entries, records, back_in_rotation)
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
        {"host": e["host"], "msg": one_line(records[e["host"]]["error"])}
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
