# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The capacity guard's rows for the AWS load balancers, and its verdict for a batch of targets.

Plain Python without boto3, so that the plan (on the controller) evaluates the rows the rotation module
returned from its read exactly as the drain does (:mod:`.rotation`):

* ELBv2: one row per target group, one server per registration ``<target id>:<port>``, in rotation when
  ``healthy``;
* Classic ELB: one row per load balancer, one server per instance, in rotation when ``InService``.

A batch names target ids: every registration of one of them (every port) counts as drained.
"""

import copy

from ansible_collections.zerodowntime.rollout.plugins.module_utils._capacity import evaluate


def elbv2_rows(groups):
    """``groups``: ``[(target group name, [{"id", "port", "state"}])]`` -> capacity rows."""
    return [
        {
            "where": "target group %s" % name,
            "servers": {"%s:%s" % (m.get("id"), m.get("port")): m.get("state") == "healthy" for m in members or []},
        }
        for name, members in groups
    ]


def classic_rows(load_balancers):
    """``load_balancers``: ``[(name, [{"id", "state"}])]`` -> capacity rows."""
    return [
        {
            "where": "Classic ELB %s" % name,
            "servers": {m.get("id"): m.get("state") == "InService" for m in members or []},
        }
        for name, members in load_balancers
    ]


def _in_batch(key, ids):
    return key in ids or key.rsplit(":", 1)[0] in ids


def evaluate_targets(rows, batch_ids, min_healthy):
    """:func:`._capacity.evaluate` for the targets ``batch_ids`` (empty ids are left out), every port of each."""
    ids = {str(i) for i in batch_ids or [] if i}
    batch = sorted({key for row in rows for key in row["servers"] if _in_batch(key, ids)})
    return evaluate(rows, batch, min_healthy, batch_names=ids)


def back_in_rotation(rows, target_ids):
    """A copy of ``rows`` where every registration of ``target_ids`` is in rotation (the plan's earlier batches)."""
    ids = {str(i) for i in target_ids or [] if i}
    rows = copy.deepcopy(list(rows or []))
    for row in rows:
        for key in row.get("servers") or {}:
            if _in_batch(key, ids):
                row["servers"][key] = True
    return rows
