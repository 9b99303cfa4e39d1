# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Weighted canary: the server weights that give a canary batch a set share of a backend's traffic.

Plain arithmetic, no I/O: :func:`plan_weights` takes the weights of one load balancer's servers and a
target share, and returns the new weights and the share they actually give. HAProxy weights are whole
numbers from 0 to 256 and a server takes ``weight / sum of the weights in rotation`` of the requests, so
a share is not always reachable by changing the canary's weight alone: with three other servers at
weight 1, a canary at weight 1 already takes 25 %. The other servers' weights are then multiplied by the
smallest whole factor that gets within the tolerance (their proportions stay exact), at most up to 256.
"""

import math

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.names import MAX_WEIGHT

__all__ = ["default_tolerance", "plan_weights", "refuse_distance", "validate_share"]


def validate_share(share):
    """``share`` as a float percentage, more than 0 and less than 100; ValidationError otherwise."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or math.isnan(share) or not 0 < share < 100:
        raise ValidationError(
            "Invalid canary share %r: give the percentage of the backend's traffic for the canary batch, more than 0 "
            "and less than 100 (for example 10)." % (share,)
        )
    return float(share)


def default_tolerance(share):
    """How far (in percentage points) the share may miss before the other servers' weights are scaled:
    half a point, or 5 % of the share when that is more."""
    return max(0.5, share * 0.05)


def refuse_distance(share):
    """How far the closest reachable share may miss before the plan is refused: 1 point, or a quarter of it."""
    return max(1.0, share * 0.25)


def _weight(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WEIGHT:
        raise ValidationError(
            "Server %s has weight %r; HAProxy weights are whole numbers from 0 to %d." % (name, value, MAX_WEIGHT)
        )
    return value


def _share(canary_total, others_total):
    return 100.0 * canary_total / (canary_total + others_total)


def plan_weights(weights, canary, share, rotating=None, tolerance=None, max_weight=MAX_WEIGHT):
    """New weights giving the servers in ``canary`` ``share`` percent of the traffic of one load balancer.

    :param weights: ``{server: current weight}`` of every (non-backup) server of the backend.
    :param canary: names of the canary servers; each gets the same weight.
    :param share: the target, a percentage (more than 0, less than 100).
    :param rotating: the servers that take traffic (in rotation); the share is computed over them. Default: every
        server with a weight above 0. Servers outside it are scaled like the others, so they come back in proportion.
    :param tolerance: percentage points; default :func:`default_tolerance`.
    :returns: ``{"weights": {server: new}, "share": achieved %, "target": share, "scale": factor applied to the other
        servers, "canary_weight": weight of each canary server, "changed": [servers whose weight changes]}``.
    :raises ValidationError: bad input, no canary or no other server taking traffic, or no reachable share within
        :func:`refuse_distance` of the target (nothing should be changed then).
    """
    share = validate_share(share)
    if not isinstance(weights, dict) or not weights:
        raise ValidationError("No server weights to plan from: the backend has no servers.")
    weights = {name: _weight(name, value) for name, value in weights.items()}
    canary = list(canary or [])
    if not canary:
        raise ValidationError("The canary batch is empty: name at least one server.")
    unknown = [name for name in canary if name not in weights]
    if unknown:
        raise ValidationError(
            "The backend has no server %s (it has: %s)." % (", ".join(unknown), ", ".join(sorted(weights)))
        )
    if rotating is None:
        rotating = [name for name, value in weights.items() if value > 0]
    rotating = set(rotating)
    canary_in = [name for name in canary if name in rotating]
    others = [name for name in weights if name not in canary]
    others_total = sum(weights[name] for name in others if name in rotating)
    if not canary_in:
        raise ValidationError("No canary server (%s) takes traffic: it cannot be given a share." % ", ".join(canary))
    if others_total <= 0:
        raise ValidationError(
            "No other server of the backend takes traffic (weight above 0, in rotation): the canary would take all of "
            "it, not %s%%." % _fmt(share)
        )
    if tolerance is None:
        tolerance = default_tolerance(share)
    k = len(canary_in)
    top = max([weights[name] for name in others] + [1])
    best = None
    for scale in range(1, max(1, max_weight // top) + 1):
        total = others_total * scale
        ideal = share / (100.0 - share) * total / k
        for candidate in sorted({math.floor(ideal), math.ceil(ideal)}):
            weight = min(max(int(candidate), 1), max_weight)
            achieved = _share(k * weight, total)
            error = abs(achieved - share)
            if best is None or error < best[0] - 1e-9:
                best = (error, scale, weight, achieved)
        if best[0] <= tolerance + 1e-9:
            break
    error, scale, weight, achieved = best
    if error > refuse_distance(share) + 1e-9:
        raise ValidationError(
            "Cannot give the canary %s %s%% of the traffic: HAProxy weights stop at %d, and the closest share is %s%% "
            "(canary weight %d, the other servers' weights x%d). Choose a share nearer %s%%, or change the servers' "
            "configured weights."
            % (", ".join(canary), _fmt(share), max_weight, _fmt(achieved), weight, scale, _fmt(achieved))
        )
    new = {}
    for name, value in weights.items():
        new[name] = weight if name in canary else value * scale
    return {
        "weights": new,
        "share": round(achieved, 2),
        "target": share,
        "scale": scale,
        "canary_weight": weight,
        "changed": [name for name in weights if new[name] != weights[name]],
    }


def _fmt(value):
    return ("%.2f" % value).rstrip("0").rstrip(".")
