# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: host_decision
short_description: Roll, skip or refuse one host, from what preflight read
version_added: 0.2.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - The C(zerodowntime.rollout.rolling_update) role's decision for one host, made once, in Python, from the result
    of M(zerodowntime.rollout.app_prepare) (or M(zerodowntime.rollout.app_info)) on the host and the results of
    M(zerodowntime.rollout.rotation) O(state=read) on every HAProxy host.
  - V(refuse) when a load balancer did not answer or does not know the server, when the release was rolled back on
    the host (unless retried on purpose), or when someone other than a rollout took the server out of rotation and
    O(options.admin_down) is V(fail).
  - With the AWS load balancers, the decision reads the result of M(zerodowntime.rollout.rotation)
    O(zerodowntime.rollout.rotation#module:state=read) with provider C(elbv2) or C(elb_classic), taken from
    O(options) C(aws), or else the first result in O(lbs) (the role reads AWS once, on its delegate host). It is
    V(refuse) when
    the target is registered with no target group (Classic ELB) and no resume record says that a rollout took it out.
  - V(skip) when the host already runs the release, answers its readiness probe and is in rotation everywhere (or
    was taken out by someone else and O(options.admin_down) is V(skip)). Otherwise V(roll).
options:
  _input:
    description:
      - The registered result of M(zerodowntime.rollout.app_prepare) or M(zerodowntime.rollout.app_info).
      - V(null) to decide from the load balancers alone (before the app host is read); only V(refuse) then matters.
    type: dict
    required: true
  lbs:
    description:
      - The registered (looped) result of M(zerodowntime.rollout.rotation) O(state=read), one result per HAProxy host,
        or the one AWS read; empty without a load balancer.
      - A read with O(zerodowntime.rollout.rotation#module:batch) (the role reads every host of a batch in one call
        per HAProxy host) answers for the server C(server) of O(options) from its C(batch_reads); a batch read that
        does not name that server counts as an HAProxy that did not answer for it.
    type: raw
    required: true
  options:
    description:
      - C(host), C(version), C(lb) (haproxy, elbv2, elb_classic or none), C(admin_down) (fail, skip or roll),
        C(retry_rolled_back), C(backend), C(server), and for AWS C(aws), the registered result of
        M(zerodowntime.rollout.rotation) O(state=read) (C(in_rotation), C(places), C(record), C(target_id)).
      - Without C(aws), the booleans C(aws_in_rotation) and C(aws_drained) (a resume record exists) are used instead.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Decide
  ansible.builtin.set_fact:
    decision: >-
      {{ app_result | zerodowntime.rollout.host_decision(lb_results, {'host': inventory_hostname, 'version': 'v2',
         'lb': 'haproxy', 'admin_down': 'fail', 'retry_rolled_back': false, 'backend': 'app', 'server': 'web1'}) }}
"""

RETURN = r"""
_value:
  description: C(action) (roll, skip or refuse), C(msg), C(in_rotation), C(admin_down), C(resumed) (a resume record
    was found), C(lbs) (one row per LB host and socket), and with AWS C(aws) (C(places) where the target is
    registered, C(rows) what the capacity guard counts, as the read gave them), and C(weights_record) (an
    interrupted weighted canary left its weights record on an HAProxy host - the weights are still scaled).
  type: dict
"""


def _server_part(result, server):
    """A batch read (rotation state=read with batch) answers for each server of it: ``server``'s part of it."""
    reads = result.get("batch_reads")
    if not isinstance(reads, dict) or result.get("failed"):
        return result
    if server is not None and str(server) in reads:
        return dict(result, **reads[str(server)])
    return {"item": result.get("item"), "failed": True, "msg": "the batch read has no answer for server %s." % server}


def _lb_rows(lbs, server=None):
    if isinstance(lbs, dict):
        lbs = lbs.get("results", [lbs])
    rows, unreachable = [], []
    for result in lbs or []:
        if not isinstance(result, dict) or result.get("skipped"):
            continue
        result = _server_part(result, server)
        where = result.get("item") or "localhost"
        if result.get("failed") or "members" not in result:
            unreachable.append("[%s] %s" % (where, result.get("msg") or "no answer"))
            continue
        for member in result["members"]:
            rows.append(dict(member, lb=where, where="%s:%s" % (where, member["socket"]), record=result.get("record")))
    return rows, unreachable


def _foreign_msg(host, foreign):
    return (
        "%s is out of rotation (%s) on %s, and not by this collection. Someone may have taken it out on purpose. Put "
        "it back yourself, leave it out of this rollout (rollout_hosts), or set rolling_update_admin_down to 'skip' "
        "or 'roll'. Nothing was changed."
        % (host, ", ".join(sorted({r["admin_state"] for r in foreign})), ", ".join(r["where"] for r in foreign))
    )


def _aws_view(host, lb, aws):
    """``(in_rotation, resumed, refusal)`` from a rotation ``state=read`` result of an AWS provider."""
    if aws.get("failed") or "in_rotation" not in aws:
        refusal = "AWS could not be read for %s: %s Refused in preflight: nothing was changed." % (
            host,
            aws.get("msg") or "no answer.",
        )
        return False, False, refusal
    resumed = bool(aws.get("record"))
    if not aws.get("places") and not resumed:
        searched = [str(p) for p in aws.get("searched") or [] if p]
        refusal = (
            "%s (%s) is not registered with any %s%s. Register it first, or check rolling_update_aws_target_id. "
            "Nothing was changed."
            % (
                aws.get("target_id") or "its target",
                host,
                "target group" if lb == "elbv2" else "Classic ELB",
                " of " + ", ".join(searched) if searched else "",
            )
        )
        return False, False, refusal
    return bool(aws.get("in_rotation")), resumed, None


def _aws_read(lbs):
    """The AWS read among ``lbs`` (the role's one looped rotation read on rolling_update_aws_delegate_to)."""
    results = lbs.get("results", [lbs]) if isinstance(lbs, dict) else (lbs or [])
    return next((r for r in results if isinstance(r, dict) and not r.get("skipped")), None)


def host_decision(app, lbs, options):
    host = options.get("host", "this host")
    version = options.get("version")
    lb = options.get("lb", "haproxy")
    rows, unreachable = _lb_rows(lbs if lb == "haproxy" else [], options.get("server"))
    out = {"action": "roll", "msg": "", "in_rotation": None, "admin_down": False, "resumed": False, "lbs": rows}
    # A weighted canary of an interrupted run left its weights record on an HAProxy host (the role puts the
    # weights back after the lock, before any drain).
    out["weights_record"] = lb == "haproxy" and any(
        isinstance(r, dict) and bool(r.get("weights_record"))
        for r in (lbs.get("results", [lbs]) if isinstance(lbs, dict) else (lbs or []))
    )
    aws = (options.get("aws") or _aws_read(lbs)) if lb in ("elbv2", "elb_classic") else None
    if isinstance(aws, dict) and aws and not aws.get("skipped"):
        out["aws"] = {"places": aws.get("places") or [], "rows": aws.get("rows") or []}
        aws_in_rotation, aws_resumed, refusal = _aws_view(host, lb, aws)
        if refusal:
            out.update(action="refuse", msg=refusal)
            return out
    else:
        aws_in_rotation, aws_resumed = bool(options.get("aws_in_rotation")), bool(options.get("aws_drained"))
    if unreachable:
        out.update(
            action="refuse",
            msg="HAProxy could not be read for %s: %s Every HAProxy in rolling_update_haproxy_sockets (read from each "
            "host in rolling_update_haproxy_delegate_to) must answer before a server is drained there, or it would "
            "keep sending traffic to a server being stopped. Bring that HAProxy back (or its admin socket), or, if it "
            "left the pool on purpose, remove it from rolling_update_haproxy_sockets. Refused in preflight: nothing "
            "was changed on any load balancer or host." % (host, " ".join(unreachable)),
        )
        return out
    missing = [r["where"] for r in rows if not r["found"]]
    if missing:
        out.update(
            action="refuse",
            msg="HAProxy does not know server %s/%s on: %s. Check rolling_update_haproxy_backend and "
            "rolling_update_haproxy_server (default: inventory_hostname). Nothing was changed."
            % (options.get("backend"), options.get("server"), ", ".join(missing)),
        )
        return out
    resumed = any(r["record"] for r in rows) or aws_resumed
    foreign = [r for r in rows if r["admin_state"] != "ready" and not r["record"]]
    out["resumed"] = resumed
    out["admin_down"] = bool(foreign)
    if lb == "haproxy":
        out["in_rotation"] = bool(rows) and all(r["in_rotation"] for r in rows)
    elif lb in ("elbv2", "elb_classic"):
        out["in_rotation"] = aws_in_rotation
    else:
        out["in_rotation"] = True
    mode = options.get("admin_down", "fail")
    if app is None:
        # Load balancers only (before the app host is read): refuse what the LBs alone refuse.
        if foreign and mode == "fail":
            out.update(action="refuse", msg=_foreign_msg(host, foreign))
        return out
    rolled_back = version in (app.get("rolled_back") or [])
    if rolled_back and not options.get("retry_rolled_back"):
        msg = (
            "Refusing %s: release %s was rolled back on it at %s and has not run there since (it serves %s). Find out "
            "why it failed (the halt message of that run; docs/failure-handling.md). To try the same release again "
            "once the cause is fixed, set rolling_update_retry_rolled_back=true; or roll out a new release. Nothing "
            "was changed." % (host, version, app.get("rolled_back_at") or "?", app.get("current") or "?")
        )
        if resumed:
            msg += (
                " The host is still out of rotation, left drained by an interrupted run: roll out the release it "
                "serves (%s) to put it back." % (app.get("current") or "?")
            )
        out.update(action="refuse", msg=msg)
        return out
    if foreign and mode == "fail":
        out.update(action="refuse", msg=_foreign_msg(host, foreign))
        return out
    if foreign and mode == "skip":
        out.update(
            action="skip",
            msg="%s was taken out of rotation by someone else (rolling_update_admin_down: skip): skipped, nothing "
            "drained." % host,
        )
        return out
    if app.get("on_target") and app.get("ready") and out["in_rotation"]:
        out.update(
            action="skip",
            msg="%s already runs %s, is ready and in rotation: skipped, nothing drained." % (host, version),
        )
        return out
    reasons = []
    if not app.get("on_target"):
        reasons.append("runs %s" % (app.get("current") or "no release"))
    elif not app.get("ready"):
        reasons.append("runs %s but is not ready" % version)
    if not out["in_rotation"]:
        reasons.append("is not in rotation everywhere" + (" (drained by an earlier rollout)" if resumed else ""))
    out["msg"] = "%s %s: roll it to %s." % (host, " and ".join(reasons) or "needs the rollout", version)
    return out


class FilterModule:
    def filters(self):
        return {"host_decision": host_decision}
