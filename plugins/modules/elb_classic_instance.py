#!/usr/bin/python
# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: elb_classic_instance
short_description: Register or deregister an EC2 instance in Classic ELBs and wait until it is in or out of service
version_added: 0.1.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - Registers or deregisters one EC2 instance in one or more Classic Elastic Load Balancers, then waits.
  - When O(load_balancers) is omitted, the module finds every Classic ELB that lists the instance (all pages of
    DescribeLoadBalancers), so that a deregistration takes it out of all of them.
  - All or nothing at preflight. Every load balancer is looked up and the instance's health read on each before
    anything is changed. An unknown load balancer name fails the task with nothing changed anywhere.
  - With O(wait=true), O(state=registered) waits until the instance is C(InService) on every load balancer, also
    when it was already registered. O(state=deregistered) waits until it is no longer C(InService) anywhere
    (C(OutOfService), C(Unknown) or not known at all), that is until connection draining has ended.
  - Polls start every O(poll_interval) seconds and grow by half each time, with jitter, up to 15 seconds. Throttled
    AWS calls are retried with a jittered backoff.
options:
  instance_id:
    description:
      - The EC2 instance id.
    type: str
    required: true
  load_balancers:
    description:
      - Names of Classic ELBs.
      - When omitted, every Classic ELB that lists the instance is used. Discovery needs the instance to be
        registered with at least one when O(state=registered).
    type: list
    elements: str
  state:
    description:
      - V(registered) registers the instance where it is not registered.
      - V(deregistered) deregisters it where it is registered.
    type: str
    required: true
    choices: [registered, deregistered]
  wait:
    description:
      - Wait until the instance is C(InService) (O(state=registered)) or out of service (O(state=deregistered)) on
        every load balancer. Also waits when nothing had to change.
      - Not done in check mode.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait before failing. Must be more than 0; set O(wait=false) not to wait.
      - For V(deregistered), when connection draining is enabled on a load balancer, the timeout is raised to at
        least its connection-draining timeout plus 60 seconds; RV(timeout_extended) reports it.
    type: int
    default: 300
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - zerodowntime.rollout.aws_lb
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    details:
      - Reads the load balancers and reports what would change; registers and deregisters nothing and does not wait.
  diff_mode:
    details:
      - Shows, per load balancer, whether the instance is registered and its state, before and after.
notes:
  - The module is in this collection's C(aws) action group, which extends C(amazon.aws.aws). Set the region,
    endpoint and credentials once for it and for amazon.aws's modules with C(module_defaults) on
    C(group/zerodowntime.rollout.aws). A bare C(group/aws) is ansible-core's own group (amazon.aws and community.aws
    only, no other collection can join it), so it does not reach this module.
  - RV(ignore:changed) is true only when the instance was (or, in check mode, would be) registered or deregistered.
seealso:
  - module: zerodowntime.rollout.elbv2_target
"""

EXAMPLES = r"""
- name: Take the instance out of every Classic ELB it is in, waiting for connection draining
  zerodowntime.rollout.elb_classic_instance:
    instance_id: "{{ instance_id }}"
    state: deregistered
  delegate_to: localhost
  register: __out

- name: Put it back on the same load balancers and wait until it is InService
  zerodowntime.rollout.elb_classic_instance:
    instance_id: "{{ instance_id }}"
    load_balancers: "{{ __out.load_balancer_names }}"
    state: registered
  delegate_to: localhost
"""

RETURN = r"""
msg:
  description: What was done, and how the wait ended.
  returned: always
  type: str
  sample: Deregistered i-0123456789abcdef0 on web-elb. Out of service everywhere after 12.0s (4 polls, 8 AWS calls).
instance_id:
  description: The instance, as given.
  returned: success
  type: str
  sample: i-0123456789abcdef0
state:
  description: The requested state.
  returned: success
  type: str
  sample: deregistered
load_balancers:
  description:
    - One entry per load balancer the module handled.
    - Also returned on failure after the load balancers were read.
  returned: success
  type: list
  elements: dict
  contains:
    load_balancer_name:
      description: Name of the Classic ELB.
      type: str
    changed:
      description: Whether the instance was (in check mode, would be) registered or deregistered here.
      type: bool
    before:
      description: The instance on this load balancer before the change.
      type: dict
      contains:
        registered:
          description: Whether the load balancer lists the instance.
          type: bool
        state:
          description: C(InService), C(OutOfService), C(Unknown), or C(absent) when the load balancer does not know it.
          type: str
        reason_code:
          description: AWS reason code (C(ELB) or C(Instance)).
          type: str
        description:
          description: AWS description of the state.
          type: str
    after:
      description:
        - The instance after the change and the wait (last observation), same keys as RV(load_balancers[].before).
        - In check mode, a prediction.
      type: dict
load_balancer_names:
  description:
    - Where to register the instance back. For V(deregistered), the load balancers it was registered with before
      this task; for V(registered), where it is registered now.
    - Pass it to O(load_balancers) with O(state=registered).
  returned: success
  type: list
  elements: str
  sample: [web-elb]
timeout:
  description: The timeout used for the wait, in seconds (after a connection-draining extension).
  returned: success
  type: int
  sample: 360
timeout_extended:
  description: Whether O(timeout) was raised to cover connection draining.
  returned: success
  type: bool
connection_draining_timeout:
  description:
    - For V(deregistered) with O(wait=true), the longest connection-draining timeout of the load balancers, in
      seconds; null when draining is off on all of them.
  returned: success
  type: int
  sample: 300
waited:
  description: Whether the module waited (O(wait=true), not check mode, at least one load balancer).
  returned: success
  type: bool
elapsed:
  description: Seconds the whole task took (reads, changes and the wait).
  returned: always
  type: float
  sample: 12.004
polls:
  description: Number of polls during the wait (each reads the load balancers the instance is not yet done on).
  returned: success
  type: int
  sample: 4
api_calls:
  description: AWS API requests made, including the retries of throttled requests.
  returned: always
  type: int
  sample: 8
missing_load_balancers:
  description: Names of load balancers that do not exist.
  returned: when a load balancer is not found
  type: list
  elements: str
timed_out:
  description: True when the wait reached the deadline.
  returned: failure
  type: bool
diff:
  description: Per load balancer, C(registered) and C(state) before and after.
  returned: when diff mode is on
  type: dict
"""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.elb_classic import (  # noqa: E402
    DEFAULT_TIMEOUT,
    ClassicELBInstance,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.module_main import (  # noqa: E402
    membership_spec,
    run_module,
)


def argument_spec():
    return {
        "instance_id": {"type": "str", "required": True},
        "load_balancers": {"type": "list", "elements": "str"},
        **membership_spec(default_timeout=DEFAULT_TIMEOUT),
    }


def main():
    run_module("elb", ClassicELBInstance, argument_spec())


if __name__ == "__main__":
    main()
