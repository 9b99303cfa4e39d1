import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._capacity import (
    evaluate,
    evaluate_aws,
    parse_min_healthy,
    required_servers,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError


@pytest.mark.parametrize(
    "spec,expected",
    [
        (0, ("count", 0)),
        (3, ("count", 3)),
        ("2", ("count", 2)),
        ("50%", ("percent", 50.0)),
        (" 75 % ", ("percent", 75.0)),
    ],
)
def test_parse(spec, expected):
    assert parse_min_healthy(spec) == expected


@pytest.mark.parametrize("spec", [-1, "-1", "abc", "150%", "1.5", True, "", "5;x"])
def test_parse_refuses(spec):
    with pytest.raises(ValidationError):
        parse_min_healthy(spec)


@pytest.mark.parametrize("spec,total,need", [("50%", 4, 2), ("50%", 5, 3), ("100%", 3, 3), ("1%", 10, 1), (2, 10, 2)])
def test_required(spec, total, need):
    assert required_servers(spec, total) == need


def rows(**lbs):
    return [{"where": w, "servers": s} for w, s in lbs.items()]


def test_batch_removed_as_a_unit():
    r = rows(lb1={"a": True, "b": True, "c": True, "d": True})
    assert evaluate(r, ["a", "b"], 2)["ok"] is True
    v = evaluate(r, ["a", "b", "c"], 2)
    assert v["ok"] is False and v["lbs"][0]["remaining"] == 1


def test_down_servers_are_named_and_count_against_capacity():
    r = rows(lb1={"a": True, "b": False, "c": True})
    v = evaluate(r, ["a"], 2)
    assert v["ok"] is False
    assert v["lbs"][0]["down"] == ["b"]
    assert "already out of rotation: b" in v["msg"] and "Nothing was drained" in v["msg"]


def test_every_lb_must_agree():
    r = rows(lb1={"a": True, "b": True, "c": True}, lb2={"a": True, "b": True, "c": False})
    v = evaluate(r, ["a"], 2)
    assert v["ok"] is False
    assert [lb["ok"] for lb in v["lbs"]] == [True, False]
    assert "lb2" in v["msg"] and "lb1" not in v["msg"].split("rotation:")[1]


def test_zero_disables():
    assert evaluate(rows(lb1={"a": True}), ["a"], 0)["ok"] is True


def elbv2_result(*groups):
    """An elbv2_target result: ``groups`` are (name, [(id, port, state), ...])."""
    entries = []
    for name, targets in groups:
        members = [{"id": i, "port": p, "state": s} for i, p, s in targets]
        entries.append({"target_group_arn": "arn:" + name, "target_group_name": name, "group_targets": members})
        entries.append({"target_group_arn": "arn:" + name, "target_group_name": name, "group_targets": members})
    return {"target_groups": entries}


def test_elbv2_counts_healthy_targets_per_group_and_drains_every_port_of_the_batch():
    result = elbv2_result(
        ("web", [("i-1", 80, "healthy"), ("i-1", 8080, "healthy"), ("i-2", 80, "healthy"), ("i-3", 80, "unhealthy")]),
        ("api", [("i-1", 81, "healthy"), ("i-2", 81, "healthy"), ("i-3", 81, "healthy")]),
    )
    verdict = evaluate_aws(result, ["i-1"], 2)
    by_where = {lb["where"]: lb for lb in verdict["lbs"]}
    assert len(verdict["lbs"]) == 2  # one row per group, though the result lists the group once per port
    assert by_where["target group web"]["remaining"] == 1  # i-2 only: both of i-1's ports leave, i-3 is unhealthy
    assert by_where["target group web"]["down"] == ["i-3:80"]
    assert by_where["target group api"]["remaining"] == 2
    assert not verdict["ok"]
    assert "draining i-1 would leave" in verdict["msg"]
    assert "target group web keeps 1 of 4, needs 2 (already out of rotation: i-3:80)" in verdict["msg"]
    assert evaluate_aws(result, ["i-3"], 2)["ok"]


def test_elbv2_draining_and_initial_targets_are_not_in_rotation():
    result = elbv2_result(("web", [("i-1", 80, "healthy"), ("i-2", 80, "draining"), ("i-3", 80, "initial")]))
    verdict = evaluate_aws(result, ["i-1"], 1)
    assert not verdict["ok"] and verdict["lbs"][0]["down"] == ["i-2:80", "i-3:80"]


def test_classic_elb_info_counts_in_service_instances_of_the_named_elbs_only():
    info = {
        "elbs": [
            {
                "load_balancer_name": "web",
                "instances_inservice": ["i-1", "i-2"],
                "instances_outofservice": ["i-3"],
                "instances_unknownservice": [],
            },
            {"load_balancer_name": "other", "instances_inservice": [], "instances_outofservice": ["i-9"]},
        ]
    }
    verdict = evaluate_aws(info, ["i-1"], "50%", ["web"])
    assert [lb["where"] for lb in verdict["lbs"]] == ["Classic ELB web"]
    assert verdict["lbs"][0]["remaining"] == 1 and verdict["lbs"][0]["required"] == 2
    assert not verdict["ok"] and "i-3" in verdict["msg"]
    assert evaluate_aws(info, ["i-3"], "50%", ["web"])["ok"]
