# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""One HAProxy member's place in its load balancers' rotation: read, take out, put back.

Each operation is one call: it reads every load balancer, and
- ``take_out`` checks the capacity guard on that same read, writes the resume record (before the
  first command goes out), drains and waits until the in-flight requests are finished;
- ``put_back`` sets the member ready, waits until the load balancer itself reports it healthy, and
  removes the resume record;
- ``read`` reports the member's state, whether it is in rotation, and the resume record.
The weighted canary (``set_canary_weights``, ``restore_weights``) is in :mod:`.canary_weights`; ``take_out``
restores a weights record an interrupted run left before it drains (the resume path of the next run).

The member's names are checked once, when it is built (its :class:`Target`); the changes go through
:func:`.._haproxy.server.apply_server_state`. Results carry ``steps`` (``[{"name", "seconds"}]``) measured
here, which the rollout report lays out. The AWS load balancers are in :mod:`.._aws.rotation`, with the same
interface and results.
"""

import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._capacity import evaluate, parse_min_healthy
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    LBUnreachableError,
    RolloutError,
    ValidationError,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.client import make_runtime
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.names import (
    Target,
    validate_name,
    validate_sockets,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.parse import in_rotation
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.server import (
    ON_TIMEOUT_CHOICES,
    apply_server_state,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._records import RecordStore, record_key
from ansible_collections.zerodowntime.rollout.plugins.module_utils._rotation.canary_weights import CanaryWeights
from ansible_collections.zerodowntime.rollout.plugins.module_utils._rotation.guard import CapacityError, _no_guard

WEIGHTS_PROVIDER = "haproxy_weights"


class HAProxyRotation(CanaryWeights):
    """One server of one backend on every given admin socket (the sockets of one LB host)."""

    provider = "haproxy"

    def __init__(self, sockets, backend, server, state_dir, connect=None, clock=None, sleep=None, now=None):
        self.addresses = validate_sockets(sockets)
        self.target = Target(backend, server)
        self.backend = self.target.backend
        self.server = self.target.server
        self.sockets = [a.text for a in self.addresses]
        self.connect = connect or make_runtime
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.now = now or time.time
        self.records = RecordStore(state_dir, now=self.now)
        self.key = self._key_for(self.server)
        # The backend's weights record (weighted canary): one per backend and LB host, next to the members' records.
        # Its provider prefix differs from the members' ("haproxy-"), so no backend/server pair can share its name.
        self.weights_key = record_key(WEIGHTS_PROVIDER, self.sockets, self.backend)

    # -- reading ---------------------------------------------------------------------------

    def _read_all(self):
        """Every socket's backend, or one error naming every socket that failed (nothing changed)."""
        reads, failures = [], []
        for address in self.sockets:
            try:
                runtime = self.connect(address)
                level = runtime.cli_level()
                backends = runtime.read_backends(self.target)
            except RolloutError as exc:
                failures.append((address, exc))
                continue
            reads.append({"socket": address, "cli_level": level, "backends": backends})
        if failures:
            failed = [{"socket": a, "msg": exc.msg} for a, exc in failures]
            if len(failures) == 1:
                raise type(failures[0][1])(failures[0][1].msg, changed=False, failed_sockets=failed)
            raise LBUnreachableError(
                "%d of %d HAProxy sockets could not be read. %s"
                % (len(failures), len(self.sockets), " ".join(exc.msg for _a, exc in failures)),
                changed=False,
                failed_sockets=failed,
            )
        return reads

    def _views(self, reads, server=None):
        """Per socket, ``server`` (default: this member's server) as that socket's read shows it."""
        server = self.server if server is None else server
        views = []
        for read in reads:
            servers = read["backends"].get(self.backend, {}).get("servers", {})
            srv = servers.get(server)
            views.append(
                {
                    "socket": read["socket"],
                    "found": srv is not None,
                    "status": srv.get("status") if srv else None,
                    "admin_state": srv.get("admin_state") if srv else None,
                    "weight": srv.get("weight") if srv else None,
                    "sessions": srv.get("sessions") if srv else None,
                    "in_rotation": bool(srv) and in_rotation(srv),
                }
            )
        return views

    def _rows(self, reads):
        rows = []
        for read in reads:
            servers = read["backends"].get(self.backend, {}).get("servers", {})
            rows.append(
                {
                    "where": read["socket"],
                    "servers": {n: in_rotation(s) for n, s in servers.items()},
                }
            )
        return rows

    def read(self, batch=None):
        """The member on every socket: ``found``, ``in_rotation``, ``admin_down``, ``record``, ``sockets``.

        With ``batch`` (server names of the same backend), every one of them from the same read of each socket, in
        ``batch_reads`` (server name -> ``found``, ``missing``, ``in_rotation``, ``admin_down``, ``members``,
        ``record``, ``record_path``): one call reads a whole batch, for example every host of a rollout in its
        preflight. ``read_for`` says what was read (``backend``, ``sockets``, ``state_dir``), on a failure too, so
        that a caller can tell whether the read answers for a member of another host's settings.
        """
        names = self._batch_names(batch)
        try:
            reads = self._read_all()
        except RolloutError as exc:
            if names is not None:
                exc.details["read_for"] = self._read_for()
            raise
        own = self._server_read(reads, self.server)
        result = dict(
            {"changed": False, "provider": self.provider, "backend": self.backend, "server": self.server},
            **own,
            weights_record=self.records.read(self.weights_key),
            # The same shape as haproxy_server_info, for the plan and the capacity filters.
            sockets=reads,
            msg="%s/%s on %d socket(s): %s%s."
            % (
                self.backend,
                self.server,
                len(own["members"]),
                ", ".join("%s %s" % (v["socket"], v["status"] or "not found") for v in own["members"]),
                "; drained by an earlier rollout (resume record)" if own["record"] else "",
            ),
        )
        if names is not None:
            result["batch_reads"] = {
                name: own if name == self.server else self._server_read(reads, name) for name in names
            }
            result["read_for"] = self._read_for()
            result["msg"] = "%s/%s and %d more server(s) of the batch on %d socket(s)." % (
                self.backend,
                self.server,
                len([n for n in names if n != self.server]),
                len(own["members"]),
            )
        return result

    def _batch_names(self, batch):
        """``batch`` checked (every name before any socket is read), this member's server included; or None."""
        if batch is None:
            return None
        names = [self.server]
        for name in batch:
            name = validate_name(name, "batch server")
            if name not in names:
                names.append(name)
        return names

    def _server_read(self, reads, server):
        """One server of the backend as :meth:`read` gives the member, from reads already made."""
        views = self._views(reads, server)
        key = self._key_for(server)
        return {
            "found": all(v["found"] for v in views),
            "missing": [v["socket"] for v in views if not v["found"]],
            "in_rotation": all(v["in_rotation"] for v in views),
            "admin_down": any(v["found"] and v["admin_state"] != "ready" for v in views),
            "members": views,
            "record": self.records.read(key),
            "record_path": self.records.path(key),
        }

    def _key_for(self, server):
        """The resume record's name of ``server`` of this backend on these sockets."""
        return record_key(self.provider, self.sockets, "%s-%s" % (self.backend, server))

    def _read_for(self):
        return {"backend": self.backend, "sockets": list(self.sockets), "state_dir": self.records.state_dir}

    # -- changing --------------------------------------------------------------------------

    def take_out(
        self,
        batch=None,
        min_healthy=0,
        timeout=300,
        on_timeout="fail",
        poll_interval=0.25,
        run_id=None,
        version=None,
        check_mode=False,
        diff=False,
    ):
        """Capacity guard, resume record, drain, wait for the in-flight requests. See the module's RETURN."""
        batch = [validate_name(name, "batch server") for name in batch] if batch else [self.server]
        if self.server not in batch:
            batch.append(self.server)
        parse_min_healthy(min_healthy)
        if on_timeout not in ON_TIMEOUT_CHOICES:
            raise ValidationError("on_timeout must be one of %s, got %r." % (", ".join(ON_TIMEOUT_CHOICES), on_timeout))
        start = self.clock()
        reads = self._read_all()
        views = self._views(reads)
        missing = [v["socket"] for v in views if not v["found"]]
        if missing:
            raise RolloutError(
                "HAProxy has no server %s/%s on %s; nothing was changed."
                % (self.backend, self.server, ", ".join(missing)),
                changed=False,
            )
        capacity = None
        if not _no_guard(min_healthy):
            capacity = evaluate(self._rows(reads), batch, min_healthy)
            if not capacity["ok"]:
                raise CapacityError(capacity["msg"], changed=False, capacity=capacity)
        # The resume path: canary weights an interrupted run left on this backend go back before anything else.
        weights_restored = False
        if not check_mode and self.records.read(self.weights_key) is not None:
            weights_restored = self.restore_weights(reads=reads)["changed"]
        needs_change = any(v["admin_state"] != "drain" for v in views)
        record = self.records.read(self.key)
        record_written = False
        if needs_change and record is None and not check_mode:
            self.records.write(
                self.key,
                {
                    "provider": self.provider,
                    "backend": self.backend,
                    "server": self.server,
                    "sockets": self.sockets,
                    "drained_at": round(self.now(), 3),
                    "run_id": run_id,
                    "version": version,
                    "before": [{k: v[k] for k in ("socket", "admin_state", "weight")} for v in views],
                },
            )
            record_written = True
        result = self._set_and_wait(
            "drain",
            "drain",
            start,
            timeout=timeout,
            poll_interval=poll_interval,
            on_timeout=on_timeout,
            check_mode=check_mode,
            diff=diff,
        )
        result.update(
            capacity=capacity,
            record_written=record_written,
            resumed=record is not None,
            weights_restored=weights_restored,
        )
        if capacity is not None:
            result["msg"] += " " + capacity["msg"]
        return result

    def put_back(
        self, timeout=120, poll_interval=0.25, check_mode=False, diff=False, share=None, batch=None, version=None
    ):
        """Set ready, wait until steadily UP everywhere, remove the resume record.

        With ``share`` (a weighted canary), ``batch`` gets that share of the backend's traffic first
        (:meth:`set_canary_weights`), while it is still out of rotation: it never takes a round-robin share."""
        start = self.clock()
        weighted = None
        if share is not None:
            weighted = self.set_canary_weights(
                batch=batch, share=share, version=version, check_mode=check_mode, diff=diff, returning=True
            )
        result = self._set_and_wait(
            "ready",
            "enable",
            start,
            timeout=timeout,
            poll_interval=poll_interval,
            check_mode=check_mode,
            diff=diff,
        )
        result["record_removed"] = False if check_mode else self.records.remove(self.key)
        if weighted is not None:
            result["changed"] = result["changed"] or weighted["changed"]
            result["msg"] = weighted["msg"] + " " + result["msg"]
            result.update(achieved=weighted["achieved"], weights_record_path=weighted["weights_record_path"])
            result["weights"] = weighted["sockets"]
            if diff and "diff" in weighted:
                # Ansible shows a list of diffs one after the other: the weights, then the admin state.
                result["diff"] = [weighted["diff"]] + ([result["diff"]] if "diff" in result else [])
        return result

    def _set_and_wait(self, state, step, start, **options):
        """The admin state on every socket, then the wait, timed as ``step`` from ``start``; a failure carries the
        step's time and the record path."""
        try:
            result = apply_server_state(
                self.addresses,
                self.target,
                state,
                wait=True,
                connect=self.connect,
                clock=self.clock,
                sleep=self.sleep,
                **options,
            )
        except RolloutError as exc:
            exc.details.setdefault("record_path", self.records.path(self.key))
            exc.details["steps"] = [{"name": step, "seconds": round(self.clock() - start, 3)}]
            raise
        result.update(
            provider=self.provider,
            record_path=self.records.path(self.key),
            steps=[{"name": step, "seconds": round(self.clock() - start, 3), "waited": result["elapsed"]}],
        )
        return result


def run_rotation(provider, state, params, check_mode=False, diff=False, connect=None):
    """Module entry point: ``state`` is ``read``, ``out``, ``in``, ``weighted`` or ``unweighted``."""
    if provider != "haproxy":
        raise ValidationError("provider must be haproxy, got %r." % (provider,))
    member = HAProxyRotation(
        params["sockets"], params["backend"], params["server"], params["state_dir"], connect=connect
    )
    if state == "read":
        return member.read(batch=params.get("batch"))
    if state == "out":
        return member.take_out(
            batch=params.get("batch"),
            min_healthy=params.get("min_healthy", 0),
            timeout=params.get("timeout", 300),
            on_timeout=params.get("on_timeout", "fail"),
            poll_interval=params.get("poll_interval", 0.25),
            run_id=params.get("run_id"),
            version=params.get("version"),
            check_mode=check_mode,
            diff=diff,
        )
    if state == "in":
        return member.put_back(
            timeout=params.get("timeout", 120),
            poll_interval=params.get("poll_interval", 0.25),
            check_mode=check_mode,
            diff=diff,
            share=params.get("share"),
            batch=params.get("batch"),
            version=params.get("version"),
        )
    if state == "weighted":
        return member.set_canary_weights(
            batch=params.get("batch"),
            share=params.get("share"),
            run_id=params.get("run_id"),
            version=params.get("version"),
            check_mode=check_mode,
            diff=diff,
        )
    if state == "unweighted":
        return member.restore_weights(check_mode=check_mode, diff=diff)
    raise ValidationError("state must be read, out, in, weighted or unweighted, got %r." % (state,))
