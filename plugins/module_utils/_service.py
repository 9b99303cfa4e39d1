# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Stop and start the app: a systemd unit, or the operator's own start and stop commands.

Commands run without a shell (``shlex.split``), with a deadline and a cap on the output kept for
messages. After a stop, the app's port (when given) must be closed before the stop counts as done.
"""

import errno
import os
import re
import shlex
import socket
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError

MANAGERS = ("systemd", "command")
OUTPUT_CAP = 2000
# systemd unit names: letters, digits and ":-_.\@", with a known suffix or none (.service is implied).
_UNIT_RE = re.compile(r"[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?(\.(service|socket|target))?")


class ServiceError(RolloutError):
    """Starting or stopping the app failed."""


def validate_unit(name):
    if not isinstance(name, str) or not name or len(name) > 255 or not _UNIT_RE.fullmatch(name) or name.startswith("-"):
        raise ValidationError(
            "Invalid systemd unit name %r: letters, digits and ':', '_', '.', '\\', '-', '@' only." % (name,)
        )
    return name


def _tail(data):
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")
    text = text.strip()
    return text if len(text) <= OUTPUT_CAP else "..." + text[-OUTPUT_CAP:]


def deadline_runner(run_command, timeout_bin=None):
    """A ``run(argv, timeout) -> (rc, stdout, stderr)`` over ``run_command(argv)`` (AnsibleModule.run_command).

    With coreutils ``timeout`` (``timeout_bin``) the command is killed at its deadline (TERM, then KILL 5 s later)
    and ServiceError raised; without it the command runs to its end. Start commands must detach the app from their
    output, as a systemd unit does, or the call waits for the app's pipes to close."""

    def run(argv, timeout):
        wrapped = list(argv)
        if timeout_bin:
            wrapped = [timeout_bin, "--kill-after=5", "%g" % max(timeout, 0.1)] + wrapped
        rc, out, err = run_command(wrapped)
        if timeout_bin and rc in (124, 137):
            raise ServiceError(
                "%s did not finish within %gs and was killed." % (shlex.join(argv), timeout), timed_out=True
            )
        return rc, out, err

    return run


def _executable(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


def port_open(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
            return False
        # A timeout: something holds the port but does not answer in time, so it is not closed.
        return isinstance(exc, socket.timeout)


class Service:
    """How to stop and start the app on this host."""

    def __init__(
        self,
        manager,
        name=None,
        start_command=None,
        stop_command=None,
        stop_timeout=60.0,
        start_timeout=120.0,
        app_host=None,
        app_port=0,
        run=None,
        clock=None,
        sleep=None,
        port_check=None,
    ):
        if manager not in MANAGERS:
            raise ValidationError("service_manager must be one of %s, got %r." % (", ".join(MANAGERS), manager))
        if manager == "systemd":
            self.stop_argv = ["systemctl", "stop", validate_unit(name)]
            self.start_argv = ["systemctl", "start", name]
        else:
            self.stop_argv = self._split(stop_command, "stop_command")
            self.start_argv = self._split(start_command, "start_command")
        for value, what in ((stop_timeout, "stop_timeout"), (start_timeout, "start_timeout")):
            if value is None or value <= 0:
                raise ValidationError("%s must be more than 0 seconds, got %r." % (what, value))
        if app_port and (isinstance(app_port, bool) or not 0 < int(app_port) < 65536):
            raise ValidationError("app_port must be a TCP port (1-65535) or 0, got %r." % (app_port,))
        self.manager = manager
        self.name = name
        self.stop_timeout = float(stop_timeout)
        self.start_timeout = float(start_timeout)
        self.app_host = app_host or "127.0.0.1"
        self.app_port = int(app_port or 0)
        if run is None:
            raise ValidationError("Service needs a command runner (deadline_runner over the module's run_command).")
        self.run = run
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.port_check = port_check or port_open

    @staticmethod
    def _split(command, what):
        if not isinstance(command, str) or not command.strip():
            raise ValidationError("%s is required with service_manager=command." % what)
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise ValidationError("%s cannot be parsed: %s." % (what, exc)) from None
        return argv

    def check(self, euid, which):
        """Before anything changes: the unit exists and this user may manage it (systemd), or the programs of the
        stop and start commands exist (command). ``which(name)`` finds a program on PATH (None when missing).
        Raises ServiceError with a message that says nothing was changed."""
        if self.manager == "systemd":
            rc, out, err = self.run(["systemctl", "show", "--property=LoadState", "--value", self.name], 30.0)
            if rc != 0:
                hint = (
                    "Is systemd running on this host?"
                    if euid == 0
                    else "The rollout runs as uid %d here: run it with become (for example ansible_become: true for "
                    "the app hosts)." % euid
                )
                raise ServiceError(
                    "Cannot ask systemd about %s: systemctl exited with %d: %s. %s Nothing was changed."
                    % (self.name, rc, _tail(err) or _tail(out) or "no output", hint)
                )
            state = _tail(out)
            if state != "loaded":
                raise ServiceError(
                    "The systemd unit %s is not known on this host (LoadState=%s). Check rolling_update_service_name. "
                    "Nothing was changed." % (self.name, state or "empty")
                )
            if euid != 0:
                raise ServiceError(
                    "Stopping and starting the systemd unit %s needs root, and the rollout runs as uid %d on this "
                    "host. Run it with become (for example ansible_become: true for the app hosts). Nothing was "
                    "changed." % (self.name, euid)
                )
            return
        for argv, what in ((self.stop_argv, "stop_command"), (self.start_argv, "start_command")):
            program = argv[0]
            if not (_executable(program) if "/" in program else which(program)):
                raise ServiceError(
                    "%s runs %s, which is not an executable program on this host%s. Fix the command. "
                    "Nothing was changed." % (what, program, "" if "/" in program else " (not found on PATH)")
                )

    def describe(self, action):
        return shlex.join(self.stop_argv if action == "stop" else self.start_argv)

    def _call(self, argv, timeout, action):
        rc, out, err = self.run(argv, timeout)
        if rc != 0:
            detail = _tail(err) or _tail(out) or "no output"
            raise ServiceError(
                "%s the app failed: %s exited with %d: %s"
                % ("Stopping" if action == "stop" else "Starting", shlex.join(argv), rc, detail),
                rc=rc,
            )

    def stop(self):
        """Stop, then wait (within stop_timeout) until the app's port is closed."""
        deadline = self.clock() + self.stop_timeout
        self._call(self.stop_argv, self.stop_timeout, "stop")
        if not self.app_port:
            return
        while self.port_check(self.app_host, self.app_port):
            if self.clock() >= deadline:
                raise ServiceError(
                    "The app still accepts connections on %s:%d %.0fs after '%s'."
                    % (self.app_host, self.app_port, self.stop_timeout, self.describe("stop"))
                )
            self.sleep(0.05)

    def start(self):
        self._call(self.start_argv, self.start_timeout, "start")
