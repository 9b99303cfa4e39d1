# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The wire: one command per connection to a unix or TCP runtime socket, one deadline and a size cap per answer.

HAProxy's non-interactive mode: connect, send one line, read until HAProxy closes the connection.
"""

import errno
import os
import socket
import stat
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    LBCommandError,
    LBPermissionError,
    LBUnreachableError,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.names import SocketAddress, parse_address

DEFAULT_SOCKET = "/run/haproxy/admin.sock"
DEFAULT_SOCKET_TIMEOUT = 10.0
# Largest answer read from a runtime socket. A real answer is far smaller ("show stat" of a few hundred
# servers is a few hundred KiB); anything past the cap is a flooding peer, not HAProxy.
DEFAULT_MAX_RESPONSE = 16 * 1024 * 1024
_RECV_SIZE = 65536


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
