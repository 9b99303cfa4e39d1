# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Canary analysis, inputs: the defaults, the choices, and the checks made before anything is read."""

import math
from urllib.parse import urlsplit

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.names import validate_name
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_text, redact_url

VERDICTS = ("pass", "fail", "inconclusive")
ON_INCONCLUSIVE_CHOICES = ("extend", "fail", "pass")

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

__all__ = ["DEFAULTS", "ON_INCONCLUSIVE_CHOICES", "VERDICTS", "number", "validate_options"]


def number(name, value, minimum=0, strict=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValidationError("%s must be a number, got %r." % (name, value))
    if value < minimum or (strict and value == minimum):
        raise ValidationError(
            "%s must be %s %s, got %r." % (name, "more than" if strict else "at least", minimum, value)
        )
    return value


def validate_options(
    backend, canary, window, max_window, interval, on_inconclusive, thresholds, queries, prometheus_url
):
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
    number("window", window, 0, strict=True)
    number("max_window", max_window, window)
    if interval is not None:
        number("interval", interval, 0)
    if on_inconclusive not in ON_INCONCLUSIVE_CHOICES:
        raise ValidationError(
            "Invalid on_inconclusive %r: use one of %s." % (on_inconclusive, ", ".join(ON_INCONCLUSIVE_CHOICES))
        )
    for key, value in thresholds.items():
        number(key, value, 0)
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
