# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""analyse_canary with a weighted canary (a tenth of the traffic): the share it served is reported, and the
significance tests work on the counts, so the small canary is judged on its own requests."""

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.analysis import analyse_canary
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.haproxy.fake_haproxy import FakeClock

A = "/run/haproxy/a.sock"


def srv(ok=0, err=0):
    return {
        "responses": {"1xx": 0, "2xx": ok, "3xx": 0, "4xx": 0, "5xx": err, "other": 0},
        "total_sessions": ok + err,
        "response_time_ms": 2,
        "healthy": True,
        "status": "UP",
        "admin_state": "ready",
    }


def analyse(canary_ok, canary_err, per_other=120, **kwargs):
    start = {A: {"app1": srv(), "app2": srv(), "app3": srv(), "app4": srv()}}
    end = {
        A: {"app1": srv(canary_ok, canary_err), "app2": srv(per_other), "app3": srv(per_other), "app4": srv(per_other)}
    }
    reads = iter([start, end])
    clock = FakeClock()
    params = {"backend": "app", "canary": ["app1"], "window": 10, "min_requests": 30, "on_inconclusive": "fail"}
    params.update(kwargs)
    return analyse_canary(read=lambda: next(reads), clock=clock, sleep=clock.sleep, fail_on_verdict=False, **params)


def test_the_canarys_share_of_the_requests_is_reported():
    result = analyse(40, 0)
    assert result["verdict"] == "pass"
    assert result["canary_share"] == pytest.approx(40 / 400)
    assert "40 canary / 360 baseline requests, canary share 10%" in result["msg"]


def test_a_bad_release_at_a_tenth_of_the_traffic_fails_on_its_own_counts():
    # 4 errors in 40 requests: 10 % against a 1 % threshold is significant on 40 requests already.
    result = analyse(36, 4)
    assert result["verdict"] == "fail" and result["canary_share"] == pytest.approx(0.1)
    assert result["metrics"]["error_rate"]["p_value"] < 0.05
    # The ratio test weighs the canary's 40 requests against the baseline's 360: 4 errors against none fail it too.
    assert result["metrics"]["error_rate_ratio"]["passed"] is False


def test_one_error_in_a_small_canary_is_noise_not_a_verdict():
    result = analyse(39, 1)
    assert result["verdict"] == "pass" and "not significant" in result["msg"]


def test_no_traffic_has_no_share():
    result = analyse(0, 0, per_other=0, min_requests=0)
    assert result["canary_share"] is None and "canary share n/a" in result["msg"]
