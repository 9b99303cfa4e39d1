# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""One target's place in the AWS load balancers' rotation: read, take out, put back (as :mod:`._rotation` does
for HAProxy, with the same interface and results).

* :class:`ELBv2Rotation`: one target (instance id, IP address or ALB ARN) in ELBv2 target groups.
* :class:`ClassicELBRotation`: one EC2 instance in Classic ELBs.

Each operation is one call:

- ``read`` resolves (or discovers) the target groups or ELBs and reads them once: where the target is registered,
  whether it is in rotation (``healthy`` / ``InService`` everywhere it is registered), the capacity rows, and the
  resume record;
- ``take_out`` does the same read, evaluates the capacity guard on it, writes the resume record (exactly where the
  target is registered: target groups and ports, or ELB names) before the first deregistration, deregisters and
  waits until the load balancers have drained it;
- ``put_back`` registers the target back exactly where the resume record says (else in the given target groups or
  ELBs, else where it still is), waits until it is ``healthy`` / ``InService`` everywhere, and removes the record.

The AWS calls, waits and messages are those of :class:`._elbv2.ELBv2Targets` and
:class:`._elb_classic.ClassicELBInstance` (the elbv2_target and elb_classic_instance modules), driven through their
``validate`` / ``locate`` / ``plan`` / ``execute`` phases. botocore errors propagate unchanged; ``partial_result()``
tells what was done before one.

The record key is the provider, the client's region and endpoint, and the target id: the record is found by the next
run that drives the same target through the same AWS endpoint from the same ``state_dir``.
"""

import re
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws import POLL_INTERVAL, dedupe
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws_capacity import (
    classic_rows,
    elbv2_rows,
    evaluate_targets,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._capacity import parse_min_healthy
from ansible_collections.zerodowntime.rollout.plugins.module_utils._elb_classic import (
    DEFAULT_TIMEOUT as CLASSIC_DEFAULT_TIMEOUT,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._elb_classic import ClassicELBInstance
from ansible_collections.zerodowntime.rollout.plugins.module_utils._elbv2 import (
    ABSENT,
    DEFAULT_REGISTER_TIMEOUT,
    ELBv2Targets,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._records import RecordStore, record_key
from ansible_collections.zerodowntime.rollout.plugins.module_utils._rotation import CapacityError, _no_guard

AWS_PROVIDERS = ("elbv2", "elb_classic")
# Register-back wait, seconds (both providers), when no timeout is given.
PUT_BACK_TIMEOUT = DEFAULT_REGISTER_TIMEOUT
_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")


def _client_identity(client):
    """``(region, endpoint URL)`` the client talks to (through amazon.aws's retry wrapper too)."""
    meta = getattr(client, "meta", None)
    return getattr(meta, "region_name", None), getattr(meta, "endpoint_url", None)


class _AWSRotation:
    """What both providers share: the record, the step timing, the failure details."""

    provider = None
    MANAGER = None
    PLACES = None  # "target group" / "Classic ELB", in messages

    def __init__(
        self,
        client,
        target_id,
        state_dir,
        aws_retry=False,
        region=None,
        endpoint_url=None,
        clock=None,
        sleep=None,
        rand=None,
        now=None,
    ):
        if not isinstance(target_id, str) or not target_id.strip() or target_id != target_id.strip():
            raise ValidationError("target_id must be a non-empty instance id or IP address, got %r." % (target_id,))
        self.target_id = target_id
        self.lb = self.MANAGER(client, aws_retry=aws_retry, clock=clock, sleep=sleep, rand=rand)
        self.clock = self.lb.clock
        self.now = now or time.time
        known_region, known_endpoint = _client_identity(client)
        self.region = region or known_region
        self.endpoint_url = endpoint_url or known_endpoint
        self.records = RecordStore(state_dir, now=self.now)
        # The file name shows the target (made safe); the hash covers region, endpoint and the exact id.
        self.key = record_key(
            self.provider,
            [self.region or "", self.endpoint_url or "", target_id],
            _UNSAFE.sub("_", target_id)[:80],
        )
        self.record_path = self.records.path(self.key)
        self._step = None
        self._start = None

    @property
    def action(self):
        """What the last AWS call was for (error messages)."""
        return self.lb.action

    def partial_result(self):
        """After a botocore error: what was done before it, the step's time and where the record is."""
        out = self.lb.partial_result()
        out.update(provider=self.provider, record_path=self.record_path)
        if self._step:
            out["steps"] = [{"name": self._step, "seconds": round(self.clock() - self._start, 3)}]
        return out

    def _begin(self, step):
        self._step, self._start = step, self.clock()
        return self._start

    def _fail(self, exc):
        exc.details.setdefault("record_path", self.record_path)
        exc.details.setdefault("provider", self.provider)
        if self._step:
            exc.details["steps"] = [{"name": self._step, "seconds": round(self.clock() - self._start, 3)}]
        return exc

    def _read_record(self):
        record = self.records.read(self.key)
        if record is not None and record.get("provider") not in (None, self.provider):
            return {"schema": None, "corrupt": True}
        return record

    def _record(self, places, previous, run_id, version):
        record = dict(previous or {})
        record.update(
            provider=self.provider,
            target_id=self.target_id,
            region=self.region,
            endpoint_url=self.endpoint_url,
            places=places,
        )
        record.setdefault("drained_at", round(self.now(), 3))
        record.setdefault("run_id", run_id)
        record.setdefault("version", version)
        record.pop("corrupt", None)
        return record

    def _finish_step(self, result, step_start, waited_from):
        end = self.clock()
        result.update(
            provider=self.provider,
            record_path=self.record_path,
            steps=[{"name": self._step, "seconds": round(end - step_start, 3), "waited": round(end - waited_from, 3)}],
        )
        self._step = None
        return result

    # -- the operations --------------------------------------------------------------------

    def read(self):
        """Where the target is, whether it is in rotation, the capacity rows and the resume record; changes nothing."""
        # Planned as a deregistration only to read them: a read reports no change.
        entries = [{k: v for k, v in e.items() if k not in ("changed", "after")} for e in self._read_entries()]
        places = self._places(entries)
        record = self._read_record()
        in_rotation = bool(places) and all(self._in_rotation(e["before"]) for e in places)
        return {
            "changed": False,
            "provider": self.provider,
            "target_id": self.target_id,
            "searched": self._given(),
            "found": bool(places),
            "in_rotation": in_rotation,
            "places": places,
            self.lb.ENTRIES_KEY: entries,
            "rows": self._rows(entries),
            "record": record,
            "record_path": self.record_path,
            "api_calls": self.lb.aws.api_calls,
            "msg": self._read_message(entries, places, record),
        }

    def take_out(
        self,
        batch=None,
        min_healthy=0,
        timeout=None,
        poll_interval=POLL_INTERVAL,
        run_id=None,
        version=None,
        check_mode=False,
        diff=False,
    ):
        """Capacity guard on the read, resume record, deregistration, wait until drained. See the module's RETURN."""
        batch = [str(b) for b in (batch or []) if b]
        if self.target_id not in batch:
            batch.append(self.target_id)
        parse_min_healthy(min_healthy)
        self._validate("deregistered", timeout, poll_interval)
        start = self._begin("drain")
        try:
            entries = self._read_entries()
            places = self._places(entries)
            capacity = None
            if not _no_guard(min_healthy):
                capacity = evaluate_targets(self._rows(entries), batch, min_healthy)
                if not capacity["ok"]:
                    raise CapacityError(capacity["msg"], changed=False, capacity=capacity)
            record = self._read_record()
            recorded = self._recorded(record)
            if not places and not recorded:
                raise RolloutError(
                    "%s is not registered with any %s%s, and no resume record says that a rollout took it out: "
                    "there is nothing to take out, and nothing would know where to put it back. Register it first, "
                    "or check the target id. Nothing was changed." % (self.target_id, self.PLACES, self._among()),
                    changed=False,
                )
            merged = self._merge(recorded or [], self._place_keys(places))
            record_written = False
            if places and merged != recorded and not check_mode:
                self.records.write(self.key, self._record(merged, record, run_id, version))
                record_written = True
            self.lb.entries = places
            waited_from = self.clock()
            result = self._execute("deregistered", start, timeout, poll_interval, check_mode, diff)
        except RolloutError as exc:
            raise self._fail(exc) from None
        result.update(
            capacity=capacity,
            record_written=record_written,
            resumed=record is not None,
            record=self._record(merged, record, run_id, version) if places or record else None,
        )
        if capacity is not None:
            result["msg"] += " " + capacity["msg"]
        return self._finish_step(result, start, waited_from)

    def put_back(self, timeout=None, poll_interval=POLL_INTERVAL, check_mode=False, diff=False):
        """Register back where the record says (else the given places, else where it is), wait, remove the record."""
        self._validate("registered", timeout, poll_interval)
        start = self._begin("enable")
        try:
            record = self._read_record()
            recorded = self._recorded(record)
            if recorded:
                entries, source = self._entries_from_record(recorded), "record"
            elif self._given() is not None:
                entries, source = self._entries_in_given(), "given"
            else:
                entries, source = self._places(self._read_entries()), "current"
                if not entries:
                    raise RolloutError(
                        "Do not know where to register %s back: it is not registered with any %s, and there is no "
                        "resume record%s in %s. Register it by hand, or give %s. Nothing was changed."
                        % (
                            self.target_id,
                            self.PLACES,
                            " (the one there cannot be read)" if record else "",
                            self.records.dir,
                            self.lb.ENTRIES_KEY,
                        ),
                        changed=False,
                    )
                entries = self._replan_registered(entries)
            self.lb.entries = entries
            waited_from = self.clock()
            result = self._execute("registered", start, timeout, poll_interval, check_mode, diff)
        except RolloutError as exc:
            raise self._fail(exc) from None
        result["registered_from"] = source
        result["record_removed"] = False if check_mode else self.records.remove(self.key)
        return self._finish_step(result, start, waited_from)

    # -- shared helpers --------------------------------------------------------------------------

    def _recorded(self, record):
        """The places of a readable record of this provider, else None."""
        if not record or record.get("corrupt"):
            return None
        places = record.get("places")
        if not isinstance(places, list) or not places:
            return None
        return self._clean_recorded(places)

    def _merge(self, recorded, current):
        """The recorded places plus any new ones, in order, each once."""
        return dedupe(list(recorded) + list(current), key=self._place_id)

    def _among(self):
        given = self._given()
        return " of %s" % ", ".join(given) if given else ""

    # -- per provider -----------------------------------------------------------------------------

    def _validate(self, state, timeout, poll_interval):
        raise NotImplementedError

    def _given(self):
        raise NotImplementedError

    def _read_entries(self):
        raise NotImplementedError

    def _places(self, entries):
        raise NotImplementedError

    def _in_rotation(self, health):
        raise NotImplementedError

    def _rows(self, entries):
        raise NotImplementedError

    def _place_keys(self, places):
        raise NotImplementedError

    @staticmethod
    def _place_id(place):
        raise NotImplementedError

    def _clean_recorded(self, places):
        raise NotImplementedError

    def _entries_from_record(self, recorded):
        raise NotImplementedError

    def _entries_in_given(self):
        raise NotImplementedError

    def _replan_registered(self, entries):
        raise NotImplementedError

    def _execute(self, state, start, timeout, poll_interval, check_mode, diff):
        raise NotImplementedError

    def _read_message(self, entries, places, record):
        raise NotImplementedError


class ELBv2Rotation(_AWSRotation):
    """One target in ELBv2 target groups (``target_groups``: names or ARNs; None discovers every group it is in).

    ``port``: the target's port; None keeps the port it is registered on in each group."""

    provider = "elbv2"
    MANAGER = ELBv2Targets
    PLACES = "target group"

    def __init__(self, client, target_id, state_dir, target_groups=None, port=None, **kwargs):
        super().__init__(client, target_id, state_dir, **kwargs)
        self.target_groups = list(target_groups) if target_groups is not None else None
        self.port = port
        # Arguments the calls share, checked before the first one.
        self.lb.validate(target_id, "deregistered", self.target_groups, port)

    def _validate(self, state, timeout, poll_interval):
        self.lb.validate(self.target_id, state, self.target_groups, self.port, timeout, poll_interval)

    def _given(self):
        return self.target_groups

    def _read_entries(self):
        found = self.lb.locate(self.target_id, "deregistered", self.target_groups)
        return self.lb.plan(found, self.target_id, "deregistered", self.port)

    def _places(self, entries):
        return [e for e in entries if e["before"]["state"] != ABSENT]

    def _in_rotation(self, health):
        return health.get("state") == "healthy"

    def _rows(self, entries):
        groups = dedupe(((e["target_group_arn"], e["target_group_name"]) for e in entries), key=lambda g: g[0])
        return elbv2_rows([(name, self.lb.members.get(arn, [])) for arn, name in groups])

    def _place_keys(self, places):
        return [
            {"target_group_arn": e["target_group_arn"], "target_group_name": e["target_group_name"], "port": e["port"]}
            for e in places
        ]

    @staticmethod
    def _place_id(place):
        return (place["target_group_arn"], place["port"])

    def _clean_recorded(self, places):
        out = []
        for place in places:
            if not isinstance(place, dict) or not str(place.get("target_group_arn", "")).startswith("arn:"):
                return None
            port = place.get("port")
            if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
                return None
            out.append(
                {
                    "target_group_arn": place["target_group_arn"],
                    "target_group_name": place.get("target_group_name"),
                    "port": port,
                }
            )
        return out

    def _entries_from_record(self, recorded):
        """Read the recorded groups (by ARN) once each and plan one entry per recorded group and port."""
        arns = dedupe(p["target_group_arn"] for p in recorded)
        groups = {g["arn"]: g for g in self.lb.describe_groups(arns)}
        descriptions = {arn: self.lb.target_descriptions(groups[arn], self.target_id) for arn in arns}
        entries = []
        for place in recorded:
            arn = place["target_group_arn"]
            entries.extend(
                self.lb.plan([(groups[arn], descriptions[arn])], self.target_id, "registered", place["port"])
            )
        return entries

    def _entries_in_given(self):
        found = self.lb.locate(self.target_id, "registered", self.target_groups)
        return self.lb.plan(found, self.target_id, "registered", self.port)

    def _replan_registered(self, entries):
        for entry in entries:
            entry["changed"] = entry["before"]["state"] == "draining"
        return entries

    def _execute(self, state, start, timeout, poll_interval, check_mode, diff):
        if timeout is None and state == "registered":
            timeout = PUT_BACK_TIMEOUT
        return self.lb.execute(
            self.target_id,
            state,
            start,
            port=self.port,
            wait=True,
            timeout=timeout,
            poll_interval=poll_interval,
            check_mode=check_mode,
            diff=diff,
        )

    def _read_message(self, entries, places, record):
        if places:
            text = "%s in %s." % (
                self.target_id,
                ", ".join("%s:%s %s" % (e["target_group_name"], e["port"], e["before"]["state"]) for e in places),
            )
        else:
            text = "%s is not registered in any target group%s." % (self.target_id, self._among())
        if record:
            text += " Taken out by an earlier rollout (resume record %s)." % self.record_path
        return text


class ClassicELBRotation(_AWSRotation):
    """One EC2 instance in Classic ELBs (``load_balancers``: names; None discovers every ELB that lists it)."""

    provider = "elb_classic"
    MANAGER = ClassicELBInstance
    PLACES = "Classic ELB"

    def __init__(self, client, target_id, state_dir, load_balancers=None, **kwargs):
        super().__init__(client, target_id, state_dir, **kwargs)
        self.load_balancers = list(load_balancers) if load_balancers is not None else None
        self.lb.validate(target_id, "deregistered", self.load_balancers)

    def _validate(self, state, timeout, poll_interval):
        self.lb.validate(
            self.target_id,
            state,
            self.load_balancers,
            CLASSIC_DEFAULT_TIMEOUT if timeout is None else timeout,
            poll_interval,
        )

    def _given(self):
        return self.load_balancers

    def _read_entries(self):
        known = self.lb.locate(self.target_id, "deregistered", self.load_balancers)
        healths = {name: self.lb.every_health(name) for name, _instances in known}
        return self.lb.plan(known, self.target_id, "deregistered", healths)

    def _places(self, entries):
        return [e for e in entries if e["before"]["registered"]]

    def _in_rotation(self, health):
        return health.get("state") == "InService"

    def _rows(self, entries):
        return classic_rows(
            [(e["load_balancer_name"], self.lb.members.get(e["load_balancer_name"], [])) for e in entries]
        )

    def _place_keys(self, places):
        return [e["load_balancer_name"] for e in places]

    @staticmethod
    def _place_id(place):
        return place

    def _clean_recorded(self, places):
        if not all(isinstance(p, str) and p.strip() for p in places):
            return None
        return list(places)

    def _entries_from_record(self, recorded):
        known = self.lb.describe_load_balancers(recorded)
        return self.lb.plan(known, self.target_id, "registered")

    def _entries_in_given(self):
        known = self.lb.locate(self.target_id, "registered", self.load_balancers)
        return self.lb.plan(known, self.target_id, "registered")

    def _replan_registered(self, entries):
        for entry in entries:
            entry["changed"] = False
        return entries

    def _execute(self, state, start, timeout, poll_interval, check_mode, diff):
        if timeout is None:
            timeout = PUT_BACK_TIMEOUT if state == "registered" else CLASSIC_DEFAULT_TIMEOUT
        return self.lb.execute(
            self.target_id,
            state,
            start,
            wait=True,
            timeout=timeout,
            poll_interval=poll_interval,
            check_mode=check_mode,
            diff=diff,
        )

    def _read_message(self, entries, places, record):
        if places:
            text = "%s on %s." % (
                self.target_id,
                ", ".join("%s %s" % (e["load_balancer_name"], e["before"]["state"]) for e in places),
            )
        else:
            text = "%s is not registered with any Classic ELB%s." % (self.target_id, self._among())
        if record:
            text += " Taken out by an earlier rollout (resume record %s)." % self.record_path
        return text


def make_rotation(provider, client, params, aws_retry=False, **kwargs):
    """The rotation of ``params['target_id']`` for ``provider`` (elbv2 or elb_classic), on ``client``. The options of
    the other providers are ignored (one ``module_defaults`` block may serve every provider)."""
    if provider == "elbv2":
        return ELBv2Rotation(
            client,
            params["target_id"],
            params["state_dir"],
            target_groups=params.get("target_groups"),
            port=params.get("port"),
            aws_retry=aws_retry,
            **kwargs,
        )
    if provider == "elb_classic":
        return ClassicELBRotation(
            client,
            params["target_id"],
            params["state_dir"],
            load_balancers=params.get("load_balancers"),
            aws_retry=aws_retry,
            **kwargs,
        )
    raise ValidationError("provider must be one of %s, got %r." % (", ".join(AWS_PROVIDERS), provider))


def run_aws_rotation(member, state, params, check_mode=False, diff=False):
    """``state`` (read, out or in) on ``member`` (from :func:`make_rotation`)."""
    poll_interval = params.get("poll_interval")
    if poll_interval is None:
        poll_interval = POLL_INTERVAL
    if state == "read":
        return member.read()
    if state == "out":
        return member.take_out(
            batch=params.get("batch"),
            min_healthy=params.get("min_healthy", 0),
            timeout=params.get("timeout"),
            poll_interval=poll_interval,
            run_id=params.get("run_id"),
            version=params.get("version"),
            check_mode=check_mode,
            diff=diff,
        )
    if state == "in":
        return member.put_back(
            timeout=params.get("timeout"), poll_interval=poll_interval, check_mode=check_mode, diff=diff
        )
    raise ValidationError("state must be read, out or in, got %r." % (state,))
