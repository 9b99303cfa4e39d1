import re
import types

import pytest
from ansible.executor.playbook_executor import PlaybookExecutor
from ansible.utils.helpers import pct_to_int

from ansible_collections.zerodowntime.rollout.plugins.module_utils._capacity import haproxy_rows as capacity_rows
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._plan.batches import (
    batch_size,
    parse_serial,
    serial_batches,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._plan.build import build_plan
from ansible_collections.zerodowntime.rollout.plugins.module_utils._plan.text import render

# --------------------------------------------------------------------------- batches, against ansible-core itself


def ansible_batches(hosts, serial):
    """The batches ansible-core's own PlaybookExecutor._get_serialized_batches cuts (with a stand-in
    inventory that returns ``hosts``); ``serial`` as the play's post-validated list attribute."""
    inventory = types.SimpleNamespace(get_hosts=lambda pattern, order=None: list(hosts))
    executor = types.SimpleNamespace(_inventory=inventory)
    play = types.SimpleNamespace(hosts="app", order=None, serial=serial if isinstance(serial, list) else [serial])
    return PlaybookExecutor._get_serialized_batches(executor, play)


SERIALS = [
    1,
    2,
    3,
    "1",
    " 2 ",
    2.7,
    0,
    -1,
    "0",
    "25%",
    "29%",
    "30%",
    "50%",
    "100%",
    "150%",
    "0%",
    "1%",
    "-10%",
    "-50%",
    "50%%",
    [],
    [1, "25%", "100%"],
    [1, "50%"],
    [1, 2, 3],
    [2, 0],
    [2, -1],
    ["10%", "30%"],
    [1, "1%"],
]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7, 10, 13, 100])
@pytest.mark.parametrize("serial", SERIALS, ids=[repr(s) for s in SERIALS])
def test_batches_match_ansible_core(serial, count):
    hosts = ["h%d" % i for i in range(count)]
    assert serial_batches(hosts, serial) == ansible_batches(hosts, serial)


@pytest.mark.parametrize("item", [1, 3, "2", "25%", "29%", "33%", "100%", "0%", "-10%", 2.9])
@pytest.mark.parametrize("total", [1, 3, 4, 7, 100])
def test_batch_size_is_pct_to_int(item, total):
    assert batch_size(item, total) == pct_to_int(item, total)


def test_examples():
    hosts = ["a", "b", "c", "d", "e"]
    assert serial_batches(hosts, 1) == [["a"], ["b"], ["c"], ["d"], ["e"]]
    assert serial_batches(hosts, [1, "50%"]) == [["a"], ["b", "c"], ["d", "e"]]  # 50% of 5 rounds down to 2
    assert serial_batches(hosts, [1, "25%", "100%"]) == [["a"], ["b"], ["c", "d", "e"]]
    assert serial_batches(hosts, "10%") == [["a"], ["b"], ["c"], ["d"], ["e"]]  # at least 1
    assert serial_batches(hosts, 0) == [hosts]
    assert serial_batches(hosts, []) == [hosts]
    assert serial_batches([], 1) == []
    assert serial_batches(["h%d" % i for i in range(100)], "29%")[0] == ["h%d" % i for i in range(28)]  # int(28.999..)


@pytest.mark.parametrize(
    "serial", ["abc", "", "%", "1.5", "12.5%", "2x", None, True, False, [1, "abc"], {"a": 1}, [[1]]]
)
def test_invalid_serial_is_refused_before_anything(serial):
    with pytest.raises(ValidationError, match="rollout_serial"):
        parse_serial(serial)
    with pytest.raises(ValidationError, match="rollout_serial"):
        build_plan(["a", "b"], serial)


def test_a_list_given_as_a_string_gets_a_hint():
    with pytest.raises(ValidationError, match="Give a list as JSON"):
        parse_serial('[1, "25%"]')


def test_ansible_core_cannot_use_what_is_refused():
    # The refused values are those ansible-core itself fails on (booleans excepted, on purpose).
    for item in ["abc", "", "%", "1.5", "12.5%"]:
        with pytest.raises(ValueError):
            pct_to_int(item, 4)


# --------------------------------------------------------------------------- the plan


def info(servers, lb="localhost", sock="/run/haproxy/admin.sock"):
    """A registered haproxy_server_info loop result: servers = {name: (status, admin_state)}."""
    return [
        {
            "item": lb,
            "sockets": [
                {
                    "socket": sock,
                    "backends": {
                        "app": {
                            "servers": {
                                n: {"status": st, "admin_state": adm, "healthy": st in ("UP", "no check")}
                                for n, (st, adm) in servers.items()
                            }
                        }
                    },
                }
            ],
        }
    ]


def view(name, servers, lb="localhost", sock="/run/haproxy/admin.sock"):
    st, adm = servers[name]
    return [
        {
            "where": "%s:%s" % (lb, sock),
            "found": True,
            "status": st,
            "admin_state": adm,
            "in_rotation": st in ("UP", "no check") and adm == "ready",
        }
    ]


def records(servers, current, skip=(), admin_down_mode="fail", min_healthy=1, version="v2"):
    out = {}
    for name in servers:
        out[name] = {
            "version": version,
            "current": "releases/%s" % current[name],
            "ready": True if current[name] == version else None,
            "marker": False,
            "lb": "haproxy",
            "lbs": view(name, servers),
            "aws_places": [],
            "skip": name in skip,
            "admin_down": servers[name][1] != "ready",
            "admin_down_mode": admin_down_mode,
            "server": name,
            "backend": "app",
            "min_healthy": min_healthy,
            "haproxy_info": info(servers),
        }
    return out


FLEET = {"app1": ("UP", "ready"), "app2": ("UP", "ready"), "app3": ("UP", "ready"), "app4": ("MAINT", "maint")}
CURRENT = {"app1": "v1", "app2": "v2", "app3": "v1", "app4": "v1"}


def test_plan_batches_decisions_and_capacity():
    recs = records(FLEET, CURRENT, skip=("app2", "app4"), admin_down_mode="skip", min_healthy=2)
    plan = build_plan(["app1", "app2", "app3", "app4"], [1, "50%"], recs)
    assert [[h["host"] for h in b["hosts"]] for b in plan["batches"]] == [["app1"], ["app2", "app3"], ["app4"]]
    decisions = {h["host"]: (h["action"], h["current"]) for b in plan["batches"] for h in b["hosts"]}
    assert decisions == {"app1": ("roll", "v1"), "app2": ("skip", "v2"), "app3": ("roll", "v1"), "app4": ("skip", "v1")}
    caps = [b["capacity"]["status"] for b in plan["batches"]]
    # Batch 1 leaves app2, app3 (2); batch 2 drains app2 and app3 together, leaving app1 only.
    assert caps == ["ok", "refuse", "not checked"]
    assert plan["batches"][1]["capacity"]["lbs"][0]["down"] == ["app4"]
    assert plan["halts_at"] == 2 and plan["would_complete"] is False and plan["preflight_errors"] == []
    text = "\n".join(plan["lines"])
    assert "Batch 2 of 3: app2, app3" in text and "WOULD REFUSE" in text and "halt at batch 2" in text
    assert "rolling_update_admin_down: skip" in text and "already runs v2" in text


def test_later_batches_count_rolled_hosts_back_in_rotation():
    # app1 is DOWN (its app died): the rollout rolls it in batch 1 and it comes back, so batch 2 may go.
    fleet = {"app1": ("DOWN", "ready"), "app2": ("UP", "ready"), "app3": ("UP", "ready")}
    recs = records(fleet, {"app1": "v1", "app2": "v1", "app3": "v1"}, min_healthy=2)
    plan = build_plan(["app1", "app2", "app3"], 1, recs)
    assert [b["capacity"]["status"] for b in plan["batches"]] == ["ok", "ok", "ok"]
    assert plan["batches"][1]["capacity"]["lbs"][0]["remaining"] == 2
    assert plan["would_complete"] is True
    assert plan["lines"][-1] == "Verdict: the rollout would roll 3 hosts and skip 0."


def test_admin_down_roll_and_min_healthy_zero():
    fleet = dict(FLEET)
    recs = records(fleet, CURRENT, admin_down_mode="roll", min_healthy=0)
    plan = build_plan(list(fleet), 2, recs)
    app4 = plan["batches"][1]["hosts"][1]
    assert app4["action"] == "roll" and "rolling_update_admin_down: roll" in app4["reason"]
    assert plan["batches"][1]["capacity"] == {
        "status": "not checked",
        "reason": "rolling_update_min_healthy is 0",
        "lbs": [],
        "msg": "",
    }
    # app2 is on v2 but was not marked skip: it is rolled again, and the plan says why.
    assert plan["batches"][0]["hosts"][1]["action"] == "roll"


def test_on_target_but_not_in_rotation_is_rolled_with_a_reason():
    fleet = {"app1": ("DOWN", "ready"), "app2": ("UP", "ready")}
    recs = records(fleet, {"app1": "v2", "app2": "v2"}, skip=("app2",))
    recs["app1"]["ready"] = True
    plan = build_plan(["app1", "app2"], 1, recs)
    first = plan["batches"][0]["hosts"][0]
    assert first["action"] == "roll" and first["reason"] == "runs v2 but is not in rotation everywhere"


def test_preflight_errors_and_unread_hosts():
    recs = records(FLEET, CURRENT)
    recs["app3"] = {"error": "HAProxy does not know server app/app3\n on: lb1."}
    del recs["app4"]
    plan = build_plan(list(FLEET), "50%", recs)
    actions = {h["host"]: (h["action"], h["reason"]) for b in plan["batches"] for h in b["hosts"]}
    assert actions["app3"] == ("fail", "preflight refuses: HAProxy does not know server app/app3 on: lb1.")
    assert actions["app4"][0] == "unknown"
    assert plan["preflight_errors"] == [{"host": "app3", "msg": "HAProxy does not know server app/app3 on: lb1."}]
    assert plan["would_complete"] is False
    assert "stop at preflight (app3)" in plan["lines"][-1]


def test_bad_min_healthy_is_refused():
    recs = records(FLEET, CURRENT, min_healthy="lots")
    with pytest.raises(ValidationError, match="min_healthy"):
        build_plan(list(FLEET), 1, recs)


def test_batches_only_without_records():
    plan = build_plan(["a", "b", "c"], [1, "100%"])
    assert [[h["host"] for h in b["hosts"]] for b in plan["batches"]] == [["a"], ["b", "c"]]
    assert all(h["action"] == "unknown" for b in plan["batches"] for h in b["hosts"])
    assert plan["halts_at"] is None and plan["would_complete"] is False


def test_duplicate_hosts_are_refused():
    with pytest.raises(ValidationError, match="duplicates"):
        build_plan(["a", "b", "a"], 1)


def test_two_lbs_and_aws_rows_render_as_columns():
    fleet = {"app1": ("UP", "ready"), "app2": ("DRAIN", "drain")}
    recs = records(fleet, {"app1": "v1", "app2": "v1"}, admin_down_mode="roll")
    for name in fleet:
        recs[name]["lbs"] = view(name, fleet) + view(name, fleet, lb="lb2", sock="tcp://10.0.0.2:9999")
        recs[name]["haproxy_info"] = info(fleet) + info(fleet, lb="lb2", sock="tcp://10.0.0.2:9999")
    plan = build_plan(["app1", "app2"], 1, recs)
    lines = plan["lines"]
    assert "lb1 = localhost:/run/haproxy/admin.sock" in lines and "lb2 = lb2:tcp://10.0.0.2:9999" in lines
    row = [ln for ln in lines if ln.startswith("  app2 ")][0]
    assert row.split()[:6] == ["app2", "v1", "->", "v2", "DRAIN/drain", "DRAIN/drain"]
    # Batch 1 drains app1 while app2 is drained by hand: nothing left in rotation on either LB.
    assert plan["batches"][0]["capacity"]["status"] == "refuse"
    assert "lb1 keeps 0 of 2" in lines[lines.index("Batch 1 of 2: app1") + 2]


def elbv2_record(target, current, states, skip=False, min_healthy=1):
    """An ELBv2 host: ``states`` = {target id: health} of every target of group web (port 80)."""
    members = [{"id": t, "port": 80, "state": st} for t, st in states.items()]
    group = {"target_group_arn": "arn:tg/web", "target_group_name": "web", "port": 80}
    return {
        "version": "v2",
        "current": "/srv/app/releases/%s/" % current,
        "ready": None,
        "lb": "elbv2",
        "lbs": [],
        "aws_places": [dict(group, before={"state": states[target]})],
        "aws_capacity": {"target_groups": [dict(group, before={"state": states[target]}, group_targets=members)]},
        "target_id": target,
        "skip": skip,
        "min_healthy": min_healthy,
    }


def test_aws_target_groups_are_shown_and_guarded():
    states = {"i-1": "healthy", "i-2": "unhealthy", "i-3": "healthy"}
    recs = {h: elbv2_record(t, "v1", states, min_healthy=1) for h, t in (("a", "i-1"), ("b", "i-2"), ("c", "i-3"))}
    plan = build_plan(["a", "b", "c"], 1, recs)
    first = plan["batches"][0]["hosts"][0]
    assert first["lbs"] == [{"where": "web:80", "state": "healthy", "in_rotation": True}]
    assert first["current"] == "v1"
    # Batch 1 (i-1) keeps i-3 only (i-2 is unhealthy); batch 2 (i-2) keeps i-1 and i-3; batch 2 rolled
    # i-2, which comes back healthy, so batch 3 (i-3) keeps i-1 and i-2 (the state as read would say 1).
    assert [b["capacity"]["status"] for b in plan["batches"]] == ["ok", "ok", "ok"]
    assert [b["capacity"]["lbs"][0]["remaining"] for b in plan["batches"]] == [1, 2, 2]
    assert "target group web keeps 1 of 3" in plan["batches"][0]["capacity"]["reason"]
    recs = {h: elbv2_record(t, "v1", states, min_healthy=2) for h, t in (("a", "i-1"), ("b", "i-2"), ("c", "i-3"))}
    assert build_plan(["a", "b", "c"], 1, recs)["halts_at"] == 1


def test_aws_classic_elb_and_unregistered_target():
    rec = {
        "version": "v2",
        "current": "releases/v1",
        "lb": "elb_classic",
        "aws_places": [{"load_balancer_name": "web-elb", "before": {"registered": True, "state": "InService"}}],
        "aws_capacity": {
            "elbs": [
                {"load_balancer_name": "web-elb", "instances_inservice": ["i-1"], "instances_outofservice": ["i-2"]},
                {"load_balancer_name": "other", "instances_inservice": ["i-9"]},
            ]
        },
        "target_id": "i-1",
        "skip": False,
        "min_healthy": 1,
    }
    plan = build_plan(["a"], 1, {"a": rec})
    assert plan["batches"][0]["hosts"][0]["lbs"] == [{"where": "web-elb", "state": "InService", "in_rotation": True}]
    cap = plan["batches"][0]["capacity"]
    assert cap["status"] == "refuse" and cap["lbs"][0]["where"] == "Classic ELB web-elb"  # only its own ELB counts
    rec = dict(rec, aws_places=[])
    assert build_plan(["a"], 1, {"a": rec})["batches"][0]["capacity"] == {
        "status": "not checked",
        "reason": "the target is not registered with any load balancer",
        "lbs": [],
        "msg": "",
    }


def test_capacity_rows_match_the_capacity_guard_filter():
    from ansible_collections.zerodowntime.rollout.plugins.filter.capacity_guard import haproxy_rows as _rows

    data = info(FLEET) + info(FLEET, lb="lb2")
    assert capacity_rows(data, "app") == _rows({"results": data}, "app")


def test_render_is_a_table():
    recs = records(FLEET, CURRENT, skip=("app2", "app4"), admin_down_mode="skip")
    plan = build_plan(list(FLEET), 2, recs)
    rows = [ln for ln in plan["lines"] if ln.startswith("  app")]
    assert len(rows) == 4
    # Every column starts at the same place on every row.
    assert len({ln.index("->") for ln in rows}) == 1
    assert len({re.search(r"-> \S+\s+(\S)", ln).start(1) for ln in rows}) == 1  # the lb1 column
    assert len({re.search(r"/\S+\s+(\S)", ln).start(1) for ln in rows}) == 1  # the decision column
    assert render(plan) == plan["lines"]


def test_aws_capacity_rows_from_the_rotation_read():
    """plan.yml records the rows rotation state=read returns; the plan evaluates them as the drain does, with the
    hosts of earlier batches back in rotation."""
    rows = [
        {"where": "target group web", "servers": {"i-1:80": True, "i-2:80": False, "i-3:80": True}},
        {"where": "target group api", "servers": {"i-1:9090": True, "i-2:9090": True, "i-3:9090": True}},
    ]

    def rec(target):
        return {
            "version": "v2",
            "current": "releases/v1",
            "lb": "elbv2",
            "aws_places": [{"target_group_arn": "arn:web", "target_group_name": "web", "port": 80, "before": {}}],
            "aws_capacity": {"rows": rows},
            "target_id": target,
            "skip": False,
            "min_healthy": 2,
        }

    plan = build_plan(["a", "b", "c"], 1, {"a": rec("i-1"), "b": rec("i-2"), "c": rec("i-3")})
    # Batch 1 (i-1): web keeps i-3 only (i-2 is out): refused. Batch 2 (i-2): web keeps i-1 (back) and i-3.
    assert [b["capacity"]["status"] for b in plan["batches"]] == ["refuse", "ok", "ok"]
    assert "target group web keeps 1 of 3 in rotation, needs 2" in plan["batches"][0]["capacity"]["reason"]
    assert [lb["remaining"] for lb in plan["batches"][2]["capacity"]["lbs"]] == [2, 2]
    assert plan["halts_at"] == 1
