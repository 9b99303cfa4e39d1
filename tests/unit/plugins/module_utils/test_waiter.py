# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The generic waiter, driven by scripted state sequences and a fake clock (no real sleeping)."""

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    LBUnreachableError,
    ValidationError,
    WaitTimeout,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._waiter import next_delay, wait_for
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.haproxy.fake_haproxy import FakeClock


def sequence(*states):
    """A probe returning the given states one per call, repeating the last one."""
    states = list(states)
    calls = []

    def probe():
        calls.append(None)
        return states[min(len(calls), len(states)) - 1]

    probe.calls = calls
    return probe


def run(probe, predicate, clock, **kwargs):
    kwargs.setdefault("poll_interval", 1.0)
    return wait_for(probe, predicate, clock=clock, sleep=clock.sleep, **kwargs)


def test_immediately_true_polls_once_and_never_sleeps():
    clock = FakeClock()
    result = run(sequence(0), lambda s: s == 0, clock, timeout=30)
    assert (result.state, result.attempts, result.elapsed) == (0, 1, 0)
    assert clock.sleeps == []


def test_drain_sequence_3_1_0():
    clock = FakeClock()
    probe = sequence(3, 1, 0)
    result = run(probe, lambda sessions: sessions == 0, clock, timeout=30)
    assert result.attempts == 3 == len(probe.calls)
    assert result.elapsed == 2.0
    assert clock.sleeps == [1.0, 1.0]


def test_up_via_transitional_status():
    clock = FakeClock()
    result = run(sequence("DOWN", "UP 1/3", "UP 2/3", "UP"), lambda s: s == "UP", clock, timeout=30)
    assert (result.state, result.attempts) == ("UP", 4)


def test_timeout_polls_exactly_timeout_over_interval_plus_one():
    clock = FakeClock()
    probe = sequence(5, 4, 3, 2, 2)
    with pytest.raises(WaitTimeout) as info:
        run(probe, lambda s: s == 0, clock, timeout=10, what="the pool to drain")
    err = info.value
    assert err.attempts == 11 == len(probe.calls)  # t = 0, 1, ..., 10: the deadline itself is polled
    assert err.elapsed == 10.0
    assert err.last_state == 2
    assert sum(clock.sleeps) == 10.0
    assert "11 polls" in err.msg and "the pool to drain" in err.msg and "last observed: 2" in err.msg


def test_condition_met_exactly_at_the_deadline_is_seen():
    """The off-by-one guard: range(1, retries) would give up one poll early."""
    clock = FakeClock()
    probe = sequence(*([1] * 10 + [0]))  # true on the 11th poll, at t = 10 = timeout
    result = run(probe, lambda s: s == 0, clock, timeout=10)
    assert (result.attempts, result.elapsed) == (11, 10.0)


def test_never_sleeps_past_the_deadline():
    clock = FakeClock()
    with pytest.raises(WaitTimeout) as info:
        run(sequence(1), lambda s: s == 0, clock, timeout=10, poll_interval=3)
    assert clock.sleeps == [3.0, 3.0, 3.0, 1.0]
    assert info.value.attempts == 5
    assert info.value.elapsed == 10.0


def test_timeout_zero_checks_exactly_once():
    clock = FakeClock()
    probe = sequence(1)
    with pytest.raises(WaitTimeout) as info:
        run(probe, lambda s: s == 0, clock, timeout=0)
    assert info.value.attempts == 1 == len(probe.calls)
    assert clock.sleeps == []


def test_fractional_interval_does_not_drift_into_an_extra_poll():
    clock = FakeClock()
    with pytest.raises(WaitTimeout) as info:
        run(sequence(1), lambda s: s == 0, clock, timeout=1, poll_interval=0.1)
    assert info.value.attempts == 11


def test_backoff_grows_and_is_capped():
    clock = FakeClock()
    with pytest.raises(WaitTimeout):
        run(sequence(1), lambda s: s == 0, clock, timeout=30, poll_interval=1, backoff=2, max_interval=5)
    assert clock.sleeps[:6] == [1, 2, 4, 5, 5, 5]
    assert max(clock.sleeps) == 5
    assert sum(clock.sleeps) == 30


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.5, 0.999])
def test_jitter_shortens_within_bounds_and_never_exceeds_the_cap(draw):
    for interval in (1, 4, 10, 100):
        delay = next_delay(interval, max_interval=10, jitter=0.5, rand=lambda: draw)
        capped = min(interval, 10)
        assert capped * 0.5 <= delay <= capped
        assert delay == pytest.approx(capped * (1 - 0.5 * draw))


def test_jitter_is_used_by_the_wait():
    clock = FakeClock()
    with pytest.raises(WaitTimeout):
        run(sequence(1), lambda s: s == 0, clock, timeout=10, poll_interval=4, jitter=0.5, rand=lambda: 0.5)
    assert clock.sleeps[:2] == [3.0, 3.0]


def test_retry_on_errors_then_success():
    clock = FakeClock()
    answers = [LBUnreachableError("reloading"), LBUnreachableError("reloading"), 0]

    def probe():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    polls = []
    result = run(
        probe,
        lambda s: s == 0,
        clock,
        timeout=10,
        retry_on=(LBUnreachableError,),
        on_poll=lambda attempt, state, elapsed, error: polls.append((attempt, state, elapsed, error is not None)),
    )
    assert result.attempts == 3
    assert polls == [(1, None, 0.0, True), (2, None, 1.0, True), (3, 0, 2.0, False)]


def test_errors_not_in_retry_on_propagate():
    clock = FakeClock()

    def probe():
        raise LBUnreachableError("gone")

    with pytest.raises(LBUnreachableError):
        run(probe, lambda s: True, clock, timeout=10)


def test_timeout_keeps_last_good_state_and_last_error():
    clock = FakeClock()
    answers = [4, LBUnreachableError("socket vanished")]

    def probe():
        answer = answers[0] if len(answers) == 1 else answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with pytest.raises(WaitTimeout) as info:
        run(probe, lambda s: s == 0, clock, timeout=3, retry_on=(LBUnreachableError,), describe=lambda s: "%d left" % s)
    assert info.value.last_state == 4
    assert isinstance(info.value.last_error, LBUnreachableError)
    assert "4 left" in info.value.msg and "socket vanished" in info.value.msg


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": -1}, {"timeout": None}, {"poll_interval": 0}, {"backoff": 0.5}, {"max_interval": 0},
     {"jitter": 1.5}, {"jitter": -0.1}],
)  # fmt: skip
def test_bad_parameters_are_refused_before_polling(kwargs):
    probe = sequence(0)
    params = {"timeout": 10, "poll_interval": 1}
    params.update(kwargs)
    with pytest.raises(ValidationError):
        wait_for(probe, lambda s: True, clock=FakeClock(), sleep=FakeClock().sleep, **params)
    assert probe.calls == []
