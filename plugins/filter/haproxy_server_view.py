# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: haproxy_server_view
short_description: One row per load balancer socket for one HAProxy server
version_added: 0.1.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - Flattens the registered result of M(zerodowntime.rollout.haproxy_server_info), looped over several
    LB hosts or not, into one row per (LB host, socket) for one backend/server.
  - Each row says where it was read, whether the server was found, its status and admin state, and
    whether it is in rotation (admin state V(ready) and healthy, that is steadily C(UP) or C(no check)).
options:
  _input:
    description: A registered result of M(zerodowntime.rollout.haproxy_server_info), or its C(results) list.
    type: raw
    required: true
  backend:
    description: Backend name.
    type: str
    required: true
  server:
    description: Server name.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Servers of app/web1 that are not in rotation on some LB
  ansible.builtin.debug:
    msg: >-
      {{ info.results | zerodowntime.rollout.haproxy_server_view('app', 'web1')
         | rejectattr('in_rotation') | list }}
"""

RETURN = r"""
_value:
  description: One dict per (LB host, socket) with keys C(lb), C(socket), C(where), C(found), C(status),
    C(admin_state), C(sessions), C(in_rotation).
  type: list
  elements: dict
"""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.parse import in_rotation  # noqa: E402


def haproxy_server_view(data, backend, server):
    if isinstance(data, dict):
        data = data.get("results", [data])
    rows = []
    for result in data or []:
        lb = result.get("item") or result.get("_ansible_delegated_vars", {}).get("ansible_host") or "localhost"
        for sock in result.get("sockets", []):
            srv = sock.get("backends", {}).get(backend, {}).get("servers", {}).get(server)
            row = {
                "lb": lb,
                "socket": sock.get("socket"),
                "where": "%s:%s" % (lb, sock.get("socket")),
                "found": srv is not None,
                "status": None,
                "admin_state": None,
                "sessions": None,
                "in_rotation": False,
            }
            if srv is not None:
                row.update(
                    status=srv.get("status"),
                    admin_state=srv.get("admin_state"),
                    sessions=srv.get("sessions"),
                    in_rotation=in_rotation(srv),
                )
            rows.append(row)
    return rows


class FilterModule:
    def filters(self):
        return {"haproxy_server_view": haproxy_server_view}
