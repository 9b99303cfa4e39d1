# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: rollout_plan
short_description: The plan of a rolling update, from what was read on each host
version_added: 0.1.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - Cuts the play's hosts into batches exactly as ansible-core does for a play's C(serial) (a number, a percentage
    of the host count rounded down but at least 1, or a list whose last value repeats; 0 or less takes every
    remaining host), so the batches are those of the C(zerodowntime.rollout.rolling_update) playbook.
  - With O(records), decides for every host whether the rollout would roll or skip it (or whether preflight would
    refuse it), shows its current release and its state on every load balancer, and gives each batch the verdict of
    the capacity guard (the same evaluation as P(zerodowntime.rollout.capacity_guard#filter)) with the whole batch
    drained. Later batches are evaluated as if the earlier ones succeeded.
  - Used by the C(zerodowntime.rollout.plan) playbook; changes nothing.
options:
  _input:
    description: The play's hosts, in play order (for example C(ansible_play_batch) in a play without C(serial)).
    type: list
    elements: str
    required: true
  serial:
    description:
      - The C(serial) of the rollout, as C(rollout_serial) gives it (V(1), V(25%), V([1, "25%", "100%"])).
      - A value that ansible-core could not use as a batch size fails the filter with an explanation.
    type: raw
    required: true
  records:
    description:
      - Host name to what the role's C(plan.yml) read on that host (C(rolling_update_plan_host)).
      - When omitted, only the batches are worked out.
    type: dict
  surge:
    description:
      - The surge hosts (C(rollout_surge_hosts)) as a dict with C(hosts) (host name to what the role's C(plan.yml)
        read on that standby host) and C(keep) (a boolean). V(null) (the default) plans a rollout without surge hosts.
      - With it, the plan lists the surge hosts, counts them in rotation from before the first batch (the capacity
        guard's verdicts include them), refuses a batch larger than their number and any load balancer but HAProxy
        (in C(preflight_errors)), and gives C(capacity_steps), the servers in rotation at every step.
    type: dict
"""

EXAMPLES = r"""
- name: Show the batches a ramp would give
  ansible.builtin.debug:
    msg: "{{ (ansible_play_batch | zerodowntime.rollout.rollout_plan([1, '25%', '100%'])).batches
             | map(attribute='hosts') | map('map', attribute='host') | map('list') | list }}"
  run_once: true
"""

RETURN = r"""
_value:
  description:
    - C(batches), one dict per batch with C(batch) (its number), C(hosts) and C(capacity).
    - Each host has C(host), C(server), C(current) (the release C(current) points at), C(target), C(ready),
      C(lbs) (C(where), C(state), C(in_rotation) per load balancer), C(action) (C(roll), C(skip), C(fail) when
      preflight refuses the host, C(unknown) when nothing was read) and C(reason).
    - C(capacity) has C(status) (C(ok), C(refuse) or C(not checked)), C(reason), C(msg) and C(lbs).
    - Also C(version), C(serial), C(host_count), C(batch_count), C(preflight_errors), C(halts_at) (the first batch
      the capacity guard refuses, or null), C(would_complete) and C(lines), the plan as text.
    - With O(surge), C(surge) (C(hosts), C(count), C(largest_batch), C(keep), C(comes_up), C(errors)) and
      C(capacity_steps), one dict per step (C(step), C(hosts), C(in_rotation) per load balancer, C(min)).
  type: dict
"""

from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._plan.build import build_plan  # noqa: E402


def rollout_plan(hosts, serial, records=None, surge=None):
    try:
        return build_plan(hosts, serial, records, surge)
    except RolloutError as exc:
        raise AnsibleFilterError(exc.msg) from None


class FilterModule:
    def filters(self):
        return {"rollout_plan": rollout_plan}
