# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: controller_run
short_description: Identify this ansible-playbook run and the runs alive on the controller
version_added: 0.2.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - Runs on the controller and returns one dictionary that names this run of C(ansible-playbook) (the controller's
    host name, the pid of the C(ansible-playbook) process and its start time) and lists every C(ansible-playbook)
    process alive on this controller.
  - Pass it to O(zerodowntime.rollout.rollout_lock#module:run), so that a lock held by the same owner is taken over
    only when the run that holds it is gone, and two runs with the same owner on one controller are kept apart.
  - A run is named by its pid B(and) the start time of that process, so a pid that the kernel gives again to a later
    process does not pass for the old run.
  - The start time and the list of live runs are read from C(/proc) (Linux). Where there is no C(/proc), both are
    V(null) (not known).
  - Takes no terms and no options. Like every lookup, it returns a list. For the dictionary itself, take the first
    element of C(query) with the C(first) filter, or call C(lookup) with C(wantlist=false), as in the examples.
notes:
  - A process counts as a run when one of the arguments of its command line has the base name C(ansible-playbook)
    (which covers C(python .../bin/ansible-playbook)). C(ansible-playbook) processes of other users are missing from
    RV(_raw[].running) when C(/proc) is mounted with C(hidepid).
seealso:
  - module: zerodowntime.rollout.rollout_lock
"""

EXAMPLES = r"""
- name: Take the rollout lock, refused while another run of the same owner is alive on this controller
  zerodowntime.rollout.rollout_lock:
    path: /var/lib/rollout/app.lock
    owner: "{{ lookup('ansible.builtin.env', 'USER') }}@{{ lookup('ansible.builtin.pipe', 'hostname') }}"
    run_id: "{{ rollout_run_id }}"
    run: "{{ query('zerodowntime.rollout.controller_run') | first }}"
  delegate_to: lb1
  run_once: true

- name: Show which ansible-playbook process this is
  ansible.builtin.debug:
    msg: "pid {{ this_run.pid }} on {{ this_run.controller }}, {{ this_run.running | length }} run(s) alive"
  vars:
    this_run: "{{ lookup('zerodowntime.rollout.controller_run', wantlist=false) }}"
"""

RETURN = r"""
_raw:
  description: One dictionary (in a one-element list).
  type: list
  elements: dict
  contains:
    controller:
      description: Host name of the controller, as Python's C(socket.gethostname) gives it.
      type: str
      sample: ctl-a
    pid:
      description: Pid of the C(ansible-playbook) process of this run.
      type: int
      sample: 41230
    started:
      description:
        - Start time of that process, in clock ticks since boot (field 22 of C(/proc/<pid>/stat)), as a string.
        - V(null) when it cannot be read (no C(/proc)).
      type: str
      sample: "8812345"
    running:
      description:
        - Every C(ansible-playbook) process alive on this controller, this run included, as C(pid) (int) and
          C(started) (str, as above), sorted by pid.
        - V(null) when it cannot be known (no C(/proc)).
      type: list
      elements: dict
      sample: [{"pid": 41230, "started": "8812345"}]
"""

from ansible.errors import AnsibleLookupError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._controller_run import controller_run  # noqa: E402


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if terms or kwargs:
            raise AnsibleLookupError(
                "zerodowntime.rollout.controller_run takes no terms and no options, got %r %r" % (list(terms), kwargs)
            )
        return [controller_run()]
