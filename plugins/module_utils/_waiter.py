# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""A generic poll-until-true helper with an injectable clock and sleep.

Nothing here knows about HAProxy or AWS: a caller passes a ``probe`` (reads the current state)
and a ``predicate`` (is that state the one we wait for?). Time is injected so that unit tests
can drive a state machine with a fake clock in microseconds.

Polling contract (what the tests pin down):

* the probe runs once immediately, so ``timeout=0`` means "check exactly once";
* between polls the helper sleeps ``poll_interval`` (grown by ``backoff``, capped by
  ``max_interval``, shortened by ``jitter``), but never past the deadline;
* after the last sleep that reaches the deadline, there is always one more poll. With a fixed
  interval, a condition that first holds exactly at the deadline is still seen, and a wait of
  ``timeout`` seconds makes ``ceil(timeout / poll_interval) + 1`` polls before it gives up.
"""

import random
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError, WaitTimeout

# Remaining time below this is treated as "deadline reached" (absorbs float drift of clocks).
_EPSILON = 1e-9


class WaitResult:
    """Outcome of a successful wait: the state that satisfied the predicate, and how long it took."""

    def __init__(self, state, elapsed, attempts):
        self.state = state
        self.elapsed = elapsed
        self.attempts = attempts

    def __repr__(self):
        return "WaitResult(state=%r, elapsed=%r, attempts=%r)" % (self.state, self.elapsed, self.attempts)


def next_delay(interval, max_interval=None, jitter=0.0, rand=None):
    """Delay before the next poll: ``interval`` capped by ``max_interval``, then shortened by jitter.

    With ``jitter`` j (0..1) the delay is drawn uniformly from ``[d * (1 - j), d]``; it never
    exceeds the cap, so jitter spreads callers out without ever making a wait longer.
    """
    delay = interval if max_interval is None else min(interval, max_interval)
    if jitter:
        draw = (rand or random.random)()
        delay = delay * (1.0 - jitter * draw)
    return delay


def _validate(timeout, poll_interval, backoff, max_interval, jitter):
    if timeout is None or timeout < 0:
        raise ValidationError("timeout must be 0 or more seconds, got %r." % (timeout,))
    if poll_interval is None or poll_interval <= 0:
        raise ValidationError("poll_interval must be more than 0 seconds, got %r." % (poll_interval,))
    if backoff < 1:
        raise ValidationError("backoff must be 1 (fixed interval) or more, got %r." % (backoff,))
    if max_interval is not None and max_interval <= 0:
        raise ValidationError("max_interval must be more than 0 seconds, got %r." % (max_interval,))
    if not 0 <= jitter <= 1:
        raise ValidationError("jitter must be between 0 and 1, got %r." % (jitter,))


def wait_for(
    probe,
    predicate,
    timeout,
    poll_interval=1.0,
    backoff=1.0,
    max_interval=None,
    jitter=0.0,
    clock=None,
    sleep=None,
    rand=None,
    retry_on=(),
    on_poll=None,
    describe=None,
    what="the condition",
):
    """Poll ``probe()`` until ``predicate(state)`` is true or ``timeout`` seconds have passed.

    :param probe: callable returning the current state.
    :param predicate: callable taking that state, returning True when the wait is over.
    :param timeout: seconds until the deadline (0 = check once).
    :param poll_interval: first delay between polls, in seconds.
    :param backoff: factor applied to the delay after each poll (1 = fixed interval).
    :param max_interval: cap on the delay (before jitter); None = no cap.
    :param jitter: 0..1, fraction by which each delay may be randomly shortened.
    :param clock: monotonic clock callable (default ``time.monotonic``).
    :param sleep: sleep callable (default ``time.sleep``).
    :param rand: callable returning a float in [0, 1) (default ``random.random``).
    :param retry_on: exception classes raised by probe/predicate that count as "not yet"
        instead of aborting the wait; the last one is kept as ``last_error``.
    :param on_poll: optional ``callback(attempt, state, elapsed, error)`` after every poll.
    :param describe: optional ``callable(state) -> str`` used in the timeout message.
    :param what: words naming what is awaited, used in the timeout message.
    :returns: :class:`WaitResult`.
    :raises WaitTimeout: at the deadline, carrying the last state, elapsed time and attempts.
    """
    _validate(timeout, poll_interval, backoff, max_interval, jitter)
    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    retry_on = tuple(retry_on or ())

    start = clock()
    deadline = start + timeout
    interval = float(poll_interval)
    attempts = 0
    state = None
    last_error = None

    while True:
        attempts += 1
        try:
            current = probe()
            state = current
            last_error = None
            done = bool(predicate(current))
        except retry_on as exc:  # an empty tuple catches nothing
            last_error = exc
            done = False
        now = clock()
        elapsed = now - start
        if on_poll is not None:
            on_poll(attempts, state, elapsed, last_error)
        if done:
            return WaitResult(state, elapsed, attempts)

        remaining = deadline - now
        if remaining <= _EPSILON:
            observed = describe(state) if (describe is not None and state is not None) else repr(state)
            msg = "Timed out after %.1fs (%d polls) waiting for %s; last observed: %s." % (
                elapsed,
                attempts,
                what,
                observed,
            )
            if last_error is not None:
                msg += " The last poll failed: %s" % (last_error,)
            raise WaitTimeout(msg, last_state=state, elapsed=elapsed, attempts=attempts, last_error=last_error)

        sleep(min(next_delay(interval, max_interval, jitter, rand), remaining))
        interval = interval * backoff
        if max_interval is not None:
            interval = min(interval, max_interval)
