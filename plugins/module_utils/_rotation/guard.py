# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""What every load balancer's rotation shares: the capacity guard's refusal, and when there is no guard."""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError


class CapacityError(RolloutError):
    """Taking the batch out would leave too few members in rotation. Nothing was changed."""


def _no_guard(min_healthy):
    return str(min_healthy).strip() in ("0", "0%", "")
