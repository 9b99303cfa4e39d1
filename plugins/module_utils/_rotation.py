# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""One member's place in its load balancers' rotation: read, take out, put back.

Each operation is one call: it validates every name first, reads every load balancer, and
- ``take_out`` checks the capacity guard on that same read, writes the resume record (before the
  first command goes out), drains and waits until the in-flight requests are finished;
- ``put_back`` sets the member ready, waits until the load balancer itself reports it healthy, and
  removes the resume record;
- ``read`` reports the member's state, whether it is in rotation, and the resume record;
- ``set_canary_weights`` (weighted canary) writes the backend's weights record (the original weights of every
  server, on every socket) before its first ``set weight``, then gives the batch its share of the traffic;
  ``restore_weights`` puts the recorded weights back and removes the record. ``take_out`` restores a weights
  record an interrupted run left before it drains (the resume path of the next run).

Results carry ``steps`` (``[{"name", "seconds"}]``) measured here, which the rollout report lays out.
The HAProxy provider drives the Runtime API through :mod:`._haproxy`; the AWS load balancers (ELBv2
target groups, Classic ELBs) are in :mod:`._rotation_aws`, with the same interface and results.
"""

import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._capacity import evaluate, parse_min_healthy
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    LBUnreachableError,
    RolloutError,
    ValidationError,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy import (
    ON_TIMEOUT_CHOICES,
    ensure_server_state,
    make_runtime,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy_runtime import (
    is_up,
    validate_name,
    validate_sockets,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._records import RecordError, RecordStore, record_key
from ansible_collections.zerodowntime.rollout.plugins.module_utils._weights import plan_weights, validate_share


class CapacityError(RolloutError):
    """Taking the batch out would leave too few members in rotation. Nothing was changed."""


WEIGHTS_PROVIDER = "haproxy_weights"


def _no_guard(min_healthy):
    return str(min_healthy).strip() in ("0", "0%", "")


class HAProxyRotation:
    """One server of one backend on every given admin socket (the sockets of one LB host)."""

    provider = "haproxy"

    def __init__(self, sockets, backend, server, state_dir, connect=None, clock=None, sleep=None, now=None):
        self.addresses = validate_sockets(sockets)
        self.backend = validate_name(backend, "backend")
        self.server = validate_name(server, "server")
        self.sockets = [a.text for a in self.addresses]
        self.connect = connect or make_runtime
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.now = now or time.time
        self.records = RecordStore(state_dir, now=self.now)
        self.key = record_key(self.provider, self.sockets, "%s-%s" % (self.backend, self.server))
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
                backends = runtime.get_backends(self.backend)
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

    def _views(self, reads):
        views = []
        for read in reads:
            servers = read["backends"].get(self.backend, {}).get("servers", {})
            srv = servers.get(self.server)
            views.append(
                {
                    "socket": read["socket"],
                    "found": srv is not None,
                    "status": srv.get("status") if srv else None,
                    "admin_state": srv.get("admin_state") if srv else None,
                    "weight": srv.get("weight") if srv else None,
                    "sessions": srv.get("sessions") if srv else None,
                    "in_rotation": bool(srv) and srv.get("admin_state") == "ready" and is_up(srv),
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
                    "servers": {n: s.get("admin_state") == "ready" and is_up(s) for n, s in servers.items()},
                }
            )
        return rows

    def read(self):
        """The member on every socket: ``found``, ``in_rotation``, ``admin_down``, ``record``, ``sockets``."""
        reads = self._read_all()
        views = self._views(reads)
        record = self.records.read(self.key)
        return {
            "changed": False,
            "provider": self.provider,
            "backend": self.backend,
            "server": self.server,
            "found": all(v["found"] for v in views),
            "missing": [v["socket"] for v in views if not v["found"]],
            "in_rotation": all(v["in_rotation"] for v in views),
            "admin_down": any(v["found"] and v["admin_state"] != "ready" for v in views),
            "members": views,
            "record": record,
            "record_path": self.records.path(self.key),
            "weights_record": self.records.read(self.weights_key),
            # The same shape as haproxy_server_info, for the plan and the capacity filters.
            "sockets": reads,
            "msg": "%s/%s on %d socket(s): %s%s."
            % (
                self.backend,
                self.server,
                len(views),
                ", ".join("%s %s" % (v["socket"], v["status"] or "not found") for v in views),
                "; drained by an earlier rollout (resume record)" if record else "",
            ),
        }

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
        batch = [validate_name(name, "batch server") for name in (batch or [self.server])]
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

    def put_back(self, timeout=120, poll_interval=0.25, check_mode=False, diff=False):
        """Set ready, wait until steadily UP everywhere, remove the resume record."""
        result = self._set_and_wait(
            "ready",
            "enable",
            self.clock(),
            timeout=timeout,
            poll_interval=poll_interval,
            check_mode=check_mode,
            diff=diff,
        )
        result["record_removed"] = False if check_mode else self.records.remove(self.key)
        return result

    # -- weighted canary -----------------------------------------------------------------------

    def _weights_of(self, record):
        """The ``weights`` of a weights record, or RecordError when it cannot be trusted."""
        weights = record.get("weights") if isinstance(record, dict) else None
        if not isinstance(weights, dict) or not all(isinstance(v, dict) for v in weights.values()):
            raise RecordError(
                "%s is not a readable weights record, so the original weights of backend %s are unknown. Check the "
                "servers' weights with 'show stat' on %s, set them back by hand ('set server %s/<server> weight N'), "
                "then remove the file."
                % (self.records.path(self.weights_key), self.backend, ", ".join(self.sockets), self.backend)
            )
        return weights

    def _apply_weights(self, plans):
        """``plans``: ``[(socket, {server: weight})]``: set them all, or fail naming what was set."""
        done = []
        for socket, weights in plans:
            if not weights:
                continue
            try:
                runtime = self.connect(socket)
                for name in sorted(weights):
                    runtime.set_server_weight(self.backend, name, weights[name])
                    done.append("%s %s=%d" % (socket, name, weights[name]))
            except RolloutError as exc:
                raise type(exc)(
                    "Setting the weights of backend %s failed on %s: %s Already set: %s. The original weights stay in "
                    "%s: the next rotation call on this backend (or state=unweighted) puts them back."
                    % (self.backend, socket, exc.msg, ", ".join(done) or "none", self.records.path(self.weights_key)),
                    changed=bool(done),
                    record_path=self.records.path(self.weights_key),
                ) from exc
        return done

    def set_canary_weights(self, batch=None, share=None, run_id=None, version=None, check_mode=False, diff=False):
        """Give ``batch`` ``share`` percent of the backend's traffic on every socket (see :func:`plan_weights`).

        The original weights of every server go to the weights record before the first ``set weight``; a record that
        is already there (an interrupted run) keeps its originals, and they are the base of the plan."""
        batch = [validate_name(name, "batch server") for name in (batch or [self.server])]
        share = validate_share(share)
        start = self.clock()
        reads = self._read_all()
        record = self.records.read(self.weights_key)
        recorded = self._weights_of(record) if record is not None else {}
        entries = []
        for read in reads:
            sock = read["socket"]
            servers = {
                name: srv
                for name, srv in read["backends"].get(self.backend, {}).get("servers", {}).items()
                if not srv.get("backup")
            }
            missing = [name for name in batch if name not in servers]
            if missing:
                raise RolloutError(
                    "HAProxy at %s has no server %s in backend %s; no weight was changed."
                    % (sock, ", ".join(missing), self.backend),
                    changed=False,
                )
            current = {name: srv.get("weight") for name, srv in servers.items()}
            base = dict(current)
            base.update({n: w for n, w in (recorded.get(sock) or {}).items() if n in base})
            rotating = [name for name, srv in servers.items() if srv.get("admin_state") == "ready" and is_up(srv)]
            try:
                plan = plan_weights(base, batch, share, rotating)
            except ValidationError as exc:
                raise ValidationError(
                    "HAProxy at %s: %s No weight was changed." % (sock, exc.msg), changed=False
                ) from None
            changes = {name: w for name, w in plan["weights"].items() if current.get(name) != w}
            entries.append(
                {
                    "socket": sock,
                    "changed": bool(changes),
                    "before": current,
                    "original": base,
                    "after": plan["weights"],
                    "commands": ["set server %s/%s weight %d" % (self.backend, n, changes[n]) for n in sorted(changes)],
                    "share": plan["share"],
                    "scale": plan["scale"],
                    "canary_weight": plan["canary_weight"],
                }
            )
        changed = any(e["changed"] for e in entries)
        record_written = False
        if changed and not check_mode:
            if record is None:
                self.records.write(
                    self.weights_key,
                    {
                        "provider": self.provider,
                        "kind": "weights",
                        "backend": self.backend,
                        "sockets": self.sockets,
                        "canary": batch,
                        "share": share,
                        "set_at": round(self.now(), 3),
                        "run_id": run_id,
                        "version": version,
                        "weights": {e["socket"]: e["original"] for e in entries},
                    },
                )
                record_written = True
            self._apply_weights(
                [
                    (e["socket"], {n: e["after"][n] for n in e["after"] if e["after"][n] != e["before"][n]})
                    for e in entries
                ]
            )
        result = {
            "changed": changed,
            "provider": self.provider,
            "backend": self.backend,
            "canary": batch,
            "share": share,
            "achieved": min(e["share"] for e in entries) if entries else None,
            "sockets": entries,
            "record_written": record_written,
            "weights_record_path": self.records.path(self.weights_key),
            "record_path": self.records.path(self.key),
            "steps": [{"name": "weight", "seconds": round(self.clock() - start, 3)}],
            "msg": "%s %s %s%% of backend %s's traffic: %s."
            % (
                ("Would give" if check_mode else "Gave") if changed else "Already gave",
                ", ".join(batch),
                _fmt(share),
                self.backend,
                "; ".join(
                    "%s %s%% (canary weight %d, other servers' weights x%d)"
                    % (e["socket"], _fmt(e["share"]), e["canary_weight"], e["scale"])
                    for e in entries
                ),
            ),
        }
        if diff:
            result["diff"] = {
                "before": {e["socket"]: e["before"] for e in entries},
                "after": {e["socket"]: e["after"] for e in entries},
            }
        return result

    def restore_weights(self, check_mode=False, diff=False, reads=None):
        """Put the weights of the weights record back on every socket, then remove the record; no record: no-op."""
        start = self.clock()
        path = self.records.path(self.weights_key)
        record = self.records.read(self.weights_key)
        result = {
            "changed": False,
            "provider": self.provider,
            "backend": self.backend,
            "restored": False,
            "sockets": [],
            "weights_record": record,
            "weights_record_path": path,
            "record_path": self.records.path(self.key),
        }
        if record is None:
            result["msg"] = "No canary weights to put back for backend %s (no weights record)." % self.backend
            return result
        recorded = self._weights_of(record)
        reads = reads or self._read_all()
        entries = []
        for read in reads:
            sock = read["socket"]
            servers = read["backends"].get(self.backend, {}).get("servers", {})
            want = recorded.get(sock) or {}
            changes = {
                name: weight
                for name, weight in want.items()
                if name in servers and servers[name].get("weight") != weight
            }
            entries.append(
                {
                    "socket": sock,
                    "changed": bool(changes),
                    "before": {name: servers[name].get("weight") for name in want if name in servers},
                    "after": {name: want[name] for name in want if name in servers},
                    "missing": sorted(name for name in want if name not in servers),
                    "commands": ["set server %s/%s weight %s" % (self.backend, n, changes[n]) for n in sorted(changes)],
                }
            )
        changed = any(e["changed"] for e in entries)
        if not check_mode:
            self._apply_weights(
                [
                    (e["socket"], {n: e["after"][n] for n in e["after"] if e["after"][n] != e["before"][n]})
                    for e in entries
                ]
            )
            self.records.remove(self.weights_key)
        result.update(
            changed=changed,
            restored=not check_mode,
            sockets=entries,
            steps=[{"name": "weight", "seconds": round(self.clock() - start, 3)}],
            msg="%s the weights of backend %s from %s on %s."
            % (
                ("Would put back" if check_mode else "Put back") if changed else "Weights already as recorded; removed",
                self.backend,
                path,
                ", ".join(e["socket"] for e in entries),
            ),
        )
        if not changed:
            result["msg"] = "The weights of backend %s were already as recorded on %s; %s the weights record %s." % (
                self.backend,
                ", ".join(e["socket"] for e in entries),
                "would remove" if check_mode else "removed",
                path,
            )
        if diff:
            result["diff"] = {
                "before": {e["socket"]: e["before"] for e in entries},
                "after": {e["socket"]: e["after"] for e in entries},
            }
        return result

    def _set_and_wait(self, state, step, start, **options):
        """The admin state on every socket, then the wait, timed as ``step`` from ``start``; a failure carries the
        step's time and the record path."""
        try:
            result = ensure_server_state(
                self.sockets,
                self.backend,
                self.server,
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
        return member.read()
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


def _fmt(value):
    return ("%.2f" % value).rstrip("0").rstrip(".")
