# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""One target's place in the AWS load balancers' rotation: read, take out, put back (as :mod:`.._rotation` does
for HAProxy, with the same interface and results). The providers are in :mod:`.rotation_providers`.

Each operation is one call:

- ``read`` resolves (or discovers) the target groups or ELBs and reads them once: where the target is registered,
  whether it is in rotation (``healthy`` / ``InService`` everywhere it is registered), the capacity rows, and the
  resume record;
- ``take_out`` does the same read, evaluates the capacity guard on it, writes the resume record (exactly where the
  target is registered: target groups and ports, or ELB names) before the first deregistration, deregisters and
  waits until the load balancers have drained it;
- ``put_back`` registers the target back exactly where the resume record says (else in the given target groups or
  ELBs, else where it still is), waits until it is ``healthy`` / ``InService`` everywhere, and removes the record.

The AWS calls, waits and messages are those of :class:`.elbv2.ELBv2Targets` and
:class:`.elb_classic.ClassicELBInstance` (the elbv2_target and elb_classic_instance modules), driven through their
``validate`` / ``locate`` / ``plan`` / ``execute`` phases. botocore errors propagate unchanged; ``partial_result()``
tells what was done before one.

The record key is the provider, the client's region and endpoint, and the target id: the record is found by the next
run that drives the same target through the same AWS endpoint from the same ``state_dir``.
"""

import re
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.caller import POLL_INTERVAL, dedupe
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.capacity import evaluate_targets
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.elbv2 import DEFAULT_REGISTER_TIMEOUT
from ansible_collections.zerodowntime.rollout.plugins.module_utils._capacity import parse_min_healthy
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._records import RecordStore, record_key
from ansible_collections.zerodowntime.rollout.plugins.module_utils._rotation.guard import CapacityError, _no_guard

# Register-back wait, seconds (both providers), when no timeout is given.
PUT_BACK_TIMEOUT = DEFAULT_REGISTER_TIMEOUT
_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")
# The options of each operation that changes something, with their defaults (see run_aws_rotation).
_OPTIONS = {
    "out": {"batch": None, "min_healthy": 0, "timeout": None, "run_id": None, "version": None},
    "in": {"timeout": None},
}


def _client_identity(client):
    """``(region, endpoint URL)`` the client talks to (through amazon.aws's retry wrapper too)."""
    meta = getattr(client, "meta", None)
    return getattr(meta, "region_name", None), getattr(meta, "endpoint_url", None)


class AWSRotation:
    """What both providers share: the record, the step timing, the failure details, the three operations.

    A provider sets ``provider``, ``MANAGER`` (the helper class of its load balancers), ``PLACES`` (its load balancers
    in messages), ``TIMEOUTS`` (per state, the wait when no timeout is given; None leaves it to the helper) and, in
    ``__init__``, ``lb_options`` (the helper's arguments beside the target and its load balancers), then implements
    the hooks at the end of this class.
    """

    provider = None
    MANAGER = None
    PLACES = None
    TIMEOUTS = {}

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
        self.lb_options = {}
        self._step = None
        self._start = None

    @property
    def action(self):
        """What the last AWS call was for (error messages)."""
        return self.lb.action

    @property
    def aws(self):
        """The helper's :class:`.caller.AWSCaller` (its ``api_calls``)."""
        return self.lb.aws

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
            "msg": self._read_message(places, record),
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

    def _validate(self, state, timeout, poll_interval):
        if timeout is None:
            timeout = self.TIMEOUTS[state]
        self.lb.validate(
            self.target_id, state, self._given(), timeout=timeout, poll_interval=poll_interval, **self.lb_options
        )

    def _in_rotation(self, health):
        return self.lb.DONE["registered"](health)

    def _entries_in_given(self):
        found = self.lb.locate(self.target_id, "registered", self._given())
        return self.lb.plan(found, self.target_id, "registered", **self.lb_options)

    def _execute(self, state, start, timeout, poll_interval, check_mode, diff):
        return self.lb.execute(
            self.target_id,
            state,
            start,
            wait=True,
            timeout=self.TIMEOUTS[state] if timeout is None else timeout,
            poll_interval=poll_interval,
            check_mode=check_mode,
            diff=diff,
            **self.lb_options,
        )

    def _read_message(self, places, record):
        if places:
            text = "%s %s %s." % (
                self.target_id,
                self.lb.PREPOSITION,
                ", ".join("%s %s" % (self.lb._label(e), e["before"]["state"]) for e in places),
            )
        else:
            text = "%s is not registered %s%s." % (self.target_id, self.lb.NOWHERE, self._among())
        if record:
            text += " Taken out by an earlier rollout (resume record %s)." % self.record_path
        return text

    # -- per provider -----------------------------------------------------------------------------

    def _given(self):
        raise NotImplementedError

    def _read_entries(self):
        raise NotImplementedError

    def _places(self, entries):
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

    def _replan_registered(self, entries):
        raise NotImplementedError


def run_aws_rotation(member, state, params, check_mode=False, diff=False):
    """``state`` (read, out or in) on ``member`` (from :func:`.rotation_providers.make_rotation`)."""
    if state == "read":
        return member.read()
    if state not in _OPTIONS:
        raise ValidationError("state must be read, out or in, got %r." % (state,))
    options = {name: params.get(name, default) for name, default in _OPTIONS[state].items()}
    poll_interval = params.get("poll_interval")
    options["poll_interval"] = POLL_INTERVAL if poll_interval is None else poll_interval
    operation = member.take_out if state == "out" else member.put_back
    return operation(check_mode=check_mode, diff=diff, **options)
