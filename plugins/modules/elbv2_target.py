#!/usr/bin/python
# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: elbv2_target
short_description: Register or deregister a target in ALB/NLB target groups and wait until it is healthy or drained
version_added: 0.1.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - Registers or deregisters one target (an EC2 instance, or an IP address for IP target groups) in one or more
    Elastic Load Balancing v2 (Application or Network Load Balancer) target groups, then waits.
  - When O(target_groups) is omitted, the module finds every target group in which the target is registered (or
    still draining), so that a deregistration takes the target out of all of them.
  - All or nothing at preflight. Every target group is looked up and the target read in each before anything is
    changed. An unknown target group name, or a target that cannot belong to a group (an IP in an instance target
    group), fails the task with nothing changed anywhere.
  - With O(wait=true), O(state=registered) waits until the target is C(healthy) in every group, also when it was
    already registered (a target still C(initial) is waited for). O(state=deregistered) waits until the target has
    finished draining in every group.
  - Polls start every O(poll_interval) seconds and grow by half each time, with jitter, up to 15 seconds, so that a
    300 second drain costs about 25 DescribeTargetHealth calls per group. Throttled AWS calls are retried with a
    jittered backoff.
  - RV(registrations) lists the groups and ports the target was in, ready to register it back in exactly those.
options:
  target_id:
    description:
      - The target. An EC2 instance id for target groups of type C(instance), an IP address for type C(ip), or an
        Application Load Balancer ARN for type C(alb). Lambda target groups are not supported.
    type: str
    required: true
  port:
    description:
      - Port of the target.
      - When omitted, the target is matched on every port it is registered on in a group, and registered on the
        group's own port where it is not registered yet.
      - When given, only that port is registered or deregistered.
    type: int
  target_groups:
    description:
      - Target group names or ARNs.
      - When omitted, every target group in which the target is registered or draining is found (all pages of
        DescribeTargetGroups, then DescribeTargetHealth in each group). Discovery needs the target to be in at least
        one group when O(state=registered).
    type: list
    elements: str
  state:
    description:
      - V(registered) registers the target where it is not registered (or is draining).
      - V(deregistered) deregisters it where it is registered. A target that is draining is left to drain.
    type: str
    required: true
    choices: [registered, deregistered]
  wait:
    description:
      - Wait until the target is C(healthy) (O(state=registered)) or done draining (O(state=deregistered), that is
        gone from the group or C(unused)) in every target group.
      - Also waits when nothing had to change.
      - Not done in check mode.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait before failing. Must be more than 0; set O(wait=false) not to wait.
      - Default for V(registered) is 300.
      - Default for V(deregistered) is the longest C(deregistration_delay.timeout_seconds) of the target groups,
        plus 60. A shorter explicit timeout is used as given, with a warning.
    type: int
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - zerodowntime.rollout.aws_lb
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    details:
      - Reads the target groups and reports what would change; registers and deregisters nothing and does not wait.
  diff_mode:
    details:
      - Shows the target's health state per target group and port, before and after.
notes:
  - The module is in this collection's C(aws) action group, which extends C(amazon.aws.aws). Set the region,
    endpoint and credentials once for it and for amazon.aws's modules with C(module_defaults) on
    C(group/zerodowntime.rollout.aws). A bare C(group/aws) is ansible-core's own group (amazon.aws and community.aws
    only, no other collection can join it), so it does not reach this module.
  - RV(ignore:changed) is true only when the target was (or, in check mode, would be) registered or deregistered.
seealso:
  - module: zerodowntime.rollout.elb_classic_instance
  - name: Target health states
    description: What C(initial), C(healthy), C(unhealthy), C(draining) and C(unused) mean, with the reason codes.
    link: https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html
"""

EXAMPLES = r"""
- name: Take this instance out of every target group it is in, waiting for the drain
  zerodowntime.rollout.elbv2_target:
    target_id: "{{ ansible_facts['ec2_instance_id'] | default(instance_id) }}"
    state: deregistered
  delegate_to: localhost
  register: __out

- name: Put it back in exactly those target groups and ports, and wait until it is healthy
  zerodowntime.rollout.elbv2_target:
    target_id: "{{ instance_id }}"
    target_groups: "{{ item.target_groups }}"
    port: "{{ item.port }}"
    state: registered
  loop: "{{ __out.registrations }}"
  delegate_to: localhost

- name: Register an IP target on port 8080 of two groups, without waiting
  zerodowntime.rollout.elbv2_target:
    target_id: 10.0.1.15
    port: 8080
    target_groups:
      - tg-web-blue
      - arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/tg-web-green/0123456789abcdef
    state: registered
    wait: false
"""

RETURN = r"""
msg:
  description: What was done, and how the wait ended.
  returned: always
  type: str
  sample: Deregistered i-0123456789abcdef0 in tg-web:80. Done draining everywhere after 31.2s (6 polls, 10 AWS calls).
target_id:
  description: The target, as given.
  returned: success
  type: str
  sample: i-0123456789abcdef0
state:
  description: The requested state.
  returned: success
  type: str
  sample: deregistered
port:
  description: The port, as given (null when not given).
  returned: success
  type: int
  sample: null
target_groups:
  description:
    - One entry per target group and port the module handled (the target's port in each group).
    - Also returned on failure after the groups were read.
  returned: success
  type: list
  elements: dict
  contains:
    target_group_arn:
      description: ARN of the target group.
      type: str
    target_group_name:
      description: Name of the target group.
      type: str
    target_type:
      description: Target type of the group (C(instance), C(ip) or C(alb)).
      type: str
    port:
      description: Port of the target in this group.
      type: int
      sample: 80
    changed:
      description: Whether the target was (in check mode, would be) registered or deregistered here.
      type: bool
    before:
      description: The target's health in this group before the change.
      type: dict
      contains:
        state:
          description:
            - C(absent) when the target is not in the group, else the AWS state (C(initial), C(healthy),
              C(unhealthy), C(unused), C(draining), C(unavailable)).
          type: str
        reason:
          description: AWS reason code (C(TargetHealth.Reason)), for example C(Target.ResponseCodeMismatch).
          type: str
        description:
          description: AWS description of the reason (C(TargetHealth.Description)).
          type: str
    after:
      description:
        - The target's health after the change and the wait (last observation), same keys as RV(target_groups[].before).
        - In check mode, a prediction.
      type: dict
    group_targets:
      description:
        - Every target of the group with its health state, as read before the change (from the same
          C(DescribeTargetHealth) answer, no extra call). The role's capacity guard counts the healthy ones.
      type: list
      elements: dict
      contains:
        id:
          description: Target id (instance id, IP address or ALB ARN).
          type: str
        port:
          description: Port of this registration.
          type: int
        state:
          description: Health state, as in RV(target_groups[].before.state).
          type: str
registrations:
  description:
    - Where to register the target back, grouped by port. For V(deregistered), the groups and ports it was in
      before this task (draining included); for V(registered), where it is registered now.
    - Pass each item's C(target_groups) and C(port) to O(target_groups) and O(port) with O(state=registered).
  returned: success
  type: list
  elements: dict
  contains:
    port:
      description: Port of the target in these groups.
      type: int
    target_groups:
      description: Target group ARNs.
      type: list
      elements: str
  sample:
    - port: 80
      target_groups:
        - arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/tg-web/6d0ecf831eec9f09
timeout:
  description: The timeout used for the wait (after the defaults were applied), in seconds.
  returned: success
  type: int
  sample: 360
deregistration_delay:
  description: For V(deregistered) with O(wait=true), the longest deregistration delay of the groups, in seconds.
  returned: success
  type: int
  sample: 300
waited:
  description: Whether the module waited (O(wait=true), not check mode, at least one group).
  returned: success
  type: bool
elapsed:
  description: Seconds the whole task took (reads, changes and the wait).
  returned: always
  type: float
  sample: 31.204
polls:
  description: Number of polls during the wait (each reads the groups the target is not yet done in).
  returned: success
  type: int
  sample: 6
api_calls:
  description: AWS API requests made, including the retries of throttled requests.
  returned: always
  type: int
  sample: 10
missing_target_groups:
  description: Names or ARNs that do not exist.
  returned: when a target group is not found
  type: list
  elements: str
timed_out:
  description: True when the wait reached the deadline.
  returned: failure
  type: bool
diff:
  description: Per C(group:port), the target's state before and after.
  returned: when diff mode is on
  type: dict
"""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.elbv2 import ELBv2Targets  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.module_main import (  # noqa: E402
    membership_spec,
    run_module,
)


def argument_spec():
    return {
        "target_id": {"type": "str", "required": True},
        "port": {"type": "int"},
        "target_groups": {"type": "list", "elements": "str"},
        **membership_spec(),
    }


def main():
    run_module("elbv2", ELBv2Targets, argument_spec())


if __name__ == "__main__":
    main()
