# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # What the AWS load balancer modules (elbv2_target, elb_classic_instance) share: the pace of their polls.
    DOCUMENTATION = r"""
options:
  poll_interval:
    description:
      - Seconds before the second poll. Later polls are 1.5 times further apart each, with up to 10% jitter, and
        at most 15 seconds apart (or O(poll_interval) if that is larger).
    type: float
    default: 2.0
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
"""
