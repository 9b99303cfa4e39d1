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
  - A lock held by the same O(owner) in another run is taken over, so a re-run after an interrupted rollout is not
    refused, unless that run is known to be still alive (see O(run)); then the task fails and names it.
    A lock older than its TTL is taken over. Otherwise the task fails and names the holder.
  - O(force=true) takes or releases the lock whoever holds it (break glass).
  - Whenever the lock changes hands (free, expired, same owner or forced) exactly one of several tasks that try at
    the same moment wins. The lock is read, checked and replaced while holding C(flock) on a guard file next to it,
    C(<path>.guard) (mode 0600, created once and never replaced; leave it in place). The lock is replaced only if it
    is still the one the task read when it started, and a lock taken at or after the moment the task started is
    never taken over, not even with O(force); that task lost the race.
options:
  path:
    description:
      - Absolute path of the lock file.
      - B(Where it should live.) The lock only keeps rollouts apart when every operator, CI job and AWX job takes it
        at the same path on the same host, and it is only safe where no other local user can write. Use a dedicated
        directory that root owns, such as C(/var/lib/zerodowntime-rollout/locks/) (the default of the
        C(zerodowntime.rollout.rolling_update) playbook, next to the resume records of C(rolling_update_state_dir)),
        and run this task with C(become).
      - Missing directories of O(path) are created with mode 0700, owned by the user the module runs as (root under
        C(become)), whatever the umask; check mode creates nothing. Without the rights to them the task fails and
        names C(rollout_lock_path) and C(become).
      - Every directory from C(/) down to the lock must belong to root or to that user, and must not be writable by
        group or others unless it has the sticky bit. A symlink on the way is followed only when root or that user
        owns it (such as C(/var/run) to C(/run)); the directory that holds the lock is never a symlink. Anything else
        is refused, even with O(force).
      - A lock in a shared sticky directory such as C(/var/tmp) (the default of earlier versions) still works and is
        safe (nothing there is followed; temporary files are made like C(mkstemp) in that directory), but every
        operator must then run the task as the same user, and another local user can block it until O(force) is used.
      - The lock file is written with mode 0600, whatever the umask, through a temporary file in the same directory
        that is renamed into place.
      - A lock file that is a symlink, not a regular file, another user's or hard-linked elsewhere is refused without
        being followed or read. So is a lock whose content is not sane (not JSON, larger than 64 KiB, C(started) not
        a finite time between 1970 and five minutes ahead of the host's clock, C(ttl) not between 0 and 7 days,
        a C(controller_pid) that is not a process id). O(force=true) replaces or removes such a file without
        following it (a directory planted there is moved aside, never entered), and so does it for a guard file
        that is a symlink or another user's.
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
    description: Seconds after which another owner may take the lock over. At most 604800 (7 days).
    type: int
    default: 3600
  force:
    description:
      - Take or release the lock even when another owner holds it and its TTL has not passed.
      - Also recovers from a corrupt or hostile lock file or guard file (see O(path)).
      - Does not take over a lock that another task took after this one started, and does not make an untrusted
        directory acceptable.
    type: bool
    default: false
  run:
    description:
      - The controller run that takes the lock, that is the dict that the P(zerodowntime.rollout.controller_run#lookup)
        lookup returns (see the examples), with C(controller), C(pid), C(started) and C(running). Its types are
        checked before anything else.
      - The lock then also records the controller, the pid of its C(ansible-playbook) process and that process's start
        time (C(controller), C(controller_pid), C(controller_pid_started)).
      - When the lock is held by the same O(owner) in another run that was recorded on this same controller, that run
        is alive if its pid and start time are in C(running). An alive run keeps the lock (the task fails, naming it);
        a dead one is taken over at once, and RV(taken_over) is V(same owner, its run is gone).
      - Limitation. When the holder's run was recorded on another controller, or without O(run) (a lock written by an
        older version), or when C(running) is V(null) (a controller without C(/proc)), whether it is alive cannot be
        told, and a lock held by the same O(owner) is taken over as without O(run). Two runs with the same owner on
        different controllers are therefore not kept apart; give every person and job its own O(owner).
      - Only used with O(state=present).
    type: dict
    version_added: 0.2.0
notes:
  - The guard file C(<path>.guard) stays after the lock is released; it is empty and must not be removed while a
    rollout may be taking the lock.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - zerodowntime.rollout.app_host
attributes:
  check_mode:
    support: full
"""

EXAMPLES = r"""
- name: Take the rollout lock on the first load balancer
  zerodowntime.rollout.rollout_lock:
    path: /var/lib/zerodowntime-rollout/locks/app.lock
    owner: "{{ lookup('ansible.builtin.env', 'USER') }}@{{ lookup('ansible.builtin.pipe', 'hostname') }}"
    run_id: "{{ rollout_run_id }}"
    run: "{{ query('zerodowntime.rollout.controller_run') | first }}"
    ttl: 7200
  delegate_to: lb1
  become: true
  run_once: true

- name: Release it
  zerodowntime.rollout.rollout_lock:
    path: /var/lib/zerodowntime-rollout/locks/app.lock
    owner: "{{ lookup('ansible.builtin.env', 'USER') }}@{{ lookup('ansible.builtin.pipe', 'hostname') }}"
    run_id: "{{ rollout_run_id }}"
    state: absent
  delegate_to: lb1
  become: true
  run_once: true
"""

RETURN = r"""
lock:
  description:
    - The lock as it stands after the task (owner, run_id, started as a UNIX time, ttl).
    - With O(run), also controller, controller_pid and controller_pid_started.
  returned: state=present
  type: dict
previous:
  description:
    - The lock that was replaced or released, if any.
    - For a lock file that was refused (corrupt, a symlink, another user's), only what was wrong with it, in
      C(owner), and C(bad=true); never its content.
  returned: when there was one
  type: dict
taken_over:
  description:
    - Why a held lock was taken over.
    - V(same owner, its run is gone) when O(run) shows that the same owner's run holding it has ended,
      V(same owner) when that cannot be told, V(expired) or V(forced) (also for a corrupt or hostile lock file).
  returned: when a held lock was taken over
  type: str
msg:
  description: What happened.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.module_utils import _module_main  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._lock.operations import acquire, release  # noqa: E402


def argument_spec():
    return {
        "path": {"type": "path", "required": True},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "owner": {"type": "str", "required": True},
        "run_id": {"type": "str"},
        "ttl": {"type": "int", "default": 3600},
        "force": {"type": "bool", "default": False},
        "run": {"type": "dict"},
    }


def run_module(p, check_mode=False):
    """The work of the module, also run in the controller's worker by the action plugin."""
    if p["state"] == "present":
        return acquire(p["path"], p["owner"], p["run_id"], p["ttl"], p["force"], check_mode, run=p["run"])
    return release(p["path"], p["owner"], p["run_id"], p["force"], check_mode)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    _module_main.run_module(module, lambda params: run_module(params, module.check_mode))


if __name__ == "__main__":
    main()
