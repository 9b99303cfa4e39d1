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
* An error metric above its threshold only fails when the excess is statistically significant at
  ``confidence`` (default 0.95), so that a handful of 5xx in a small window is not mistaken for a
  bad release, while a release that really is worse fails as soon as the window holds enough
  requests to show it:

  - ``error_rate``: one-sided exact binomial test of the canary's 5xx count against
    ``max_error_rate`` (``p_value`` = P(X >= errors) for X ~ Binomial(requests, max_error_rate)).
  - ``error_rate_ratio``: the conditional test for two Poisson rates: of all the 5xx responses of
    both groups, the canary's share is Binomial(all 5xx, r n_c / (r n_c + n_b)) when the canary's
    rate is exactly r = ``max_error_rate_ratio`` times the baseline's.

  ``confidence=0`` turns the tests off: any excess fails. With ``on_inconclusive=extend`` the
  window is also extended while an excess is not significant yet (``settled`` is false).
* The error budget is ``max_error_rate`` x the canary's requests: the 5xx responses the canary was
  allowed in the window; the result reports it with the errors observed and the share consumed.
* ``latency_increase`` is relative: ``(canary - baseline) / max(baseline, latency_floor_ms)``.
  The floor keeps sub-millisecond baselines (HAProxy counts whole milliseconds) from turning a
  1 ms difference into an infinite increase. HAProxy only gives an average (``rtime``), so there
  is no significance test for latency: the threshold and the floor absorb the noise.
* A counter that went backwards (HAProxy reloaded during the window) counts from zero: its end
  value is taken as the delta.
* Instead of reading the sockets itself, the analysis can take ``counters`` read elsewhere (by
  haproxy_server_info on each load balancer host): the role does that to sum the counters of
  load balancers that are only reachable from different hosts.
"""

import json
import math
import time
from urllib.parse import urlencode, urlsplit

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
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_data, redact_text, redact_url

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
    "confidence": 0.95,
}

# Metrics whose failure makes the verdict "fail", in the order they are reported.
CHECKED_METRICS = ("error_rate", "error_rate_ratio", "latency_increase")

__all__ = [
    "DEFAULTS",
    "ON_INCONCLUSIVE_CHOICES",
    "VERDICTS",
    "CanaryFailed",
    "analyse_canary",
    "binomial_sf",
    "budget_text",
    "compare_groups",
    "counters_snapshot",
    "error_budget",
    "error_rate_p_value",
    "group_stats",
    "make_reader",
    "prometheus_metrics",
    "rate_ratio_p_value",
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


def counters_snapshot(results, backend, what="counters"):
    """``{label: {server: server_dict}}`` from haproxy_server_info results read elsewhere.

    :param results: a list with one haproxy_server_info result per load balancer host (each a dict
        with its ``sockets`` list), as registered by a loop over the hosts. A result's ``item`` (the
        loop item, a host name) labels its sockets, so that the same socket path on two hosts
        counts twice, as two load balancers; without a string ``item``, results are numbered.
    :raises ValidationError: something that is not such a result, or a socket read twice.
    :raises NotFoundError: a socket that does not know ``backend``.
    """
    if not isinstance(results, (list, tuple)) or not results:
        raise ValidationError(
            "%s must be a non-empty list of haproxy_server_info results (one per load balancer host), got %r."
            % (what, results if not isinstance(results, (list, tuple)) else "an empty list")
        )
    snapshot = {}
    for index, result in enumerate(results):
        if not isinstance(result, dict) or not isinstance(result.get("sockets"), list):
            reason = ""
            if isinstance(result, dict) and (result.get("failed") or result.get("skipped")):
                reason = " (that read %s: %s)" % (
                    "failed" if result.get("failed") else "was skipped",
                    result.get("msg") or result.get("skip_reason") or "no message",
                )
            raise ValidationError(
                "%s[%d] is not a haproxy_server_info result: it has no 'sockets' list%s." % (what, index, reason)
            )
        host = result.get("item")
        prefix = "#%d " % (index + 1) if len(results) > 1 else ""
        if isinstance(host, str) and host:
            prefix = host + " "
        for entry in result["sockets"]:
            entry = entry if isinstance(entry, dict) else {}
            label = prefix + str(entry.get("socket"))
            backends = entry.get("backends")
            servers = ((backends or {}).get(backend) or {}).get("servers") if isinstance(backends, dict) else None
            if not isinstance(servers, dict):
                raise NotFoundError(
                    "%s: HAProxy at %s has no backend %s in the counters given." % (what, label, backend),
                    socket=label,
                )
            if label in snapshot:
                raise ValidationError(
                    "%s reads %s twice: list each load balancer (host and socket) once, or its traffic counts twice."
                    % (what, label)
                )
            snapshot[label] = servers
    return snapshot


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


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def binomial_sf(k, n, p):
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``, exact to double precision.

    The smaller tail is summed term by term from its end nearest the mean, where the terms are
    largest, so that tiny upper tails (the interesting case) keep their precision.
    """
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)

    def pmf(i):
        return math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)

    total = 0.0
    if k > n * p:
        # Upper tail: the terms fall from k upwards.
        i, term = k, pmf(k)
        while i <= n:
            total += term
            if term <= total * 1e-17:
                break
            term *= (n - i) / (i + 1) * p / (1.0 - p)
            i += 1
        return min(1.0, total)
    # 1 - P(X <= k - 1): the terms fall from k - 1 downwards.
    i, term = k - 1, pmf(k - 1)
    while i >= 0:
        total += term
        if term <= total * 1e-17:
            break
        term *= i / (n - i + 1) * (1.0 - p) / p
        i -= 1
    return max(0.0, 1.0 - total)


def error_rate_p_value(errors, requests, max_error_rate):
    """Chance of at least ``errors`` 5xx in ``requests`` if the canary's true rate were ``max_error_rate``."""
    return binomial_sf(errors, requests, max_error_rate)


def rate_ratio_p_value(canary_errors, canary_requests, baseline_errors, baseline_requests, max_ratio):
    """Chance of the canary holding at least its share of all the 5xx if its rate were ``max_ratio`` x the baseline's.

    The conditional test for two Poisson rates: given all the 5xx responses of both groups, the
    canary's count is Binomial(all, r n_c / (r n_c + n_b)) under that hypothesis.
    """
    total = canary_errors + baseline_errors
    if canary_errors <= 0:
        return 1.0
    weight = max_ratio * canary_requests
    share = weight / (weight + baseline_requests) if weight + baseline_requests > 0 else 1.0
    return binomial_sf(canary_errors, total, share)


def error_budget(requests, errors, max_error_rate):
    """The canary's error budget for the window: ``max_error_rate`` x its requests, and how much of it was used."""
    allowed = requests * max_error_rate
    consumed = errors / allowed if allowed > 0 else (math.inf if errors else 0.0)
    return {
        "max_error_rate": max_error_rate,
        "requests": requests,
        "allowed": round(allowed, 3),
        "errors": errors,
        "remaining": round(allowed - errors, 3),
        "consumed": consumed if math.isinf(consumed) else round(consumed, 4),
    }


def budget_text(budget):
    """The error budget in words, for messages."""
    if math.isinf(budget["consumed"]):
        used = "exceeded (none allowed)"
    else:
        used = "%s%% used" % _fmt(round(budget["consumed"] * 100, 1))
    return "error budget: %d 5xx of %s allowed (max_error_rate %s x %d canary requests), %s" % (
        budget["errors"],
        _fmt(float(budget["allowed"])),
        _fmt(budget["max_error_rate"]),
        budget["requests"],
        used,
    )


def _check(value, threshold):
    return None if value is None else value <= threshold


def _judge(value, threshold, p_value, confidence):
    """Within the threshold, or above it by an amount that is not significant at ``confidence``."""
    if value is None:
        return None
    if value <= threshold:
        return True
    if not confidence:
        return False
    return p_value >= 1.0 - confidence


def compare_groups(
    canary,
    baseline,
    max_error_rate,
    max_error_rate_ratio,
    max_latency_increase,
    latency_floor_ms,
    min_requests,
    confidence=DEFAULTS["confidence"],
):
    """Metrics (``{name: {canary, baseline, value, threshold, passed}}``) from two group stats.

    ``passed`` is None when a value cannot be computed (no request at all in a group). The error
    metrics also carry ``p_value``: the chance of an excess at least this large if the canary sat
    exactly at the threshold; an excess fails only when ``p_value < 1 - confidence``.
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
    rate_p = None if c_rate is None else error_rate_p_value(canary["errors"], canary["requests"], max_error_rate)
    ratio_p = None
    if rate_ratio is not None:
        ratio_p = rate_ratio_p_value(
            canary["errors"], canary["requests"], baseline["errors"], baseline["requests"], max_error_rate_ratio
        )
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
            "p_value": rate_p,
            "passed": _judge(c_rate, max_error_rate, rate_p, confidence),
        },
        "error_rate_ratio": {
            "canary": c_rate,
            "baseline": b_rate,
            "value": rate_ratio,
            "threshold": max_error_rate_ratio,
            "p_value": ratio_p,
            "passed": _judge(rate_ratio, max_error_rate_ratio, ratio_p, confidence),
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
    # What reaches a message: the URL without user info or query, and the peer's words redacted too (an
    # exception or an error page may quote the URL it was given, credentials and all).
    shown = redact_url(base)
    try:
        status, body = fetch(url)
    except RolloutError as exc:
        exc.msg = redact_text(exc.msg)
        exc.details = redact_data(exc.details)
        raise
    except Exception as exc:
        raise RolloutError("Prometheus query %r at %s failed: %s." % (query, shown, redact_text(str(exc)))) from None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if status != 200 or not isinstance(doc, dict) or doc.get("status") != "success":
        error = doc.get("error") if isinstance(doc, dict) else text.strip()
        raise RolloutError(
            "Prometheus at %s answered %s to query %r: %s" % (shown, status, query, redact_text(str(error))[:200])
        )
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
            % (query, redact_text(str(exc))[:200])
        ) from None
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
    confidence = thresholds.pop("confidence")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 <= confidence < 1:
        raise ValidationError(
            "confidence must be at least 0 and less than 1 (0.95 is 95%%; 0 turns the significance tests off), got %r."
            % (confidence,)
        )
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
        if not isinstance(prometheus_url, str) or not prometheus_url.startswith(("http://", "https://")):
            raise ValidationError(
                "prometheus_url must start with http:// or https://, got %r." % (redact_text(prometheus_url),)
            )
        try:
            parts = urlsplit(prometheus_url)
            valid = bool(parts.hostname) and (parts.port is None or parts.port > 0)
        except ValueError:
            valid = False
        if not valid:
            # Typically a password with a raw '/', '?' or '#': the URL code would cut it and show a piece.
            raise ValidationError(
                "prometheus_url %s is not a valid URL (host and port): percent-encode any '/', '?', '#', '@' "
                "or ':' in its user name or password (e.g. %%2F for '/')." % (redact_url(prometheus_url),)
            )
        for name, template in queries.items():
            if not isinstance(template, str) or "{server}" not in template:
                raise ValidationError(
                    "prometheus_queries[%r] must be a PromQL string containing {server}, got %r." % (name, template)
                )


def _groups(snapshot, backend, canary, exclude=()):
    """``(canary members, baseline members, baseline names)``; members are ``{socket: set(names)}``. Servers in
    ``exclude`` (surge hosts already on the new release) belong to neither group."""
    exclude = set(exclude or ())
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
            name
            for name, server in servers.items()
            if name not in canary and name not in exclude and in_rotation(server)
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


def _settled(c_stats, metrics, min_requests):
    """False while more traffic could change the verdict: too few canary requests, or an error metric
    above its threshold by an amount that is not significant (yet)."""
    if c_stats["requests"] < min_requests:
        return False
    for metric in metrics.values():
        value = metric.get("value")
        excess = value is not None and value > metric["threshold"]
        if excess and metric.get("p_value") is not None and metric["passed"] is True:
            return False
    return True


def _fmt(value):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return ("%.4f" % value).rstrip("0").rstrip(".") or "0"
    return str(value)


def _p(value):
    return "%.2g" % value


def _metric_text(name, metric):
    text = "%s: canary %s, baseline %s" % (name, _fmt(metric["canary"]), _fmt(metric["baseline"]))
    if name in ("error_rate_ratio", "latency_increase") or name.startswith("prometheus_"):
        text += ", %s %s" % ("increase" if name == "latency_increase" else "ratio", _fmt(metric["value"]))
    text += ", threshold %s" % _fmt(metric["threshold"])
    if metric.get("p_value") is not None:
        text += ", p=%s" % _p(metric["p_value"])
    return text


def _failure_lines(metrics):
    return [
        _metric_text(name, metric)
        for name, metric in metrics.items()
        if name != "requests" and metric["passed"] is False
    ]


def _noise_lines(metrics, confidence):
    """Error metrics above their threshold that passed because the excess is not significant."""
    lines = []
    for name, metric in metrics.items():
        value = metric.get("value")
        if metric.get("p_value") is None or metric["passed"] is not True or value is None:
            continue
        if value > metric["threshold"]:
            lines.append(
                "%s %s above threshold %s is not significant (p=%s >= %s)"
                % (name, _fmt(value), _fmt(metric["threshold"]), _p(metric["p_value"]), _fmt(round(1 - confidence, 6)))
            )
    return lines


def analyse_canary(
    backend,
    canary,
    read=None,
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
    confidence=DEFAULTS["confidence"],
    counters=None,
    fetch=None,
    clock=None,
    sleep=None,
    exclude=(),
):
    """Run the analysis and return the result dict (see the canary_analysis module's RETURN).

    :param exclude: servers that are neither canary nor baseline (surge hosts, already on the new release).

    :param read: ``callable() -> {socket: {server: server_dict}}`` (see :func:`make_reader`).
    :param counters: instead of ``read``: ``{"start": [...], "end": [...]}``, haproxy_server_info
        results read elsewhere (see :func:`counters_snapshot`). Nothing is read and nothing waits;
        ``window`` is taken as the time between the two readings, and ``on_inconclusive=extend``
        returns ``inconclusive`` for the caller to read again later.
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
        "confidence": confidence,
    }
    _validate(backend, canary, window, max_window, interval, on_inconclusive, thresholds, queries, prometheus_url)
    if queries and fetch is None:
        raise ValidationError("prometheus_queries needs a fetch function.")
    if counters is not None:
        if interval is not None:
            raise ValidationError("interval cannot be used with counters: nothing is read during the window.")
        if not isinstance(counters, dict) or set(counters) != {"start", "end"}:
            raise ValidationError("counters must be a dict with exactly 'start' and 'end', got %r." % (counters,))
    elif read is None:
        raise ValidationError("canary analysis needs a read function or counters.")
    canary = list(canary)

    def measure(start, end):
        c_stats = group_stats(start, end, canary_members)
        b_stats = group_stats(start, end, baseline_members)
        metrics = compare_groups(
            c_stats,
            b_stats,
            max_error_rate,
            max_error_rate_ratio,
            max_latency_increase,
            latency_floor_ms,
            min_requests,
            confidence,
        )
        return c_stats, b_stats, metrics, _settled(c_stats, metrics, min_requests)

    samples = []
    extensions = 0
    if counters is not None:
        start = counters_snapshot(counters["start"], backend, "counters.start")
        end = counters_snapshot(counters["end"], backend, "counters.end")
        if list(start) != list(end):
            raise ValidationError(
                "counters.start and counters.end must read the same load balancers in the same order, got %s and %s."
                % (", ".join(start), ", ".join(end))
            )
        canary_members, baseline_members, baseline = _groups(start, backend, canary, exclude)
        elapsed = float(window)
        c_stats, b_stats, metrics, settled = measure(start, end)
    else:
        clock = clock or time.monotonic
        sleep = sleep or time.sleep
        start = read()
        started = clock()
        canary_members, baseline_members, baseline = _groups(start, backend, canary, exclude)

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
        while True:
            wait(target - (clock() - started))
            end = read()
            elapsed = clock() - started
            c_stats, b_stats, metrics, settled = measure(start, end)
            if settled or on_inconclusive != "extend" or target >= max_window - 1e-9:
                break
            target = min(target + float(window), float(max_window))
            extensions += 1

    enough = c_stats["requests"] >= min_requests
    # The canary's share of the requests in the window: a weighted canary (rolling_update_canary_weight) takes less
    # than its round-robin share, and the tests count on the requests it actually served, not on the window's length.
    served = c_stats["requests"] + b_stats["requests"]
    share = round(c_stats["requests"] / served, 4) if served else None
    if queries:
        metrics.update(prometheus_metrics(fetch, prometheus_url, queries, canary, baseline, prometheus_max_ratio))
    budget = error_budget(c_stats["requests"], c_stats["errors"], max_error_rate)

    window_text = "%.1fs window" % elapsed
    if extensions:
        window_text += " extended %d time(s)" % extensions
    names = ", ".join(canary)
    if not enough:
        reason = "(not enough requests: %d < min_requests %d): canary %s served %d request(s) in the %s" % (
            c_stats["requests"],
            min_requests,
            names,
            c_stats["requests"],
            window_text,
        )
        if on_inconclusive == "pass":
            verdict = "pass"
            msg = "Canary analysis passed by on_inconclusive=pass although it is inconclusive %s" % reason
        elif on_inconclusive == "fail":
            verdict = "fail"
            msg = "Canary analysis failed by on_inconclusive=fail: it is inconclusive %s" % reason
        else:
            verdict = "inconclusive"
            msg = "Canary analysis is inconclusive %s" % reason
            if counters is None:
                msg += ", up to max_window %ss" % _fmt(float(max_window))
        msg += "; %s." % budget_text(budget)
    else:
        failures = _failure_lines(metrics)
        counts = "backend %s, %s, %d canary / %d baseline requests, canary share %s%%" % (
            backend,
            window_text,
            c_stats["requests"],
            b_stats["requests"],
            _fmt(None if share is None else round(100 * share, 1)),
        )
        if failures:
            verdict = "fail"
            msg = "Canary analysis failed for %s (%s): %s; %s." % (
                names,
                counts,
                "; ".join(failures),
                budget_text(budget),
            )
        else:
            verdict = "pass"
            msg = "Canary analysis passed for %s against %s (%s); %s" % (
                names,
                ", ".join(baseline),
                counts,
                budget_text(budget),
            )
            noise = _noise_lines(metrics, confidence)
            if noise:
                msg += "; " + "; ".join(noise)
            msg += "."

    result = {
        "changed": False,
        "verdict": verdict,
        "msg": msg,
        "metrics": metrics,
        "error_budget": budget,
        "groups": {"canary": c_stats, "baseline": b_stats},
        "settled": settled,
        "window": round(elapsed, 3),
        "canary_share": share,
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
