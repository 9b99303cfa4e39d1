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

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.caller import (
    POLL_INTERVAL,
    dedupe,
    describe_each,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.elbv2_health import (
    ABSENT,
    check_target_type,
    describe_health,
    entry_group,
    entry_key,
    group_summary,
    is_drained,
    is_healthy,
    is_registered,
    predict,
    target_health,
    validate_target,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.membership import (
    DRAIN_MARGIN,
    LoadBalancerMembership,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import NotFoundError, ValidationError

DEFAULT_REGISTER_TIMEOUT = 300
# The deregistration delay AWS applies when the attribute cannot be read.
DEFAULT_DEREGISTRATION_DELAY = 300

_DESCRIBE_BATCH = 20
# A bad ARN is a ValidationError, an unknown name or ARN a TargetGroupNotFound.
_NOT_FOUND_CODES = ("TargetGroupNotFound", "ValidationError")


class ELBv2Targets(LoadBalancerMembership):
    """One target in ELBv2 target groups: one entry per target group and port.

    :param client: boto3 ``elbv2`` client, or ``RetryingBotoClientWrapper`` around one (then ``aws_retry=True``).
        The other parameters are those of :class:`LoadBalancerMembership`.
    """

    MEMBER_KEY = "target_id"
    ENTRIES_KEY = "target_groups"
    LIST_OF = "target group names or ARNs"
    LIST_HINT = "names or ARNs"
    PREPOSITION = "in"
    PLACES = "target group(s)"
    NOWHERE = "in any target group"
    DONE = {"registered": is_healthy, "deregistered": is_drained}
    AWAITED = {
        "registered": "%s to be healthy in every target group",
        "deregistered": "%s to be deregistered (done draining) in every target group",
    }
    TIMEOUT_HINT = {
        "registered": " The target group's health check does not pass: check the application and the reason above.",
        "deregistered": " The target is still draining: raise timeout, or lower the deregistration delay.",
    }
    REACHED = {"registered": "Healthy", "deregistered": "Done draining"}

    def __init__(self, client, aws_retry=False, clock=None, sleep=None, rand=None):
        super().__init__(client, aws_retry=aws_retry, clock=clock, sleep=sleep, rand=rand)
        self.members = {}  # target group ARN -> every target of the group, as last read

    # ------------------------------------------------------------------ reads

    def describe_groups(self, refs):
        """Target groups by name or ARN, in the order given. Every unknown one is named in one NotFoundError."""
        refs = dedupe(refs)
        arns = [r for r in refs if r.startswith("arn:")]
        names = [r for r in refs if not r.startswith("arn:")]
        found = {}
        missing = []
        for key, batch_refs in (("TargetGroupArns", arns), ("Names", names)):
            groups, not_found = describe_each(
                lambda batch, key=key: self._describe_target_groups(**{key: batch}),
                batch_refs,
                _DESCRIBE_BATCH,
                _NOT_FOUND_CODES,
            )
            missing.extend(not_found)
            for raw in groups:
                group = group_summary(raw)
                found[group["arn"]] = group
                found[group["name"]] = group
        if missing:
            raise NotFoundError(
                "Target group(s) not found (or not a valid name or ARN): %s. Nothing was changed in any target group."
                % ", ".join(missing),
                changed=False,
                missing_target_groups=missing,
            )
        return dedupe((found[ref] for ref in refs), key=lambda group: group["arn"])

    def _describe_target_groups(self, **params):
        return self.aws.pages("describe_target_groups", "describe target groups", "TargetGroups", **params)

    def all_groups(self):
        """Every target group of the account and region (paginated)."""
        return [group_summary(raw) for raw in self._describe_target_groups()]

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
                "state": target_health(d)["state"],
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
            descriptions = [d for d in descriptions if target_health(d)["state"] != ABSENT]
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

    def ensure(self, target_id, state, target_groups=None, port=None, wait=True, timeout=None, **run):
        """Put ``target_id`` in ``state`` in ``target_groups`` (or every group it is in), then optionally wait.

        ``run``: ``poll_interval`` (default 2 s), ``check_mode`` and ``diff``.

        :returns: result dict (see the elbv2_target module's RETURN).
        :raises RolloutError: ValidationError, NotFoundError, WaitTimeout.
        """
        start = self.clock()
        self.validate(target_id, state, target_groups, port, timeout, run.get("poll_interval", POLL_INTERVAL))
        self.entries = self.plan(self.locate(target_id, state, target_groups), target_id, state, port)
        return self.execute(target_id, state, start, port, wait, timeout, **run)

    # The phases of ``ensure``, also used by the rotation layer (:mod:`.rotation`), which reads once, checks the
    # capacity guard and writes its resume record between ``plan`` and ``execute``.

    def validate(self, target_id, state, target_groups=None, port=None, timeout=None, poll_interval=POLL_INTERVAL):
        """Refuse bad arguments before any call (ValidationError)."""
        validate_target(target_id, port)
        self._validate(state, timeout, poll_interval, target_groups)

    def locate(self, target_id, state, target_groups=None):
        """Resolve (or discover), read and check every target group before any change: ``[(group, descriptions)]``.

        Every group read also fills ``self.members`` (all the targets of the group, for a capacity guard)."""
        if target_groups is None:
            found = self.discover(target_id)
            self._refuse_empty_discovery(target_id, state, found)
            return found
        groups = self.describe_groups(list(target_groups))
        problems = [p for p in (check_target_type(target_id, g) for g in groups) if p]
        if problems:
            raise ValidationError(
                "Cannot manage %s in these target groups: %s Nothing was changed in any target group."
                % (target_id, " ".join(problems)),
                changed=False,
            )
        return [(g, self.target_descriptions(g, target_id)) for g in groups]

    def plan(self, found, target_id, state, port=None):
        """One entry per target group and port of ``found`` (see RETURN ``target_groups``); changes nothing."""
        return self._plan(found, target_id, state, port)

    def execute(self, target_id, state, start, port=None, wait=True, timeout=None, **run):
        """Change and wait as ``self.entries`` (planned) say; ``start`` is the task's start on ``self.clock``, ``run``
        as in :meth:`ensure`."""
        entries = self.entries
        result = {
            "changed": any(e["changed"] for e in entries),
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
        return self._run(result, start, wait, **run)

    def _effective_timeout(self, entries, state, timeout, result):
        """``timeout``, or its default: 300 s to become healthy; the longest deregistration delay + 60 s to drain."""
        if state == "registered":
            return DEFAULT_REGISTER_TIMEOUT if timeout is None else timeout
        delays = {}
        for entry in entries:
            arn = entry["target_group_arn"]
            if arn not in delays:
                delays[arn] = self.deregistration_delay(entry_group(entry))
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
                present = [p for p, d in by_port.items() if target_health(d)["state"] != ABSENT]
                ports = present or [group["port"]]
            for entry_port in ports:
                before = target_health(by_port.get(entry_port))
                if state == "registered":
                    needed = not is_registered(before)
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

    def _apply(self, member, state):
        """Register or deregister the target (``member``) in each group where an entry says ``changed``."""
        operation = "register_targets" if state == "registered" else "deregister_targets"
        verb = "register" if state == "registered" else "deregister"
        for arn in dedupe(e["target_group_arn"] for e in self.entries if e["changed"]):
            todo = [e for e in self.entries if e["target_group_arn"] == arn and e["changed"]]
            self.aws.call(
                operation,
                "%s %s in target group %s" % (verb, member, todo[0]["target_group_name"]),
                TargetGroupArn=arn,
                Targets=[{"Id": member, "Port": e["port"]} for e in todo],
            )
            self.changed = True  # from here on, a failure reports that something was changed

    def _units(self):
        return dedupe(e["target_group_arn"] for e in self.entries)

    def _observe(self, unit, member, _state):
        """Read one target group (``unit``, its ARN) for the target (``member``); set the ``after`` of the group's
        entries (one per port) and return them."""
        group_entries = [e for e in self.entries if e["target_group_arn"] == unit]
        descriptions = self.target_descriptions(entry_group(group_entries[0]), member)
        by_port = {}
        for description in descriptions:
            by_port.setdefault(description["Target"].get("Port"), description)
        for entry in group_entries:
            entry["after"] = target_health(by_port.get(entry["port"]))
        return group_entries

    # The hooks of LoadBalancerMembership that are this module's plain functions.
    _label = staticmethod(entry_key)
    _describe_health = staticmethod(describe_health)
    _predict = staticmethod(predict)

    @staticmethod
    def _diff_view(health):
        return health.get("state")  # per group:port, the health state only

    def _summarize(self, result):
        # Where the target is (registered) or was before this task (deregistered).
        kept = [e for e in self.entries if result["state"] == "registered" or e["before"]["state"] != ABSENT]
        by_port = {}
        for entry in kept:
            by_port.setdefault(entry["port"], [])
            if entry["target_group_arn"] not in by_port[entry["port"]]:
                by_port[entry["port"]].append(entry["target_group_arn"])
        result["registrations"] = [{"port": p, "target_groups": arns} for p, arns in by_port.items()]
