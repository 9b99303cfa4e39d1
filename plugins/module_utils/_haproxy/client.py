# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The client of one HAProxy instance's Runtime API: send a command, read its answer, raise on a refusal.

Plain Python: no AnsibleModule, no fail_json. The transport is injectable (any object with
``exchange(command) -> answer``); by default a :class:`.transport.SocketTransport`.
"""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    LBCommandError,
    LBPermissionError,
    NotFoundError,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy import commands
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.commands import (
    STAT_TYPE_BACKEND,
    STAT_TYPE_SERVER,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.names import (
    Target,
    check_command,
    validate_name,
    validate_state,
    validate_weight,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.parse import (
    build_backends,
    parse_servers_state,
    parse_show_stat,
    server_from_stat,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.transport import (
    DEFAULT_SOCKET_TIMEOUT,
    SocketTransport,
)

_NOT_FOUND_ANSWERS = ("No such server.", "No such backend.", "No such proxy.", "Can't find backend.")
_PERMISSION_ANSWER = "Permission denied"
_CLI_LEVELS = ("user", "operator", "admin")


def classify_answer(address, command, answer):
    """Turn a non-empty answer to a command into the matching collection exception."""
    text = answer.strip()
    first = text.splitlines()[0].strip() if text else ""
    if first == _PERMISSION_ANSWER:
        return LBPermissionError(
            "HAProxy at %s answered 'Permission denied' to '%s': this is not an admin-level socket. Point sockets "
            "at a socket declared with 'stats socket ... level admin'." % (address, command),
            socket=address,
        )
    if first in _NOT_FOUND_ANSWERS:
        return NotFoundError(
            "HAProxy at %s answered '%s' to '%s'. Check the backend and server names against this HAProxy's "
            "configuration." % (address, first, command),
            socket=address,
        )
    return LBCommandError("HAProxy at %s answered '%s' to '%s'." % (address, text, command), socket=address)


def make_runtime(address, timeout=DEFAULT_SOCKET_TIMEOUT):
    """Default connection factory: a runtime client over the real socket transport."""
    return HAProxyRuntime(address, timeout=timeout)


class HAProxyRuntime:
    """Client of one HAProxy instance's Runtime API.

    Two ways in. The methods that take names (``get_server``, ``set_server_state``...) are where names enter: they
    check them once, by building a :class:`.names.Target`. The methods that take a target (``read_server``,
    ``stat_server``, ``read_backends``) and :meth:`run` (a command from :mod:`.commands`) trust what they get.
    A change returns the command string it sent.
    """

    def __init__(self, address, timeout=DEFAULT_SOCKET_TIMEOUT, transport=None):
        self.address = address
        self.transport = transport if transport is not None else SocketTransport(address, timeout)

    def __repr__(self):
        return "HAProxyRuntime(%r)" % (self.address,)

    # -- raw ------------------------------------------------------------------------------

    def execute(self, command):
        """Send one command and return the raw answer text."""
        return self.transport.exchange(check_command(command))

    def run(self, command):
        """Send a command whose success answer is empty; raise on any other answer. Returns ``command``."""
        answer = self.execute(command)
        if answer.strip():
            raise classify_answer(self.address, command, answer)
        return command

    def _query(self, command, parser):
        answer = self.execute(command)
        first = answer.strip().splitlines()[0].strip() if answer.strip() else ""
        if first == _PERMISSION_ANSWER or first in _NOT_FOUND_ANSWERS:
            raise classify_answer(self.address, command, answer)
        try:
            return parser(answer)
        except LBCommandError as exc:
            raise LBCommandError("HAProxy at %s: %s" % (self.address, exc.msg), socket=self.address) from exc

    # -- reads ----------------------------------------------------------------------------

    def cli_level(self):
        """Return ``admin``, ``operator`` or ``user`` (``show cli level``), or None if unknown."""
        answer = self.execute(commands.SHOW_CLI_LEVEL).strip()
        return answer if answer in _CLI_LEVELS else None

    def require_admin(self):
        """Raise LBPermissionError unless this socket is admin-level (unknown level passes)."""
        level = self.cli_level()
        if level is not None and level != "admin":
            raise LBPermissionError(
                "HAProxy runtime socket %s is a %s-level socket; changing server state needs an admin-level socket "
                "('stats socket ... level admin')." % (self.address, level),
                socket=self.address,
            )
        return level

    def show_stat(self, backend=None, types=STAT_TYPE_SERVER):
        """Rows of ``show stat <backend|-1> <types> -1``."""
        if backend is not None:
            validate_name(backend, "backend")
        return self._query(commands.show_stat(backend, types), parse_show_stat)

    def show_servers_state(self, backend=None):
        """Rows of ``show servers state [<backend>]``."""
        if backend is not None:
            validate_name(backend, "backend")
        return self._query(commands.show_servers_state(backend), parse_servers_state)[1]

    def get_backends(self, backend=None):
        """``{backend: {"totals": {...}, "servers": {name: server}}}`` for one or all backends."""
        return self.read_backends(None if backend is None else Target(backend))

    def get_server(self, backend, server):
        """Full server dict (``show stat`` merged with ``show servers state``)."""
        return self.read_server(Target(backend, server))

    def server_stat(self, backend, server):
        """Cheap read for polling: the server dict from ``show stat`` only (one command)."""
        return self.stat_server(Target(backend, server))

    # -- reads of a checked target ----------------------------------------------------------

    def read_backends(self, target=None):
        """:meth:`get_backends` of ``target``'s backend (None: every backend)."""
        backend = None if target is None else target.backend
        stat_rows = self._query(commands.show_stat(backend, STAT_TYPE_BACKEND | STAT_TYPE_SERVER), parse_show_stat)
        state_rows = self._query(commands.show_servers_state(backend), parse_servers_state)[1]
        backends = build_backends(stat_rows, state_rows)
        if backend is not None:
            # Defensive: keep only the backend asked for (a numeric name could select by id).
            backends = {name: data for name, data in backends.items() if name == backend}
            if not backends:
                raise NotFoundError(
                    "HAProxy at %s has no backend named %s." % (self.address, backend), socket=self.address
                )
        return backends

    def read_server(self, target):
        """:meth:`get_server` of a checked server target."""
        servers = self.read_backends(target)[target.backend]["servers"]
        if target.server not in servers:
            raise NotFoundError(
                "HAProxy at %s has no server %s in backend %s (it has: %s)."
                % (self.address, target.server, target.backend, ", ".join(sorted(servers)) or "no servers"),
                socket=self.address,
            )
        return servers[target.server]

    def stat_server(self, target):
        """:meth:`server_stat` of a checked server target."""
        for row in self._query(commands.show_stat(target.backend, STAT_TYPE_SERVER), parse_show_stat):
            if row.get("pxname") == target.backend and row.get("svname") == target.server:
                return server_from_stat(row)
        raise NotFoundError(
            "HAProxy at %s has no server %s in backend %s." % (self.address, target.server, target.backend),
            socket=self.address,
        )

    # -- changes (by name: the names, state and weight are checked here) ---------------------

    def set_server_state(self, backend, server, state):
        target = Target(backend, server)
        return self.run(commands.set_state(target, validate_state(state)))

    def set_server_weight(self, backend, server, weight):
        target = Target(backend, server)
        return self.run(commands.set_weight(target, validate_weight(weight)))

    def shutdown_sessions(self, backend, server):
        return self.run(commands.shutdown_sessions(Target(backend, server)))
