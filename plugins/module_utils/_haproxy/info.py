# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The haproxy_server_info read: every server of one backend (or of all) on every socket, changing nothing."""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import LBUnreachableError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.client import make_runtime
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.names import Target, validate_sockets


def gather_server_info(sockets, backend=None, connect=None):
    """Read every server of ``backend`` (or of all backends) on every socket.

    :returns: ``{"sockets": [{"socket": str, "cli_level": str|None, "backends": {name: {"totals": {...},
        "servers": {name: {...}}}}}]}``
    """
    addresses = validate_sockets(sockets)
    target = None if backend is None else Target(backend)
    connect = connect or make_runtime
    result = []
    unreachable = []
    for address in addresses:
        # Every socket is tried, so that one answer names every HAProxy that is down, not just the first.
        try:
            runtime = connect(address.text)
            level = runtime.cli_level()
            backends = runtime.read_backends(target)
        except LBUnreachableError as exc:
            unreachable.append((address.text, exc.msg))
            continue
        result.append({"socket": address.text, "cli_level": level, "backends": backends})
    if unreachable:
        failed = [{"socket": text, "msg": msg} for text, msg in unreachable]
        if len(unreachable) == 1:
            raise LBUnreachableError(unreachable[0][1], socket=unreachable[0][0], failed_sockets=failed)
        raise LBUnreachableError(
            "%d of %d HAProxy runtime sockets did not answer. %s"
            % (len(unreachable), len(addresses), " ".join(msg for _text, msg in unreachable)),
            failed_sockets=failed,
        )
    return {"sockets": result}
