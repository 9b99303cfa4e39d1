# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The text of each Runtime API command, written in one place.

Each builder formats what it is given and checks nothing: names arrive as a :class:`.names.Target` (checked when
it was built), states and weights after :func:`.names.validate_state` / :func:`.names.validate_weight`. The
string a builder returns is the one that is sent, and the one that results report.
"""

SHOW_CLI_LEVEL = "show cli level"

# Stat type filter of "show stat <proxy> <type> <sid>": 1 frontends, 2 backends, 4 servers.
STAT_TYPE_BACKEND = 2
STAT_TYPE_SERVER = 4


def show_stat(backend=None, types=STAT_TYPE_SERVER):
    """``show stat <backend|-1> <types> -1``; ``backend`` is a checked name or None for every proxy."""
    return "show stat %s %d -1" % ("-1" if backend is None else backend, types)


def show_servers_state(backend=None):
    """``show servers state [<backend>]``; ``backend`` is a checked name or None."""
    return "show servers state" if backend is None else "show servers state %s" % backend


def set_state(target, state):
    return "set server %s state %s" % (target, state)


def set_weight(target, weight):
    return "set server %s weight %d" % (target, weight)


def shutdown_sessions(target):
    return "shutdown sessions server %s" % (target,)
