"""The plan with surge hosts (rollout_surge_hosts): listed, counted in rotation from before the first batch, the
servers in rotation at every step, and the refusals of the rollout's preflight (batch larger than the surge count,
a load balancer other than HAProxy, no surge host)."""

from ansible_collections.zerodowntime.rollout.plugins.filter.rollout_plan import rollout_plan
from ansible_collections.zerodowntime.rollout.plugins.module_utils._plan.build import build_plan

FLEET = {
    "app1": ("UP", "ready"),
    "app2": ("UP", "ready"),
    "app3": ("UP", "ready"),
    "app4": ("UP", "ready"),
    "app5": ("MAINT", "maint"),
}
REGULAR = ["app1", "app2", "app3", "app4"]
SOCK = "/run/haproxy/admin.sock"


def records(servers, current, skip=(), admin_down_mode="roll", min_healthy=1, version="v2"):
    """What the role's plan.yml records per host, for a fleet behind one HAProxy: servers = {name: (status, admin)}."""
    info = [
        {
            "item": "localhost",
            "sockets": [
                {
                    "socket": SOCK,
                    "backends": {
                        "app": {
                            "servers": {
                                n: {"status": st, "admin_state": adm, "healthy": st == "UP"}
                                for n, (st, adm) in servers.items()
                            }
                        }
                    },
                }
            ],
        }
    ]
    out = {}
    for name, (st, adm) in servers.items():
        out[name] = {
            "version": version,
            "current": "releases/%s" % current[name],
            "ready": True if current[name] == version else None,
            "marker": False,
            "lb": "haproxy",
            "lbs": [
                {
                    "where": "localhost:" + SOCK,
                    "found": True,
                    "status": st,
                    "admin_state": adm,
                    "in_rotation": st == "UP" and adm == "ready",
                }
            ],
            "aws_places": [],
            "skip": name in skip,
            "admin_down": adm != "ready",
            "admin_down_mode": admin_down_mode,
            "server": name,
            "backend": "app",
            "min_healthy": min_healthy,
            "haproxy_info": info,
        }
    return out


def fleet_records(current=None, skip=(), min_healthy=4):
    current = current or dict.fromkeys(FLEET, "v1")
    recs = records(FLEET, current, skip=skip, admin_down_mode="roll", min_healthy=min_healthy)
    surge = {"app5": recs.pop("app5")}
    return recs, surge


def test_surge_host_comes_up_and_capacity_never_drops():
    recs, surge = fleet_records()
    plan = build_plan(REGULAR, 1, recs, {"hosts": surge, "keep": False})
    assert plan["surge"]["comes_up"] is True and plan["surge"]["count"] == 1
    assert [h["action"] for h in plan["surge"]["hosts"]] == ["surge"]
    assert [s["min"] for s in plan["capacity_steps"]] == [4, 5, 4, 4, 4, 4, 4]
    assert [s["hosts"] for s in plan["capacity_steps"]][1:6] == [["app5"], ["app1"], ["app2"], ["app3"], ["app4"]]
    # The capacity guard counts the surge host as in rotation: min_healthy 4 holds for every batch.
    assert [b["capacity"]["status"] for b in plan["batches"]] == ["ok"] * 4
    assert plan["batches"][0]["capacity"]["lbs"][0]["remaining"] == 4
    assert plan["would_complete"] is True and plan["preflight_errors"] == []
    text = "\n".join(plan["lines"])
    assert "Surge hosts (rollout_surge_hosts), before batch 1: app5; batches of at most 1 (largest: 1)" in text
    assert "app5 drained, put in MAINT and stopped" in text
    assert "Capacity, servers in rotation at every step" in text


def test_without_surge_the_same_batch_would_refuse():
    recs, _surge = fleet_records()
    plan = build_plan(REGULAR, 1, recs)
    assert plan["surge"] is None and plan["capacity_steps"] == []
    assert plan["batches"][0]["capacity"]["status"] == "refuse"


def test_keep_leaves_the_surge_host_in_rotation():
    recs, surge = fleet_records()
    plan = build_plan(REGULAR, 1, recs, {"hosts": surge, "keep": True})
    assert plan["capacity_steps"][-1]["min"] == 5
    assert "stay in rotation (rollout_surge_keep)" in "\n".join(plan["lines"])


def test_a_batch_larger_than_the_surge_count_is_refused():
    recs, surge = fleet_records()
    plan = build_plan(REGULAR, 2, recs, {"hosts": surge, "keep": False})
    assert [e["host"] for e in plan["preflight_errors"]] == ["rollout_serial"]
    assert "batch of 2 hosts but there are 1 surge hosts (app5)" in plan["preflight_errors"][0]["msg"]
    assert plan["would_complete"] is False
    assert plan["lines"][-1] == (
        "Verdict: the rollout would stop at preflight (rollout_serial) before changing anything."
    )
    # A ramp is judged on its largest batch.
    plan = build_plan(REGULAR, [1, 3], recs, {"hosts": surge})
    assert plan["surge"]["largest_batch"] == 3 and plan["preflight_errors"]


def test_no_surge_host_and_aws_are_refused():
    recs, surge = fleet_records()
    plan = build_plan(REGULAR, 1, recs, {"hosts": {}})
    assert [e["host"] for e in plan["preflight_errors"]] == ["rollout_surge_hosts"]
    for rec in list(recs.values()) + list(surge.values()):
        rec["lb"] = "elbv2"
    plan = build_plan(REGULAR, 1, recs, {"hosts": surge})
    assert "rolling_update_lb" in [e["host"] for e in plan["preflight_errors"]]
    assert "HAProxy only" in " ".join(e["msg"] for e in plan["preflight_errors"])


def test_a_refused_surge_host_and_nothing_to_roll():
    recs, surge = fleet_records()
    surge["app5"] = {"error": "HAProxy does not know server app/app5", "lb": "haproxy", "version": "v2", "lbs": []}
    plan = build_plan(REGULAR, 1, recs, {"hosts": surge})
    assert plan["surge"]["hosts"][0]["action"] == "fail"
    assert [e["host"] for e in plan["preflight_errors"]] == ["app5"]
    # Every regular host already runs the release: the surge host is not needed and capacity stays at 4.
    recs, surge = fleet_records(current=dict.fromkeys(FLEET, "v2"), skip=REGULAR)
    plan = build_plan(REGULAR, 1, recs, {"hosts": surge})
    assert plan["surge"]["comes_up"] is False
    assert plan["surge"]["hosts"][0]["reason"] == "not needed: no regular host would roll"
    assert [s["min"] for s in plan["capacity_steps"]] == [4, 4, 4, 4, 4]


def test_the_filter_passes_surge_through():
    recs, surge = fleet_records()
    assert rollout_plan(REGULAR, 1, recs, {"hosts": surge})["surge"]["count"] == 1
    assert rollout_plan(REGULAR, 1, recs)["surge"] is None


def test_the_rollouts_preflight_gets_the_same_refusals_from_the_names_alone():
    """The playbook's surge check, before anything is read: the surge host names, --limit and rollout_surge_keep."""

    def errors(serial=1, hosts=("app5",), keep=False, limit=None):
        surge = {"hosts": list(hosts), "keep": keep, "limit": limit}
        return [e["msg"] for e in rollout_plan(REGULAR, serial, None, surge)["surge"]["errors"]]

    assert errors() == []
    assert errors(keep="yes") == [] and errors(limit=REGULAR + ["app5"]) == []
    assert errors(serial=2) == [
        "rollout_serial gives a batch of 2 hosts but there are 1 surge hosts (app5): with surge hosts no batch may be "
        "larger than their number, or the servers in rotation would drop below the count at the start. Lower "
        "rollout_serial (at most 1) or add surge hosts."
    ]
    assert errors(serial=2, hosts=("app5", "app6")) == []
    assert errors(hosts=()) == [
        "rollout_surge_hosts matches no host of the inventory (or of --limit): name the standby hosts."
    ]
    assert errors(limit=["app1", "app2"]) == ["--limit leaves out the surge hosts app5: add them to --limit."]
    assert errors(keep="perhaps") == ["rollout_surge_keep must be true or false."]

    def lb_errors(lbs):
        surge = {"hosts": ["app5"], "lbs": lbs}
        return [e["host"] for e in rollout_plan(REGULAR, 1, None, surge)["surge"]["errors"]]

    assert lb_errors(["haproxy"] * 4) == []
    assert lb_errors(["haproxy", "elbv2", "haproxy", "haproxy"]) == ["rolling_update_lb"]
