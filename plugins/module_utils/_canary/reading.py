# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Canary analysis, reading: the servers' counters of one backend, from the sockets or from results read elsewhere.

Both give a snapshot ``{label: {server: server_dict}}`` (a socket, or a load balancer host and its socket), the
server dicts being those of :func:`HAProxyRuntime.get_backends`.
"""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import NotFoundError, ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.client import HAProxyRuntime
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.names import validate_name, validate_sockets

__all__ = ["counters_snapshot", "make_reader"]


def make_reader(sockets, backend, connect=None):
    """Default ``read()``: ``{socket: {server: server_dict}}`` of ``backend`` on every socket.

    One ``show stat`` and one ``show servers state`` per socket and read; the server dicts are
    those of :func:`HAProxyRuntime.get_backends` (``responses``, ``total_sessions``,
    ``response_time_ms``, ``healthy``, ``admin_state``...).
    """
    addresses = validate_sockets(sockets)
    validate_name(backend, "backend")
    connect = connect or HAProxyRuntime
    runtimes = [connect(address.text) for address in addresses]

    def read():
        return {runtime.address: runtime.get_backends(backend)[backend]["servers"] for runtime in runtimes}

    return read


def counters_snapshot(results, backend, what="counters"):
    """``{label: {server: server_dict}}`` from haproxy_server_info results read elsewhere.

    :param results: a list with one haproxy_server_info result per load balancer host (each a dict
        with its ``sockets`` list), as registered by a loop over the hosts. A result's ``item`` (the
        loop item, a host name) labels its sockets, so that the same socket path on two hosts
        counts twice, as two load balancers; without a string ``item``, results are numbered.
    :raises ValidationError: something that is not such a result, or a socket read twice.
    :raises NotFoundError: a socket that does not know ``backend``.
    """
    if not isinstance(results, (list, tuple)) or not results:
        raise ValidationError(
            "%s must be a non-empty list of haproxy_server_info results (one per load balancer host), got %r."
            % (what, results if not isinstance(results, (list, tuple)) else "an empty list")
        )
    snapshot = {}
    for index, result in enumerate(results):
        if not isinstance(result, dict) or not isinstance(result.get("sockets"), list):
            reason = ""
            if isinstance(result, dict) and (result.get("failed") or result.get("skipped")):
                reason = " (that read %s: %s)" % (
                    "failed" if result.get("failed") else "was skipped",
                    result.get("msg") or result.get("skip_reason") or "no message",
                )
            raise ValidationError(
                "%s[%d] is not a haproxy_server_info result: it has no 'sockets' list%s." % (what, index, reason)
            )
        host = result.get("item")
        prefix = "#%d " % (index + 1) if len(results) > 1 else ""
        if isinstance(host, str) and host:
            prefix = host + " "
        for entry in result["sockets"]:
            entry = entry if isinstance(entry, dict) else {}
            label = prefix + str(entry.get("socket"))
            backends = entry.get("backends")
            servers = ((backends or {}).get(backend) or {}).get("servers") if isinstance(backends, dict) else None
            if not isinstance(servers, dict):
                raise NotFoundError(
                    "%s: HAProxy at %s has no backend %s in the counters given." % (what, label, backend),
                    socket=label,
                )
            if label in snapshot:
                raise ValidationError(
                    "%s reads %s twice: list each load balancer (host and socket) once, or its traffic counts twice."
                    % (what, label)
                )
            snapshot[label] = servers
    return snapshot
