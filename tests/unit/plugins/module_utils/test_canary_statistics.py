# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The canary's statistics: exact tails, significance, error budget, and replays of counter series
recorded from the demo fleet (tests/unit/fixtures/canary/series.json, see record_series.py there)."""

import json
import math
import os
from fractions import Fraction

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.analysis import CanaryFailed, analyse_canary
from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.messages import budget_text
from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.stats import (
    binomial_sf,
    compare_groups,
    error_budget,
    error_rate_p_value,
    rate_ratio_p_value,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.haproxy.fake_haproxy import FakeClock

SERIES_FILE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "fixtures", "canary", "series.json"
)


def exact_sf(k, n, p):
    """P(X >= k) for Binomial(n, p), in exact rational arithmetic."""
    p = Fraction(p)
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(max(k, 0), n + 1)))


# ---------------------------------------------------------------------------------------------
# binomial tail and p-values
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "k, n, p",
    [
        (0, 10, 0.3),
        (1, 1, 0.01),
        (2, 50, 0.01),
        (3, 50, 0.01),
        (5, 100, 0.01),
        (3, 67, 0.01),
        (1, 100, 0.01),  # below the mean: 1 - lower tail
        (40, 100, 0.5),
        (60, 100, 0.5),
        (10, 200, "1/3"),
        (150, 300, 0.3),  # a tiny upper tail keeps its precision
        (25, 25, 0.9),
    ],
)
def test_binomial_tail_matches_exact_arithmetic(k, n, p):
    p = float(Fraction(p))
    expected = exact_sf(k, n, p)
    assert binomial_sf(k, n, p) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_binomial_tail_edges_and_large_counts():
    assert binomial_sf(0, 0, 0.5) == 1.0
    assert binomial_sf(-1, 10, 0.5) == 1.0
    assert binomial_sf(11, 10, 0.5) == 0.0
    assert binomial_sf(1, 10, 0.0) == 0.0  # a zero threshold: any error is certain evidence
    assert binomial_sf(10, 10, 1.0) == 1.0
    # A million requests at 1%: 10 000 expected; the tails around the mean stay sensible and fast.
    assert binomial_sf(10000, 1000000, 0.01) == pytest.approx(0.5, abs=0.01)
    assert binomial_sf(10500, 1000000, 0.01) < 1e-6
    assert binomial_sf(9500, 1000000, 0.01) > 1 - 1e-6


def test_rate_ratio_p_value_is_the_conditional_binomial_test():
    # 5 canary errors, none in the baseline, the canary serving a third of the traffic, ratio 2:
    # under "canary rate = 2 x baseline rate" each 5xx is the canary's with probability 2/4.
    assert rate_ratio_p_value(5, 100, 0, 200, 2.0) == pytest.approx(0.5**5)
    assert rate_ratio_p_value(8, 1000, 2, 1000, 2.0) == pytest.approx(exact_sf(8, 10, Fraction(2, 3)))
    assert rate_ratio_p_value(0, 100, 7, 200, 2.0) == 1.0
    assert rate_ratio_p_value(3, 100, 0, 0, 2.0) == 1.0  # no baseline traffic: nothing to compare


def test_p_values_of_a_5_percent_canary_against_the_default_threshold():
    # Deterministic 1 in 20: ~50 requests (2 errors) is not evidence yet, 60 (3) and 100 (5) are.
    assert error_rate_p_value(2, 50, 0.01) == pytest.approx(0.0894, abs=1e-4)
    assert error_rate_p_value(3, 60, 0.01) < 0.05
    assert error_rate_p_value(5, 100, 0.01) == pytest.approx(0.00343, abs=1e-5)


def stats(requests, errors, latency=2):
    return {
        "requests": requests,
        "responses": {},
        "errors": errors,
        "sessions": requests,
        "error_rate": errors / requests if requests else None,
        "latency_ms": latency if requests else None,
    }


def compare(canary, baseline, confidence=0.95, max_error_rate=0.01):
    return compare_groups(canary, baseline, max_error_rate, 2.0, 0.5, 10, 50, confidence)


def test_an_excess_fails_only_when_significant_and_confidence_0_turns_the_test_off():
    metrics = compare(stats(50, 2), stats(100, 0))
    assert metrics["error_rate"]["passed"] is True and metrics["error_rate"]["p_value"] > 0.05
    assert metrics["error_rate_ratio"]["passed"] is True
    metrics = compare(stats(100, 5), stats(200, 0))
    assert metrics["error_rate"]["passed"] is False and metrics["error_rate_ratio"]["passed"] is False
    strict = compare(stats(50, 2), stats(100, 0), confidence=0)
    assert strict["error_rate"]["passed"] is False and strict["error_rate_ratio"]["passed"] is False
    # max_error_rate 0: every 5xx is significant.
    assert compare(stats(1000, 1), stats(1000, 1), max_error_rate=0.0)["error_rate"]["passed"] is False


def test_error_budget():
    assert error_budget(100, 5, 0.01) == {
        "max_error_rate": 0.01,
        "requests": 100,
        "allowed": 1.0,
        "errors": 5,
        "remaining": -4.0,
        "consumed": 5.0,
    }
    assert error_budget(0, 0, 0.01)["consumed"] == 0.0
    assert error_budget(10, 1, 0.0)["consumed"] == math.inf
    text = budget_text(error_budget(10, 1, 0.0))
    assert text == "error budget: 1 5xx of 0 allowed (max_error_rate 0 x 10 canary requests), exceeded (none allowed)"
    text = budget_text(error_budget(400, 1, 0.01))
    assert text == "error budget: 1 5xx of 4 allowed (max_error_rate 0.01 x 400 canary requests), 25% used"


@pytest.mark.parametrize("confidence", [1.0, -0.1, 1.5, True, "high"])
def test_confidence_out_of_range_is_refused(confidence):
    with pytest.raises(ValidationError, match="confidence must be at least 0 and less than 1"):
        analyse_canary("app", ["app1"], read=lambda: pytest.fail("read"), confidence=confidence)


# ---------------------------------------------------------------------------------------------
# extending while an excess is not significant yet
# ---------------------------------------------------------------------------------------------


def server(ok, err=0):
    return {
        "responses": {"1xx": 0, "2xx": ok, "3xx": 0, "4xx": 0, "5xx": err, "other": 0},
        "total_sessions": ok + err,
        "response_time_ms": 2,
        "healthy": True,
        "status": "UP",
        "admin_state": "ready",
    }


def scripted(*snapshots):
    snaps = list(snapshots)
    calls = []

    def read():
        calls.append(1)
        return snaps[min(len(calls) - 1, len(snaps) - 1)]

    return read


def test_a_non_significant_excess_extends_the_window_until_it_is_significant():
    start = {"lb": {"app1": server(0), "app2": server(0)}}
    first = {"lb": {"app1": server(48, 2), "app2": server(100)}}  # 4%: not significant on 50 requests
    second = {"lb": {"app1": server(95, 5), "app2": server(200)}}  # 5% of 100: significant
    clock = FakeClock()
    result = analyse_canary(
        "app",
        ["app1"],
        read=scripted(start, first, second),
        window=4,
        min_requests=50,
        fail_on_verdict=False,
        clock=clock,
        sleep=clock.sleep,
    )
    assert clock.sleeps == [4, 4] and result["extensions"] == 1
    assert result["verdict"] == "fail" and result["settled"] is True
    assert "8.0s window extended 1 time(s)" in result["msg"]


def test_an_excess_that_never_becomes_significant_passes_at_max_window_unsettled():
    start = {"lb": {"app1": server(0), "app2": server(0)}}
    noisy = {"lb": {"app1": server(98, 2), "app2": server(199, 1)}}  # 2% vs 0.5%: noise at this size
    clock = FakeClock()
    result = analyse_canary(
        "app", ["app1"], read=scripted(start, noisy), window=4, min_requests=50, clock=clock, sleep=clock.sleep
    )
    assert clock.sleeps == [4, 4, 4]
    assert result["verdict"] == "pass" and result["settled"] is False and result["extensions"] == 2
    assert "error_rate 0.02 above threshold 0.01 is not significant" in result["msg"]


# ---------------------------------------------------------------------------------------------
# recorded counter series
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def series():
    with open(SERIES_FILE) as f:
        return json.load(f)["series"]


def replay(readings, start, ends, lbs=None, **options):
    """analyse_canary over recorded readings: the first read is ``start``, then each of ``ends``."""
    picks = [start] + list(ends)
    snaps = []
    for i in picks:
        snap = readings[i]["lbs"]
        snaps.append({lb: servers for lb, servers in snap.items() if lbs is None or lb in lbs})
    clock = FakeClock()
    params = {"window": 1, "min_requests": 50, "max_latency_increase": 3.0, "fail_on_verdict": False}
    params.update(options)
    params.setdefault("max_window", params["window"] * len(ends))
    result = analyse_canary("app", ["app1"], read=scripted(*snaps), clock=clock, sleep=clock.sleep, **params)
    return result


def windows(readings):
    """Every (start, end) pair of readings: every window the series holds."""
    return [(i, j) for i in range(len(readings)) for j in range(i + 1, len(readings))]


def test_the_series_were_recorded_under_load_on_two_load_balancers(series):
    assert set(series) >= {"clean", "faulty_5pct", "noisy_1pct", "idle"}
    for name, data in series.items():
        assert len(data["readings"]) >= 10, name
        assert all(set(r["lbs"]) == {"lb1", "lb2"} for r in data["readings"]), name
    last = series["faulty_5pct"]["readings"][-1]["lbs"]
    assert all(s["status"] == "UP" and s["admin_state"] == "ready" for lb in last.values() for s in lb.values())


def test_a_clean_canary_never_fails_in_any_window(series):
    readings = series["clean"]["readings"]
    verdicts = {}
    for i, j in windows(readings):
        for confidence in (0.95, 0):
            result = replay(readings, i, [j], confidence=confidence)
            verdicts.setdefault(result["verdict"], 0)
            verdicts[result["verdict"]] += 1
            assert result["groups"]["canary"]["errors"] == 0
    assert "fail" not in verdicts and verdicts["pass"] > 0


def test_noise_on_every_host_does_not_fail_the_canary_but_would_without_the_test(series):
    """Every host answers 500 to ~1% at random: the canary is no worse than the baseline. A point
    comparison (confidence 0) fails most windows; the significance test passes every one."""
    readings = series["noisy_1pct"]["readings"]
    conclusive = point_failures = 0
    for i, j in windows(readings):
        result = replay(readings, i, [j])
        if result["verdict"] == "inconclusive":
            continue
        conclusive += 1
        assert result["verdict"] == "pass", result["msg"]
        if replay(readings, i, [j], confidence=0)["verdict"] == "fail":
            point_failures += 1
    assert conclusive >= 40
    assert point_failures >= conclusive // 2, (point_failures, conclusive)


def test_a_5_percent_canary_fails_every_window_with_enough_requests_and_reports_its_budget(series):
    readings = series["faulty_5pct"]["readings"]
    judged = 0
    for i, j in windows(readings):
        result = replay(readings, i, [j])
        canary = result["groups"]["canary"]
        if canary["requests"] >= 100:
            judged += 1
            assert result["verdict"] == "fail", result["msg"]
            assert result["metrics"]["error_rate"]["passed"] is False
            assert result["error_budget"]["errors"] == canary["errors"] >= 5
            assert result["error_budget"]["consumed"] > 1
            assert "error budget: %d 5xx of " % canary["errors"] in result["msg"]
        if result["verdict"] == "pass":  # only ever on a small window, where 2 errors are not evidence yet
            assert canary["requests"] < 60 and result["settled"] is False
    assert judged >= 20
    # The whole series: 10 errors in 200 canary requests, 5 times the 2 errors the budget allowed,
    # and the very 10 requests that failed for the load generator's users.
    whole = replay(readings, 0, [len(readings) - 1])
    assert whole["error_budget"] == {
        "max_error_rate": 0.01,
        "requests": 200,
        "allowed": 2.0,
        "errors": 10,
        "remaining": -8.0,
        "consumed": 5.0,
    }
    assert sum(load["failed"] for load in series["faulty_5pct"]["load"]) == whole["error_budget"]["errors"]


def test_a_5_percent_canary_on_a_short_first_window_is_extended_then_fails(series):
    readings = series["faulty_5pct"]["readings"]
    for start in range(0, len(readings) - 6):
        result = replay(readings, start, [start + 2, start + 4, start + 6], window=2, min_requests=50)
        assert result["verdict"] == "fail", result["msg"]
        assert result["groups"]["canary"]["requests"] >= 50


def test_every_load_balancer_counts(series):
    """The canary's errors reached users through lb1 only (the load's interleaving put every 20th
    canary request there); lb2 alone shows a clean canary. Summed, the 5% is there."""
    readings = series["faulty_5pct"]["readings"]
    last = len(readings) - 1
    lb2_only = replay(readings, 0, [last], lbs={"lb2"})
    assert lb2_only["groups"]["canary"]["errors"] == 0 and lb2_only["verdict"] == "pass"
    both = replay(readings, 0, [last])
    assert both["sockets"] == ["lb1", "lb2"]
    assert (
        both["groups"]["canary"]["requests"]
        == lb2_only["groups"]["canary"]["requests"]
        + (replay(readings, 0, [last], lbs={"lb1"})["groups"]["canary"]["requests"])
    )
    assert both["verdict"] == "fail"


def test_the_same_series_as_haproxy_server_info_results_from_two_hosts(series):
    """counters mode: one haproxy_server_info result per LB host, the same socket path on both."""

    def results(reading):
        return [
            {
                "item": lb,
                "changed": False,
                "sockets": [
                    {"socket": "/run/haproxy/admin.sock", "cli_level": "admin", "backends": {"app": {"servers": s}}}
                ],
            }
            for lb, s in sorted(reading["lbs"].items())
        ]

    readings = series["faulty_5pct"]["readings"]
    result = analyse_canary(
        "app",
        ["app1"],
        counters={"start": results(readings[0]), "end": results(readings[-1])},
        window=12,
        min_requests=50,
        max_latency_increase=3.0,
        fail_on_verdict=False,
    )
    assert result["sockets"] == ["lb1 /run/haproxy/admin.sock", "lb2 /run/haproxy/admin.sock"]
    assert result["groups"]["canary"]["requests"] == 200 and result["groups"]["canary"]["errors"] == 10
    assert result["verdict"] == "fail" and result["window"] == 12


def test_no_traffic_is_inconclusive_and_follows_on_inconclusive(series):
    readings = series["idle"]["readings"]
    last = len(readings) - 1
    result = replay(readings, 0, [last], min_requests=50)
    assert result["verdict"] == "inconclusive" and result["groups"]["canary"]["requests"] == 0
    assert "(not enough requests: 0 < min_requests 50)" in result["msg"]
    assert replay(readings, 0, [last], on_inconclusive="pass")["verdict"] == "pass"
    with pytest.raises(CanaryFailed, match=r"on_inconclusive=fail: it is inconclusive \(not enough requests"):
        replay(readings, 0, [last], on_inconclusive="fail", fail_on_verdict=True)
