# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Register or deregister one target in ELBv2 (ALB/NLB) target groups, then wait; used by elbv2_target.

:class:`ELBv2Targets` takes a boto3 ``elbv2`` client (or amazon.aws's retrying wrapper around one),
plus an injectable clock, sleep and random source. It returns result dicts and raises the
collection's exceptions; botocore errors propagate unchanged (the module turns them into
``fail_json_aws``), and :meth:`ELBv2Targets.partial_result` tells what was done before one.

Order: validate arguments -> resolve or discover every target group (refuse unknown names, nothing
changed) -> read the target in each group -> register/deregister only where needed -> wait until
the target is ``healthy`` (registered) or done draining (deregistered) in every group.
"""

import ipaddress
import re
import time

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws import (
    DRAIN_MARGIN,
    POLL_BACKOFF,
    POLL_INTERVAL,
    POLL_JITTER,
    POLL_MAX_INTERVAL,
    AWSCaller,
    chunks,
    dedupe,
    validate_wait,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    NotFoundError,
    ValidationError,
    WaitTimeout,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._waiter import wait_for

STATES = ("registered", "deregistered")
DEFAULT_REGISTER_TIMEOUT = 300
# The deregistration delay AWS applies when the attribute cannot be read.
DEFAULT_DEREGISTRATION_DELAY = 300

# Our name for "not in the target group" (AWS lists nothing, or says unused/Target.NotRegistered).
ABSENT = "absent"
_NOT_REGISTERED = "Target.NotRegistered"
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
_DESCRIBE_BATCH = 20
# A bad ARN is a ValidationError, an unknown name or ARN a TargetGroupNotFound.
_NOT_FOUND_CODES = ("TargetGroupNotFound", "ValidationError")

__all__ = ["ABSENT", "ELBv2Targets", "STATES"]


def _group_summary(raw):
    return {
        "arn": raw["TargetGroupArn"],
        "name": raw["TargetGroupName"],
        "port": raw.get("Port"),
        "protocol": raw.get("Protocol"),
        "target_type": raw.get("TargetType", "instance"),
        "load_balancer_arns": list(raw.get("LoadBalancerArns") or []),
    }


def _health(description):
    """A TargetHealthDescription (or None) -> ``{"state", "reason", "description"}``."""
    if description is None:
        return {"state": ABSENT, "reason": None, "description": None}
    health = description.get("TargetHealth") or {}
    state = health.get("State")
    reason = health.get("Reason")
    if state == "unused" and reason == _NOT_REGISTERED:
        state = ABSENT
    return {"state": state, "reason": reason, "description": health.get("Description")}


def _is_registered(health):
    """Registered and not on its way out (draining counts as leaving)."""
    return health["state"] not in (ABSENT, "draining")


def _is_healthy(health):
    return health["state"] == "healthy"


def _is_drained(health):
    return health["state"] in (ABSENT, "unused")


def _key(entry):
    return "%s:%s" % (entry["target_group_name"], entry["port"])


def _describe_health(health):
    text = health["state"]
    if health.get("reason") or health.get("description"):
        text += " (%s)" % ": ".join(part for part in (health.get("reason"), health.get("description")) if part)
    return text


def _validate_target(target_id, port):
    if not isinstance(target_id, str) or not target_id.strip() or target_id != target_id.strip():
        raise ValidationError("target_id must be a non-empty instance id or IP address, got %r." % (target_id,))
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
        raise ValidationError("port must be between 1 and 65535, got %r." % (port,))


def _check_target_type(target_id, group):
    """Refuse a target that cannot belong to ``group`` (an IP in an instance group, a Lambda group...)."""
    kind = group["target_type"]
    if kind == "instance":
        ok = bool(_INSTANCE_ID.match(target_id))
        wanted = "an EC2 instance id (i-...)"
    elif kind == "ip":
        try:
            ipaddress.ip_address(target_id)
            ok = True
        except ValueError:
            ok = False
        wanted = "an IP address"
    elif kind == "alb":
        ok = target_id.startswith("arn:")
        wanted = "an Application Load Balancer ARN"
    else:
        return "target group %s has target type %r, which this module does not manage." % (group["name"], kind)
    if not ok:
        return "target group %s has target type %r and needs %s as target_id, got %r." % (
            group["name"],
            kind,
            wanted,
            target_id,
        )
    return None


class ELBv2Targets:
    """One target in ELBv2 target groups.

    :param client: boto3 ``elbv2`` client, or ``RetryingBotoClientWrapper`` around one (then ``aws_retry=True``).
    :param clock: monotonic clock callable (default ``time.monotonic``).
    :param sleep: sleep callable (default ``time.sleep``).
    :param rand: callable returning a float in [0, 1), for poll jitter (default ``random.random``).
    """

    def __init__(self, client, aws_retry=False, clock=None, sleep=None, rand=None):
        self.aws = AWSCaller(client, aws_retry=aws_retry)
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.rand = rand
        self.entries = []
        self.changed = False
        self.members = {}  # target group ARN -> every target of the group, as last read

    # ------------------------------------------------------------------ reads

    @property
    def action(self):
        """What the last AWS call was for (used in error messages)."""
        return self.aws.action

    def describe_groups(self, refs):
        """Target groups by name or ARN, in the order given. Every unknown one is named in one NotFoundError."""
        refs = dedupe(refs)
        arns = [r for r in refs if r.startswith("arn:")]
        names = [r for r in refs if not r.startswith("arn:")]
        found = {}
        missing = []
        for key, batch_refs in (("TargetGroupArns", arns), ("Names", names)):
            for batch in chunks(batch_refs, _DESCRIBE_BATCH):
                try:
                    groups = self._describe_target_groups(**{key: batch})
                except is_boto3_error_code(_NOT_FOUND_CODES):
                    # One unknown group fails the whole batch: ask one by one to name every missing one.
                    groups = []
                    for ref in batch:
                        try:
                            groups.extend(self._describe_target_groups(**{key: [ref]}))
                        except is_boto3_error_code(_NOT_FOUND_CODES):
                            missing.append(ref)
                for raw in groups:
                    group = _group_summary(raw)
                    found[group["arn"]] = group
                    found[group["name"]] = group
        if missing:
            raise NotFoundError(
                "Target group(s) not found (or not a valid name or ARN): %s. Nothing was changed in any target group."
                % ", ".join(missing),
                changed=False,
                missing_target_groups=missing,
            )
        return _dedupe_groups(found[ref] for ref in refs)

    def _describe_target_groups(self, **params):
        groups = []
        marker = None
        while True:
            if marker:
                params["Marker"] = marker
            page = self.aws.call("describe_target_groups", "describe target groups", **params)
            groups.extend(page.get("TargetGroups") or [])
            marker = page.get("NextMarker")
            if not marker:
                return groups

    def all_groups(self):
        """Every target group of the account and region (paginated)."""
        return [_group_summary(raw) for raw in self._describe_target_groups()]

    def target_descriptions(self, group, target_id):
        """The TargetHealthDescriptions of ``target_id`` in ``group`` (one per registered port; [] if absent)."""
        answer = self.aws.call(
            "describe_target_health",
            "describe target health in target group %s" % group["name"],
            TargetGroupArn=group["arn"],
        )
        descriptions = answer.get("TargetHealthDescriptions") or []
        # The same answer lists every target of the group: kept for the capacity guard, at no extra call.
        self.members[group["arn"]] = [
            {
                "id": (d.get("Target") or {}).get("Id"),
                "port": (d.get("Target") or {}).get("Port", group.get("port")),
                "state": _health(d)["state"],
            }
            for d in descriptions
        ]
        return [d for d in descriptions if (d.get("Target") or {}).get("Id") == target_id]

    def discover(self, target_id):
        """``[(group, descriptions)]`` for every group in which the target is registered or draining."""
        out = []
        for group in self.all_groups():
            if group["target_type"] == "lambda":
                continue
            try:
                descriptions = self.target_descriptions(group, target_id)
            except is_boto3_error_code("TargetGroupNotFound"):  # deleted since it was listed
                continue
            descriptions = [d for d in descriptions if _health(d)["state"] != ABSENT]
            if descriptions:
                out.append((group, descriptions))
        return out

    def deregistration_delay(self, group):
        answer = self.aws.call(
            "describe_target_group_attributes",
            "read the attributes of target group %s" % group["name"],
            TargetGroupArn=group["arn"],
        )
        for attribute in answer.get("Attributes") or []:
            if attribute.get("Key") == "deregistration_delay.timeout_seconds":
                try:
                    return int(attribute.get("Value"))
                except (TypeError, ValueError):
                    break
        return DEFAULT_DEREGISTRATION_DELAY

    # ------------------------------------------------------------------ the task

    def partial_result(self):
        """What is known after a failure: whether something changed, and the groups handled so far."""
        return {"changed": self.changed, "target_groups": self.entries, "api_calls": self.aws.api_calls}

    def ensure(
        self,
        target_id,
        state,
        target_groups=None,
        port=None,
        wait=True,
        timeout=None,
        poll_interval=POLL_INTERVAL,
        check_mode=False,
        diff=False,
    ):
        """Put ``target_id`` in ``state`` in ``target_groups`` (or every group it is in), then optionally wait.

        :returns: result dict (see the elbv2_target module's RETURN).
        :raises RolloutError: ValidationError, NotFoundError, WaitTimeout.
        """
        start = self.clock()
        _validate_target(target_id, port)
        if state not in STATES:
            raise ValidationError("Invalid state %r: use one of %s." % (state, ", ".join(STATES)))
        validate_wait(timeout, poll_interval)
        if target_groups is not None:
            if not isinstance(target_groups, (list, tuple)) or not all(
                isinstance(ref, str) and ref.strip() for ref in target_groups
            ):
                raise ValidationError("target_groups must be a list of target group names or ARNs.")
            if not target_groups:
                raise ValidationError("target_groups is empty: list names or ARNs, or omit it to discover them.")

        # Resolve, read and check everything before any change.
        if target_groups is None:
            found = self.discover(target_id)
            if not found and state == "registered":
                raise ValidationError(
                    "%s is not registered in any target group, so there is nothing to discover: list target_groups "
                    "to register it. Nothing was changed." % target_id,
                    changed=False,
                )
        else:
            groups = self.describe_groups(list(target_groups))
            problems = [p for p in (_check_target_type(target_id, g) for g in groups) if p]
            if problems:
                raise ValidationError(
                    "Cannot manage %s in these target groups: %s Nothing was changed in any target group."
                    % (target_id, " ".join(problems)),
                    changed=False,
                )
            found = [(g, self.target_descriptions(g, target_id)) for g in groups]

        self.entries = entries = self._plan(found, target_id, state, port)
        changed = any(e["changed"] for e in entries)
        result = {
            "changed": changed,
            "target_id": target_id,
            "state": state,
            "port": port,
            "target_groups": entries,
            "registrations": [],
            "timeout": timeout,
            "deregistration_delay": None,
            "waited": False,
            "elapsed": 0.0,
            "polls": 0,
            "api_calls": 0,
            "warnings": [],
        }

        if wait and entries:
            result["timeout"] = self._effective_timeout(entries, state, timeout, result)

        if check_mode:
            for entry in entries:
                entry["after"] = _predict(entry, state, wait)
            return self._finish(result, start, diff, check_mode=True)

        self._apply(entries, target_id, state)

        if wait and entries:
            result["waited"] = True
            self._wait(entries, target_id, state, result, poll_interval, start)
        elif changed:
            self._read_after(entries, target_id)
        else:
            for entry in entries:
                entry["after"] = dict(entry["before"])
        return self._finish(result, start, diff)

    def _effective_timeout(self, entries, state, timeout, result):
        """``timeout``, or its default: 300 s to become healthy; the longest deregistration delay + 60 s to drain."""
        if state == "registered":
            return DEFAULT_REGISTER_TIMEOUT if timeout is None else timeout
        delays = {}
        for entry in entries:
            arn = entry["target_group_arn"]
            if arn not in delays:
                delays[arn] = self.deregistration_delay(_entry_group(entry))
        result["deregistration_delay"] = longest = max(delays.values())
        if timeout is None:
            return longest + DRAIN_MARGIN
        if timeout < longest:
            result["warnings"].append(
                "timeout (%ss) is shorter than the longest deregistration delay of these target groups (%ss): "
                "the wait may end while the target is still draining." % (timeout, longest)
            )
        return timeout

    def _plan(self, found, target_id, state, port):
        entries = []
        for group, descriptions in found:
            by_port = {}
            for description in descriptions:
                by_port.setdefault(description["Target"].get("Port", group["port"]), description)
            if port is not None:
                ports = [port]
            else:
                present = [p for p, d in by_port.items() if _health(d)["state"] != ABSENT]
                ports = present or [group["port"]]
            for entry_port in ports:
                before = _health(by_port.get(entry_port))
                if state == "registered":
                    needed = not _is_registered(before)
                else:
                    needed = before["state"] not in (ABSENT, "draining")
                entries.append(
                    {
                        "target_group_arn": group["arn"],
                        "target_group_name": group["name"],
                        "target_type": group["target_type"],
                        "port": entry_port,
                        "changed": needed,
                        "before": before,
                        "after": None,
                        "group_targets": list(self.members.get(group["arn"], [])),
                    }
                )
        return entries

    def _apply(self, entries, target_id, state):
        operation = "register_targets" if state == "registered" else "deregister_targets"
        verb = "register" if state == "registered" else "deregister"
        for arn in dedupe(e["target_group_arn"] for e in entries if e["changed"]):
            todo = [e for e in entries if e["target_group_arn"] == arn and e["changed"]]
            self.aws.call(
                operation,
                "%s %s in target group %s" % (verb, target_id, todo[0]["target_group_name"]),
                TargetGroupArn=arn,
                Targets=[{"Id": target_id, "Port": e["port"]} for e in todo],
            )
            self.changed = True  # from here on, a failure reports that something was changed

    def _observe(self, entries, target_id, arns):
        """Read the groups in ``arns`` once; set each of their entries' ``after``."""
        for arn in arns:
            members = [e for e in entries if e["target_group_arn"] == arn]
            descriptions = self.target_descriptions(_entry_group(members[0]), target_id)
            by_port = {}
            for description in descriptions:
                by_port.setdefault(description["Target"].get("Port"), description)
            for entry in members:
                entry["after"] = _health(by_port.get(entry["port"]))

    def _read_after(self, entries, target_id):
        self._observe(entries, target_id, dedupe(e["target_group_arn"] for e in entries))

    def _wait(self, entries, target_id, state, result, poll_interval, start):
        done_when = _is_healthy if state == "registered" else _is_drained
        pending = dedupe(e["target_group_arn"] for e in entries)
        polls = {"count": 0}

        def probe():
            polls["count"] += 1
            self._observe(entries, target_id, list(pending))
            for arn in list(pending):
                if all(done_when(e["after"]) for e in entries if e["target_group_arn"] == arn):
                    pending.remove(arn)  # done for good: no more reads of this group
            return [e["after"] for e in entries]

        what = "%s to be %s in every target group" % (
            target_id,
            "healthy" if state == "registered" else "deregistered (done draining)",
        )
        try:
            outcome = wait_for(
                probe,
                lambda _afters: not pending,
                timeout=result["timeout"],
                poll_interval=poll_interval,
                backoff=POLL_BACKOFF,
                max_interval=max(POLL_MAX_INTERVAL, poll_interval),
                jitter=POLL_JITTER,
                clock=self.clock,
                sleep=self.sleep,
                rand=self.rand,
                describe=lambda _afters: self._describe_entries(entries, done_when),
                what=what,
            )
            result["polls"] = outcome.attempts
        except WaitTimeout as exc:
            result["polls"] = exc.attempts
            hint = (
                " The target group's health check does not pass: check the application and the reason above."
                if state == "registered"
                else " The target is still draining: raise timeout, or lower the deregistration delay."
            )
            error = WaitTimeout(
                "%s%s %s" % (exc.msg, hint, "The change was made." if self.changed else "Nothing was changed."),
                last_state=exc.last_state,
                elapsed=exc.elapsed,
                attempts=exc.attempts,
            )
            error.details.update(
                changed=self.changed,
                target_groups=entries,
                polls=exc.attempts,
                timeout=result["timeout"],
                timed_out=True,
                elapsed=round(self.clock() - start, 3),
                api_calls=self.aws.api_calls,
            )
            raise error from None

    @staticmethod
    def _describe_entries(entries, done_when):
        parts = []
        for entry in entries:
            after = entry["after"] or _health(None)
            mark = "" if done_when(after) else " [waiting]"
            parts.append("%s %s%s" % (_key(entry), _describe_health(after), mark))
        return "; ".join(parts)

    def _finish(self, result, start, diff, check_mode=False):
        entries = result["target_groups"]
        # Where the target is (registered) or was before this task (deregistered).
        kept = [e for e in entries if result["state"] == "registered" or e["before"]["state"] != ABSENT]
        by_port = {}
        for entry in kept:
            by_port.setdefault(entry["port"], [])
            if entry["target_group_arn"] not in by_port[entry["port"]]:
                by_port[entry["port"]].append(entry["target_group_arn"])
        result["registrations"] = [{"port": p, "target_groups": arns} for p, arns in by_port.items()]
        result["elapsed"] = round(self.clock() - start, 3)
        result["api_calls"] = self.aws.api_calls
        if diff:
            result["diff"] = {
                "before": {_key(e): e["before"]["state"] for e in entries},
                "after": {_key(e): (e["after"] or {}).get("state") for e in entries},
            }
        result["msg"] = _message(result, check_mode)
        return result


def _dedupe_groups(groups):
    out = []
    seen = set()
    for group in groups:
        if group["arn"] not in seen:
            seen.add(group["arn"])
            out.append(group)
    return out


def _entry_group(entry):
    return {"arn": entry["target_group_arn"], "name": entry["target_group_name"]}


def _predict(entry, state, wait):
    """What check mode expects: the target after the change (and after the wait, when waiting)."""
    if not entry["changed"] and not wait:
        return dict(entry["before"])
    if state == "registered":
        return {"state": "healthy" if wait else "initial", "reason": None, "description": None}
    return {"state": ABSENT if wait else "draining", "reason": None, "description": None}


def _message(result, check_mode):
    target_id = result["target_id"]
    entries = result["target_groups"]
    if not entries:
        return "%s is not registered in any target group; nothing to do." % target_id
    changed = [_key(e) for e in entries if e["changed"]]
    verb = "register" if result["state"] == "registered" else "deregister"
    if check_mode:
        if changed:
            return "Would %s %s in %s (check mode: nothing changed, nothing waited for)." % (
                verb,
                target_id,
                ", ".join(changed),
            )
        return "%s is already %s in all %d target group(s); nothing would change." % (
            target_id,
            result["state"],
            len(entries),
        )
    if changed:
        msg = "%sed %s in %s." % (verb.capitalize(), target_id, ", ".join(changed))
    else:
        msg = "%s was already %s in all %d target group(s); nothing changed." % (
            target_id,
            result["state"],
            len(entries),
        )
    if result["waited"]:
        msg += " %s everywhere after %.1fs (%d poll%s, %d AWS call%s)." % (
            "Healthy" if result["state"] == "registered" else "Done draining",
            result["elapsed"],
            result["polls"],
            "" if result["polls"] == 1 else "s",
            result["api_calls"],
            "" if result["api_calls"] == 1 else "s",
        )
    return msg
