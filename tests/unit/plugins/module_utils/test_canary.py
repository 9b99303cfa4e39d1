# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""analyse_canary with scripted counter reads, a fake clock and a scripted Prometheus."""

import json
import math
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.analysis import CanaryFailed, analyse_canary
from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.counters import ratio
from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.reading import make_reader
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    NotFoundError,
    RolloutError,
    ValidationError,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.client import HAProxyRuntime
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.haproxy.fake_haproxy import (
    FakeClock,
    FakeHAProxy,
    make_server,
)

A = "/run/haproxy/a.sock"
B = "tcp://10.0.0.11:9999"


def srv(ok=0, err=0, rtime=2, sessions=None, status="UP", admin="ready", c4=0, c3=0):
    """One server's counters as gather_server_info / get_backends report them."""
    return {
        "responses": {"1xx": 0, "2xx": ok, "3xx": c3, "4xx": c4, "5xx": err, "other": 0},
        "total_sessions": ok + err + c3 + c4 if sessions is None else sessions,
        "response_time_ms": rtime,
        "healthy": status in ("UP", "no check"),
        "status": status,
        "admin_state": admin,
    }


class Counters:
    """A scripted ``read()``: every call returns the next snapshot (the last one repeats)."""

    def __init__(self, *snapshots):
        self.snapshots = list(snapshots)
        self.reads = 0

    def __call__(self):
        snap = self.snapshots[min(self.reads, len(self.snapshots) - 1)]
        self.reads += 1
        return snap


def run(read, clock=None, **kwargs):
    clock = clock or FakeClock()
    params = {"backend": "be_app", "canary": ["web1"], "window": 10, "min_requests": 10}
    params.update(kwargs)
    return analyse_canary(read=read, clock=clock, sleep=clock.sleep, **params)


def two_sockets(end_web1_a, end_web1_b, end_web2=(500, 0, 2), end_web3=(500, 0, 2)):
    """Start snapshot (everything at 100 ok) and end snapshot on sockets A and B."""
    start = {
        A: {"web1": srv(100), "web2": srv(100), "web3": srv(100)},
        B: {"web1": srv(100), "web2": srv(100), "web3": srv(100)},
    }
    end = {
        A: {"web1": srv(*end_web1_a), "web2": srv(*end_web2), "web3": srv(*end_web3)},
        B: {"web1": srv(*end_web1_b), "web2": srv(*end_web2), "web3": srv(*end_web3)},
    }
    return start, end


# ---------------------------------------------------------------------------------------------
# deltas, sums, latency
# ---------------------------------------------------------------------------------------------


def test_deltas_are_summed_over_both_sockets_and_the_verdict_passes():
    start, end = two_sockets((300, 1, 4), (200, 0, 2))
    read = Counters(start, end)
    result = run(read, min_requests=50, max_window=10, fail_on_verdict=False)
    canary = result["groups"]["canary"]
    assert canary["requests"] == 200 + 1 + 100  # (300-100)+1 on A, (200-100) on B
    assert canary["errors"] == 1
    assert canary["sessions"] == 301
    assert canary["responses"]["2xx"] == 300
    baseline = result["groups"]["baseline"]
    assert baseline["requests"] == 4 * 400  # web2 and web3, on A and B
    assert baseline["errors"] == 0
    # rtime weighted by requests: 201 requests at 4 ms on A, 100 at 2 ms on B
    assert canary["latency_ms"] == pytest.approx((201 * 4 + 100 * 2) / 301, abs=1e-3)
    assert baseline["latency_ms"] == 2
    # 1 error against a clean baseline: ratio inf, but one 5xx in 301 requests is no evidence of a
    # rate twice the baseline's: the canary's share of all 5xx would be 1 with probability 0.27.
    ratio_metric = result["metrics"]["error_rate_ratio"]
    assert ratio_metric["value"] == math.inf and ratio_metric["passed"] is True
    assert ratio_metric["p_value"] == pytest.approx(2 * 301 / (2 * 301 + 1600))
    assert result["verdict"] == "pass" and result["settled"] is False
    assert "error_rate_ratio inf above threshold 2 is not significant (p=0.27 >= 0.05)" in result["msg"]
    # Without the significance test (confidence 0), any excess fails, as before.
    strict = run(Counters(start, end), min_requests=50, max_window=10, fail_on_verdict=False, confidence=0)
    assert strict["verdict"] == "fail" and strict["metrics"]["error_rate_ratio"]["passed"] is False


def test_pass_when_every_metric_is_within_its_threshold():
    start, end = two_sockets((300, 0, 3), (300, 0, 3), end_web2=(500, 1, 2), end_web3=(500, 1, 2))
    result = run(Counters(start, end), fail_on_verdict=False)
    assert result["verdict"] == "pass", result["msg"]
    assert result["changed"] is False
    assert result["canary"] == ["web1"] and result["baseline"] == ["web2", "web3"]
    assert result["sockets"] == [A, B]
    assert result["window"] == 10 and result["extensions"] == 0
    metrics = result["metrics"]
    assert metrics["error_rate"] == {
        "canary": 0.0,
        "baseline": 4 / 1604,
        "value": 0.0,
        "threshold": 0.01,
        "p_value": 1.0,
        "passed": True,
    }
    assert metrics["error_rate_ratio"]["value"] == 0.0 and metrics["error_rate_ratio"]["passed"] is True
    assert metrics["latency_increase"]["canary"] == 3 and metrics["latency_increase"]["baseline"] == 2
    assert metrics["latency_increase"]["value"] == pytest.approx(0.1)  # (3 - 2) / max(2, 10 ms floor)
    assert metrics["requests"] == {"canary": 400, "baseline": 1604, "value": 400, "threshold": 10, "passed": True}
    assert "passed for web1 against web2, web3" in result["msg"]
    assert result["error_budget"] == {
        "max_error_rate": 0.01,
        "requests": 400,
        "allowed": 4.0,
        "errors": 0,
        "remaining": 4.0,
        "consumed": 0.0,
    }
    assert "error budget: 0 5xx of 4 allowed (max_error_rate 0.01 x 400 canary requests), 0% used" in result["msg"]
    assert result["settled"] is True


def test_error_rate_failure_lists_canary_baseline_and_threshold():
    start, end = two_sockets((170, 30, 2), (170, 30, 2), end_web2=(599, 1, 2), end_web3=(599, 1, 2))
    with pytest.raises(CanaryFailed) as info:
        run(Counters(start, end))
    exc = info.value
    assert exc.details["verdict"] == "fail"
    assert exc.details["changed"] is False
    assert "error_rate: canary 0.3, baseline 0.002, threshold 0.01, p=" in exc.msg
    assert "error_rate_ratio: canary 0.3, baseline 0.002, ratio 150, threshold 2, p=" in exc.msg
    assert "error budget: 60 5xx of 2 allowed (max_error_rate 0.01 x 200 canary requests), 3000% used" in exc.msg
    assert exc.details["error_budget"]["consumed"] == 30.0 and exc.details["error_budget"]["remaining"] == -58.0
    assert "latency_increase" not in exc.msg
    assert exc.details["metrics"]["error_rate"]["passed"] is False


def test_error_rate_ratio_alone_fails():
    # canary 0.8% < 1% but four times the baseline's 0.2%, on enough traffic to be significant
    start = {A: {"web1": srv(0), "web2": srv(0)}}
    end = {A: {"web1": srv(9920, 80), "web2": srv(9980, 20)}}
    result = run(Counters(start, end), fail_on_verdict=False)
    assert result["verdict"] == "fail"
    failed = sorted(k for k, m in result["metrics"].items() if m["passed"] is False)
    assert failed == ["error_rate_ratio"]
    assert result["metrics"]["error_rate_ratio"]["value"] == pytest.approx(4.0)
    assert result["metrics"]["error_rate_ratio"]["p_value"] < 0.01
    assert result["msg"].startswith("Canary analysis failed for web1 (backend be_app, 10.0s window, 10000 canary")
    # The same rates on a tenth of the traffic (8 against 2 errors) are not significant: it passes.
    small = {A: {"web1": srv(992, 8), "web2": srv(998, 2)}}
    result = run(Counters(start, small), max_window=10, fail_on_verdict=False)
    assert result["verdict"] == "pass" and result["metrics"]["error_rate_ratio"]["p_value"] > 0.05


def test_latency_increase_alone_fails_and_the_floor_absorbs_small_differences():
    start = {A: {"web1": srv(0), "web2": srv(0)}}
    slow = {A: {"web1": srv(100, 0, 40), "web2": srv(100, 0, 20)}}
    result = run(Counters(start, slow), fail_on_verdict=False)
    assert result["verdict"] == "fail"
    assert result["metrics"]["latency_increase"]["value"] == 1.0
    assert "latency_increase: canary 40, baseline 20, increase 1, threshold 0.5" in result["msg"]
    # 0 ms baseline, 4 ms canary: (4 - 0) / 10 ms floor = 0.4, passes
    tiny = {A: {"web1": srv(100, 0, 4), "web2": srv(100, 0, 0)}}
    result = run(Counters(start, tiny))
    assert result["verdict"] == "pass"
    assert result["metrics"]["latency_increase"]["value"] == 0.4
    # without a floor a zero baseline makes any canary latency an infinite increase
    result = run(Counters(start, tiny), latency_floor_ms=0, fail_on_verdict=False)
    assert result["metrics"]["latency_increase"]["value"] == math.inf
    assert result["verdict"] == "fail"


def test_baseline_without_errors():
    start = {A: {"web1": srv(0), "web2": srv(0)}}
    clean = {A: {"web1": srv(100), "web2": srv(100)}}
    result = run(Counters(start, clean))
    assert result["metrics"]["error_rate_ratio"]["value"] == 1.0  # 0 / 0 reads as "same as baseline"
    assert result["verdict"] == "pass"
    # 5 errors in 1000 (0.5%, within max_error_rate) against none in the baseline's 5000: the canary
    # holds every 5xx, which would happen with probability (2000 / 7000) ** 5 at twice the baseline's rate.
    dirty = {A: {"web1": srv(995, 5), "web2": srv(5000)}}
    result = run(Counters(start, dirty), fail_on_verdict=False)
    assert result["metrics"]["error_rate"]["passed"] is True
    assert result["metrics"]["error_rate_ratio"]["value"] == math.inf
    assert result["metrics"]["error_rate_ratio"]["p_value"] == pytest.approx((2000 / 7000) ** 5)
    assert result["verdict"] == "fail"
    assert "ratio inf, threshold 2, p=0.0019" in result["msg"]
    # Against a baseline of only 100 requests, the same 5 errors say little: the ratio is not significant.
    result = run(Counters(start, {A: {"web1": srv(995, 5), "web2": srv(100)}}), max_window=10)
    assert result["verdict"] == "pass" and result["metrics"]["error_rate_ratio"]["passed"] is True


def test_ratio_rules():
    assert ratio(0.2, 0.1) == 2.0
    assert ratio(0.2, 0) == math.inf
    assert ratio(0, 0) == 1.0
    assert ratio(None, 0.1) is None


def test_4xx_count_as_requests_not_errors_and_counter_resets_count_from_zero():
    start = {A: {"web1": srv(1000, 10), "web2": srv(0)}}
    # web1's counters went backwards: HAProxy reloaded; its end values are the deltas.
    end = {A: {"web1": srv(40, 0, 2, c4=10), "web2": srv(50, 0, 2, c4=50)}}
    result = run(Counters(start, end))
    canary = result["groups"]["canary"]
    assert canary["requests"] == 50 and canary["errors"] == 0 and canary["responses"]["4xx"] == 10
    assert result["verdict"] == "pass"


def test_servers_out_of_rotation_are_not_baseline_and_a_socket_may_not_know_a_server():
    start = {
        A: {"web1": srv(0), "web2": srv(0), "web3": srv(0, admin="drain", status="DRAIN"), "web4": srv(0)},
        B: {"web1": srv(0), "web2": srv(0, status="DOWN")},
    }
    end = {
        A: {"web1": srv(50), "web2": srv(50), "web3": srv(50, 50), "web4": srv(50)},
        B: {"web1": srv(50), "web2": srv(50, 50)},
    }
    result = run(Counters(start, end))
    assert result["baseline"] == ["web2", "web4"]
    assert result["groups"]["baseline"]["requests"] == 100  # web2 on A and web4 on A only
    assert result["verdict"] == "pass"


def test_excluded_servers_are_neither_canary_nor_baseline():
    """Surge hosts already on the new release (the playbook's rolling_update_canary_exclude) would hide a bad canary
    behind a baseline that shares its errors."""
    start = {A: {"web1": srv(0), "web2": srv(0), "web5": srv(0)}}
    end = {A: {"web1": srv(50, 50), "web2": srv(100), "web5": srv(50, 50)}}
    excluded = run(Counters(start, end), exclude=["web5"], fail_on_verdict=False)
    assert excluded["baseline"] == ["web2"] and excluded["groups"]["baseline"]["requests"] == 100
    assert excluded["verdict"] == "fail"
    mixed = run(Counters(start, end), fail_on_verdict=False)
    assert mixed["baseline"] == ["web2", "web5"] and mixed["groups"]["baseline"]["errors"] == 50


# ---------------------------------------------------------------------------------------------
# inconclusive and extend
# ---------------------------------------------------------------------------------------------


def idle():
    start = {A: {"web1": srv(0), "web2": srv(0)}}
    few = {A: {"web1": srv(5), "web2": srv(5)}}
    return start, few


def test_inconclusive_below_min_requests_after_extending_to_max_window():
    start, few = idle()
    clock = FakeClock()
    read = Counters(start, few)
    result = run(read, clock=clock, window=10, max_window=30, min_requests=50)
    assert result["verdict"] == "inconclusive"
    assert sum(clock.sleeps) == 30 and clock.sleeps == [10, 10, 10]
    assert result["window"] == 30 and result["extensions"] == 2
    assert read.reads == 4  # start, then after 10, 20 and 30 s
    assert result["metrics"]["requests"]["passed"] is False
    assert "served 5 request(s)" in result["msg"] and "(not enough requests: 5 < min_requests 50)" in result["msg"]
    assert result["msg"].startswith("Canary analysis is inconclusive (not enough requests: 5 < min_requests 50)")
    assert "30.0s window extended 2 time(s), up to max_window 30s" in result["msg"]
    assert result["settled"] is False


def test_extend_stops_as_soon_as_there_are_enough_requests():
    start = {A: {"web1": srv(0), "web2": srv(0)}}
    snaps = [start, {A: {"web1": srv(20), "web2": srv(20)}}, {A: {"web1": srv(60), "web2": srv(60)}}]
    clock = FakeClock()
    result = run(Counters(*snaps), clock=clock, window=10, min_requests=50)  # max_window defaults to 30
    assert result["verdict"] == "pass"
    assert clock.sleeps == [10, 10] and result["window"] == 20 and result["extensions"] == 1
    assert result["groups"]["canary"]["requests"] == 60  # counted from the very first reading


def test_extend_caps_the_last_step_at_max_window():
    start, few = idle()
    clock = FakeClock()
    run(Counters(start, few), clock=clock, window=10, max_window=25, min_requests=50)
    assert clock.sleeps == [10, 10, 5]


@pytest.mark.parametrize("choice, verdict", [("pass", "pass"), ("fail", "fail")])
def test_on_inconclusive_pass_or_fail_decides_without_waiting_longer(choice, verdict):
    start, few = idle()
    clock = FakeClock()
    result = run(Counters(start, few), clock=clock, on_inconclusive=choice, fail_on_verdict=False, min_requests=50)
    assert result["verdict"] == verdict and clock.sleeps == [10]
    assert "on_inconclusive=%s" % choice in result["msg"]


def test_inconclusive_never_fails_the_task_and_fail_does_only_with_fail_on_verdict():
    start, few = idle()
    assert run(Counters(start, few), min_requests=50, max_window=10)["verdict"] == "inconclusive"
    with pytest.raises(CanaryFailed, match=r"inconclusive \(not enough requests: 5 < min_requests 50\)"):
        run(Counters(start, few), min_requests=50, on_inconclusive="fail")


def test_interval_records_progress_samples():
    start = {A: {"web1": srv(0), "web2": srv(0)}}
    snaps = [start] + [{A: {"web1": srv(10 * i, i), "web2": srv(10 * i)}} for i in range(1, 6)]
    clock = FakeClock()
    read = Counters(*snaps)
    result = run(read, clock=clock, window=10, max_window=10, interval=4, fail_on_verdict=False)
    assert clock.sleeps == [4, 4, 2]
    assert [s["elapsed"] for s in result["samples"]] == [4, 8, 10]
    assert result["samples"][0] == {
        "elapsed": 4,
        "canary_requests": 11,
        "canary_errors": 1,
        "baseline_requests": 10,
        "baseline_errors": 0,
    }
    assert "samples" not in run(Counters(start, snaps[1]), window=10, fail_on_verdict=False)


# ---------------------------------------------------------------------------------------------
# Prometheus
# ---------------------------------------------------------------------------------------------


class Prometheus:
    """A scripted Prometheus: ``answers`` maps the query text to the value (or a full (status, body))."""

    def __init__(self, answers):
        self.answers = answers
        self.urls = []

    def __call__(self, url):
        self.urls.append(url)
        parts = urlsplit(url)
        assert parts.path == "/prom/api/v1/query"
        query = parse_qs(parts.query)["query"][0]
        answer = self.answers[query]
        if isinstance(answer, tuple):
            return answer
        result = [] if answer is None else [{"metric": {}, "value": [1700000000.0, str(v)]} for v in answer]
        return 200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


PROM = "http://prom.example.com:9090/prom/"
ERRORS = 'sum(rate(app_errors_total{instance="{server}"}[1m]))'


def prom_run(answers, **kwargs):
    start = {A: {"web1": srv(0), "web2": srv(0), "web3": srv(0)}}
    end = {A: {"web1": srv(100), "web2": srv(100), "web3": srv(100)}}
    fetch = Prometheus(answers)
    params = {"prometheus_url": PROM, "prometheus_queries": {"errors": ERRORS}, "fetch": fetch}
    params.update(kwargs)
    return run(Counters(start, end), **params), fetch


def q(server):
    return 'sum(rate(app_errors_total{instance="%s"}[1m]))' % server


def test_prometheus_templates_are_filled_per_server_and_groups_averaged():
    result, fetch = prom_run({q("web1"): [0.3], q("web2"): [0.1, 0.1], q("web3"): None}, fail_on_verdict=False)
    metric = result["metrics"]["prometheus_errors"]
    assert metric["canary"] == pytest.approx(0.3)
    assert metric["baseline"] == pytest.approx(0.1)  # (0.2 + 0 for the empty result) / 2
    assert metric["value"] == pytest.approx(3.0) and metric["passed"] is False
    assert metric["queries"] == {"web1": q("web1"), "web2": q("web2"), "web3": q("web3")}
    assert len(fetch.urls) == 3 and all(
        u.startswith("http://prom.example.com:9090/prom/api/v1/query?") for u in fetch.urls
    )
    assert result["verdict"] == "fail"
    assert "prometheus_errors: canary 0.3, baseline 0.1, ratio 3, threshold 2" in result["msg"]


def test_prometheus_within_ratio_passes_and_zero_baseline_rules_apply():
    result = prom_run({q("web1"): [0.15], q("web2"): [0.1], q("web3"): [0.1]})[0]
    assert result["metrics"]["prometheus_errors"]["passed"] is True and result["verdict"] == "pass"
    result = prom_run({q("web1"): None, q("web2"): None, q("web3"): ["NaN"]})[0]
    assert result["metrics"]["prometheus_errors"]["value"] == 1.0 and result["verdict"] == "pass"
    result = prom_run(
        {q("web1"): [0.01], q("web2"): [0], q("web3"): [0]}, prometheus_max_ratio=5.0, fail_on_verdict=False
    )[0]
    assert result["metrics"]["prometheus_errors"]["value"] == math.inf
    assert result["metrics"]["prometheus_errors"]["threshold"] == 5.0


def test_prometheus_scalar_answer():
    body = json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "2"]}}).encode()
    result = prom_run({q("web1"): (200, body), q("web2"): (200, body), q("web3"): (200, body)})[0]
    assert result["metrics"]["prometheus_errors"]["canary"] == 2.0


@pytest.mark.parametrize(
    "answer, match",
    [
        ((400, b'{"status":"error","errorType":"bad_data","error":"parse error at char 5"}'), "parse error at char 5"),
        ((502, b"<html>bad gateway</html>"), "answered 502"),
        ((200, b'{"status":"success","data":{"resultType":"matrix","result":[]}}'), "instant vector or a scalar"),
    ],
)
def test_prometheus_errors_are_clear(answer, match):
    with pytest.raises(RolloutError, match=match):
        prom_run({q("web1"): answer})


def test_prometheus_fetch_exception_is_wrapped():
    def fetch(url):
        raise OSError("connection refused")

    with pytest.raises(RolloutError, match="failed: connection refused"):
        prom_run({}, fetch=fetch)


SECRETS = ("deployer", "s3cr3tpw", "t0k3nval")
SECRET_PROM = "http://deployer:s3cr3tpw@prom.example.com:9090/prom/"
SHOWN_PROM = "http://***@prom.example.com:9090/prom/"


def assert_no_secret(text):
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, (leaked, text)


def test_prometheus_failure_messages_never_show_credentials():
    def quoting(url):  # urllib's own errors quote the URL they were given, user info and all
        raise ValueError("unknown url type: %r" % url)

    def rollout_error(url):  # an error of the collection's own HTTP code that names the URL
        raise RolloutError("no answer from %s within 10s" % url, url=url)

    for fetch in (quoting, rollout_error):
        with pytest.raises(RolloutError) as info:
            prom_run({}, fetch=fetch, prometheus_url=SECRET_PROM)
        assert_no_secret(info.value.msg)
        assert_no_secret(repr(info.value.details))
        assert SHOWN_PROM in info.value.msg
    echo = b"<html>401: no credentials accepted for http://deployer:s3cr3tpw@prom/?token=t0k3nval</html>"
    with pytest.raises(RolloutError) as info:
        prom_run({q("web1"): (401, echo)}, prometheus_url=SECRET_PROM)
    assert_no_secret(info.value.msg)
    assert "Prometheus at %s answered 401" % SHOWN_PROM in info.value.msg
    assert "http://***@prom/?***" in info.value.msg
    error = b'{"status":"error","error":"bad_data: password=s3cr3tpw is not a query"}'
    with pytest.raises(RolloutError) as info:
        prom_run({q("web1"): (400, error)}, prometheus_url=SECRET_PROM)
    assert_no_secret(info.value.msg)
    assert "password=***" in info.value.msg


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ftp://deployer:s3cr3tpw@prom:9090/", "ftp://***@prom:9090/"),
        ("deployer:s3cr3tpw@prom:9090", "***@prom:9090"),
        ("http://deployer:s3cr/3tpw@prom:9090/", "http://***@prom:9090/"),
        ("http://deployer:s3cr#3tpw@prom:9090/", "http://***@prom:9090/"),
    ],
)
def test_a_bad_prometheus_url_is_refused_without_showing_its_credentials(url, shown):
    read = Counters({A: {"web1": srv(0)}})
    with pytest.raises(ValidationError) as info:
        run(read, prometheus_url=url, prometheus_queries={"e": ERRORS}, fetch=Prometheus({}))
    assert_no_secret(info.value.msg)
    assert "s3cr" not in info.value.msg and "3tpw" not in info.value.msg
    assert shown in info.value.msg
    assert read.reads == 0


# ---------------------------------------------------------------------------------------------
# bad input, unknown servers, nothing to compare
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"canary": ["web1;show info"]}, "Invalid canary server name"),
        ({"canary": ["web1\nset server be_app/web2 state maint"]}, "Invalid canary server name"),
        ({"backend": "be app"}, "Invalid backend name"),
        ({"canary": []}, "canary is empty"),
        ({"canary": ["web1", "web1"]}, "lists a server twice"),
        ({"window": 0}, "window must be more than 0"),
        ({"window": 10, "max_window": 5}, "max_window must be at least 10"),
        ({"max_error_rate": -0.1}, "max_error_rate must be at least 0"),
        ({"min_requests": -1}, "min_requests must be at least 0"),
        ({"interval": -1}, "interval must be at least 0"),
        ({"on_inconclusive": "retry"}, "Invalid on_inconclusive 'retry'"),
        ({"prometheus_queries": {"e": ERRORS}}, "needs prometheus_url"),
        ({"prometheus_queries": {"e": "up"}, "prometheus_url": PROM}, "must be a PromQL string containing {server}"),
        ({"prometheus_queries": {"e": ERRORS}, "prometheus_url": "prom:9090"}, "must start with http"),
    ],
)
def test_bad_input_is_refused_before_anything_is_read(kwargs, match):
    read = Counters({A: {"web1": srv(0)}})
    with pytest.raises(ValidationError, match=match):
        run(read, **kwargs)
    assert read.reads == 0


def test_unknown_canary_server_names_the_servers_that_exist():
    read = Counters({A: {"web1": srv(0), "web2": srv(0)}, B: {"web1": srv(0)}})
    clock = FakeClock()
    with pytest.raises(NotFoundError, match=r"has no server ghost on any socket \(it has: web1, web2\)"):
        run(read, clock=clock, canary=["web1", "ghost"])
    assert clock.sleeps == []


def test_canary_out_of_rotation_or_no_baseline_fails_before_waiting():
    clock = FakeClock()
    read = Counters({A: {"web1": srv(0, admin="maint", status="MAINT"), "web2": srv(0)}})
    with pytest.raises(RolloutError, match=r"not in rotation on any socket .*web1 MAINT"):
        run(read, clock=clock)
    read = Counters({A: {"web1": srv(0), "web2": srv(0, status="DOWN")}})
    with pytest.raises(RolloutError, match="no other server in rotation"):
        run(read, clock=clock)
    assert clock.sleeps == []


# ---------------------------------------------------------------------------------------------
# the default reader, over the fake HAProxy
# ---------------------------------------------------------------------------------------------


def test_make_reader_reads_every_socket_through_the_runtime():
    fakes = {
        A: FakeHAProxy({("be_app", "web1"): make_server(stot=10), ("be_app", "web2"): make_server(stot=20)}),
        B: FakeHAProxy({("be_app", "web1"): make_server(stot=1), ("be_app", "web2"): make_server(stot=2)}),
    }
    read = make_reader([A, B], "be_app", connect=lambda address: HAProxyRuntime(address, transport=fakes[address]))
    snap = read()
    assert list(snap) == [A, B]
    assert snap[A]["web1"]["responses"]["2xx"] == 10 and snap[B]["web2"]["total_sessions"] == 2
    assert snap[A]["web1"]["admin_state"] == "ready" and snap[A]["web1"]["healthy"] is True
    fakes[A].servers[("be_app", "web1")]["stot"] = 110
    fakes[A].servers[("be_app", "web2")]["stot"] = 120
    clock = FakeClock()
    result = run(read, clock=clock, min_requests=100)
    assert result["groups"]["canary"]["requests"] == 0  # nothing moved between this run's two reads
    assert result["verdict"] == "inconclusive"
    assert all(not c.startswith("set ") for fake in fakes.values() for c in fake.log)


def test_make_reader_validates_before_connecting():
    with pytest.raises(ValidationError, match="Invalid backend name"):
        make_reader([A], "be;app", connect=lambda address: pytest.fail("connected"))
    with pytest.raises(ValidationError):
        make_reader([], "be_app", connect=lambda address: pytest.fail("connected"))


# ---------------------------------------------------------------------------------------------
# counters read elsewhere (haproxy_server_info on each load balancer host)
# ---------------------------------------------------------------------------------------------


def info(host, *sockets, backend="be_app"):
    """One haproxy_server_info result as a loop over the LB hosts registers it: sockets are (path, servers)."""
    result = {"changed": False, "sockets": []}
    if host is not None:
        result["item"] = host
    for path, servers in sockets:
        result["sockets"].append({"socket": path, "cli_level": "admin", "backends": {backend: {"servers": servers}}})
    return result


def counted(start, end, **kwargs):
    params = {"backend": "be_app", "canary": ["web1"], "window": 10, "min_requests": 10}
    params.update(kwargs)
    return analyse_canary(counters={"start": start, "end": end}, **params)


def test_counters_from_two_hosts_with_the_same_socket_path_are_summed_without_waiting():
    sock = "/run/haproxy/admin.sock"
    start = [
        info("lb1", (sock, {"web1": srv(0), "web2": srv(0)})),
        info("lb2", (sock, {"web1": srv(0), "web2": srv(0)})),
    ]
    end = [
        info("lb1", (sock, {"web1": srv(60), "web2": srv(60)})),
        info("lb2", (sock, {"web1": srv(37, 3), "web2": srv(40)})),
    ]
    result = counted(start, end, window=12, fail_on_verdict=False)
    assert result["sockets"] == ["lb1 " + sock, "lb2 " + sock]
    assert result["groups"]["canary"]["requests"] == 100 and result["groups"]["canary"]["errors"] == 3
    assert result["groups"]["baseline"]["requests"] == 100
    assert result["window"] == 12 and result["extensions"] == 0
    assert "12.0s window" in result["msg"]


def test_counters_without_a_host_name_are_numbered_and_extend_returns_inconclusive_at_once():
    start = [info(None, (A, {"web1": srv(0), "web2": srv(0)})), info(None, (A, {"web1": srv(0), "web2": srv(0)}))]
    end = [info(None, (A, {"web1": srv(3), "web2": srv(3)})), info(None, (A, {"web1": srv(2), "web2": srv(2)}))]
    result = counted(start, end, min_requests=50)
    assert result["sockets"] == ["#1 " + A, "#2 " + A]
    assert result["verdict"] == "inconclusive" and result["settled"] is False
    assert result["msg"].startswith("Canary analysis is inconclusive (not enough requests: 5 < min_requests 50)")
    assert "max_window" not in result["msg"]  # the caller extends; the module did not
    single = counted(
        [info(None, (A, {"web1": srv(0), "web2": srv(0)}))], [info(None, (A, {"web1": srv(9), "web2": srv(9)}))]
    )
    assert single["sockets"] == [A]


@pytest.mark.parametrize(
    "start, end, kwargs, error, match",
    [
        ([], [info("lb1")], {}, ValidationError, "counters.start must be a non-empty list"),
        (
            [{"failed": True, "msg": "connection refused"}],
            [info("lb1")],
            {},
            ValidationError,
            r"counters.start\[0\] is not a haproxy_server_info result.*failed: connection refused",
        ),
        (
            [info("lb1", (A, {"web1": srv(0)}), (A, {"web1": srv(0)}))],
            [info("lb1", (A, {"web1": srv(0)}))],
            {},
            ValidationError,
            "reads lb1 /run/haproxy/a.sock twice",
        ),
        (
            [info("lb1", (A, {"web1": srv(0), "web2": srv(0)}))],
            [info("lb2", (A, {"web1": srv(0), "web2": srv(0)}))],
            {},
            ValidationError,
            "must read the same load balancers",
        ),
        (
            [info("lb1", (A, {"web1": srv(0)}), backend="other")],
            [info("lb1", (A, {"web1": srv(0)}))],
            {},
            NotFoundError,
            "has no backend be_app",
        ),
        ([info("lb1")], [info("lb1")], {"interval": 1}, ValidationError, "interval cannot be used with counters"),
    ],
)
def test_bad_counters_are_refused(start, end, kwargs, error, match):
    with pytest.raises(error, match=match):
        counted(start, end, **kwargs)


def test_counters_must_have_start_and_end_and_something_must_be_read():
    with pytest.raises(ValidationError, match="exactly 'start' and 'end'"):
        analyse_canary("be_app", ["web1"], counters={"start": []})
    with pytest.raises(ValidationError, match="needs a read function or counters"):
        analyse_canary("be_app", ["web1"])
