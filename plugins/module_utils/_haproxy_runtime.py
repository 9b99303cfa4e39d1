# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""HAProxy Runtime API client: transport, name validation, output parsers and server model.

Plain Python: no AnsibleModule, no fail_json. Functions take what they need, return data and
raise the collection's exceptions (see ``_errors``).

One command per connection (HAProxy's non-interactive mode): the client connects, sends one
line, reads until HAProxy closes the connection. Every command string is built from validated
names only, and :meth:`HAProxyRuntime.execute` refuses anything that could smuggle a second
command (newline, ``;``) as a last line of defence.
"""

import csv
import errno
import os
import re
import socket
import stat
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    LBCommandError,
    LBPermissionError,
    LBUnreachableError,
    NotFoundError,
    ValidationError,
)

DEFAULT_SOCKET = "/run/haproxy/admin.sock"
DEFAULT_SOCKET_TIMEOUT = 10.0
# Largest answer read from a runtime socket. A real answer is far smaller ("show stat" of a few hundred
# servers is a few hundred KiB); anything past the cap is a flooding peer, not HAProxy.
DEFAULT_MAX_RESPONSE = 16 * 1024 * 1024
_RECV_SIZE = 65536
STATES = ("ready", "drain", "maint")
MIN_WEIGHT = 0
MAX_WEIGHT = 256

# Stat type filter of "show stat <proxy> <type> <sid>": 1 frontends, 2 backends, 4 servers.
STAT_TYPE_BACKEND = 2
STAT_TYPE_SERVER = 4

# Characters HAProxy accepts in proxy and server names.
_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]+")
_HOST_RE = re.compile(r"[A-Za-z0-9_.:-]+")

# srv_admin_state bits ("show servers state"), HAProxy 2.x.
ADMIN_FLAGS = (
    (0x01, "forced_maint"),
    (0x02, "inherited_maint"),
    (0x04, "config_disabled"),
    (0x08, "forced_drain"),
    (0x10, "inherited_drain"),
    (0x20, "resolution_maint"),
    (0x40, "fqdn_changed"),
)
# A server is in maintenance when any of these is set. 0x04 alone only records that the
# server was "disabled" in the configuration: once "set server ... state ready" clears 0x01,
# 0x04 stays and the server takes traffic again.
ADMIN_MAINT_MASK = 0x01 | 0x02 | 0x20
ADMIN_DRAIN_MASK = 0x08 | 0x10

# srv_op_state values ("show servers state").
OPERATIONAL_STATES = {0: "stopped", 1: "starting", 2: "running", 3: "stopping"}

# srv_check_state bit meaning "a health check is configured".
CHECK_CONFIGURED = 0x02

# "UP 1/3", "DOWN 1/2", "NOLB 1/2", "DRAIN 1/2": a health state in transition.
_TRANSITIONAL_RE = re.compile(r"([A-Z]+) +\d+/\d+")

_NOT_FOUND_ANSWERS = ("No such server.", "No such backend.", "No such proxy.", "Can't find backend.")
_PERMISSION_ANSWER = "Permission denied"
_CLI_LEVELS = ("user", "operator", "admin")


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def validate_name(value, kind="name"):
    """Return ``value`` if it is a valid HAProxy backend/server name, else raise ValidationError.

    Only letters, digits, ``-``, ``_``, ``.`` and ``:`` are accepted (ASCII only). The check runs
    before any command is built, so nothing is ever sent for a refused name.
    """
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise ValidationError(
            "Invalid %s name %r: HAProxy names may only contain letters, digits, '-', '_', '.' and ':'. "
            "Nothing was sent to HAProxy; fix the name." % (kind, value)
        )
    return value


def validate_state(state):
    if state not in STATES:
        raise ValidationError("Invalid state %r: use one of %s." % (state, ", ".join(STATES)))
    return state


def validate_weight(weight):
    if isinstance(weight, bool) or not isinstance(weight, int) or not MIN_WEIGHT <= weight <= MAX_WEIGHT:
        raise ValidationError(
            "Invalid weight %r: HAProxy accepts an absolute weight from %d to %d." % (weight, MIN_WEIGHT, MAX_WEIGHT)
        )
    return weight


class SocketAddress:
    """A parsed runtime socket address: a unix socket path, or ``tcp://host:port``."""

    def __init__(self, text, kind, path=None, host=None, port=None):
        self.text = text
        self.kind = kind
        self.path = path
        self.host = host
        self.port = port

    def __repr__(self):
        return "SocketAddress(%r)" % (self.text,)


def parse_address(text):
    """Parse ``/path/to/admin.sock`` or ``tcp://host:port`` (``tcp://[::1]:9999`` for IPv6)."""
    hint = "Use an absolute unix socket path such as /run/haproxy/admin.sock, or tcp://HOST:PORT."
    if not isinstance(text, str) or not text:
        raise ValidationError("Invalid HAProxy socket %r. %s" % (text, hint))
    if any(ord(c) < 32 for c in text):
        raise ValidationError("Invalid HAProxy socket %r: it contains control characters. %s" % (text, hint))
    if text.startswith("/"):
        return SocketAddress(text, "unix", path=text)
    if text.startswith("tcp://"):
        rest = text[len("tcp://") :]
        if rest.startswith("["):
            host, sep, port = rest[1:].partition("]:")
        else:
            host, sep, port = rest.rpartition(":")
        if (
            not sep
            or not host
            or not _HOST_RE.fullmatch(host)
            or not (port.isascii() and port.isdigit())
            or not 0 < int(port) < 65536
        ):
            raise ValidationError("Invalid HAProxy socket %r: expected tcp://HOST:PORT. %s" % (text, hint))
        return SocketAddress(text, "tcp", host=host, port=int(port))
    raise ValidationError("Invalid HAProxy socket %r. %s" % (text, hint))


def validate_sockets(sockets):
    """Validate a non-empty list of distinct socket addresses; return the parsed addresses."""
    if not sockets:
        raise ValidationError("sockets is empty: give at least one HAProxy runtime socket.")
    parsed = []
    seen = set()
    for text in sockets:
        address = parse_address(text)
        if text in seen:
            raise ValidationError("sockets lists %s twice; list each HAProxy instance once." % (text,))
        seen.add(text)
        parsed.append(address)
    return parsed


def check_command(command):
    """Refuse a command line that is empty or could carry a second command."""
    if not isinstance(command, str) or not command.strip():
        raise ValidationError("Refusing to send an empty command to HAProxy.")
    if any(c in command for c in ("\n", "\r", "\0", ";")):
        raise ValidationError("Refusing to send %r to HAProxy: it contains a command separator." % (command,))
    return command


# --------------------------------------------------------------------------------------------
# Transport
# --------------------------------------------------------------------------------------------


class SocketTransport:
    """Sends one command per connection to a unix or TCP runtime socket and returns the answer.

    ``timeout`` is one deadline per command: connecting, sending and every read of the answer share it, so a
    peer that trickles its answer byte by byte fails at the deadline. At most ``max_response`` bytes of answer
    are read; a peer that sends more fails with LBCommandError, and memory stays bounded.
    """

    def __init__(self, address, timeout=DEFAULT_SOCKET_TIMEOUT, max_response=DEFAULT_MAX_RESPONSE, clock=None):
        self.address = address if isinstance(address, SocketAddress) else parse_address(address)
        self.timeout = timeout
        self.max_response = max_response
        self.clock = clock or time.monotonic

    def _connect(self):
        addr = self.address
        try:
            if addr.kind == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                try:
                    sock.connect(addr.path)
                except BaseException:
                    sock.close()
                    raise
                return sock
            sock = socket.create_connection((addr.host, addr.port), timeout=self.timeout)
            sock.settimeout(self.timeout)
            return sock
        except socket.timeout:
            raise LBUnreachableError(
                "Timed out after %ss connecting to HAProxy runtime socket %s. Check that HAProxy is running and "
                "that nothing blocks the connection." % (self.timeout, addr.text),
                socket=addr.text,
            ) from None
        except socket.gaierror as exc:
            raise LBUnreachableError(
                "Cannot resolve the host of HAProxy runtime socket %s: %s. Fix the host name in sockets."
                % (addr.text, exc),
                socket=addr.text,
            ) from exc
        except OSError as exc:
            raise self._classify_connect_error(exc) from exc

    def _classify_connect_error(self, exc):
        addr = self.address
        code = exc.errno
        if addr.kind == "unix" and code == errno.ENOENT:
            return LBUnreachableError(
                "HAProxy runtime socket %s does not exist. Check that HAProxy is running on this host and that its "
                "'stats socket' line uses this path, or pass the right path in sockets." % addr.path,
                socket=addr.text,
            )
        if code in (errno.EACCES, errno.EPERM):
            return LBPermissionError(
                "Permission denied opening HAProxy runtime socket %s. Run the task as a user allowed to open it "
                "(for example with become: true), or adjust the mode/user/group of the 'stats socket' line."
                % addr.text,
                socket=addr.text,
            )
        if code == errno.ECONNREFUSED:
            if addr.kind == "unix":
                what = "nothing listens on it (HAProxy stopped, or a stale socket file?)"
                try:
                    if not stat.S_ISSOCK(os.stat(addr.path).st_mode):
                        what = "it is not a socket"
                except OSError:
                    pass
                return LBUnreachableError(
                    "Connection refused by HAProxy runtime socket %s: %s. Start HAProxy or fix the path."
                    % (addr.text, what),
                    socket=addr.text,
                )
            return LBUnreachableError(
                "Connection refused by %s: nothing listens on %s:%s. Check HAProxy's 'stats socket ipv4@...' line "
                "and the address in sockets." % (addr.text, addr.host, addr.port),
                socket=addr.text,
            )
        return LBUnreachableError(
            "Cannot connect to HAProxy runtime socket %s: %s." % (addr.text, exc.strerror or exc), socket=addr.text
        )

    def exchange(self, command):
        """Send ``command`` and return HAProxy's whole answer as text, within one deadline and the size cap."""
        deadline = self.clock() + self.timeout
        sock = self._connect()
        try:
            sock.settimeout(self._remaining(deadline))
            sock.sendall(command.encode("utf-8") + b"\n")
            answer = bytearray()
            while True:
                # The socket timeout is what is left of the command's deadline, not a fresh one per read.
                sock.settimeout(self._remaining(deadline))
                data = sock.recv(min(_RECV_SIZE, self.max_response + 1 - len(answer)))
                if not data:
                    break
                answer += data
                if len(answer) > self.max_response:
                    raise LBCommandError(
                        "HAProxy runtime socket %s sent more than %s in answer to %r; stopped reading. A real "
                        "HAProxy answer is far smaller: check that sockets points at HAProxy's admin socket and "
                        "not at another service." % (self.address.text, _size(self.max_response), command),
                        socket=self.address.text,
                    )
        except socket.timeout:
            raise LBUnreachableError(
                "HAProxy runtime socket %s did not finish answering %r within %ss (one deadline for the whole "
                "answer). Check that HAProxy is not overloaded and that sockets points at HAProxy's admin socket."
                % (self.address.text, command, self.timeout),
                socket=self.address.text,
            ) from None
        except OSError as exc:
            raise LBUnreachableError(
                "Lost the connection to HAProxy runtime socket %s while running %r: %s."
                % (self.address.text, command, exc.strerror or exc),
                socket=self.address.text,
            ) from exc
        finally:
            sock.close()
        return answer.decode("utf-8", "replace")

    def _remaining(self, deadline):
        """Seconds left before ``deadline``; socket.timeout once it has passed."""
        remaining = deadline - self.clock()
        if remaining <= 0:
            raise socket.timeout("deadline passed")
        return remaining


def _size(count):
    if count >= 1024 * 1024 and count % (1024 * 1024) == 0:
        return "%d MiB" % (count // (1024 * 1024))
    if count >= 1024 and count % 1024 == 0:
        return "%d KiB" % (count // 1024)
    return "%d bytes" % count


# --------------------------------------------------------------------------------------------
# Parsers
# --------------------------------------------------------------------------------------------


def _int(value):
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _str(value):
    if value is None:
        return None
    value = value.strip()
    return value or None


def _content_lines(text):
    return [line for line in text.splitlines() if line.strip()]


def parse_show_stat(text):
    """Parse the CSV of ``show stat`` into a list of dicts keyed by the header's column names.

    Columns are looked up by name, so unknown extra columns (newer HAProxy) are simply carried
    along, and columns missing from a row read as ``""``.
    """
    lines = _content_lines(text)
    if not lines or not lines[0].startswith("#"):
        raise LBCommandError(
            "Unexpected answer to 'show stat' (no '# pxname,svname,...' header): %r" % (text.strip()[:200],)
        )
    header = [name.strip() for name in lines[0].lstrip("#").strip().split(",")]
    rows = []
    for values in csv.reader(lines[1:]):
        row = {}
        for index, name in enumerate(header):
            if not name or name == "-":
                continue
            row[name] = values[index] if index < len(values) else ""
        rows.append(row)
    return rows


def parse_servers_state(text):
    """Parse ``show servers state``: a version line (``1``), a ``#`` header, space-separated rows.

    Returns ``(version, rows)``; each row is a dict keyed by the header's column names.
    """
    lines = _content_lines(text)
    version = None
    if lines and not lines[0].startswith("#"):
        version = lines[0].strip()
        if not (version.isascii() and version.isdigit()):
            raise LBCommandError("Unexpected answer to 'show servers state': %r" % (text.strip()[:200],))
        lines = lines[1:]
    if not lines or not lines[0].startswith("#"):
        raise LBCommandError("Unexpected answer to 'show servers state' (no '#' header): %r" % (text.strip()[:200],))
    header = lines[0].lstrip("#").split()
    rows = []
    for line in lines[1:]:
        values = line.split()
        rows.append({name: (values[index] if index < len(values) else "") for index, name in enumerate(header)})
    return version, rows


def normalise_status(status):
    """Split a ``show stat`` status into ``(base_status, steady)``.

    ``UP`` -> ("UP", True); ``UP 1/3`` -> ("UP", False); ``DOWN 1/2`` -> ("DOWN", False);
    ``no check`` -> ("no check", True); ``MAINT (via be/srv)`` -> ("MAINT", True);
    ``DRAIN (agent)`` -> ("DRAIN", True).
    """
    text = (status or "").strip()
    if not text:
        return "UNKNOWN", False
    if text == "no check":
        return "no check", True
    match = _TRANSITIONAL_RE.fullmatch(text)
    if match:
        return match.group(1), False
    return text.split(" ", 1)[0], True


def is_up(server):
    """True when the server takes traffic steadily: status exactly ``UP``, or ``no check``.

    ``UP 1/3`` (still in transition) is not up; a server without a health check reports
    ``no check`` and counts as up.
    """
    status = server.get("status")
    return status == "UP" or status == "no check"


def is_drained(server):
    """True when no session and no queued request remains on the server."""
    return not server.get("sessions") and not server.get("queue")


def is_maint(server):
    return server.get("base_status") == "MAINT"


def admin_state_from_bits(bits):
    if bits & ADMIN_MAINT_MASK:
        return "maint"
    if bits & ADMIN_DRAIN_MASK:
        return "drain"
    return "ready"


def admin_flags(bits):
    return [name for bit, name in ADMIN_FLAGS if bits & bit]


def _admin_state_from_status(base_status):
    if base_status == "MAINT":
        return "maint"
    if base_status == "DRAIN":
        return "drain"
    return "ready"


def _responses(row):
    return {
        "1xx": _int(row.get("hrsp_1xx")),
        "2xx": _int(row.get("hrsp_2xx")),
        "3xx": _int(row.get("hrsp_3xx")),
        "4xx": _int(row.get("hrsp_4xx")),
        "5xx": _int(row.get("hrsp_5xx")),
        "other": _int(row.get("hrsp_other")),
    }


def _timings(row):
    return {
        "queue_time_ms": _int(row.get("qtime")),
        "connect_time_ms": _int(row.get("ctime")),
        "response_time_ms": _int(row.get("rtime")),
        "total_time_ms": _int(row.get("ttime")),
    }


def server_from_stat(row):
    """Build the server dict from a ``show stat`` server row (no admin bits: see merge_servers_state)."""
    status = (row.get("status") or "").strip()
    base, steady = normalise_status(status)
    server = {
        "backend": row.get("pxname"),
        "server": row.get("svname"),
        "address": _str(row.get("addr")),
        "status": status,
        "base_status": base,
        "steady": steady,
        "healthy": status in ("UP", "no check"),
        "admin_state": _admin_state_from_status(base),
        "admin_state_bits": None,
        "admin_flags": None,
        "operational_state": None,
        "weight": _int(row.get("uweight")),
        "effective_weight": _int(row.get("weight")),
        "initial_weight": None,
        "sessions": _int(row.get("scur")) or 0,
        "queue": _int(row.get("qcur")) or 0,
        "max_sessions": _int(row.get("smax")),
        "session_limit": _int(row.get("slim")),
        "total_sessions": _int(row.get("stot")),
        "responses": _responses(row),
        "has_check": status != "no check" and bool(_str(row.get("check_status"))),
        "check_status": _str(row.get("check_status")),
        "check_code": _int(row.get("check_code")),
        "check_description": _str(row.get("check_desc")),
        "last_change_seconds": _int(row.get("lastchg")),
        "downtime_seconds": _int(row.get("downtime")),
        "backup": _int(row.get("bck")) == 1,
    }
    server.update(_timings(row))
    if server["weight"] is None:
        server["weight"] = server["effective_weight"]
    return server


def merge_servers_state(server, state_row):
    """Overlay what ``show servers state`` knows (admin bits, operational state, weights)."""
    if not state_row:
        return server
    bits = _int(state_row.get("srv_admin_state"))
    if bits is not None:
        server["admin_state_bits"] = bits
        server["admin_flags"] = admin_flags(bits)
        server["admin_state"] = admin_state_from_bits(bits)
    op_state = _int(state_row.get("srv_op_state"))
    if op_state is not None:
        server["operational_state"] = OPERATIONAL_STATES.get(op_state, str(op_state))
    uweight = _int(state_row.get("srv_uweight"))
    if uweight is not None:
        server["weight"] = uweight
    server["initial_weight"] = _int(state_row.get("srv_iweight"))
    check_state = _int(state_row.get("srv_check_state"))
    if check_state is not None:
        server["has_check"] = bool(check_state & CHECK_CONFIGURED)
    return server


def backend_totals_from_stat(row):
    """Backend-level totals from the ``BACKEND`` row of ``show stat``."""
    totals = {
        "status": (row.get("status") or "").strip(),
        "sessions": _int(row.get("scur")) or 0,
        "queue": _int(row.get("qcur")) or 0,
        "max_sessions": _int(row.get("smax")),
        "total_sessions": _int(row.get("stot")),
        "weight": _int(row.get("weight")),
        "active_servers": _int(row.get("act")),
        "backup_servers": _int(row.get("bck")),
        "responses": _responses(row),
        "algorithm": _str(row.get("algo")),
        "mode": _str(row.get("mode")),
    }
    totals.update(_timings(row))
    return totals


def build_backends(stat_rows, state_rows):
    """Combine ``show stat`` rows and ``show servers state`` rows into ``{backend: {...}}``."""
    states = {(r.get("be_name"), r.get("srv_name")): r for r in state_rows}
    backends = {}
    for row in stat_rows:
        pxname = row.get("pxname")
        svname = row.get("svname")
        if svname == "FRONTEND":
            continue
        entry = backends.setdefault(pxname, {"totals": None, "servers": {}})
        if svname == "BACKEND":
            entry["totals"] = backend_totals_from_stat(row)
        else:
            entry["servers"][svname] = merge_servers_state(server_from_stat(row), states.get((pxname, svname)))
    return backends


# --------------------------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------------------------


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


class HAProxyRuntime:
    """Client of one HAProxy instance's Runtime API.

    ``transport`` is any object with ``exchange(command) -> answer``; by default a
    :class:`SocketTransport` for ``address``. ``commands_sent`` counts every command handed to
    the transport, and ``sent`` lists them in order (the tests rely on both).
    """

    def __init__(self, address, timeout=DEFAULT_SOCKET_TIMEOUT, transport=None):
        self.address = address
        self.transport = transport if transport is not None else SocketTransport(address, timeout)
        self.commands_sent = 0
        self.sent = []

    def __repr__(self):
        return "HAProxyRuntime(%r)" % (self.address,)

    # -- raw ------------------------------------------------------------------------------

    def execute(self, command):
        """Send one command and return the raw answer text."""
        check_command(command)
        self.commands_sent += 1
        self.sent.append(command)
        return self.transport.exchange(command)

    def run(self, command):
        """Send a command whose success answer is empty; raise on any other answer."""
        answer = self.execute(command)
        if answer.strip():
            raise classify_answer(self.address, command, answer)

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
        answer = self.execute("show cli level").strip()
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
        target = validate_name(backend, "backend") if backend is not None else "-1"
        return self._query("show stat %s %d -1" % (target, types), parse_show_stat)

    def show_servers_state(self, backend=None):
        """Rows of ``show servers state [<backend>]``."""
        command = "show servers state"
        if backend is not None:
            command += " " + validate_name(backend, "backend")
        return self._query(command, parse_servers_state)[1]

    def get_backends(self, backend=None):
        """``{backend: {"totals": {...}, "servers": {name: server}}}`` for one or all backends."""
        if backend is not None:
            validate_name(backend, "backend")
        stat_rows = self.show_stat(backend, STAT_TYPE_BACKEND | STAT_TYPE_SERVER)
        state_rows = self.show_servers_state(backend)
        backends = build_backends(stat_rows, state_rows)
        if backend is not None:
            # Defensive: keep only the backend asked for (a numeric name could select by id).
            backends = {name: data for name, data in backends.items() if name == backend}
            if not backends:
                raise NotFoundError(
                    "HAProxy at %s has no backend named %s." % (self.address, backend), socket=self.address
                )
        return backends

    def get_server(self, backend, server):
        """Full server dict (``show stat`` merged with ``show servers state``)."""
        validate_name(backend, "backend")
        validate_name(server, "server")
        servers = self.get_backends(backend)[backend]["servers"]
        if server not in servers:
            raise NotFoundError(
                "HAProxy at %s has no server %s in backend %s (it has: %s)."
                % (self.address, server, backend, ", ".join(sorted(servers)) or "no servers"),
                socket=self.address,
            )
        return servers[server]

    def server_stat(self, backend, server):
        """Cheap read for polling: the server dict from ``show stat`` only (one command)."""
        validate_name(backend, "backend")
        validate_name(server, "server")
        for row in self.show_stat(backend, STAT_TYPE_SERVER):
            if row.get("pxname") == backend and row.get("svname") == server:
                return server_from_stat(row)
        raise NotFoundError(
            "HAProxy at %s has no server %s in backend %s." % (self.address, server, backend), socket=self.address
        )

    # -- changes --------------------------------------------------------------------------

    def set_server_state(self, backend, server, state):
        validate_name(backend, "backend")
        validate_name(server, "server")
        validate_state(state)
        self.run("set server %s/%s state %s" % (backend, server, state))

    def set_server_weight(self, backend, server, weight):
        validate_name(backend, "backend")
        validate_name(server, "server")
        validate_weight(weight)
        self.run("set server %s/%s weight %d" % (backend, server, weight))

    def shutdown_sessions(self, backend, server):
        validate_name(backend, "backend")
        validate_name(server, "server")
        self.run("shutdown sessions server %s/%s" % (backend, server))
