# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The readiness probe with scripted responses and a fake clock, then through the HTTP helper against real servers."""

import time

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError, WaitTimeout
from ansible_collections.zerodowntime.rollout.plugins.module_utils._http import make_fetch
from ansible_collections.zerodowntime.rollout.plugins.module_utils._http_health import (
    HealthCheckTimeout,
    HealthProbe,
    lookup_json,
    parse_json_path,
    probe_http,
    values_match,
)


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """fetch(timeout) that replays answers: (status, body) tuples or exceptions; the last one repeats."""

    def __init__(self, clock, answers, cost=0.0):
        self.clock = clock
        self.answers = list(answers)
        self.timeouts = []
        self.cost = cost

    def __call__(self, timeout):
        self.timeouts.append(timeout)
        self.clock.now += self.cost
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def probe(answers, cost=0.0, **kwargs):
    clock = FakeClock()
    fetch = Script(clock, answers, cost)
    kwargs.setdefault("interval", 1.0)
    kwargs.setdefault("timeout", 30)
    p = HealthProbe(
        fetch, url="http://user:pw@127.0.0.1:8080/health?key=s3cret", clock=clock.clock, sleep=clock.sleep, **kwargs
    )
    return p, fetch, clock


OK = (200, b"ok")
DOWN = (503, b"starting")


def test_needs_consecutive_successes():
    p, fetch, clock = probe([DOWN, DOWN, OK])
    result = p.run()
    assert result["attempts"] == 5 and result["successes"] == 3
    assert result["status"] == 200 and result["last_error"] == "status 503 is not one of [200]"
    assert result["elapsed"] == 4.0 and clock.sleeps == [1.0] * 4
    assert "ready: 3 consecutive successes after 5 attempts" in result["msg"]
    assert "s3cret" not in result["msg"] and "pw@" not in result["msg"]


def test_flap_resets_the_count():
    p, fetch, clock = probe([OK, OK, DOWN, OK, OK, OK])
    result = p.run()
    assert (result["attempts"], result["successes"]) == (6, 3)
    assert result["last_error"].startswith("status 503")


def test_transport_error_resets_and_is_reported():
    p, fetch, clock = probe([OK, OK, ConnectionRefusedError(111, "Connection refused"), OK, OK, OK])
    result = p.run()
    assert (result["attempts"], result["successes"]) == (6, 3)
    assert "Connection refused" in result["last_error"]


def test_timeout_message_has_status_error_and_body_start():
    body = b"<html>" + b"x" * 1000 + b"</html>"
    p, fetch, clock = probe([OK, (500, body)], timeout=10, consecutive_successes=2)
    with pytest.raises(HealthCheckTimeout) as info:
        p.run()
    exc = info.value
    assert isinstance(exc, WaitTimeout)
    msg = exc.msg
    assert "not ready after 10.0s" in msg and "11 attempts" in msg and "longest streak 1" in msg
    assert "Last status: 500" in msg and "status 500 is not one of [200]" in msg
    assert "first 300 of 1013 bytes" in msg and "<html>xxx" in msg and "</html>" not in msg
    assert "s3cret" not in msg
    assert exc.details == {
        "attempts": 11,
        "successes": 0,
        "elapsed": 10.0,
        "status": 500,
        "last_error": "status 500 is not one of [200]",
    }


def test_timeout_when_nothing_answers():
    p, fetch, clock = probe([OSError("timed out")], timeout=3, interval=1)
    with pytest.raises(HealthCheckTimeout) as info:
        p.run()
    assert "Last status: none (no answer)" in info.value.msg and "timed out" in info.value.msg
    assert "Last body" not in info.value.msg
    assert info.value.details["status"] is None


def test_timeout_zero_means_one_attempt():
    p, fetch, clock = probe([DOWN], timeout=0)
    with pytest.raises(HealthCheckTimeout):
        p.run()
    assert len(fetch.timeouts) == 1 and clock.sleeps == []
    p, fetch, clock = probe([OK], timeout=0, consecutive_successes=1)
    assert p.run()["attempts"] == 1


def test_request_timeout_is_bounded_by_the_deadline():
    p, fetch, clock = probe([DOWN], timeout=12, interval=4, request_timeout=5)
    with pytest.raises(HealthCheckTimeout):
        p.run()
    assert fetch.timeouts[0] == 5
    assert min(fetch.timeouts) >= 1.0
    assert all(t <= 5 for t in fetch.timeouts)


def test_slow_requests_count_towards_the_deadline():
    p, fetch, clock = probe([DOWN], timeout=10, interval=1, cost=4)
    with pytest.raises(HealthCheckTimeout):
        p.run()
    assert len(fetch.timeouts) == 3  # t=0..4, 5..9, 10..14


def test_status_codes_and_body_regex():
    p = probe([(204, b""), (302, b"")], status_codes=[204, 302], consecutive_successes=2)[0]
    assert p.run()["successes"] == 2
    p = probe([(200, b'{"status": "starting"}'), (200, b'{"status": "ready"}')], body_regex=r'"status":\s*"ready"')[0]
    result = p.run()
    assert result["attempts"] == 4 and "does not match body_regex" in result["last_error"]


def test_json_path_and_value():
    starting = (200, b'{"checks": {"database": false}, "items": [{"name": "a"}]}')
    ready = (200, b'{"checks": {"database": true}, "items": [{"name": "b"}]}')
    p = probe([starting, ready], json_path="checks.database", json_value="true")[0]
    result = p.run()
    assert result["attempts"] == 4 and result["last_error"] == 'json_path checks.database is false, expected "true"'
    p = probe([starting, ready], json_path="items.0.name", json_value="b")[0]
    assert p.run()["attempts"] == 4
    p = probe([starting, ready], json_path="checks.database")[0]  # no json_value: must be truthy
    assert p.run()["attempts"] == 4
    p = probe([(200, b"not json"), ready], json_path="checks.database", json_value=True)[0]
    assert "not JSON" in p.run()["last_error"]
    p = probe([(200, b'{"checks": {}}'), ready], json_path="checks.database", json_value=True)[0]
    assert "key 'database' not found under checks" in p.run()["last_error"]


def test_lookup_json():
    doc = {"a": {"b": [10, {"c": "x"}]}, "0": "zero"}
    assert lookup_json(doc, parse_json_path("a.b.1.c")) == "x"
    assert lookup_json(doc, parse_json_path("a.b.-2")) == 10
    assert lookup_json(doc, parse_json_path("0")) == "zero"
    for path, message in (("a.b.5", "out of range"), ("a.b.x", "not an index"), ("a.b.0.z", "number")):
        with pytest.raises(LookupError, match=message):
            lookup_json(doc, parse_json_path(path))
    for bad in ("", "a..b", ".a"):
        with pytest.raises(ValidationError):
            parse_json_path(bad)


@pytest.mark.parametrize(
    "actual, expected, same",
    [
        (True, True, True),
        (True, "true", True),
        (True, "True", True),
        ("true", True, True),
        (False, "false", True),
        (True, 1, False),
        (True, "yes", False),
        (1, 1.0, True),
        (1, "1", True),
        (2.5, "2.5", True),
        (1, True, False),
        ("UP", "UP", True),
        ("up", "UP", False),
        ("1", 1, True),
        (None, "null", True),
        ([1, "a"], [1, "a"], True),
        ([1, "a"], '[1, "a"]', True),
        ({"x": True}, {"x": "true"}, True),
        ({"x": True}, {"x": "false"}, False),
        ("nan", "nan", True),
    ],
)
def test_values_match(actual, expected, same):
    assert values_match(actual, expected) is same


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"status_codes": []}, "status_codes"),
        ({"status_codes": [99]}, "status_codes"),
        ({"consecutive_successes": 0}, "consecutive_successes"),
        ({"interval": 0}, "interval"),
        ({"timeout": -1}, "timeout"),
        ({"request_timeout": 0}, "request_timeout"),
        ({"body_regex": "("}, "body_regex"),
        ({"json_value": 1}, "json_value needs json_path"),
        ({"json_path": "a..b"}, "empty component"),
    ],
)
def test_invalid_options(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        HealthProbe(lambda timeout: OK, **kwargs)


def test_probe_http_entry_point():
    clock = FakeClock()
    fetch = Script(clock, [OK])
    result = probe_http(
        fetch, "http://x/", json_value=None, consecutive_successes=2, clock=clock.clock, sleep=clock.sleep
    )
    assert result["changed"] is False and result["successes"] == 2
    skipped = probe_http(fetch, "http://x/", check_mode=True, method="post", clock=clock.clock, sleep=clock.sleep)
    assert skipped["skipped"] and skipped["attempts"] == 0 and len(fetch.timeouts) == 2
    ran = probe_http(fetch, "http://x/", check_mode=True, consecutive_successes=1, clock=clock.clock, sleep=clock.sleep)
    assert ran["attempts"] == 1
    with pytest.raises(ValidationError, match="http"):
        probe_http(fetch, "file:///etc/passwd")


# ---------------------------------------------------------------------------------------------
# Against real servers on 127.0.0.1: redirects are failed probes unless allowed, one deadline per request
# ---------------------------------------------------------------------------------------------

SECRET = "Bearer s3cr3t-token-value"


@pytest.fixture
def servers():
    from ansible_collections.zerodowntime.rollout.tests.unit.plugins.module_utils.test_http import Server, TrickleServer

    started = []

    def start(kind, *args, **kwargs):
        started.append({"http": Server, "trickle": TrickleServer}[kind](*args, **kwargs))
        return started[-1]

    yield start
    for server in started:
        server.close()


def real_probe(url, **kwargs):
    fetch_options = {key: kwargs.pop(key) for key in ("headers", "follow_redirects") if key in kwargs}
    kwargs.setdefault("interval", 0.1)
    return HealthProbe(make_fetch(url, **fetch_options), url=url, **kwargs)


def test_a_redirect_fails_the_probe_and_says_where_it_pointed(servers):
    other = servers("http", {"/ready": (200, {}, b"ok")})
    app = servers("http", {"/health": (302, {"Location": "%s/ready?token=abc" % other.base}, b"moved")})
    p = real_probe(app.base + "/health", headers={"Authorization": SECRET}, timeout=0, consecutive_successes=1)
    with pytest.raises(HealthCheckTimeout) as info:
        p.run()
    msg = info.value.msg
    expected = "Last status: 302. Last error: redirect (302) to %s/ready?*** not followed: follow_redirects is none"
    assert expected % other.base in msg
    assert "abc" not in msg and "s3cr3t" not in msg
    assert other.requests == []


def test_a_redirect_listed_in_status_codes_is_an_answer_and_is_not_followed(servers):
    other = servers("http", {"/": (200, {}, b"ok")})
    app = servers("http", {"/": (302, {"Location": other.base + "/"}, b"redirecting")})
    p = real_probe(
        app.base + "/", status_codes=[200, 302], body_regex="redirecting", consecutive_successes=2, timeout=5
    )
    result = p.run()
    assert result["status"] == 302 and result["successes"] == 2
    assert other.requests == []


def test_follow_redirects_all_reaches_another_origin_without_credentials(servers):
    other = servers("http", {"/ready": (200, {}, b"ok")})
    app = servers("http", {"/health": (302, {"Location": other.base + "/ready"}, b"")})
    p = real_probe(
        app.base + "/health", headers={"Authorization": SECRET}, follow_redirects="all", consecutive_successes=1
    )
    assert p.run()["status"] == 200
    assert app.requests[0]["headers"]["authorization"] == SECRET
    assert [r["headers"].get("authorization") for r in other.requests] == [None]


def test_a_trickled_body_fails_the_probe_at_its_deadline(servers):
    slow = servers("trickle", "body")
    p = real_probe(slow.base + "/", timeout=2, request_timeout=1.5, interval=0.2, consecutive_successes=1)
    start = time.monotonic()
    with pytest.raises(HealthCheckTimeout) as info:
        p.run()
    elapsed = time.monotonic() - start
    # At most timeout + one request_timeout, whatever the peer does.
    assert elapsed < 2 + 1.5 + 0.5, elapsed
    assert "Last error: request failed: no complete answer within" in info.value.msg
