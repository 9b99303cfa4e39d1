# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The rollout plan's surge hosts (``rollout_surge_hosts``): the standby hosts that come up before the first
batch, and what preflight refuses about them."""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._plan.hosts import (
    host_decision,
    lb_states,
    one_line,
    release_name,
)


def surge_host(name, rec, target):
    """One surge host of the plan: what the rollout would do with it before the first batch."""
    rec = rec or {}
    entry = {
        "host": name,
        "server": rec.get("server") or name,
        "backend": rec.get("backend"),
        "current": release_name(rec.get("current")),
        "target": rec.get("version") or target,
        "ready": rec.get("ready"),
        "lbs": lb_states(rec),
        "action": "surge",
        "reason": "",
    }
    if not rec:
        entry.update(action="unknown", reason="nothing was read from this host (unreachable?)")
    elif rec.get("error"):
        entry.update(action="fail", reason="preflight refuses: %s" % one_line(rec["error"]))
    elif rec.get("skip"):
        entry["reason"] = "already runs %s, is ready and in rotation: stays" % entry["target"]
    else:
        entry["reason"] = "deploy %s, start, wait ready, put in rotation before batch 1" % entry["target"]
    return entry


def _boolean(value):
    """``(value as a bool, whether it was one)``: a bool, or one of the strings Ansible's ``bool`` filter takes.

    Not ``ansible.module_utils.parsing.convert_bool.boolean``: that one also takes ``y``/``n``/``t``/``f``, ``1.0``
    and bytes, and refuses ``""``, which this reads as false."""
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
    hosts = [surge_host(str(name), recs[name], target) for name in recs]
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
    errors += [{"host": e["host"], "msg": one_line(recs[e["host"]]["error"])} for e in hosts if e["action"] == "fail"]
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
