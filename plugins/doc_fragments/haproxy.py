# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # What haproxy_server and haproxy_server_info share: the runtime sockets, the backend, the platform.
    # A module's own entry for an option is merged over this one key by key (its description replaces this one).
    DOCUMENTATION = r"""
options:
  sockets:
    description:
      - HAProxy Runtime API sockets, one per HAProxy instance.
      - An absolute unix socket path, or V(tcp://HOST:PORT) (V(tcp://[::1]:PORT) for IPv6).
    type: list
    elements: str
    default: [/run/haproxy/admin.sock]
  backend:
    type: str
attributes:
  platform:
    platforms: posix
"""
