# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Canary analysis, words: numbers, metrics and the error budget as the analysis's messages show them."""

import math

__all__ = ["budget_text", "failure_lines", "fmt", "noise_lines"]


def budget_text(budget):
    """The error budget in words, for messages."""
    if math.isinf(budget["consumed"]):
        used = "exceeded (none allowed)"
    else:
        used = "%s%% used" % fmt(round(budget["consumed"] * 100, 1))
    return "error budget: %d 5xx of %s allowed (max_error_rate %s x %d canary requests), %s" % (
        budget["errors"],
        fmt(float(budget["allowed"])),
        fmt(budget["max_error_rate"]),
        budget["requests"],
        used,
    )


def fmt(value):
    """A value as messages show it: ``n/a``, ``inf``, or a float with at most four decimals and no trailing zero."""
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
    text = "%s: canary %s, baseline %s" % (name, fmt(metric["canary"]), fmt(metric["baseline"]))
    if name in ("error_rate_ratio", "latency_increase") or name.startswith("prometheus_"):
        text += ", %s %s" % ("increase" if name == "latency_increase" else "ratio", fmt(metric["value"]))
    text += ", threshold %s" % fmt(metric["threshold"])
    if metric.get("p_value") is not None:
        text += ", p=%s" % _p(metric["p_value"])
    return text


def failure_lines(metrics):
    return [
        _metric_text(name, metric)
        for name, metric in metrics.items()
        if name != "requests" and metric["passed"] is False
    ]


def noise_lines(metrics, confidence):
    """Error metrics above their threshold that passed because the excess is not significant."""
    lines = []
    for name, metric in metrics.items():
        value = metric.get("value")
        if metric.get("p_value") is None or metric["passed"] is not True or value is None:
            continue
        if value > metric["threshold"]:
            lines.append(
                "%s %s above threshold %s is not significant (p=%s >= %s)"
                % (name, fmt(value), fmt(metric["threshold"]), _p(metric["p_value"]), fmt(round(1 - confidence, 6)))
            )
    return lines
