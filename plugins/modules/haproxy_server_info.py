#!/usr/bin/python
# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: haproxy_server_info
short_description: Read the servers of HAProxy backends through the Runtime API
version_added: 0.1.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - Reads, on every HAProxy instance listed in O(sockets), every server of O(backend) (or of all backends), with
    its status, admin state, weight, sessions, queue, response counters, timings and health check result.
  - Uses C(show stat) and C(show servers state); changes nothing.
  - User- and operator-level sockets are enough for this module.
options:
  backend:
    description:
      - Only read this backend. When omitted, all backends are read.
      - The task fails if a socket does not know this backend.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - zerodowntime.rollout.haproxy
attributes:
  check_mode:
    support: full
    details:
      - The module only reads, so it runs normally in check mode.
  diff_mode:
    support: none
seealso:
  - module: zerodowntime.rollout.haproxy_server
"""

EXAMPLES = r"""
- name: Read be_app on both load balancers
  zerodowntime.rollout.haproxy_server_info:
    backend: be_app
    sockets:
      - tcp://10.0.0.10:9999
      - tcp://10.0.0.11:9999
  register: __lb

- name: Show web1's status on the first load balancer
  ansible.builtin.debug:
    msg: "{{ __lb.sockets[0].backends.be_app.servers.web1.status }}"

- name: Assert that every other server of be_app is steadily UP everywhere before taking web1 out
  ansible.builtin.assert:
    that:
      - >-
        __lb.sockets | map(attribute='backends') | map(attribute='be_app') | map(attribute='servers')
        | map('dict2items') | flatten | rejectattr('key', 'equalto', 'web1')
        | rejectattr('value.healthy') | list | length == 0
"""

RETURN = r"""
sockets:
  description: One entry per socket, in the order of O(sockets).
  returned: always
  type: list
  elements: dict
  contains:
    socket:
      description: The socket, as given.
      type: str
      sample: /run/haproxy/admin.sock
    cli_level:
      description: Access level of the socket (V(admin), V(operator) or V(user)); null if HAProxy does not say.
      type: str
      sample: admin
    backends:
      description: Backends by name.
      type: dict
      contains:
        totals:
          description: Backend-level counters from the C(BACKEND) line of C(show stat).
          type: dict
          contains:
            # The session counters and the timings of a backend and of a server read the same: written once here
            # (YAML anchors), merged into the servers' entry below.
            <<:
              - &session_counters
                sessions:
                  description: Current sessions.
                  type: int
                queue:
                  description: Queued requests.
                  type: int
                max_sessions:
                  description: Highest number of concurrent sessions seen.
                  type: int
                total_sessions:
                  description: Sessions since start.
                  type: int
              - &timings
                queue_time_ms:
                  description: Average queue time over the last 1024 requests.
                  type: int
                connect_time_ms:
                  description: Average connect time over the last 1024 requests.
                  type: int
                response_time_ms:
                  description: Average response time over the last 1024 requests.
                  type: int
                total_time_ms:
                  description: Average total session time over the last 1024 requests.
                  type: int
            status:
              description: Backend status (C(UP) or C(DOWN)).
              type: str
            weight:
              description: Total effective weight of the servers.
              type: int
            active_servers:
              description: Active servers that are up.
              type: int
            backup_servers:
              description: Backup servers that are up.
              type: int
            responses:
              description: HTTP responses by class (keys C(1xx) to C(5xx), C(other)); null values in TCP mode.
              type: dict
            algorithm:
              description: Load balancing algorithm.
              type: str
            mode:
              description: Proxy mode (C(http) or C(tcp)).
              type: str
        servers:
          description: Servers by name.
          type: dict
          contains:
            <<: [*session_counters, *timings]
            backend:
              description: Backend name.
              type: str
            server:
              description: Server name.
              type: str
            address:
              description: Address and port.
              type: str
              sample: 10.0.0.21:8080
            status:
              description:
                - Status as HAProxy shows it, for example C(UP), C(UP 1/3), C(DOWN), C(DOWN 1/2), C(DRAIN),
                  C(MAINT), C(MAINT (via be/srv)), C(no check).
              type: str
            base_status:
              description: The status without transition counter or detail (C(UP 1/3) gives C(UP)).
              type: str
            steady:
              description: False while the status is in transition (C(UP 1/3), C(DOWN 1/2)).
              type: bool
            healthy:
              description: True when the status is exactly C(UP), or C(no check) (no health check configured).
              type: bool
            admin_state:
              description: V(ready), V(drain) or V(maint), from the admin state bits.
              type: str
            admin_state_bits:
              description: Raw C(srv_admin_state) (1 forced maint, 2 inherited maint, 4 disabled in configuration,
                8 forced drain, 16 inherited drain, 32 maint by DNS resolution, 64 FQDN changed).
              type: int
            admin_flags:
              description: Names of the bits set in RV(sockets[].backends.servers.admin_state_bits).
              type: list
              elements: str
              sample: [forced_drain]
            operational_state:
              description: V(stopped), V(starting), V(running) or V(stopping).
              type: str
            weight:
              description: The user-set weight.
              type: int
            effective_weight:
              description: The weight HAProxy uses now (after slowstart and the like).
              type: int
            initial_weight:
              description: The weight from the configuration.
              type: int
            session_limit:
              description: Configured C(maxconn), null if none.
              type: int
            responses:
              description: HTTP responses by class (keys C(1xx) to C(5xx), C(other)).
              type: dict
            has_check:
              description: Whether a health check is configured.
              type: bool
            check_status:
              description: Result of the last health check (C(L7OK), C(L4CON)...); null without check.
              type: str
            check_code:
              description: Layer 5-7 code of the last check (HTTP status), if any.
              type: int
            check_description:
              description: Human-readable result of the last check.
              type: str
            last_change_seconds:
              description: Seconds since the last status change.
              type: int
            downtime_seconds:
              description: Total downtime in seconds.
              type: int
            backup:
              description: Whether this is a backup server.
              type: bool
failed_sockets:
  description:
    - When a socket does not answer, every socket that did not answer and why; the task fails, naming them all.
  returned: failure
  type: list
  elements: dict
  sample: [{socket: "tcp://10.0.0.11:9999", msg: "Connection refused by HAProxy runtime socket ..."}]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.info import gather_server_info  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.transport import DEFAULT_SOCKET  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._module_main import run_module  # noqa: E402


def argument_spec():
    return {
        "sockets": {"type": "list", "elements": "str", "default": [DEFAULT_SOCKET]},
        "backend": {"type": "str"},
    }


def run(params):
    """The module's work: read, change nothing (see RETURN)."""
    return dict(changed=False, **gather_server_info(sockets=params["sockets"], backend=params["backend"]))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == "__main__":
    main()
