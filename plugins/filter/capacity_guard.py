# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: capacity_guard
short_description: Would draining a batch leave enough servers in rotation?
version_added: 0.1.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - Takes the registered result of M(zerodowntime.rollout.haproxy_server_info) (looped over LB hosts or not)
    and decides, for every LB socket, whether taking O(batch) out of the backend keeps at least
    O(min_healthy) servers in rotation (admin state ready and steadily UP or C(no check)).
  - For AWS, takes instead a result of M(zerodowntime.rollout.elbv2_target) (every target of each target group
    the target is in, from RV(zerodowntime.rollout.elbv2_target#module:target_groups[].group_targets); in rotation
    means C(healthy)) or of M(amazon.aws.elb_classic_lb_info) (in rotation means C(InService)); then O(backend) is
    ignored and O(batch) lists target or instance ids.
options:
  _input:
    description:
      - A registered result of M(zerodowntime.rollout.haproxy_server_info), or its C(results) list.
      - Or a result of M(zerodowntime.rollout.elbv2_target) or M(amazon.aws.elb_classic_lb_info).
    type: raw
    required: true
  backend:
    description: Backend name (HAProxy). For M(amazon.aws.elb_classic_lb_info), a list of the ELB names that count.
    type: raw
    required: true
  batch:
    description: Server names (AWS, target or instance ids) that will be out of rotation together (the current batch).
    type: list
    elements: str
    required: true
  min_healthy:
    description: A count (C(2)) or a percentage of the backend's servers (C(50%), rounded up).
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Refuse to drain when fewer than half the servers would remain
  ansible.builtin.assert:
    that: verdict.ok
    fail_msg: "{{ verdict.msg }}"
  vars:
    verdict: "{{ info | zerodowntime.rollout.capacity_guard('app', ['web1'], '50%') }}"
"""

RETURN = r"""
_value:
  description: C(ok) (bool), C(msg) (the verdict in words) and C(lbs), one dict per LB socket with C(where),
    C(total), C(remaining), C(required), C(down) (servers already out of rotation) and C(ok).
  type: dict
"""

from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.module_utils._capacity import (  # noqa: E402
    evaluate,
    evaluate_aws,
    haproxy_rows,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError  # noqa: E402


def capacity_guard(data, backend, batch, min_healthy):
    try:
        if isinstance(data, dict) and ("elbs" in data or "target_groups" in data):
            names = list(backend) if isinstance(backend, (list, tuple)) else None
            return evaluate_aws(data, batch, min_healthy, names)
        return evaluate(haproxy_rows(data, backend), batch, min_healthy)
    except RolloutError as exc:
        raise AnsibleFilterError(exc.msg) from None


class FilterModule:
    def filters(self):
        return {"capacity_guard": capacity_guard}
