"""Pure restart policy: backoff delays and restart intensity."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisors import Backoff, BackoffPolicy, RestartIntensity

NO_JITTER = BackoffPolicy(initial_s=0.1, max_s=1.0, multiplier=2.0, jitter=0.0, reset_after_s=60)


def test_delays_double_from_the_initial_value_up_to_the_cap():
    delays = [NO_JITTER.delay(n, 0.5) for n in range(6)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_jitter_spreads_each_delay_within_its_fraction():
    policy = BackoffPolicy(initial_s=1.0, max_s=10.0, jitter=0.2)
    assert policy.delay(0, 0.0) == pytest.approx(0.8)
    assert policy.delay(0, 0.5) == pytest.approx(1.0)
    assert policy.delay(0, 0.999999) == pytest.approx(1.2, rel=1e-5)


@given(
    attempt=st.integers(min_value=0, max_value=10_000),
    r=st.floats(min_value=0, max_value=1, exclude_max=True),
    jitter=st.floats(min_value=0, max_value=1),
)
def test_a_delay_is_never_negative_nor_above_the_cap(attempt, r, jitter):
    policy = BackoffPolicy(initial_s=0.05, max_s=30.0, jitter=jitter)
    assert 0.0 <= policy.delay(attempt, r) <= 30.0


def test_the_count_resets_after_the_child_ran_for_the_healthy_period():
    backoff = Backoff(NO_JITTER, rand=lambda: 0.5)
    assert backoff.next_delay(now=0, running_since=None) == pytest.approx(0.1)
    assert backoff.next_delay(now=1, running_since=0.5) == pytest.approx(0.2)
    assert backoff.next_delay(now=2, running_since=1.5) == pytest.approx(0.4)
    assert backoff.next_delay(now=100, running_since=30) == pytest.approx(0.1)


def test_an_incarnation_that_never_started_does_not_reset_the_count():
    backoff = Backoff(NO_JITTER, rand=lambda: 0.5)
    for _ in range(3):
        backoff.next_delay(now=1000, running_since=None)
    assert backoff.attempt == 3
    backoff.reset()
    assert backoff.attempt == 0


def test_the_immediate_policy_never_waits():
    backoff = Backoff(BackoffPolicy.immediate())
    assert [backoff.next_delay(now=0, running_since=None) for _ in range(5)] == [0.0] * 5


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"initial_s": -1}, "negative"),
        ({"initial_s": 5, "max_s": 1}, "exceed"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter": 1.5}, "jitter"),
        ({"reset_after_s": -1}, "reset_after_s"),
    ],
)
def test_policies_that_cannot_work_are_refused(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        BackoffPolicy(**kwargs)


def test_intensity_allows_max_restarts_in_the_window_and_refuses_the_next():
    intensity = RestartIntensity(max_restarts=3, within_s=10)
    assert [intensity.record(t) for t in (0, 1, 2)] == [True, True, True]
    assert intensity.record(3) is False


def test_the_intensity_window_slides_so_old_restarts_stop_counting():
    intensity = RestartIntensity(max_restarts=2, within_s=10)
    assert intensity.record(0)
    assert intensity.record(5)
    assert intensity.record(10.5)  # the restart at 0 left the window
    assert intensity.recent(10.5) == 2
    assert not intensity.record(11)


def test_zero_max_restarts_escalates_the_first_failure():
    assert RestartIntensity(max_restarts=0, within_s=5).record(0) is False
