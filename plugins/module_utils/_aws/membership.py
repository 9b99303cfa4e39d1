# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""One member (an ELBv2 target, an EC2 instance) in several load balancers: the task both AWS helpers share.

:class:`LoadBalancerMembership` is the base of :class:`.elbv2.ELBv2Targets` and
:class:`.elb_classic.ClassicELBInstance`: the argument checks, the run (predict in check mode, else change, then
wait or read once), the wait on the polling policy of :mod:`.caller`, and the result with its diff and message.
"""

import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.caller import (
    POLL_BACKOFF,
    POLL_INTERVAL,
    POLL_JITTER,
    POLL_MAX_INTERVAL,
    AWSCaller,
    validate_wait,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError, WaitTimeout
from ansible_collections.zerodowntime.rollout.plugins.module_utils._waiter import wait_for

STATES = ("registered", "deregistered")

# Margin added to the load balancer's own drain time (deregistration delay, connection draining)
# when computing or extending a deregistration wait.
DRAIN_MARGIN = 60


class LoadBalancerMembership:
    """One member (an ELBv2 target, an EC2 instance) in several load balancers (target groups, Classic ELBs).

    The base of :class:`ELBv2Targets` and :class:`ClassicELBInstance`. It holds what a task did so far
    (for the result of a failure), checks the arguments both share, runs the task once the subclass
    has read the load balancers and planned one entry per load balancer (predict in check mode, else
    change, then wait or read once), and builds the result's diff and message. A subclass sets the
    words below and implements the hooks: how its load balancers are read and changed, and what a
    health state means.

    An entry is a dict with at least ``changed``, ``before`` and ``after`` (a health dict each).

    :param client: boto3 client, or ``RetryingBotoClientWrapper`` around one (then ``aws_retry=True``).
    :param clock: monotonic clock callable (default ``time.monotonic``).
    :param sleep: sleep callable (default ``time.sleep``).
    :param rand: callable returning a float in [0, 1), for poll jitter (default ``random.random``).
    """

    # Result keys of the member's id and of the entries; the second is also the option listing the load balancers.
    MEMBER_KEY = None
    ENTRIES_KEY = None
    # Argument checks: "<ENTRIES_KEY> must be a list of <LIST_OF>." and "<ENTRIES_KEY> is empty: list <LIST_HINT>, ..."
    LIST_OF = None
    LIST_HINT = None
    # Messages: "Registered <member> <PREPOSITION> <labels>.", "... on all 2 <PLACES>", "... not registered <NOWHERE>".
    PREPOSITION = None
    PLACES = None
    NOWHERE = None
    # Per requested state: DONE(health) is true once an entry is where the wait wants it; AWAITED % member names
    # the wait in its timeout message, TIMEOUT_HINT follows that message; REACHED starts "<...> everywhere after".
    DONE = {}
    AWAITED = {}
    TIMEOUT_HINT = {}
    REACHED = {}

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

    def partial_result(self):
        """What is known after a failure: whether something changed, and the load balancers handled so far."""
        return {"changed": self.changed, self.ENTRIES_KEY: self.entries, "api_calls": self.aws.api_calls}

    # ------------------------------------------------------------------ hooks of the subclass

    @staticmethod
    def _label(entry):
        """The entry's name in messages and in the diff."""
        raise NotImplementedError

    @staticmethod
    def _describe_health(health):
        """A health dict in words, for the timeout message."""
        raise NotImplementedError

    @staticmethod
    def _diff_view(health):
        """What the diff shows of a health dict (``{}`` when there is none)."""
        raise NotImplementedError

    @staticmethod
    def _predict(entry, state, wait):
        """Check mode: the entry's health after the change (and after the wait, when waiting)."""
        raise NotImplementedError

    def _apply(self, member, state):
        """Register or deregister ``member`` where its entry says ``changed``; set ``self.changed`` once done."""
        raise NotImplementedError

    def _units(self):
        """What one read covers (a target group, a load balancer), in the order of the entries."""
        raise NotImplementedError

    def _observe(self, unit, member, state):
        """Read one unit; set ``after`` of its entries and return them."""
        raise NotImplementedError

    def _summarize(self, result):
        """Set the result's keys that tell where to register the member back."""
        raise NotImplementedError

    def _message_extra(self, result):
        """A sentence the message adds before the one on the wait."""
        return ""

    # ------------------------------------------------------------------ the task

    def _validate(self, state, timeout, poll_interval, names, allow_none_timeout=True):
        """Check the arguments both helpers share (after the member's own), before any call."""
        if state not in STATES:
            raise ValidationError("Invalid state %r: use one of %s." % (state, ", ".join(STATES)))
        validate_wait(timeout, poll_interval, allow_none_timeout=allow_none_timeout)
        if names is not None:
            if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n.strip() for n in names):
                raise ValidationError("%s must be a list of %s." % (self.ENTRIES_KEY, self.LIST_OF))
            if not names:
                raise ValidationError(
                    "%s is empty: list %s, or omit it to discover them." % (self.ENTRIES_KEY, self.LIST_HINT)
                )

    def _refuse_empty_discovery(self, member, state, found):
        """Discovery found the member nowhere: fine to deregister (nothing to do), impossible to register."""
        if not found and state == "registered":
            raise ValidationError(
                "%s is not registered %s, so there is nothing to discover: list %s to register it. Nothing was changed."
                % (member, self.NOWHERE, self.ENTRIES_KEY),
                changed=False,
            )

    def _run(self, result, start, wait, poll_interval=POLL_INTERVAL, check_mode=False, diff=False):
        """Finish the task planned in ``self.entries`` and ``result``: predict in check mode; else change, then wait,
        or read once after a change, or keep ``before`` as ``after`` when nothing changed."""
        member = result[self.MEMBER_KEY]
        state = result["state"]
        if check_mode:
            for entry in self.entries:
                entry["after"] = self._predict(entry, state, wait)
            return self._finish(result, start, diff, check_mode=True)

        self._apply(member, state)

        if wait and self.entries:
            result["waited"] = True
            self._wait(result, poll_interval, start)
        elif result["changed"]:
            for unit in self._units():
                self._observe(unit, member, state)
        else:
            for entry in self.entries:
                entry["after"] = dict(entry["before"])
        return self._finish(result, start, diff)

    def _wait(self, result, poll_interval, start):
        """Poll until every entry is done; each poll reads only the units that are not done yet."""
        member = result[self.MEMBER_KEY]
        state = result["state"]
        done = self.DONE[state]
        pending = list(self._units())

        def probe():
            for unit in list(pending):
                if all(done(entry["after"]) for entry in self._observe(unit, member, state)):
                    pending.remove(unit)  # done for good: no more reads of it
            return [entry["after"] for entry in self.entries]

        def describe(_afters):
            return "; ".join(
                "%s %s%s"
                % (self._label(e), self._describe_health(e["after"]), "" if done(e["after"]) else " [waiting]")
                for e in self.entries
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
                describe=describe,
                what=self.AWAITED[state] % member,
            )
        except WaitTimeout as exc:
            error = WaitTimeout(
                "%s%s %s"
                % (
                    exc.msg,
                    self.TIMEOUT_HINT[state],
                    "The change was made." if self.changed else "Nothing was changed.",
                ),
                last_state=exc.last_state,
                elapsed=exc.elapsed,
                attempts=exc.attempts,
            )
            error.details.update(
                {
                    "changed": self.changed,
                    self.ENTRIES_KEY: self.entries,
                    "polls": exc.attempts,
                    "timeout": result["timeout"],
                    "timed_out": True,
                    "elapsed": round(self.clock() - start, 3),
                    "api_calls": self.aws.api_calls,
                }
            )
            raise error from None
        result["polls"] = outcome.attempts

    def _finish(self, result, start, diff, check_mode=False):
        self._summarize(result)
        result["elapsed"] = round(self.clock() - start, 3)
        result["api_calls"] = self.aws.api_calls
        if diff:
            entries = result[self.ENTRIES_KEY]
            result["diff"] = {
                "before": {self._label(e): self._diff_view(e["before"]) for e in entries},
                "after": {self._label(e): self._diff_view(e["after"] or {}) for e in entries},
            }
        result["msg"] = self._message(result, check_mode)
        return result

    def _message(self, result, check_mode):
        member = result[self.MEMBER_KEY]
        state = result["state"]
        entries = result[self.ENTRIES_KEY]
        if not entries:
            return "%s is not registered %s; nothing to do." % (member, self.NOWHERE)
        changed = ", ".join(self._label(e) for e in entries if e["changed"])
        verb = "register" if state == "registered" else "deregister"
        where = "%s all %d %s" % (self.PREPOSITION, len(entries), self.PLACES)
        if check_mode:
            if changed:
                return "Would %s %s %s %s (check mode: nothing changed, nothing waited for)." % (
                    verb,
                    member,
                    self.PREPOSITION,
                    changed,
                )
            return "%s is already %s %s; nothing would change." % (member, state, where)
        if changed:
            msg = "%sed %s %s %s." % (verb.capitalize(), member, self.PREPOSITION, changed)
        else:
            msg = "%s was already %s %s; nothing changed." % (member, state, where)
        msg += self._message_extra(result)
        if result["waited"]:
            msg += " %s everywhere after %.1fs (%d poll%s, %d AWS call%s)." % (
                self.REACHED[state],
                result["elapsed"],
                result["polls"],
                "" if result["polls"] == 1 else "s",
                result["api_calls"],
                "" if result["api_calls"] == 1 else "s",
            )
        return msg
