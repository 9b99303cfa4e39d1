# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Exception hierarchy of the collection.

Every exception carries ``msg`` (a sentence for the operator: what happened and what to do)
and ``details`` (extra, JSON-serialisable keys that a module adds to its failure result).
Modules turn them into ``fail_json(msg=exc.msg, **exc.details)``.

RolloutError
 +-- ValidationError        bad input, refused before anything is sent anywhere
 +-- NotFoundError          a backend, server or target that does not exist
 +-- LBError                anything the load balancer did or did not answer
 |    +-- LBUnreachableError    cannot connect: socket missing, refused, timeout, DNS
 |    +-- LBPermissionError     socket file not accessible, or socket is not admin-level
 |    +-- LBCommandError        a command got an unexpected (error) answer
 +-- WaitTimeout            a wait reached its deadline; carries the last observed state
"""


class RolloutError(Exception):
    """Base class of every error raised by this collection's plugin utilities."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details

    def __str__(self):
        return self.msg


class ValidationError(RolloutError):
    """An argument is invalid. Raised before any command is sent."""


class NotFoundError(RolloutError):
    """The named backend/server (or target) does not exist where it was looked up."""


class LBError(RolloutError):
    """Base class for load balancer communication errors."""


class LBUnreachableError(LBError):
    """The load balancer could not be reached (missing socket, refused, timeout, name resolution)."""


class LBPermissionError(LBError):
    """Access was denied: the socket file is not accessible, or the socket is not admin-level."""


class LBCommandError(LBError):
    """A command was answered with an error, or the answer could not be understood."""


class WaitTimeout(RolloutError):
    """A wait reached its deadline.

    ``last_state`` is the last value the probe returned (or ``None`` when every probe failed),
    ``elapsed`` the seconds waited and ``attempts`` the number of probes made.
    """

    def __init__(self, msg, last_state=None, elapsed=0.0, attempts=0, last_error=None, **details):
        super().__init__(msg, **details)
        self.last_state = last_state
        self.elapsed = elapsed
        self.attempts = attempts
        self.last_error = last_error
