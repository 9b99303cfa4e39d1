# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Canary analysis, arithmetic: what a group of servers served between two snapshots of HAProxy's counters.

HAProxy's counters are cumulative; a counter that went backwards (HAProxy reloaded during the window) counts
from zero, so its end value is taken as the increase.
"""

import math

from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.parse import in_rotation

RESPONSE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")

__all__ = ["RESPONSE_CLASSES", "group_stats", "in_rotation", "ratio"]


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
