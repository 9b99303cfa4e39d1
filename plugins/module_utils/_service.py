# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Stop and start the app: a systemd unit, or the operator's own start and stop command lines.

The operator's commands are command lines run by ``/bin/sh -c LINE``, as capistrano and ansistrano hooks are: variable
assignments (``PORT=8080 ./ctl start``), ``cd /srv/app && ./start``, quoting, ``$VAR`` and pipes work as in a
shell. ``systemctl`` runs without a shell. Every command has a deadline and a cap on the output kept for messages;
messages show the line (secret-looking values hidden). After a stop, the app's port (when given) must be closed
before the stop counts as done.
"""

import errno
import os
import re
import shlex
import socket
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_text

MANAGERS = ("systemd", "command")
OUTPUT_CAP = 2000
SH = "/bin/sh"
# The role variables behind the module options, named in messages so that an operator knows what to fix.
ROLE_VARIABLES = {"start_command": "rolling_update_start_command", "stop_command": "rolling_update_stop_command"}
_ASSIGNMENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
# What a command line's first program word may be preceded by besides assignments: subshell and separator tokens.
_SKIPPED_TOKENS = frozenset(("(", ";", "&&", "||", "&", "|", "!"))
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


def shown(argv):
    """How a command appears in a message: the line itself for ``/bin/sh -c LINE``, else the quoted argv; values
    that look secret (``password=...``, ``TOKEN=...``, URL user info) are hidden."""
    argv = list(argv)
    if len(argv) == 3 and argv[0] == SH and argv[1] == "-c":
        return redact_text(argv[2])
    return redact_text(shlex.join(argv))


def deadline_runner(run_command, timeout_bin=None):
    """A ``run(argv, timeout) -> (rc, stdout, stderr)`` over ``run_command(argv, expand_user_and_vars=False)``
    (AnsibleModule.run_command; the argv reaches the program as it is, so ``$VAR`` and ``~`` in a command line are
    left to the shell that runs it).

    With coreutils ``timeout`` (``timeout_bin``) the command is killed at its deadline (TERM to its whole process
    group, a shell's children included, then KILL 5 s later) and ServiceError raised; without it the command runs to
    its end. Start commands must detach the app from their output, as a systemd unit does, or the call waits for the
    app's pipes to close."""

    def run(argv, timeout):
        wrapped = list(argv)
        if timeout_bin:
            wrapped = [timeout_bin, "--kill-after=5", "%g" % max(timeout, 0.1)] + wrapped
        rc, out, err = run_command(wrapped, expand_user_and_vars=False)
        if timeout_bin and rc in (124, 137):
            raise ServiceError("%s did not finish within %gs and was killed." % (shown(argv), timeout), timed_out=True)
        return rc, out, err

    return run


def _executable(path):
    path = os.path.expanduser(path)
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _redirection(token):
    return bool(token) and set(token) <= set("<>&|") and ("<" in token or ">" in token)


def first_program(line):
    """The first word of a command line that is not a ``VAR=value`` assignment (nor a subshell or separator
    token), as the shell will look it up: ``PORT=1 ./ctl start`` -> ``./ctl``, ``cd /srv && ./start`` -> ``cd``.

    None when there is none to check before run time: the line only assigns, cannot be split here (``sh -n`` is the
    judge of syntax), or that word needs an expansion (``$APP/bin/ctl``, a command substitution)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        return None
    skip_next = False
    for index, token in enumerate(tokens):
        if skip_next:  # the file of a redirection written before the program: ">/dev/null ./start"
            skip_next = False
            continue
        if token in _SKIPPED_TOKENS:
            continue
        if _redirection(token):
            skip_next = True
            continue
        if token.isdigit() and index + 1 < len(tokens) and _redirection(tokens[index + 1]):
            continue  # the file descriptor of "2>/dev/null"
        if _ASSIGNMENT_RE.match(token):
            if token.endswith("$") or "`" in token:
                return None  # a command substitution in the value: the words after it are not split reliably here
            continue
        if any(c in token for c in "$`"):
            return None
        return token
    return None


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
            self.stop_argv = [SH, "-c", self._line(stop_command, "stop_command")]
            self.start_argv = [SH, "-c", self._line(start_command, "start_command")]
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
    def _line(command, what):
        if not isinstance(command, str) or not command.strip():
            raise ValidationError(
                "%s (%s) is required with service_manager=command: a command line for /bin/sh."
                % (what, ROLE_VARIABLES[what])
            )
        if "\0" in command:
            raise ValidationError("%s (%s) contains a NUL character." % (what, ROLE_VARIABLES[what]))
        return command

    def check(self, euid, which):
        """Before anything changes: the unit exists and this user may manage it (systemd), or the stop and start
        command lines pass ``sh -n`` and the first program of each resolves on this host (command). ``which`` is
        kept for callers; programs are resolved by the shell that will run them. Raises ServiceError with a message
        that says nothing was changed."""
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
            self._check_line(argv[2], what)

    def _check_line(self, line, what):
        """The line passes ``sh -n``, and its first program word (after VAR=value assignments) resolves with the
        shell's ``command -v`` (builtins such as ``cd`` and keywords count), or is an executable file when it names
        a path. Nothing of the line is run."""
        variable = "%s (%s in the rolling_update role)" % (what, ROLE_VARIABLES[what])
        rc, out, err = self.run([SH, "-n", "-c", line], 30.0)
        if rc != 0:
            raise ServiceError(
                "%s is not a valid /bin/sh command line: %r: sh -n says: %s. Fix its quoting or syntax in %s. "
                "Nothing was changed."
                % (what, redact_text(line), redact_text(_tail(err) or _tail(out) or "exit %d" % rc), variable)
            )
        program = first_program(line)
        if program is None:
            return  # only assignments, or a first word that only the shell can expand at run time
        if "/" in program:
            found = _executable(program)
        else:
            rc, out, err = self.run([SH, "-c", 'command -v -- "$1"', "sh", program], 30.0)
            found = rc == 0 and bool(_tail(out))
        if not found:
            raise ServiceError(
                "%s runs %s, which is not an executable program on this host%s; the line is %r. Fix %s: correct the "
                "program's name, give its absolute path, or install it. Nothing was changed."
                % (
                    what,
                    redact_text(program),
                    "" if "/" in program else " (not found on PATH)",
                    redact_text(line),
                    variable,
                )
            )

    def describe(self, action):
        """The stop or start command as messages show it (the command line itself for service_manager=command)."""
        return shown(self.stop_argv if action == "stop" else self.start_argv)

    def _call(self, argv, timeout, action):
        rc, out, err = self.run(argv, timeout)
        if rc != 0:
            detail = _tail(err) or _tail(out) or "no output"
            raise ServiceError(
                "%s the app failed: %s exited with %d: %s"
                % ("Stopping" if action == "stop" else "Starting", shown(argv), rc, detail),
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
