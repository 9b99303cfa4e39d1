#!/usr/bin/python
# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: rotation
short_description: Take one server out of its load balancers' rotation, or put it back, in one call
version_added: 0.2.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - The load balancer half of a host's zero-downtime transaction, as one call per load balancer host. The
    C(zerodowntime.rollout.rolling_update) role uses it for HAProxy; it can be called from any playbook.
  - Every name is validated and every socket is read before the first command is sent. A socket that does not
    answer, a backend or server it does not know, or a capacity guard that says no fails the call with nothing
    changed.
  - O(state=out) evaluates the capacity guard (O(min_healthy)) on that same read, writes the resume record, sets
    the server to drain and waits until its in-flight requests are finished.
  - O(state=in) sets the server ready, waits until HAProxy's own health check reports it steadily C(UP) (or
    C(no check)), then removes the resume record.
  - O(state=read) only reads. It reports whether the server is in rotation on every socket and whether a resume
    record says that a rollout took it out.
  - The resume record is a small JSON file in C(<state_dir>/rotation/) on the host that runs this module. It is
    written before the drain command goes out, kept when an interrupted run left one, and removed once the server is
    back. So the next run can tell "drained by a rollout" from "taken out by someone else".
  - Results carry RV(steps), the seconds this call spent in its step (C(drain) or C(enable)), which the rollout
    report lays out.
options:
  provider:
    description:
      - The kind of load balancer. The AWS load balancers are driven by M(zerodowntime.rollout.elbv2_target) and
        M(zerodowntime.rollout.elb_classic_instance).
    type: str
    default: haproxy
    choices: [haproxy]
  state:
    description:
      - V(out) drains the server and waits, V(in) enables it and waits until UP, V(read) only reads.
    type: str
    required: true
    choices: [out, in, read]
  backend:
    description: HAProxy backend that holds the server.
    type: str
    required: true
  server:
    description: Server name inside O(backend).
    type: str
    required: true
  sockets:
    description:
      - HAProxy Runtime API sockets on this host, one per HAProxy instance, all changed together.
      - An absolute unix socket path, or V(tcp://HOST:PORT). Each must be an admin-level socket.
    type: list
    elements: str
    default: [/run/haproxy/admin.sock]
  batch:
    description:
      - Servers of O(backend) taken out together with O(server) (the rollout batch). The capacity guard counts them
        all as out of rotation. Defaults to O(server) alone.
    type: list
    elements: str
  min_healthy:
    description:
      - With O(state=out), how many servers of the backend must stay in rotation on every socket once the batch is
        out, as a count (V(2)) or a percentage of the backend's servers (V(50%), rounded up). V(0) turns the guard
        off.
    type: str
    default: "0"
  timeout:
    description:
      - Seconds to wait for the drain (O(state=out)) or for UP (O(state=in)). Defaults to 300 and 120.
    type: float
  on_timeout:
    description:
      - With O(state=out), what to do when sessions remain at the deadline. V(fail) leaves them alone and fails,
        V(shutdown_sessions) cuts them and succeeds.
    type: str
    default: fail
    choices: [fail, shutdown_sessions]
  poll_interval:
    description: Seconds between two reads of the server's state while waiting.
    type: float
    default: 0.25
  state_dir:
    description:
      - Directory for the resume records, on the host that runs this module. Created with mode 0700. It and its
        C(rotation/) subdirectory must belong to the user running the module and not be writable by others; a
        symlink is refused.
    type: path
    default: /var/lib/zerodowntime-rollout
  run_id:
    description: Recorded in the resume record, to name the run that took the server out.
    type: str
  version:
    description: Recorded in the resume record, the release being rolled out.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads, evaluates the capacity guard and reports what would change; sends no change and waits for nothing.
  diff_mode:
    support: full
    details:
      - The status, admin state and weight on every socket, before and after.
  platform:
    platforms: posix
seealso:
  - module: zerodowntime.rollout.haproxy_server
  - module: zerodowntime.rollout.app_replace
notes:
  - C(changed) only depends on the admin state, never on live counters such as sessions.
"""

EXAMPLES = r"""
- name: Take web1 out of every HAProxy on the LB host, unless fewer than 2 servers would stay
  zerodowntime.rollout.rotation:
    state: out
    backend: app
    server: web1
    sockets: [/run/haproxy/admin.sock]
    min_healthy: "2"
    timeout: 300
  delegate_to: lb1

- name: Put it back and wait until HAProxy reports it UP
  zerodowntime.rollout.rotation:
    state: in
    backend: app
    server: web1
  delegate_to: lb1

- name: Is web1 in rotation, and did a rollout take it out?
  zerodowntime.rollout.rotation:
    state: read
    backend: app
    server: web1
  delegate_to: lb1
  register: web1_rotation
"""

RETURN = r"""
msg:
  description: What was found or done, and the capacity guard's verdict.
  returned: always
  type: str
  sample: Set app/web1 to drain on /run/haproxy/admin.sock. Drained everywhere after 0.3s (2 polls).
steps:
  description: The step this call performed and its duration in seconds (V(drain) or V(enable)).
  returned: when O(state) is V(out) or V(in)
  type: list
  elements: dict
  sample: [{"name": "drain", "seconds": 0.41, "waited": 0.3}]
capacity:
  description: The capacity guard's verdict (C(ok), C(lbs), C(msg)); null when O(min_healthy) is 0.
  returned: when O(state=out)
  type: dict
in_rotation:
  description: True when the server is ready and steadily UP (or C(no check)) on every socket.
  returned: when O(state=read)
  type: bool
admin_down:
  description: True when some socket has the server in drain or maint.
  returned: when O(state=read)
  type: bool
found:
  description: True when every socket knows the server.
  returned: when O(state=read)
  type: bool
members:
  description: One row per socket with C(socket), C(found), C(status), C(admin_state), C(weight), C(sessions),
    C(in_rotation).
  returned: when O(state=read)
  type: list
  elements: dict
record:
  description: The resume record left by a rollout that took the server out, or null.
  returned: when O(state=read)
  type: dict
record_path:
  description: Where the resume record is kept on this host.
  returned: always
  type: str
sockets:
  description: With O(state=read), every socket's backend as M(zerodowntime.rollout.haproxy_server_info) returns
    it; otherwise the per-socket change entries as M(zerodowntime.rollout.haproxy_server) returns them.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._records import DEFAULT_STATE_DIR  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._rotation import run_rotation  # noqa: E402


def argument_spec():
    return {
        "provider": {"type": "str", "default": "haproxy", "choices": ["haproxy"]},
        "state": {"type": "str", "required": True, "choices": ["out", "in", "read"]},
        "backend": {"type": "str", "required": True},
        "server": {"type": "str", "required": True},
        "sockets": {"type": "list", "elements": "str", "default": ["/run/haproxy/admin.sock"]},
        "batch": {"type": "list", "elements": "str"},
        "min_healthy": {"type": "str", "default": "0"},
        "timeout": {"type": "float"},
        "on_timeout": {"type": "str", "default": "fail", "choices": ["fail", "shutdown_sessions"]},
        "poll_interval": {"type": "float", "default": 0.25},
        "state_dir": {"type": "path", "default": DEFAULT_STATE_DIR},
        "run_id": {"type": "str"},
        "version": {"type": "str"},
    }


def run_module(params, check_mode=False, diff=False):
    params = dict(params)
    if params["timeout"] is None:
        params["timeout"] = 300 if params["state"] == "out" else 120
    return run_rotation(params["provider"], params["state"], params, check_mode=check_mode, diff=diff)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = run_module(module.params, module.check_mode, module._diff)
    except RolloutError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
