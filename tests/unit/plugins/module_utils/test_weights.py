# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plan_weights: the weights that give a canary batch a set share of one load balancer's traffic."""

import itertools

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.weights import (
    default_tolerance,
    plan_weights,
    refuse_distance,
)


def share_of(weights, canary, rotating=None):
    rotating = set(rotating if rotating is not None else [n for n, w in weights.items() if w > 0])
    total = sum(w for n, w in weights.items() if n in rotating)
    return 100.0 * sum(w for n, w in weights.items() if n in canary and n in rotating) / total


def test_ten_percent_of_four_servers_at_weight_one_scales_the_others():
    plan = plan_weights({"app1": 1, "app2": 1, "app3": 1, "app4": 1}, ["app1"], 10)
    # A canary at weight 1 beside three servers at 1 would take 25 %: the others go to 3, the canary stays 1.
    assert plan["weights"] == {"app1": 1, "app2": 3, "app3": 3, "app4": 3}
    assert plan["share"] == 10.0 and plan["target"] == 10.0
    assert plan["scale"] == 3 and plan["canary_weight"] == 1
    assert plan["changed"] == ["app2", "app3", "app4"]


def test_the_others_are_left_alone_when_the_canary_weight_alone_reaches_the_share():
    plan = plan_weights({"a": 100, "b": 100, "c": 100, "d": 100}, ["a"], 10)
    assert plan["scale"] == 1
    assert plan["weights"] == {"a": 33, "b": 100, "c": 100, "d": 100}
    assert plan["share"] == pytest.approx(share_of(plan["weights"], ["a"]), abs=0.01)
    assert abs(plan["share"] - 10) <= default_tolerance(10)
    assert plan["changed"] == ["a"]


def test_proportions_of_the_other_servers_are_kept():
    plan = plan_weights({"c": 1, "x": 2, "y": 1, "z": 5}, ["c"], 5)
    w = plan["weights"]
    assert w["x"] * 1 == w["y"] * 2 and w["z"] == 5 * w["y"]
    assert abs(plan["share"] - 5) <= default_tolerance(5)
    assert max(w.values()) <= 256


def test_several_canary_servers_share_the_target_together():
    plan = plan_weights({"a": 1, "b": 1, "c": 1, "d": 1, "e": 1, "f": 1}, ["a", "b"], 20)
    w = plan["weights"]
    assert w["a"] == w["b"]
    assert share_of(w, ["a", "b"]) == pytest.approx(plan["share"], abs=0.01)
    assert abs(plan["share"] - 20) <= default_tolerance(20)


def test_servers_out_of_rotation_are_scaled_but_not_counted():
    # d is drained: the share is computed over a, b, c; d keeps its proportion for when it comes back.
    plan = plan_weights({"a": 1, "b": 1, "c": 1, "d": 1}, ["a"], 10, rotating=["a", "b", "c"])
    w = plan["weights"]
    assert share_of(w, ["a"], rotating=["a", "b", "c"]) == pytest.approx(plan["share"], abs=0.01)
    assert w["d"] == w["b"] == w["c"]
    assert abs(plan["share"] - 10) <= default_tolerance(10)


@pytest.mark.parametrize(
    "weights, share",
    list(
        itertools.product(
            [
                {"a": 1, "b": 1},
                {"a": 1, "b": 1, "c": 1, "d": 1},
                {"a": 10, "b": 1, "c": 7},
                {"a": 256, "b": 256, "c": 256},
                {"a": 1, "b": 256},
                {"s%d" % i: 1 for i in range(20)},
            ],
            [1, 2.5, 10, 25, 50, 75, 90],
        )
    ),
)
def test_any_plan_is_within_bounds_and_reports_the_share_it_gives(weights, share):
    try:
        plan = plan_weights(weights, ["a"] if "a" in weights else ["s0"], share)
    except ValidationError as exc:
        assert "closest share" in exc.msg and "Cannot give the canary" in exc.msg
        return
    canary = ["a"] if "a" in weights else ["s0"]
    assert all(1 <= plan["weights"][n] <= 256 for n in canary)
    assert all(0 <= w <= 256 for w in plan["weights"].values())
    assert share_of(plan["weights"], canary) == pytest.approx(plan["share"], abs=0.01)
    assert abs(plan["share"] - share) <= refuse_distance(share)


def test_an_unreachable_share_is_refused_naming_the_closest():
    # Three others at 256 cannot be scaled; even a canary at 256 takes only 25 %.
    with pytest.raises(ValidationError, match=r"closest share is 25%"):
        plan_weights({"a": 1, "b": 256, "c": 256, "d": 256}, ["a"], 90)


@pytest.mark.parametrize("share", [0, 100, -5, 150, "10", None, True, float("nan")])
def test_a_share_outside_0_100_is_refused(share):
    with pytest.raises(ValidationError, match="more than 0 and less than 100"):
        plan_weights({"a": 1, "b": 1}, ["a"], share)


def test_bad_inputs_are_refused():
    with pytest.raises(ValidationError, match="no server zz"):
        plan_weights({"a": 1, "b": 1}, ["zz"], 10)
    with pytest.raises(ValidationError, match="empty"):
        plan_weights({"a": 1, "b": 1}, [], 10)
    with pytest.raises(ValidationError, match="No other server"):
        plan_weights({"a": 1, "b": 0}, ["a"], 10)
    with pytest.raises(ValidationError, match="takes traffic"):
        plan_weights({"a": 1, "b": 1}, ["a"], 10, rotating=["b"])
    with pytest.raises(ValidationError, match="weight 300"):
        plan_weights({"a": 1, "b": 300}, ["a"], 10)
