# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Canary analysis, statistics: the metrics of the canary against the baseline, their significance, the error budget.

An error metric above its threshold only fails when the excess is significant at ``confidence``: a one-sided exact
binomial test for ``error_rate``, the conditional test for two Poisson rates for ``error_rate_ratio``.
"""

import math

from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.counters import ratio
from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.options import DEFAULTS

__all__ = [
    "binomial_sf",
    "compare_groups",
    "error_budget",
    "error_rate_p_value",
    "judge",
    "rate_ratio_p_value",
    "within",
]


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


def within(value, threshold):
    """``value <= threshold``; None when the value could not be computed (no request in a group)."""
    return None if value is None else value <= threshold


def judge(value, threshold, p_value, confidence):
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
            "passed": judge(c_rate, max_error_rate, rate_p, confidence),
        },
        "error_rate_ratio": {
            "canary": c_rate,
            "baseline": b_rate,
            "value": rate_ratio,
            "threshold": max_error_rate_ratio,
            "p_value": ratio_p,
            "passed": judge(rate_ratio, max_error_rate_ratio, ratio_p, confidence),
        },
        "latency_increase": {
            "canary": c_lat,
            "baseline": b_lat,
            "value": None if increase is None else round(increase, 4),
            "threshold": max_latency_increase,
            "passed": within(increase, max_latency_increase),
        },
    }
