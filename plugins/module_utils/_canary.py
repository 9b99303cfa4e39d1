# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Canary analysis: compare canary servers against the rest of their HAProxy backend over a window.

``analyse_canary`` takes a snapshot of every server's counters on every load balancer, waits a
window, takes another snapshot and compares the deltas of the canary group with those of the
baseline group (the other servers of the backend that were in rotation at the start). Optionally
it also compares Prometheus instant queries evaluated for each group at the end of the window.

Plain Python: the counters come from an injected ``read()`` function, time from injected
``clock``/``sleep``, Prometheus answers from an injected ``fetch(url)``. Nothing here changes
anything anywhere.

Decisions (also documented in the canary_analysis module):

* ``error_rate`` is 5xx / requests, requests being the sum of every response class.
* ``error_rate_ratio`` is canary error rate / baseline error rate; with a baseline error rate of 0
  it is ``inf`` when the canary had errors and ``1.0`` when it had none.
* ``latency_increase`` is relative: ``(canary - baseline) / max(baseline, latency_floor_ms)``.
  The floor keeps sub-millisecond baselines (HAProxy counts whole milliseconds) from turning a
  1 ms difference into an infinite increase.
* A counter that went backwards (HAProxy reloaded during the window) counts from zero: its end
  value is taken as the delta.
"""

import json
import math
import time
from urllib.parse import urlencode

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    NotFoundError,
    RolloutError,
    ValidationError,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy_runtime import (
    HAProxyRuntime,
    validate_name,
    validate_sockets,
)

VERDICTS = ("pass", "fail", "inconclusive")
ON_INCONCLUSIVE_CHOICES = ("extend", "fail", "pass")
RESPONSE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")

DEFAULTS = {
    "window": 60.0,
    "max_error_rate": 0.01,
    "max_error_rate_ratio": 2.0,
    "max_latency_increase": 0.5,
    "latency_floor_ms": 10.0,
    "min_requests": 50,
    "on_inconclusive": "extend",
    "prometheus_max_ratio": 2.0,
}

# Metrics whose failure makes the verdict "fail", in the order they are reported.
CHECKED_METRICS = ("error_rate", "error_rate_ratio", "latency_increase")

__all__ = [
    "DEFAULTS",
    "ON_INCONCLUSIVE_CHOICES",
    "VERDICTS",
    "CanaryFailed",
    "analyse_canary",
    "compare_groups",
    "group_stats",
    "make_reader",
    "prometheus_metrics",
    "ratio",
]


class CanaryFailed(RolloutError):
    """The analysis completed and its verdict is ``fail``; ``details`` hold the whole result."""


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def make_reader(sockets, backend, connect=None):
    """Default ``read()``: ``{socket: {server: server_dict}}`` of ``backend`` on every socket.

    One ``show stat`` and one ``show servers state`` per socket and read; the server dicts are
    those of :func:`HAProxyRuntime.get_backends` (``responses``, ``total_sessions``,
    ``response_time_ms``, ``healthy``, ``admin_state``...).
    """
    addresses = validate_sockets(sockets)
    validate_name(backend, "backend")
    connect = connect or HAProxyRuntime
    runtimes = [connect(address.text) for address in addresses]

    def read():
        return {runtime.address: runtime.get_backends(backend)[backend]["servers"] for runtime in runtimes}

    return read


# --------------------------------------------------------------------------------------------
# Arithmetic
# --------------------------------------------------------------------------------------------


def _count(value):
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _delta(start, end):
    """Counter increase; a counter that went backwards was reset, so its end value is the increase."""
    start, end = _count(start), _count(end)
    return end - start if end >= start else end


def ratio(canary, baseline):
    """``canary / baseline``; with a zero baseline: ``inf`` if ``canary`` > 0, else ``1.0``."""
    if baseline is None or canary is None:
        return None
    if baseline == 0:
        return math.inf if canary > 0 else 1.0
    return canary / baseline


def in_rotation(server):
    """Takes new traffic: admin state ready and status ``UP`` or ``no check``."""
    return server.get("admin_state") == "ready" and bool(server.get("healthy"))


def group_stats(start, end, members):
    """Sum the deltas of ``members`` (``{socket: set(server names)}``) between two snapshots.

    The response time is HAProxy's ``rtime`` at the end (an average over the last 1024 requests),
    weighted by each server's request delta on each socket.
    """
    responses = dict.fromkeys(RESPONSE_CLASSES, 0)
    sessions = 0
    weighted = 0.0
    weight = 0
    for sock, names in members.items():
        for name in names:
            before = start.get(sock, {}).get(name)
            after = end.get(sock, {}).get(name)
            if before is None or after is None:
                continue
            requests = 0
            for cls in RESPONSE_CLASSES:
                delta = _delta((before.get("responses") or {}).get(cls), (after.get("responses") or {}).get(cls))
                responses[cls] += delta
                requests += delta
            sessions += _delta(before.get("total_sessions"), after.get("total_sessions"))
            rtime = after.get("response_time_ms")
            if requests and isinstance(rtime, (int, float)) and not isinstance(rtime, bool):
                weighted += rtime * requests
                weight += requests
    requests = sum(responses.values())
    return {
        "requests": requests,
        "responses": responses,
        "errors": responses["5xx"],
        "sessions": sessions,
        "error_rate": responses["5xx"] / requests if requests else None,
        "latency_ms": round(weighted / weight, 3) if weight else None,
    }


def _check(value, threshold):
    return None if value is None else value <= threshold


def compare_groups(
    canary, baseline, max_error_rate, max_error_rate_ratio, max_latency_increase, latency_floor_ms, min_requests
):
    """Metrics (``{name: {canary, baseline, value, threshold, passed}}``) from two group stats.

    ``passed`` is None when a value cannot be computed (no request at all in a group).
    """
    c_rate = canary["error_rate"]
    b_rate = baseline["error_rate"]
    c_lat = canary["latency_ms"]
    b_lat = baseline["latency_ms"]
    rate_ratio = ratio(c_rate, b_rate)
    if c_lat is None or b_lat is None:
        increase = None
    else:
        base = max(b_lat, latency_floor_ms)
        increase = (c_lat - b_lat) / base if base > 0 else ratio(c_lat, 0) - 1.0
    return {
        "requests": {
            "canary": canary["requests"],
            "baseline": baseline["requests"],
            "value": canary["requests"],
            "threshold": min_requests,
            "passed": canary["requests"] >= min_requests,
        },
        "error_rate": {
            "canary": c_rate,
            "baseline": b_rate,
            "value": c_rate,
            "threshold": max_error_rate,
            "passed": _check(c_rate, max_error_rate),
        },
        "error_rate_ratio": {
            "canary": c_rate,
            "baseline": b_rate,
            "value": rate_ratio,
            "threshold": max_error_rate_ratio,
            "passed": _check(rate_ratio, max_error_rate_ratio),
        },
        "latency_increase": {
            "canary": c_lat,
            "baseline": b_lat,
            "value": None if increase is None else round(increase, 4),
            "threshold": max_latency_increase,
            "passed": _check(increase, max_latency_increase),
        },
    }


# --------------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------------


def render_query(template, server):
    """Replace the literal ``{server}`` (PromQL's own braces are left alone)."""
    return template.replace("{server}", server)


def _query_url(base, query):
    return "%s/api/v1/query?%s" % (base.rstrip("/"), urlencode({"query": query}))


def _instant_value(fetch, base, query):
    """Sum of the samples of an instant query; an empty result is 0, NaN samples are skipped."""
    url = _query_url(base, query)
    try:
        status, body = fetch(url)
    except RolloutError:
        raise
    except Exception as exc:
        raise RolloutError("Prometheus query %r at %s failed: %s." % (query, base, exc)) from exc
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if status != 200 or not isinstance(doc, dict) or doc.get("status") != "success":
        error = doc.get("error") if isinstance(doc, dict) else text.strip()[:200]
        raise RolloutError("Prometheus at %s answered %s to query %r: %s" % (base, status, query, error))
    data = doc.get("data") or {}
    kind = data.get("resultType")
    result = data.get("result")
    try:
        if kind == "scalar":
            samples = [float(result[1])]
        elif kind == "vector":
            samples = [float(series["value"][1]) for series in result or []]
        else:
            raise ValueError("result type %r" % (kind,))
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise RolloutError(
            "Unexpected Prometheus answer to query %r (%s): use a query that returns an instant vector or a scalar."
            % (query, exc)
        ) from exc
    return sum(value for value in samples if not math.isnan(value))


def prometheus_metrics(fetch, base, queries, canary, baseline, max_ratio):
    """Evaluate each query template for every server; compare the canary mean with the baseline mean.

    :returns: ``{"prometheus_<name>": {canary, baseline, value (ratio), threshold, passed, queries}}``
    """
    metrics = {}
    for name in sorted(queries):
        template = queries[name]
        per_group = {}
        rendered = {}
        for group, servers in (("canary", canary), ("baseline", baseline)):
            values = []
            for server in servers:
                query = render_query(template, server)
                rendered[server] = query
                values.append(_instant_value(fetch, base, query))
            per_group[group] = sum(values) / len(values) if values else None
        value = ratio(per_group["canary"], per_group["baseline"])
        metrics["prometheus_" + name] = {
            "canary": per_group["canary"],
            "baseline": per_group["baseline"],
            "value": value,
            "threshold": max_ratio,
            "passed": _check(value, max_ratio),
            "queries": rendered,
        }
    return metrics


# --------------------------------------------------------------------------------------------
# The analysis
# --------------------------------------------------------------------------------------------


def _number(name, value, minimum=0, strict=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValidationError("%s must be a number, got %r." % (name, value))
    if value < minimum or (strict and value == minimum):
        raise ValidationError(
            "%s must be %s %s, got %r." % (name, "more than" if strict else "at least", minimum, value)
        )
    return value


def _validate(backend, canary, window, max_window, interval, on_inconclusive, thresholds, queries, prometheus_url):
    validate_name(backend, "backend")
    if not canary or not isinstance(canary, (list, tuple)):
        raise ValidationError("canary is empty: name at least one server of backend %s." % (backend,))
    for name in canary:
        validate_name(name, "canary server")
    if len(set(canary)) != len(canary):
        raise ValidationError("canary lists a server twice: %s." % ", ".join(canary))
    _number("window", window, 0, strict=True)
    _number("max_window", max_window, window)
    if interval is not None:
        _number("interval", interval, 0)
    if on_inconclusive not in ON_INCONCLUSIVE_CHOICES:
        raise ValidationError(
            "Invalid on_inconclusive %r: use one of %s." % (on_inconclusive, ", ".join(ON_INCONCLUSIVE_CHOICES))
        )
    for key, value in thresholds.items():
        _number(key, value, 0)
    if isinstance(thresholds["min_requests"], float) and not thresholds["min_requests"].is_integer():
        raise ValidationError("min_requests must be a whole number, got %r." % (thresholds["min_requests"],))
    if queries:
        if not prometheus_url:
            raise ValidationError("prometheus_queries needs prometheus_url.")
        if not prometheus_url.startswith(("http://", "https://")):
            raise ValidationError("prometheus_url must start with http:// or https://, got %r." % (prometheus_url,))
        for name, template in queries.items():
            if not isinstance(template, str) or "{server}" not in template:
                raise ValidationError(
                    "prometheus_queries[%r] must be a PromQL string containing {server}, got %r." % (name, template)
                )


def _groups(snapshot, backend, canary):
    """``(canary members, baseline members, baseline names)``; members are ``{socket: set(names)}``."""
    known = set()
    for servers in snapshot.values():
        known.update(servers)
    unknown = [name for name in canary if name not in known]
    if unknown:
        raise NotFoundError(
            "Backend %s has no server %s on any socket (it has: %s). Check canary."
            % (backend, ", ".join(unknown), ", ".join(sorted(known)) or "no servers"),
            canary=list(canary),
        )
    canary_members = {}
    baseline_members = {}
    rotating = []
    for sock, servers in snapshot.items():
        canary_members[sock] = {name for name in canary if name in servers and in_rotation(servers[name])}
        rotating.extend(canary_members[sock])
        baseline_members[sock] = {
            name for name, server in servers.items() if name not in canary and in_rotation(server)
        }
    if not rotating:
        states = [
            "%s: %s" % (sock, ", ".join("%s %s" % (n, servers[n].get("status")) for n in canary if n in servers))
            for sock, servers in snapshot.items()
        ]
        raise RolloutError(
            "Canary %s is not in rotation on any socket (%s): it would receive no traffic. Put it in rotation "
            "(ready and healthy) before analysing it." % (", ".join(canary), "; ".join(states)),
            canary=list(canary),
        )
    baseline = sorted(set().union(*baseline_members.values()))
    if not baseline:
        raise RolloutError(
            "Backend %s has no other server in rotation to compare canary %s with; canary analysis needs a baseline."
            % (backend, ", ".join(canary)),
            canary=list(canary),
            baseline=[],
        )
    return canary_members, baseline_members, baseline


def _fmt(value):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return ("%.4f" % value).rstrip("0").rstrip(".") or "0"
    return str(value)


def _failure_lines(metrics):
    lines = []
    for name, metric in metrics.items():
        if name == "requests" or metric["passed"] is not False:
            continue
        text = "%s: canary %s, baseline %s" % (name, _fmt(metric["canary"]), _fmt(metric["baseline"]))
        if name in ("error_rate_ratio", "latency_increase") or name.startswith("prometheus_"):
            text += ", %s %s" % ("increase" if name == "latency_increase" else "ratio", _fmt(metric["value"]))
        text += ", threshold %s" % _fmt(metric["threshold"])
        lines.append(text)
    return lines


def analyse_canary(
    backend,
    canary,
    read,
    window=DEFAULTS["window"],
    max_window=None,
    interval=None,
    max_error_rate=DEFAULTS["max_error_rate"],
    max_error_rate_ratio=DEFAULTS["max_error_rate_ratio"],
    max_latency_increase=DEFAULTS["max_latency_increase"],
    latency_floor_ms=DEFAULTS["latency_floor_ms"],
    min_requests=DEFAULTS["min_requests"],
    on_inconclusive=DEFAULTS["on_inconclusive"],
    fail_on_verdict=True,
    prometheus_url=None,
    prometheus_queries=None,
    prometheus_max_ratio=DEFAULTS["prometheus_max_ratio"],
    fetch=None,
    clock=None,
    sleep=None,
):
    """Run the analysis and return the result dict (see the canary_analysis module's RETURN).

    :param read: ``callable() -> {socket: {server: server_dict}}`` (see :func:`make_reader`).
    :param interval: when set, sleep in steps of this many seconds and record a progress sample
        after each step (``samples`` in the result); otherwise sleep the window at once.
    :param fetch: ``callable(url) -> (status, body)`` for Prometheus; needed with queries.
    :raises ValidationError: bad input (nothing is read).
    :raises NotFoundError: an unknown canary server.
    :raises CanaryFailed: the verdict is ``fail`` and ``fail_on_verdict`` is true.
    """
    if max_window is None and isinstance(window, (int, float)) and not isinstance(window, bool):
        max_window = 3 * window
    queries = dict(prometheus_queries or {})
    thresholds = {
        "max_error_rate": max_error_rate,
        "max_error_rate_ratio": max_error_rate_ratio,
        "max_latency_increase": max_latency_increase,
        "latency_floor_ms": latency_floor_ms,
        "min_requests": min_requests,
        "prometheus_max_ratio": prometheus_max_ratio,
    }
    _validate(backend, canary, window, max_window, interval, on_inconclusive, thresholds, queries, prometheus_url)
    if queries and fetch is None:
        raise ValidationError("prometheus_queries needs a fetch function.")
    canary = list(canary)
    clock = clock or time.monotonic
    sleep = sleep or time.sleep

    start = read()
    started = clock()
    canary_members, baseline_members, baseline = _groups(start, backend, canary)
    samples = []

    def wait(seconds):
        deadline = clock() + seconds
        while True:
            left = deadline - clock()
            if left <= 1e-9:
                return
            sleep(min(left, interval) if interval else left)
            if interval:
                snap = read()
                c = group_stats(start, snap, canary_members)
                b = group_stats(start, snap, baseline_members)
                samples.append(
                    {
                        "elapsed": round(clock() - started, 3),
                        "canary_requests": c["requests"],
                        "canary_errors": c["errors"],
                        "baseline_requests": b["requests"],
                        "baseline_errors": b["errors"],
                    }
                )

    target = float(window)
    extensions = 0
    while True:
        wait(target - (clock() - started))
        end = read()
        elapsed = clock() - started
        c_stats = group_stats(start, end, canary_members)
        b_stats = group_stats(start, end, baseline_members)
        enough = c_stats["requests"] >= min_requests
        if enough or on_inconclusive != "extend" or target >= max_window - 1e-9:
            break
        target = min(target + float(window), float(max_window))
        extensions += 1

    metrics = compare_groups(
        c_stats, b_stats, max_error_rate, max_error_rate_ratio, max_latency_increase, latency_floor_ms, min_requests
    )
    if queries:
        metrics.update(prometheus_metrics(fetch, prometheus_url, queries, canary, baseline, prometheus_max_ratio))

    window_text = "%.1fs window" % elapsed
    names = ", ".join(canary)
    if not enough:
        reason = "canary %s served %d request(s) in the %s, fewer than min_requests %d" % (
            names,
            c_stats["requests"],
            window_text,
            min_requests,
        )
        if on_inconclusive == "pass":
            verdict = "pass"
            msg = "Canary analysis passed by on_inconclusive=pass: %s." % reason
        elif on_inconclusive == "fail":
            verdict = "fail"
            msg = "Canary analysis failed (on_inconclusive=fail): %s." % reason
        else:
            verdict = "inconclusive"
            msg = "Canary analysis is inconclusive: %s (window extended to max_window %ss)." % (
                reason,
                _fmt(float(max_window)),
            )
    else:
        failures = _failure_lines(metrics)
        if failures:
            verdict = "fail"
            msg = "Canary analysis failed for %s (backend %s, %s, %d canary / %d baseline requests): %s." % (
                names,
                backend,
                window_text,
                c_stats["requests"],
                b_stats["requests"],
                "; ".join(failures),
            )
        else:
            verdict = "pass"
            msg = "Canary analysis passed for %s against %s (backend %s, %s, %d canary / %d baseline requests)." % (
                names,
                ", ".join(baseline),
                backend,
                window_text,
                c_stats["requests"],
                b_stats["requests"],
            )

    result = {
        "changed": False,
        "verdict": verdict,
        "msg": msg,
        "metrics": metrics,
        "groups": {"canary": c_stats, "baseline": b_stats},
        "window": round(elapsed, 3),
        "extensions": extensions,
        "canary": canary,
        "baseline": baseline,
        "backend": backend,
        "sockets": list(start),
    }
    if interval:
        result["samples"] = samples
    if verdict == "fail" and fail_on_verdict:
        raise CanaryFailed(msg, **{k: v for k, v in result.items() if k != "msg"})
    return result
