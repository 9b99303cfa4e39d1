# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Canary analysis: compare canary servers against the rest of their HAProxy backend over a window.

``analyse_canary`` takes a snapshot of every server's counters on every load balancer, waits a
window, takes another snapshot and compares the deltas of the canary group with those of the
baseline group (the other servers of the backend that were in rotation at the start). Optionally
it also compares Prometheus instant queries evaluated for each group at the end of the window.

This file runs the window and decides the verdict; the rest of the package does one job each:
``reading`` (snapshots of the counters), ``counters`` (what a group served between two snapshots),
``stats`` (metrics, significance, error budget), ``prometheus`` (instant queries), ``options``
(defaults and input checks) and ``messages`` (numbers in words).

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

import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.counters import group_stats, in_rotation
from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.messages import (
    budget_text,
    failure_lines,
    fmt,
    noise_lines,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.options import DEFAULTS, validate_options
from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.prometheus import prometheus_metrics
from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.reading import counters_snapshot
from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.stats import compare_groups, error_budget
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    NotFoundError,
    RolloutError,
    ValidationError,
)

# Metrics whose failure makes the verdict "fail", in the order they are reported.
CHECKED_METRICS = ("error_rate", "error_rate_ratio", "latency_increase")

__all__ = ["CanaryFailed", "analyse_canary"]


class CanaryFailed(RolloutError):
    """The analysis completed and its verdict is ``fail``; ``details`` hold the whole result."""


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

    :param read: ``callable() -> {socket: {server: server_dict}}`` (see :func:`.reading.make_reader`).
    :param counters: instead of ``read``: ``{"start": [...], "end": [...]}``, haproxy_server_info
        results read elsewhere (see :func:`.reading.counters_snapshot`). Nothing is read and nothing waits;
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
    validate_options(
        backend, canary, window, max_window, interval, on_inconclusive, thresholds, queries, prometheus_url
    )
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
                msg += ", up to max_window %ss" % fmt(float(max_window))
        msg += "; %s." % budget_text(budget)
    else:
        failures = failure_lines(metrics)
        counts = "backend %s, %s, %d canary / %d baseline requests, canary share %s%%" % (
            backend,
            window_text,
            c_stats["requests"],
            b_stats["requests"],
            fmt(None if share is None else round(100 * share, 1)),
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
            noise = noise_lines(metrics, confidence)
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
