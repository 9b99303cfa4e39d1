#!/usr/bin/python
# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: rollout_lock
short_description: Take or release the lock that keeps two rollouts of a service apart
version_added: 0.1.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - A lock file on a host that every rollout of the service shares (for example the first load balancer).
  - Taking it is atomic. It records O(owner), O(run_id), the start time and O(ttl).
  - A lock held by the same O(owner) is taken again, so a re-run after an interrupted rollout is not refused.
    A lock older than its TTL is taken over. Otherwise the task fails and names the holder.
  - O(force=true) takes or releases the lock whoever holds it (break glass).
options:
  path:
    description: Absolute path of the lock file. Its folder must exist.
    type: path
    required: true
  state:
    description: V(present) takes the lock, V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  owner:
    description: Who holds the lock, for example C(alice@controller) or C(awx job 42).
    type: str
    required: true
  run_id:
    description: Identifies this run. With O(state=absent) only the lock of this run is released.
    type: str
  ttl:
    description: Seconds after which another owner may take the lock over.
    type: int
    default: 3600
  force:
    description: Take or release the lock even when another owner holds it and its TTL has not passed.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Take the rollout lock on the first load balancer
  zerodowntime.rollout.rollout_lock:
    path: /var/lib/rollout/app.lock
    owner: "{{ lookup('ansible.builtin.env', 'USER') }}@{{ lookup('ansible.builtin.pipe', 'hostname') }}"
    run_id: "{{ rollout_run_id }}"
    ttl: 7200
  delegate_to: lb1
  run_once: true

- name: Release it
  zerodowntime.rollout.rollout_lock:
    path: /var/lib/rollout/app.lock
    owner: "{{ lookup('ansible.builtin.env', 'USER') }}@{{ lookup('ansible.builtin.pipe', 'hostname') }}"
    run_id: "{{ rollout_run_id }}"
    state: absent
  delegate_to: lb1
  run_once: true
"""

RETURN = r"""
lock:
  description: The lock as it stands after the task (owner, run_id, started as a UNIX time, ttl).
  returned: state=present
  type: dict
previous:
  description: The lock that was replaced or released, if any.
  returned: when there was one
  type: dict
taken_over:
  description: Why a held lock was taken over (V(same owner), V(expired) or V(forced)).
  returned: when a held lock was taken over
  type: str
msg:
  description: What happened.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._lock import acquire, release  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "owner": {"type": "str", "required": True},
            "run_id": {"type": "str"},
            "ttl": {"type": "int", "default": 3600},
            "force": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        if p["state"] == "present":
            result = acquire(p["path"], p["owner"], p["run_id"], p["ttl"], p["force"], module.check_mode)
        else:
            result = release(p["path"], p["owner"], p["run_id"], p["force"], module.check_mode)
    except RolloutError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
