# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""What may enter the HAProxy layer: names, states, weights, socket addresses, and the checked target.

A backend or server name is checked once, where it enters the layer, by building a :class:`Target`; everything
past that point takes the target and trusts it. :func:`check_command` is the transport's last line of defence
against a second command smuggled into one line, not a name check.
"""

import re

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError

STATES = ("ready", "drain", "maint")
MIN_WEIGHT = 0
MAX_WEIGHT = 256

# Characters HAProxy accepts in proxy and server names.
_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]+")
_HOST_RE = re.compile(r"[A-Za-z0-9_.:-]+")


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


def as_option_text(value):
    """``value`` as a module's ``str`` option passes it on: an integer (not a bool) becomes its digits. Unchecked:
    give the result to :func:`validate_name`, for a value that comes from a variable rather than a module option."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


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


class Target:
    """A backend, or one server of it, whose names passed :func:`validate_name`.

    Built once where the names enter the layer (a module's parameters, a rotation member, a client call made
    with names); the commands and reads below take it as it is. ``str(target)`` is ``backend/server`` (or the
    backend alone), the form the runtime commands use.
    """

    __slots__ = ("backend", "server")

    def __init__(self, backend, server=None, server_kind="server"):
        self.backend = validate_name(backend, "backend")
        self.server = None if server is None else validate_name(server, server_kind)

    def with_server(self, server, kind="server"):
        """The same backend with ``server`` (only the new name is checked)."""
        target = Target.__new__(Target)
        target.backend = self.backend
        target.server = validate_name(server, kind)
        return target

    def __str__(self):
        return self.backend if self.server is None else "%s/%s" % (self.backend, self.server)

    def __repr__(self):
        return "Target(%r)" % str(self)


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
