# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""HAProxy's answers read into data: the ``show stat`` and ``show servers state`` parsers and the server model.

Pure functions over text and dicts: no socket, no command. Columns are looked up by the header's names.
"""

import csv
import re

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import LBCommandError

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


def in_rotation(server):
    """True when the server takes new traffic: admin state ``ready`` (not drained, not in maintenance) and
    :func:`is_up`. The one definition of "in rotation" for the drain, the capacity guard, the plan, the canary and
    the filters. A server row from a module's result carries ``healthy`` (:func:`is_up` of its status) already."""
    healthy = server["healthy"] if "healthy" in server else is_up(server)
    return server.get("admin_state") == "ready" and bool(healthy)


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
