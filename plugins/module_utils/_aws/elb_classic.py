# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Register or deregister one EC2 instance in Classic ELBs, then wait; used by elb_classic_instance.

:class:`ClassicELBInstance` takes a boto3 ``elb`` client (or amazon.aws's retrying wrapper around
one), plus an injectable clock, sleep and random source. It returns result dicts and raises the
collection's exceptions; botocore errors propagate unchanged (the module turns them into
``fail_json_aws``), and :meth:`ClassicELBInstance.partial_result` tells what was done before one.

Order: validate arguments -> resolve or discover every load balancer (refuse unknown names, nothing
changed) -> read the instance's health in each -> register/deregister only where needed -> wait
until it is ``InService`` (registered) or no longer in service (deregistered) everywhere.
"""

import re

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.caller import (
    POLL_INTERVAL,
    dedupe,
    describe_each,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.membership import (
    DRAIN_MARGIN,
    LoadBalancerMembership,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import NotFoundError, ValidationError

DEFAULT_TIMEOUT = 300
# Our name for "the load balancer does not know the instance at all".
ABSENT = "absent"
_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")  # fullmatch: "$" accepts a final newline
_DESCRIBE_BATCH = 20
_NOT_FOUND_CODES = ("LoadBalancerNotFound", "AccessPointNotFound")


def _health(state=None, reason=None, description=None):
    return {"state": state or ABSENT, "reason_code": reason, "description": description}


def _is_in_service(health):
    return health["state"] == "InService"


def _is_out(health):
    """Out of service once deregistered (an InService instance may still be draining connections)."""
    return health["state"] != "InService"


def _describe_health(health):
    text = health["state"]
    extra = [p for p in (health.get("reason_code"), health.get("description")) if p and p != "N/A"]
    if extra:
        text += " (%s)" % ": ".join(extra)
    return text


class ClassicELBInstance(LoadBalancerMembership):
    """One EC2 instance in Classic ELBs: one entry per load balancer.

    :param client: boto3 ``elb`` client, or ``RetryingBotoClientWrapper`` around one (then ``aws_retry=True``).
        The other parameters are those of :class:`LoadBalancerMembership`.
    """

    MEMBER_KEY = "instance_id"
    ENTRIES_KEY = "load_balancers"
    LIST_OF = "Classic ELB names"
    LIST_HINT = "names"
    PREPOSITION = "on"
    PLACES = "load balancer(s)"
    NOWHERE = "with any Classic ELB"
    DONE = {"registered": _is_in_service, "deregistered": _is_out}
    AWAITED = {
        "registered": "%s to be InService on every load balancer",
        "deregistered": "%s to be out of service (deregistered, connections drained) on every load balancer",
    }
    TIMEOUT_HINT = {
        "registered": " The ELB health check does not pass: check the application and the reason above.",
        "deregistered": " Connections are still draining: raise timeout, or lower the connection-draining timeout.",
    }
    REACHED = {"registered": "InService", "deregistered": "Out of service"}

    def __init__(self, client, aws_retry=False, clock=None, sleep=None, rand=None):
        super().__init__(client, aws_retry=aws_retry, clock=clock, sleep=sleep, rand=rand)
        self.members = {}  # load balancer name -> every instance it lists, as last read by every_health

    # ------------------------------------------------------------------ reads

    def _describe_load_balancers(self, **params):
        return self.aws.pages(
            "describe_load_balancers", "describe load balancers", "LoadBalancerDescriptions", **params
        )

    def describe_load_balancers(self, names):
        """``{name: [instance ids]}`` for the named ELBs; every unknown one is named in one NotFoundError."""
        names = dedupe(names)
        descriptions, missing = describe_each(
            lambda batch: self._describe_load_balancers(LoadBalancerNames=batch),
            names,
            _DESCRIBE_BATCH,
            _NOT_FOUND_CODES,
        )
        found = {lb["LoadBalancerName"]: [i["InstanceId"] for i in lb.get("Instances") or []] for lb in descriptions}
        if missing:
            raise NotFoundError(
                "Classic load balancer(s) not found: %s. Nothing was changed on any load balancer."
                % ", ".join(missing),
                changed=False,
                missing_load_balancers=missing,
            )
        return [(name, found[name]) for name in names]

    def discover(self, instance_id):
        """Names of every Classic ELB that lists the instance (paginated)."""
        return [
            lb["LoadBalancerName"]
            for lb in self._describe_load_balancers()
            if instance_id in [i["InstanceId"] for i in lb.get("Instances") or []]
        ]

    def instance_health(self, name, instance_id):
        try:
            answer = self.aws.call(
                "describe_instance_health",
                "describe the health of %s on load balancer %s" % (instance_id, name),
                LoadBalancerName=name,
                Instances=[{"InstanceId": instance_id}],
            )
        except is_boto3_error_code("InvalidInstance"):  # AWS: not registered (any more)
            return _health()
        for state in answer.get("InstanceStates") or []:
            if state.get("InstanceId") == instance_id:
                return _health(state.get("State"), state.get("ReasonCode"), state.get("Description"))
        return _health()

    def every_health(self, name):
        """``{instance id: health}`` of every instance the ELB lists, in one call; kept in ``self.members[name]``
        (for a capacity guard)."""
        answer = self.aws.call(
            "describe_instance_health",
            "describe the health of the instances on load balancer %s" % name,
            LoadBalancerName=name,
        )
        healths = {}
        for state in answer.get("InstanceStates") or []:
            if state.get("InstanceId"):
                healths[state["InstanceId"]] = _health(
                    state.get("State"), state.get("ReasonCode"), state.get("Description")
                )
        self.members[name] = [{"id": i, "state": h["state"]} for i, h in healths.items()]
        return healths

    def connection_draining(self, name):
        """Connection-draining timeout of the ELB in seconds, or None when draining is off."""
        answer = self.aws.call(
            "describe_load_balancer_attributes",
            "read the attributes of load balancer %s" % name,
            LoadBalancerName=name,
        )
        draining = (answer.get("LoadBalancerAttributes") or {}).get("ConnectionDraining") or {}
        if draining.get("Enabled"):
            return int(draining.get("Timeout") or 300)
        return None

    # ------------------------------------------------------------------ the task

    def ensure(self, instance_id, state, load_balancers=None, wait=True, timeout=DEFAULT_TIMEOUT, **run):
        """Put ``instance_id`` in ``state`` on ``load_balancers`` (or every ELB that lists it), then optionally wait.

        ``run``: ``poll_interval`` (default 2 s), ``check_mode`` and ``diff``.

        :returns: result dict (see the elb_classic_instance module's RETURN).
        :raises RolloutError: ValidationError, NotFoundError, WaitTimeout.
        """
        start = self.clock()
        self.validate(instance_id, state, load_balancers, timeout, run.get("poll_interval", POLL_INTERVAL))
        self.entries = self.plan(self.locate(instance_id, state, load_balancers), instance_id, state)
        return self.execute(instance_id, state, start, wait, timeout, **run)

    # The phases of ``ensure``, also used by the rotation layer (:mod:`.rotation`), which reads once, checks the
    # capacity guard and writes its resume record between ``plan`` and ``execute``.

    def validate(self, instance_id, state, load_balancers=None, timeout=DEFAULT_TIMEOUT, poll_interval=POLL_INTERVAL):
        """Refuse bad arguments before any call (ValidationError)."""
        if not isinstance(instance_id, str) or not _INSTANCE_ID.fullmatch(instance_id):
            raise ValidationError("instance_id must be an EC2 instance id (i-...), got %r." % (instance_id,))
        self._validate(state, timeout, poll_interval, load_balancers, allow_none_timeout=False)

    def locate(self, instance_id, state, load_balancers=None):
        """Resolve (or discover) the load balancers before any change: ``[(name, [instance ids it lists])]``."""
        if load_balancers is None:
            known = [(name, [instance_id]) for name in self.discover(instance_id)]
            self._refuse_empty_discovery(instance_id, state, known)
            return known
        return self.describe_load_balancers(list(load_balancers))

    def plan(self, known, instance_id, state, healths=None):
        """One entry per load balancer of ``known``; changes nothing. ``healths``: ``{name: every_health(name)}``
        already read (else the instance's health is read on each load balancer)."""
        entries = []
        for name, instances in known:
            registered = instance_id in instances
            if healths is not None and name in healths:
                before = dict(healths[name].get(instance_id) or _health())
            else:
                before = self.instance_health(name, instance_id)
            if not registered and before["state"] == "Unknown":
                before = _health()
            before["registered"] = registered
            entries.append(
                {
                    "load_balancer_name": name,
                    "changed": registered != (state == "registered"),
                    "before": before,
                    "after": None,
                }
            )
        return entries

    def execute(self, instance_id, state, start, wait=True, timeout=DEFAULT_TIMEOUT, **run):
        """Change and wait as ``self.entries`` (planned) say; ``start`` is the task's start on ``self.clock``, ``run``
        as in :meth:`ensure`."""
        entries = self.entries
        result = {
            "changed": any(e["changed"] for e in entries),
            "instance_id": instance_id,
            "state": state,
            "load_balancers": entries,
            "load_balancer_names": [],
            "timeout": timeout,
            "timeout_extended": False,
            "connection_draining_timeout": None,
            "waited": False,
            "elapsed": 0.0,
            "polls": 0,
            "api_calls": 0,
            "warnings": [],
        }

        if wait and entries and state == "deregistered":
            drains = [d for d in (self.connection_draining(e["load_balancer_name"]) for e in entries) if d]
            if drains:
                result["connection_draining_timeout"] = longest = max(drains)
                needed = longest + DRAIN_MARGIN
                if timeout < needed:
                    result["timeout"] = needed
                    result["timeout_extended"] = True
                    result["warnings"].append(
                        "timeout raised from %ss to %ss: connection draining on these load balancers lasts up to %ss."
                        % (timeout, needed, longest)
                    )

        return self._run(result, start, wait, **run)

    def _apply(self, member, state):
        """Register or deregister the instance (``member``) on each load balancer whose entry says ``changed``."""
        verb = "register" if state == "registered" else "deregister"
        operation = (
            "register_instances_with_load_balancer"
            if state == "registered"
            else "deregister_instances_from_load_balancer"
        )
        for entry in self.entries:
            if entry["changed"]:
                self.aws.call(
                    operation,
                    "%s %s on load balancer %s" % (verb, member, entry["load_balancer_name"]),
                    LoadBalancerName=entry["load_balancer_name"],
                    Instances=[{"InstanceId": member}],
                )
                self.changed = True  # from here on, a failure reports that something was changed

    @staticmethod
    def _predict(entry, state, wait):
        if not entry["changed"] and not wait:
            return dict(entry["before"])
        after = _health(("InService" if wait else "OutOfService") if state == "registered" else ABSENT)
        after["registered"] = state == "registered"
        return after

    def _units(self):
        return list(self.entries)

    def _observe(self, unit, member, state):
        """Read the instance's (``member``'s) health on one load balancer (``unit``, its entry); set the entry's
        ``after`` and return ``[entry]``."""
        after = self.instance_health(unit["load_balancer_name"], member)
        if state == "deregistered" and after["state"] == "Unknown":
            after = _health()
        after["registered"] = state == "registered"
        unit["after"] = after
        return [unit]

    @staticmethod
    def _label(entry):
        return entry["load_balancer_name"]

    # The hook of LoadBalancerMembership that is this module's plain function.
    _describe_health = staticmethod(_describe_health)

    @staticmethod
    def _diff_view(health):
        return {"registered": health.get("registered"), "state": health.get("state")}

    def _summarize(self, result):
        if result["state"] == "registered":
            result["load_balancer_names"] = [e["load_balancer_name"] for e in self.entries]
        else:
            result["load_balancer_names"] = [e["load_balancer_name"] for e in self.entries if e["before"]["registered"]]

    def _message_extra(self, result):
        if not result["timeout_extended"]:
            return ""
        return " Timeout raised to %ss for connection draining (%ss)." % (
            result["timeout"],
            result["connection_draining_timeout"],
        )
