# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Canary analysis, Prometheus: instant queries per server, the canary's mean against the baseline's.

The answers come from an injected ``fetch(url) -> (status, body)``; :func:`prometheus_fetch` makes one that asks
through the collection's HTTP helper. Nothing in a message shows the URL's user info or query string.
"""

import json
import math
from urllib.parse import urlencode

from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.counters import ratio
from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.stats import within
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_data, redact_text, redact_url

AGENT = "zerodowntime.rollout-canary_analysis"
MAX_BODY = 4 * 1024 * 1024

__all__ = ["prometheus_fetch", "prometheus_metrics", "render_query"]


def prometheus_fetch(timeout, validate_certs=True):
    """``fetch(url) -> (status, body)`` for the queries: one request each, ``timeout`` its deadline."""
    # Imported here: ssl and http.client are only worth loading when there are queries to ask.
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._http import make_fetch

    def fetch(url):
        return make_fetch(url, validate_certs=validate_certs, agent=AGENT, max_body=MAX_BODY)(timeout)

    return fetch


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
            "passed": within(value, max_ratio),
            "queries": rendered,
        }
    return metrics
