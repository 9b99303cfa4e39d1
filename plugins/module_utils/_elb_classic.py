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
DEFAULT_TIMEOUT = 300
# Our name for "the load balancer does not know the instance at all".
ABSENT = "absent"
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
_DESCRIBE_BATCH = 20
_NOT_FOUND_CODES = ("LoadBalancerNotFound", "AccessPointNotFound")

__all__ = ["ABSENT", "DEFAULT_TIMEOUT", "STATES", "ClassicELBInstance"]


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


class ClassicELBInstance:
    """One EC2 instance in Classic ELBs.

    :param client: boto3 ``elb`` client, or ``RetryingBotoClientWrapper`` around one (then ``aws_retry=True``).
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

    @property
    def action(self):
        """What the last AWS call was for (used in error messages)."""
        return self.aws.action

    # ------------------------------------------------------------------ reads

    def _describe_load_balancers(self, **params):
        found = []
        marker = None
        while True:
            if marker:
                params["Marker"] = marker
            page = self.aws.call("describe_load_balancers", "describe load balancers", **params)
            found.extend(page.get("LoadBalancerDescriptions") or [])
            marker = page.get("NextMarker")
            if not marker:
                return found

    def describe_load_balancers(self, names):
        """``{name: [instance ids]}`` for the named ELBs; every unknown one is named in one NotFoundError."""
        names = dedupe(names)
        found = {}
        missing = []
        for batch in chunks(names, _DESCRIBE_BATCH):
            try:
                descriptions = self._describe_load_balancers(LoadBalancerNames=batch)
            except is_boto3_error_code(_NOT_FOUND_CODES):
                # One unknown name fails the whole batch: ask one by one to name every missing one.
                descriptions = []
                for name in batch:
                    try:
                        descriptions.extend(self._describe_load_balancers(LoadBalancerNames=[name]))
                    except is_boto3_error_code(_NOT_FOUND_CODES):
                        missing.append(name)
            for lb in descriptions:
                found[lb["LoadBalancerName"]] = [i["InstanceId"] for i in lb.get("Instances") or []]
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

    def partial_result(self):
        """What is known after a failure: whether something changed, and the load balancers handled so far."""
        return {"changed": self.changed, "load_balancers": self.entries, "api_calls": self.aws.api_calls}

    def ensure(
        self,
        instance_id,
        state,
        load_balancers=None,
        wait=True,
        timeout=DEFAULT_TIMEOUT,
        poll_interval=POLL_INTERVAL,
        check_mode=False,
        diff=False,
    ):
        """Put ``instance_id`` in ``state`` on ``load_balancers`` (or every ELB that lists it), then optionally wait.

        :returns: result dict (see the elb_classic_instance module's RETURN).
        :raises RolloutError: ValidationError, NotFoundError, WaitTimeout.
        """
        start = self.clock()
        if not isinstance(instance_id, str) or not _INSTANCE_ID.match(instance_id):
            raise ValidationError("instance_id must be an EC2 instance id (i-...), got %r." % (instance_id,))
        if state not in STATES:
            raise ValidationError("Invalid state %r: use one of %s." % (state, ", ".join(STATES)))
        validate_wait(timeout, poll_interval, allow_none_timeout=False)
        if load_balancers is not None:
            if not isinstance(load_balancers, (list, tuple)) or not all(
                isinstance(n, str) and n.strip() for n in load_balancers
            ):
                raise ValidationError("load_balancers must be a list of Classic ELB names.")
            if not load_balancers:
                raise ValidationError("load_balancers is empty: list names, or omit it to discover them.")

        if load_balancers is None:
            known = [(name, [instance_id]) for name in self.discover(instance_id)]
            if not known and state == "registered":
                raise ValidationError(
                    "%s is not registered with any Classic ELB, so there is nothing to discover: list load_balancers "
                    "to register it. Nothing was changed." % instance_id,
                    changed=False,
                )
        else:
            known = self.describe_load_balancers(list(load_balancers))

        entries = []
        for name, instances in known:
            registered = instance_id in instances
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
        self.entries = entries
        changed = any(e["changed"] for e in entries)
        result = {
            "changed": changed,
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

        if check_mode:
            for entry in entries:
                entry["after"] = self._predict(entry, state, wait)
            return self._finish(result, start, diff, check_mode=True)

        verb = "register" if state == "registered" else "deregister"
        operation = (
            "register_instances_with_load_balancer"
            if state == "registered"
            else "deregister_instances_from_load_balancer"
        )
        for entry in entries:
            if entry["changed"]:
                self.aws.call(
                    operation,
                    "%s %s on load balancer %s" % (verb, instance_id, entry["load_balancer_name"]),
                    LoadBalancerName=entry["load_balancer_name"],
                    Instances=[{"InstanceId": instance_id}],
                )
                self.changed = True  # from here on, a failure reports that something was changed

        if wait and entries:
            result["waited"] = True
            self._wait(entries, instance_id, state, result, poll_interval, start)
        elif changed:
            for entry in entries:
                self._observe(entry, instance_id, state)
        else:
            for entry in entries:
                entry["after"] = dict(entry["before"])
        return self._finish(result, start, diff)

    @staticmethod
    def _predict(entry, state, wait):
        if not entry["changed"] and not wait:
            return dict(entry["before"])
        after = _health(("InService" if wait else "OutOfService") if state == "registered" else ABSENT)
        after["registered"] = state == "registered"
        return after

    def _observe(self, entry, instance_id, state):
        after = self.instance_health(entry["load_balancer_name"], instance_id)
        if state == "deregistered" and after["state"] == "Unknown":
            after = _health()
        after["registered"] = state == "registered"
        entry["after"] = after

    def _wait(self, entries, instance_id, state, result, poll_interval, start):
        done_when = _is_in_service if state == "registered" else _is_out
        pending = list(entries)

        def probe():
            for entry in list(pending):
                self._observe(entry, instance_id, state)
                if done_when(entry["after"]):
                    pending.remove(entry)  # done for good: no more reads of this load balancer
            return [e["after"] for e in entries]

        what = "%s to be %s on every load balancer" % (
            instance_id,
            "InService" if state == "registered" else "out of service (deregistered, connections drained)",
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
                describe=lambda _afters: "; ".join(
                    "%s %s%s"
                    % (e["load_balancer_name"], _describe_health(e["after"]), "" if e not in pending else " [waiting]")
                    for e in entries
                ),
                what=what,
            )
            result["polls"] = outcome.attempts
        except WaitTimeout as exc:
            hint = (
                " The ELB health check does not pass: check the application and the reason above."
                if state == "registered"
                else " Connections are still draining: raise timeout, or lower the connection-draining timeout."
            )
            error = WaitTimeout(
                "%s%s %s" % (exc.msg, hint, "The change was made." if self.changed else "Nothing was changed."),
                last_state=exc.last_state,
                elapsed=exc.elapsed,
                attempts=exc.attempts,
            )
            error.details.update(
                changed=self.changed,
                load_balancers=entries,
                polls=exc.attempts,
                timeout=result["timeout"],
                timed_out=True,
                elapsed=round(self.clock() - start, 3),
                api_calls=self.aws.api_calls,
            )
            raise error from None

    def _finish(self, result, start, diff, check_mode=False):
        entries = result["load_balancers"]
        if result["state"] == "registered":
            result["load_balancer_names"] = [e["load_balancer_name"] for e in entries]
        else:
            result["load_balancer_names"] = [e["load_balancer_name"] for e in entries if e["before"]["registered"]]
        result["elapsed"] = round(self.clock() - start, 3)
        result["api_calls"] = self.aws.api_calls
        if diff:
            result["diff"] = {
                "before": {
                    e["load_balancer_name"]: {"registered": e["before"]["registered"], "state": e["before"]["state"]}
                    for e in entries
                },
                "after": {
                    e["load_balancer_name"]: {
                        "registered": (e["after"] or {}).get("registered"),
                        "state": (e["after"] or {}).get("state"),
                    }
                    for e in entries
                },
            }
        result["msg"] = _message(result, check_mode)
        return result


def _message(result, check_mode):
    instance_id = result["instance_id"]
    entries = result["load_balancers"]
    if not entries:
        return "%s is not registered with any Classic ELB; nothing to do." % instance_id
    changed = [e["load_balancer_name"] for e in entries if e["changed"]]
    verb = "register" if result["state"] == "registered" else "deregister"
    if check_mode:
        if changed:
            return "Would %s %s on %s (check mode: nothing changed, nothing waited for)." % (
                verb,
                instance_id,
                ", ".join(changed),
            )
        return "%s is already %s on all %d load balancer(s); nothing would change." % (
            instance_id,
            result["state"],
            len(entries),
        )
    if changed:
        msg = "%sed %s on %s." % (verb.capitalize(), instance_id, ", ".join(changed))
    else:
        msg = "%s was already %s on all %d load balancer(s); nothing changed." % (
            instance_id,
            result["state"],
            len(entries),
        )
    if result["timeout_extended"]:
        msg += " Timeout raised to %ss for connection draining (%ss)." % (
            result["timeout"],
            result["connection_draining_timeout"],
        )
    if result["waited"]:
        msg += " %s everywhere after %.1fs (%d poll%s, %d AWS call%s)." % (
            "InService" if result["state"] == "registered" else "Out of service",
            result["elapsed"],
            result["polls"],
            "" if result["polls"] == 1 else "s",
            result["api_calls"],
            "" if result["api_calls"] == 1 else "s",
        )
    return msg
