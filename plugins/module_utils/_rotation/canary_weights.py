# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The weighted canary of an HAProxy rotation member: give the batch its share of a backend's traffic, put it back.

``set_canary_weights`` writes the backend's weights record (the original weights of every server, on every
socket) before its first ``set weight``; ``restore_weights`` puts the recorded weights back and removes the
record. :class:`CanaryWeights` is mixed into :class:`.haproxy.HAProxyRotation`, whose reads, records and
connection it uses. Each ``set weight`` command is written once: the result reports the string that is sent.
"""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy import commands
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.names import validate_name, validate_weight
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.parse import in_rotation
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.weights import plan_weights, validate_share
from ansible_collections.zerodowntime.rollout.plugins.module_utils._records import RecordError


class CanaryWeights:
    """The weighted canary half of a rotation member (see :class:`.haproxy.HAProxyRotation`)."""

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

    def _weight_commands(self, changes):
        """``[(server, weight, command)]`` for ``{server: weight}``, by server name: each command written once."""
        return [
            (name, changes[name], commands.set_weight(self.target.with_server(name), validate_weight(changes[name])))
            for name in sorted(changes)
        ]

    def _apply_weights(self, sends):
        """``sends``: ``[(socket, [(server, weight, command)])]``: send them all, or fail naming what was set."""
        done = []
        for socket, pending in sends:
            if not pending:
                continue
            try:
                runtime = self.connect(socket)
                for name, weight, command in pending:
                    runtime.run(command)
                    done.append("%s %s=%d" % (socket, name, weight))
            except RolloutError as exc:
                raise type(exc)(
                    "Setting the weights of backend %s failed on %s: %s Already set: %s. The original weights stay in "
                    "%s: the next rotation call on this backend (or state=unweighted) puts them back."
                    % (self.backend, socket, exc.msg, ", ".join(done) or "none", self.records.path(self.weights_key)),
                    changed=bool(done),
                    record_path=self.records.path(self.weights_key),
                ) from exc
        return done

    def set_canary_weights(
        self, batch=None, share=None, run_id=None, version=None, check_mode=False, diff=False, returning=False
    ):
        """Give ``batch`` ``share`` percent of the backend's traffic on every socket (see :func:`plan_weights`).

        The original weights of every server go to the weights record before the first ``set weight``; a record that
        is already there (an interrupted run) keeps its originals, and they are the base of the plan. ``returning``:
        the batch is out of rotation now and goes back in right after (``put_back`` with a share), so its servers
        count as taking traffic."""
        batch = [validate_name(name, "batch server") for name in batch] if batch else [self.server]
        share = validate_share(share)
        start = self.clock()
        reads = self._read_all()
        record = self.records.read(self.weights_key)
        recorded = self._weights_of(record) if record is not None else {}
        entries, sends = [], []
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
            rotating = [name for name, srv in servers.items() if in_rotation(srv) or (returning and name in batch)]
            try:
                plan = plan_weights(base, batch, share, rotating)
            except ValidationError as exc:
                raise ValidationError(
                    "HAProxy at %s: %s No weight was changed." % (sock, exc.msg), changed=False
                ) from None
            changes = {name: w for name, w in plan["weights"].items() if current.get(name) != w}
            sends.append((sock, self._weight_commands(changes)))
            entries.append(
                {
                    "socket": sock,
                    "changed": bool(changes),
                    "before": current,
                    "original": base,
                    "after": plan["weights"],
                    "commands": [command for _name, _weight, command in sends[-1][1]],
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
            self._apply_weights(sends)
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
        entries, sends = [], []
        for read in reads:
            sock = read["socket"]
            servers = read["backends"].get(self.backend, {}).get("servers", {})
            want = recorded.get(sock) or {}
            changes = {
                name: weight
                for name, weight in want.items()
                if name in servers and servers[name].get("weight") != weight
            }
            sends.append((sock, self._weight_commands(changes)))
            entries.append(
                {
                    "socket": sock,
                    "changed": bool(changes),
                    "before": {name: servers[name].get("weight") for name in want if name in servers},
                    "after": {name: want[name] for name in want if name in servers},
                    "missing": sorted(name for name in want if name not in servers),
                    "commands": [command for _name, _weight, command in sends[-1][1]],
                }
            )
        changed = any(e["changed"] for e in entries)
        if not check_mode:
            self._apply_weights(sends)
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


def _fmt(value):
    return ("%.2f" % value).rstrip("0").rstrip(".")
