#!/usr/bin/python
# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: haproxy_server
short_description: Set an HAProxy server to ready, drain or maint on one or more HAProxy instances
version_added: 0.1.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - Sets the administrative state (and optionally the weight) of one server of one backend through the HAProxy
    Runtime API, on every HAProxy instance listed in O(sockets) at once (for example both members of an HA pair).
  - All or nothing at preflight. The module first reads the server on every socket. It fails, changing nothing
    anywhere, if any socket is unreachable, is not an admin-level socket, or does not know the backend or server.
  - It then changes only the sockets where the admin state or weight differs, and with O(wait=true) waits until
    the server is drained, steadily UP, or in MAINT on every instance.
  - Backend and server names are validated (letters, digits, V(-), V(_), V(.), V(:)) before anything is sent.
  - One command is sent per connection (non-interactive mode of the Runtime API).
options:
  backend:
    description:
      - Name of the HAProxy backend that holds the server.
    required: true
  server:
    description:
      - Name of the server inside O(backend).
    type: str
    required: true
  state:
    description:
      - Desired administrative state.
      - V(ready) puts the server back into load balancing. A server that is DOWN by health check stays DOWN
        until its check passes; setting V(ready) is the change, waiting for UP is the wait.
      - V(drain) stops new traffic to the server. Requests already in flight complete normally; only persistent
        (stick/cookie) connections may still reach it.
      - V(maint) stops all traffic and health checks to the server.
    type: str
    required: true
    choices: [ready, drain, maint]
  sockets:
    description:
      - HAProxy Runtime API sockets, one per HAProxy instance.
      - An absolute unix socket path, or V(tcp://HOST:PORT) (V(tcp://[::1]:PORT) for IPv6).
      - Each must be an admin-level socket (C(stats socket ... level admin)).
  weight:
    description:
      - Absolute weight to set on the server (HAProxy accepts 0 to 256).
      - Set before the state, so a server put back to V(ready) takes traffic at this weight.
      - When omitted the weight is left alone.
    type: int
  wait:
    description:
      - Wait until the server reached O(state) on every socket.
      - V(drain) waits until no session and no queued request remains on the server.
      - V(ready) waits until the status is exactly C(UP) (not the transitional C(UP 1/3)) or C(no check) for a
        server without health check.
      - V(maint) waits until the status is C(MAINT).
      - Not done in check mode.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait before giving up, see O(on_timeout).
      - V(0) checks once without waiting.
    type: int
    default: 300
  poll_interval:
    description:
      - Seconds between two polls of the servers' state while waiting.
      - The deadline is always polled, so a condition met exactly at the deadline is seen.
    type: float
    default: 0.5
  on_timeout:
    description:
      - What to do when O(state=drain) and sessions remain at the deadline.
      - V(fail) fails the task and reports the remaining sessions per socket. The server stays drained.
      - V(shutdown_sessions) cuts the remaining sessions (C(shutdown sessions server)); their clients see an
        error. RV(sessions_shutdown) reports how many were cut.
      - A timeout while waiting for V(ready) or V(maint) always fails.
    type: str
    choices: [fail, shutdown_sessions]
    default: fail
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - zerodowntime.rollout.haproxy
attributes:
  check_mode:
    support: full
    details:
      - Reads every socket and reports what would change; changes nothing and does not wait.
  diff_mode:
    support: full
    details:
      - Shows status, admin state and weight per socket, before and after.
notes:
  - RV(ignore:changed) is true only when an admin state or weight was changed. It never depends on session counts.
  - Cutting sessions with O(on_timeout=shutdown_sessions) does not by itself make the task changed.
seealso:
  - module: zerodowntime.rollout.haproxy_server_info
  - name: HAProxy Runtime API (management guide)
    description: The commands this module sends.
    link: https://docs.haproxy.org/2.6/management.html#9.3
"""

EXAMPLES = r"""
- name: Drain web1 on both load balancers of the pair, waiting up to 10 minutes
  zerodowntime.rollout.haproxy_server:
    backend: be_app
    server: web1
    state: drain
    sockets:
      - tcp://10.0.0.10:9999
      - tcp://10.0.0.11:9999
    timeout: 600

- name: Drain, then cut whatever is still open after 2 minutes
  zerodowntime.rollout.haproxy_server:
    backend: be_app
    server: "{{ inventory_hostname_short }}"
    state: drain
    timeout: 120
    on_timeout: shutdown_sessions
  delegate_to: lb1.example.com
  become: true

- name: Put web1 back, at weight 10, and wait until it is steadily UP
  zerodowntime.rollout.haproxy_server:
    backend: be_app
    server: web1
    state: ready
    weight: 10

- name: Maintenance without waiting
  zerodowntime.rollout.haproxy_server:
    backend: be_app
    server: web1
    state: maint
    wait: false
"""

RETURN = r"""
msg:
  description: What was done, and how the wait ended.
  returned: always
  type: str
  sample: Set be_app/web1 to drain on /run/haproxy/admin.sock. Drained everywhere after 3.5s (8 polls).
backend:
  description: The backend, as given.
  returned: success
  type: str
  sample: be_app
server:
  description: The server, as given.
  returned: success
  type: str
  sample: web1
state:
  description: The requested admin state.
  returned: success
  type: str
  sample: drain
weight:
  description: The requested weight, or null when not given.
  returned: success
  type: int
  sample: 10
sockets:
  description:
    - One entry per socket, in the order of O(sockets).
    - Also returned on failure after preflight (with what is known so far).
  returned: success
  type: list
  elements: dict
  contains:
    socket:
      description: The socket, as given.
      type: str
      sample: /run/haproxy/admin.sock
    changed:
      description: Whether the state or weight was (or, in check mode, would be) changed on this socket.
      type: bool
    commands:
      description: Commands sent to this socket that change something (in check mode, that would be sent).
      type: list
      elements: str
      sample: [set server be_app/web1 state drain]
    sessions_shutdown:
      description: Sessions cut on this socket by O(on_timeout=shutdown_sessions).
      type: int
      sample: 0
    before:
      description: The server before any change.
      type: dict
      contains:
        status:
          description: Status as HAProxy shows it (C(UP), C(UP 1/3), C(DOWN), C(DRAIN), C(MAINT), C(no check)...).
          type: str
        base_status:
          description: The status without the transition counter (C(UP 1/3) gives C(UP)).
          type: str
        steady:
          description: False while the status is in transition (C(UP 1/3), C(DOWN 1/2)).
          type: bool
        admin_state:
          description: V(ready), V(drain) or V(maint), from the admin state bits.
          type: str
        operational_state:
          description: V(stopped), V(starting), V(running) or V(stopping).
          type: str
        weight:
          description: The user-set weight.
          type: int
        sessions:
          description: Current sessions on the server.
          type: int
        queue:
          description: Requests queued for the server.
          type: int
    after:
      description:
        - The server after the change and the wait, same keys as RV(sockets[].before).
        - In check mode, a prediction (status, admin state, weight); live counters are copied from before.
      type: dict
elapsed:
  description: Seconds spent waiting (0 when not waiting).
  returned: success
  type: float
  sample: 3.512
polls:
  description: Number of polls of all sockets during the wait.
  returned: success
  type: int
  sample: 8
waited:
  description: Whether the module waited (O(wait=true) and not check mode).
  returned: success
  type: bool
timed_out:
  description: True when the drain wait hit the deadline and O(on_timeout=shutdown_sessions) cut sessions.
  returned: success
  type: bool
sessions_shutdown:
  description: Total sessions cut by O(on_timeout=shutdown_sessions), all sockets together.
  returned: success
  type: int
  sample: 0
failed_sockets:
  description: On a preflight failure, each failing socket and why.
  returned: failure
  type: list
  elements: dict
diff:
  description: Per socket C(status), C(admin_state) and C(weight), before and after.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.names import STATES  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.server import (  # noqa: E402
    ON_TIMEOUT_CHOICES,
    ensure_server_state,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.transport import DEFAULT_SOCKET  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._module_main import run_module  # noqa: E402


def argument_spec():
    return {
        "backend": {"type": "str", "required": True},
        "server": {"type": "str", "required": True},
        "state": {"type": "str", "required": True, "choices": list(STATES)},
        "sockets": {"type": "list", "elements": "str", "default": [DEFAULT_SOCKET]},
        "weight": {"type": "int"},
        "wait": {"type": "bool", "default": True},
        "timeout": {"type": "int", "default": 300},
        "poll_interval": {"type": "float", "default": 0.5},
        "on_timeout": {"type": "str", "choices": list(ON_TIMEOUT_CHOICES), "default": "fail"},
    }


def run(params, check_mode=False, diff=False):
    """The module's work: the parameters (exactly ensure_server_state's arguments) in, the result out."""
    return ensure_server_state(check_mode=check_mode, diff=diff, **params)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda params: run(params, module.check_mode, module._diff))


if __name__ == "__main__":
    main()
