# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: lb_read_covers
short_description: Whether one batch read of the HAProxy hosts answers for this host
version_added: 0.2.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - The C(zerodowntime.rollout.rolling_update) role's preflight reads every server of a batch with one
    M(zerodowntime.rollout.rotation) O(zerodowntime.rollout.rotation#module:state=read) call per HAProxy host, made
    with the settings of one host of the batch. This filter says whether that read answers for another host, whose
    own settings may differ.
  - True only when the read was made on the same HAProxy hosts in the same order, each with the same backend, the same
    sockets and the same state directory (its C(read_for), returned on a failure too), and when every read that
    answered names the host's server in its C(batch_reads). A host it does not cover reads the load balancers itself.
options:
  _input:
    description: The registered (looped) result of the batch read, one result per HAProxy host; or a skipped task.
    type: raw
    required: true
  lb_hosts:
    description: The host's HAProxy hosts (C(rolling_update_haproxy_delegate_to) as a list).
    type: list
    elements: str
    required: true
  settings:
    description: The host's C(backend), C(server), C(sockets) and C(state_dir), as its own read would send them.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Read the load balancers for this host, unless the batch read answers for it
  ansible.builtin.include_tasks: read_lb.yml
  when: >-
    not (batch_read | zerodowntime.rollout.lb_read_covers(['lb1'], {'backend': 'app', 'server': inventory_hostname,
         'sockets': ['/run/haproxy/admin.sock'], 'state_dir': '/var/lib/zerodowntime-rollout'}))
"""

RETURN = r"""
_value:
  description: True when the batch read answers for the host.
  type: bool
"""

import os  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.names import (  # noqa: E402
    as_option_text,
    validate_name,
    validate_sockets,
)


def _wanted(settings):
    """What the host's own read would read, normalised as the read reports it; None when it is not valid."""
    try:
        return {
            "backend": validate_name(as_option_text(settings.get("backend")), "backend"),
            "sockets": [a.text for a in validate_sockets(settings.get("sockets") or [])],
            "state_dir": os.path.normpath(str(settings.get("state_dir") or "")),
        }, validate_name(as_option_text(settings.get("server")), "server")
    except (RolloutError, TypeError):
        return None, None


def lb_read_covers(reads, lb_hosts, settings):
    if not isinstance(reads, dict) or reads.get("skipped") or not isinstance(settings, dict):
        return False
    results = reads.get("results")
    if not isinstance(results, list) or not results:
        return False
    if [r.get("item") if isinstance(r, dict) else None for r in results] != list(lb_hosts or []):
        return False
    wanted, server = _wanted(settings)
    if wanted is None:
        return False  # the host's own read says what is wrong with its settings
    for result in results:
        if result.get("read_for") != wanted:
            return False
        if not result.get("failed") and server not in (result.get("batch_reads") or {}):
            return False
    return True


class FilterModule:
    def filters(self):
        return {"lb_read_covers": lb_read_covers}
