import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._capacity import (
    evaluate,
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
