# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""One server's admin state (and weight) on one or more HAProxy instances: preflight, change, wait, read back.

:func:`ensure_server_state` is where the haproxy_server module's names enter: it checks them once and hands a
:class:`.names.Target` to :func:`apply_server_state`, which the rotation calls directly with its own target. The
commands a result reports are the strings that were sent (in check mode, that would be sent). Time and
connections are injectable for unit tests.
"""

import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    LBUnreachableError,
    RolloutError,
    ValidationError,
    WaitTimeout,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy import commands
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.client import make_runtime
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.names import (
    Target,
    validate_sockets,
    validate_state,
    validate_weight,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.parse import is_drained, is_maint, is_up
from ansible_collections.zerodowntime.rollout.plugins.module_utils._waiter import wait_for

ON_TIMEOUT_CHOICES = ("fail", "shutdown_sessions")

# Keys of the per-socket before/after summaries in results and diffs.
SUMMARY_KEYS = (
    "status",
    "base_status",
    "steady",
    "admin_state",
    "operational_state",
    "weight",
    "sessions",
    "queue",
)
DIFF_KEYS = ("status", "admin_state", "weight")

_PREDICATES = {"ready": is_up, "drain": is_drained, "maint": is_maint}
_STATE_WORDS = {"ready": "ready", "drain": "in drain", "maint": "in maint"}
_WAIT_WORDS = {"ready": "to be steadily UP (or 'no check')", "drain": "to drain", "maint": "to be in MAINT"}


def _summary(server):
    return {key: server.get(key) for key in SUMMARY_KEYS}


def _predict_after(before, state, weight):
    """What check mode expects a server to look like after the change."""
    after = _summary(before)
    if weight is not None:
        after["weight"] = weight
    if before["admin_state"] != state:
        after["admin_state"] = state
        after["steady"] = True
        if state == "maint":
            after["status"] = after["base_status"] = "MAINT"
        elif state == "drain":
            after["status"] = after["base_status"] = "DRAIN"
        else:
            status = "UP" if before.get("has_check") else "no check"
            after["status"] = after["base_status"] = status
    return after


def _describe_state(servers, addresses):
    parts = []
    for address, server in zip(addresses, servers):
        if server is None:
            parts.append("%s: not read" % address)
            continue
        text = "%s: %s, %d sessions, %d queued" % (address, server["status"], server["sessions"], server["queue"])
        if server.get("check_status") and server["status"] not in ("UP", "no check"):
            text += " (check %s%s)" % (
                server["check_status"],
                ": " + server["check_description"] if server.get("check_description") else "",
            )
        parts.append(text)
    return "; ".join(parts)


def _preflight(runtimes, target, require_admin):
    """Read the server on every socket; collect every failure and raise once, before any change."""
    befores = []
    failures = []
    for runtime in runtimes:
        try:
            if require_admin:
                runtime.require_admin()
            befores.append(runtime.read_server(target))
        except RolloutError as exc:
            failures.append((runtime.address, exc))
    if failures:
        first = failures[0][1]
        reasons = " ".join(exc.msg for _address, exc in failures)
        msg = "Preflight failed on %d of %d HAProxy socket(s); nothing was changed on any of them. %s" % (
            len(failures),
            len(runtimes),
            reasons,
        )
        raise type(first)(
            msg, changed=False, failed_sockets=[{"socket": address, "msg": exc.msg} for address, exc in failures]
        )
    return befores


def ensure_server_state(sockets, backend, server, state, weight=None, **options):
    """Set ``backend/server`` to ``state`` (and ``weight``) on every socket, then optionally wait.

    The names, the state and the weight are checked here, before anything is sent; then
    :func:`apply_server_state` does the work (``options`` are its keyword arguments).

    :returns: result dict (see the haproxy_server module's RETURN).
    :raises RolloutError: ValidationError, NotFoundError, LBError subclasses, WaitTimeout.
    """
    addresses = validate_sockets(sockets)
    target = Target(backend, server)
    validate_state(state)
    if weight is not None:
        validate_weight(weight)
    return apply_server_state(addresses, target, state, weight=weight, **options)


def apply_server_state(
    addresses,
    target,
    state,
    weight=None,
    wait=True,
    timeout=300,
    poll_interval=0.5,
    on_timeout="fail",
    check_mode=False,
    diff=False,
    connect=None,
    clock=None,
    sleep=None,
    backoff=1.0,
    max_interval=None,
    jitter=0.0,
):
    """Set the checked server ``target`` to ``state`` (and ``weight``) on every parsed socket address.

    Order: check the wait options -> read the server on every socket (refuse if any socket fails)
    -> change only where admin state or weight differ -> wait -> read again.

    :param connect: ``callable(address) -> HAProxyRuntime``; default :func:`.client.make_runtime`.
    """
    if on_timeout not in ON_TIMEOUT_CHOICES:
        raise ValidationError("Invalid on_timeout %r: use one of %s." % (on_timeout, ", ".join(ON_TIMEOUT_CHOICES)))
    if timeout is None or timeout < 0:
        raise ValidationError("timeout must be 0 or more seconds, got %r." % (timeout,))
    if poll_interval is None or poll_interval <= 0:
        raise ValidationError("poll_interval must be more than 0 seconds, got %r." % (poll_interval,))

    connect = connect or make_runtime
    runtimes = [connect(address.text) for address in addresses]
    name = str(target)

    befores = _preflight(runtimes, target, require_admin=True)

    # Plan: only what differs, each command written once (sent as it is reported). Weight first, so a server
    # coming back takes traffic at its new weight.
    plans = []
    for before in befores:
        plan = []
        if weight is not None and before.get("weight") != weight:
            plan.append(commands.set_weight(target, weight))
        if before["admin_state"] != state:
            plan.append(commands.set_state(target, state))
        plans.append(plan)
    changed = any(plans)

    entries = []
    for runtime, before, plan in zip(runtimes, befores, plans):
        entries.append(
            {
                "socket": runtime.address,
                "changed": bool(plan),
                "commands": list(plan),
                "before": _summary(before),
                "after": None,
                "sessions_shutdown": 0,
            }
        )

    result = {
        "changed": changed,
        "backend": target.backend,
        "server": target.server,
        "state": state,
        "weight": weight,
        "sockets": entries,
        "elapsed": 0.0,
        "polls": 0,
        "waited": False,
        "timed_out": False,
        "sessions_shutdown": 0,
    }

    if check_mode:
        for entry, before in zip(entries, befores):
            entry["after"] = _predict_after(before, state, weight)
        _finish(result, diff)
        targets = [e["socket"] for e in entries if e["changed"]]
        if targets:
            result["msg"] = "Would set %s to %s%s on %s (check mode: nothing changed, nothing waited for)." % (
                name,
                state,
                " with weight %d" % weight if weight is not None else "",
                ", ".join(targets),
            )
        else:
            result["msg"] = "%s is already %s on all %d socket(s); nothing would change." % (
                name,
                _STATE_WORDS[state],
                len(entries),
            )
        return result

    # Apply.
    applied = []
    for runtime, plan in zip(runtimes, plans):
        try:
            for command in plan:
                runtime.run(command)
        except RolloutError as exc:
            done = ", ".join(applied) or "none"
            raise type(exc)(
                "Changing %s failed on %s: %s Sockets already changed: %s. Re-run the task, or set the state back "
                "by hand on those sockets." % (name, runtime.address, exc.msg, done),
                changed=bool(applied),
                sockets=entries,
            ) from exc
        if plan:
            applied.append(runtime.address)

    # Wait.
    if wait:
        result["waited"] = True
        last = {"servers": [None] * len(runtimes)}
        addresses_text = [r.address for r in runtimes]
        predicate = _PREDICATES[state]

        def probe():
            servers = [None] * len(runtimes)
            last["servers"] = servers
            for index, runtime in enumerate(runtimes):
                servers[index] = runtime.stat_server(target)
            return servers

        try:
            outcome = wait_for(
                probe,
                lambda servers: all(predicate(s) for s in servers),
                timeout=timeout,
                poll_interval=poll_interval,
                backoff=backoff,
                max_interval=max_interval,
                jitter=jitter,
                clock=clock or time.monotonic,
                sleep=sleep or time.sleep,
                retry_on=(LBUnreachableError,),
                describe=lambda servers: _describe_state(servers, addresses_text),
                what="%s %s" % (name, _WAIT_WORDS[state]),
            )
            result["elapsed"] = round(outcome.elapsed, 3)
            result["polls"] = outcome.attempts
        except WaitTimeout as exc:
            result["elapsed"] = round(exc.elapsed, 3)
            result["polls"] = exc.attempts
            result["timed_out"] = True
            servers = exc.last_state or last["servers"]
            for entry, observed in zip(entries, servers):
                entry["after"] = _summary(observed) if observed is not None else None
            if state != "drain" or on_timeout == "fail" or exc.last_state is None:
                hint = ""
                if state == "drain":
                    hint = " Raise timeout, or set on_timeout=shutdown_sessions to cut the remaining sessions."
                elif state == "ready":
                    hint = " Check the application and its health check; raise timeout if it needs longer to start."
                error = WaitTimeout(
                    "%s%s %s" % (exc.msg, hint, "The change was made." if changed else "Nothing was changed."),
                    last_state=exc.last_state,
                    elapsed=exc.elapsed,
                    attempts=exc.attempts,
                    last_error=exc.last_error,
                )
                error.details.update(
                    changed=changed,
                    sockets=entries,
                    elapsed=result["elapsed"],
                    polls=exc.attempts,
                    timed_out=True,
                )
                raise error from None
            # on_timeout == shutdown_sessions: cut what remains, where it remains.
            shutdown = commands.shutdown_sessions(target)
            for runtime, entry, observed in zip(runtimes, entries, exc.last_state):
                if observed is not None and not is_drained(observed):
                    entry["commands"].append(runtime.run(shutdown))
                    entry["sessions_shutdown"] = observed["sessions"]
            result["sessions_shutdown"] = sum(e["sessions_shutdown"] for e in entries)

    # Read the final state everywhere.
    for runtime, entry in zip(runtimes, entries):
        after = runtime.read_server(target)
        entry["after"] = _summary(after)
        if after["admin_state"] != state:
            raise RolloutError(
                "HAProxy at %s accepted 'set server %s state %s' but the server is still %s (admin flags: %s); "
                "an inherited (track) or DNS-resolution maintenance cannot be cleared from here. Fix the tracked "
                "server or the name resolution."
                % (runtime.address, name, state, after["admin_state"], after.get("admin_flags")),
                changed=changed,
                sockets=entries,
            )

    _finish(result, diff)
    result["msg"] = _message(result, name, state)
    return result


def _finish(result, diff):
    if diff:
        result["diff"] = {
            "before": {e["socket"]: {k: e["before"].get(k) for k in DIFF_KEYS} for e in result["sockets"]},
            "after": {e["socket"]: {k: (e["after"] or {}).get(k) for k in DIFF_KEYS} for e in result["sockets"]},
        }


def _message(result, name, state):
    entries = result["sockets"]
    changed_on = [e["socket"] for e in entries if e["changed"]]
    if changed_on:
        msg = "Set %s to %s on %s." % (name, state, ", ".join(changed_on))
    else:
        msg = "%s was already %s on all %d socket(s); nothing changed." % (name, _STATE_WORDS[state], len(entries))
    if result["waited"]:
        if result["timed_out"]:
            msg += " It did not drain within %.1fs (%d polls); shut down %d remaining session(s)." % (
                result["elapsed"],
                result["polls"],
                result["sessions_shutdown"],
            )
        else:
            msg += " %s after %.1fs (%d poll%s)." % (
                {"ready": "UP everywhere", "drain": "Drained everywhere", "maint": "MAINT everywhere"}[state],
                result["elapsed"],
                result["polls"],
                "" if result["polls"] == 1 else "s",
            )
    return msg
