"""Timers on a FakeClock: aligned instants, intervals, late slots, cancellation, addressing."""

from __future__ import annotations

import pykka
import pytest

from messages.control import Ping, Tick
from supervisors import (
    ChildContext,
    NameRegistry,
    ServerTimeOffset,
    TimerService,
    next_aligned_ms,
)

from .conftest import TOP_OF_HOUR
from .probes import WAIT, Journal, ProbeActor, ProbeWork, QueueTarget, Script

HOUR_MS = int(TOP_OF_HOUR * 1000)


@pytest.fixture
def timers(fake_clock):
    service = TimerService(fake_clock, registry=NameRegistry()).start()
    yield service
    service.stop()


def advance(clock, timers, seconds):
    clock.advance(seconds)
    assert timers.settle(WAIT)


def test_the_next_aligned_slot_is_the_first_one_strictly_after_now():
    assert next_aligned_ms(HOUR_MS + 120_000, 300_000) == HOUR_MS + 300_000
    assert next_aligned_ms(HOUR_MS, 300_000) == HOUR_MS + 300_000
    assert next_aligned_ms(HOUR_MS + 120_000, 3_600_000, 1_800_000) == HOUR_MS + 1_800_000
    assert next_aligned_ms(HOUR_MS + 1_800_000, 3_600_000, 1_800_000) == HOUR_MS + 5_400_000


def test_a_five_minute_timer_fires_at_05_and_10_and_not_before(fake_clock, timers):
    target = QueueTarget()
    timers.aligned("scan-5m", target, period_s=300)
    assert timers.settle(WAIT)
    advance(fake_clock, timers, 179.999)  # 06:04:59.999
    assert target.drain() == []
    advance(fake_clock, timers, 0.001)  # 06:05:00
    advance(fake_clock, timers, 300)  # 06:10:00
    assert target.drain() == [
        Tick(timer="scan-5m", scheduled_ms=HOUR_MS + 300_000, fired_ms=HOUR_MS + 300_000),
        Tick(
            timer="scan-5m", scheduled_ms=HOUR_MS + 600_000, fired_ms=HOUR_MS + 600_000, sequence=1
        ),
    ]


def test_a_half_hour_timer_fires_at_thirty_past_every_hour(fake_clock, timers):
    target = QueueTarget()
    timers.aligned("half-hour", target, period_s=3600, offset_s=1800)
    assert timers.settle(WAIT)
    advance(fake_clock, timers, 1800 - 120)  # 06:30
    advance(fake_clock, timers, 1800)  # 07:00: nothing
    advance(fake_clock, timers, 1800)  # 07:30
    ticks = target.drain()
    assert [t.scheduled_ms for t in ticks] == [HOUR_MS + 1_800_000, HOUR_MS + 5_400_000]
    assert not any(t.late for t in ticks)


def test_a_top_of_the_hour_timer_fires_on_the_hour(fake_clock, timers):
    target = QueueTarget()
    timers.aligned("hourly", target, period_s=3600)
    assert timers.settle(WAIT)
    advance(fake_clock, timers, 3600 - 120 - 1)  # 06:59:59
    assert target.drain() == []
    advance(fake_clock, timers, 1)  # 07:00:00
    [tick] = target.drain()
    assert tick.scheduled_ms == tick.fired_ms == HOUR_MS + 3_600_000
    assert not tick.late


def test_an_interval_timer_fires_every_period_of_monotonic_time(fake_clock, timers):
    target = QueueTarget()
    timers.interval("poll", target, period_s=10)
    assert timers.settle(WAIT)
    for _ in range(3):
        advance(fake_clock, timers, 10)
    ticks = target.drain()
    assert [t.sequence for t in ticks] == [0, 1, 2]
    assert [t.fired_ms - t.scheduled_ms for t in ticks] == [0, 0, 0]


def test_slots_missed_during_a_stall_are_each_delivered_late_oldest_first(fake_clock, timers):
    target = QueueTarget()
    timers.aligned("scan-5m", target, period_s=300)
    assert timers.settle(WAIT)
    advance(fake_clock, timers, 180 + 600)  # stalled through 06:05 and 06:10; now 06:15
    ticks = target.drain()
    assert [t.scheduled_ms - HOUR_MS for t in ticks] == [300_000, 600_000, 900_000]
    assert [t.late for t in ticks] == [True, True, False]
    assert {t.fired_ms for t in ticks} == {HOUR_MS + 900_000}
    assert [t.sequence for t in ticks] == [0, 1, 2]


def test_a_wall_clock_jump_forward_delivers_the_jumped_slots_late(fake_clock, timers):
    target = QueueTarget()
    timers.aligned("scan-5m", target, period_s=300)
    assert timers.settle(WAIT)
    fake_clock.jump_wall(700)  # 06:02 -> 06:13:40; monotonic time does not move
    assert timers.settle(WAIT)
    ticks = target.drain()
    assert [t.scheduled_ms - HOUR_MS for t in ticks] == [300_000, 600_000]
    assert all(t.late for t in ticks)


def test_a_timer_without_catch_up_folds_missed_slots_into_one_counted_tick(fake_clock, timers):
    target = QueueTarget()
    timers.aligned("scan-5m", target, period_s=300, catch_up=False)
    assert timers.settle(WAIT)
    advance(fake_clock, timers, 780)
    [tick] = target.drain()
    assert tick.scheduled_ms == HOUR_MS + 900_000
    assert tick.skipped == 2
    assert tick.sequence == 2


def test_catch_up_is_bounded_and_the_older_missed_slots_are_counted(fake_clock):
    timers = TimerService(fake_clock, max_catch_up=3).start()
    try:
        target = QueueTarget()
        timers.interval("poll", target, period_s=1)
        assert timers.settle(WAIT)
        advance(fake_clock, timers, 10)
        ticks = target.drain()
        assert [t.sequence for t in ticks] == [7, 8, 9]
        assert [t.skipped for t in ticks] == [7, 0, 0]
        assert [t.late for t in ticks] == [True, True, False]
    finally:
        timers.stop()


def test_aligned_timers_follow_binance_server_time(fake_clock):
    server = ServerTimeOffset(fake_clock, offset_ms=2_000)  # the exchange is 2 s ahead
    timers = TimerService(fake_clock, server_time=server).start()
    try:
        target = QueueTarget()
        timers.aligned("scan-5m", target, period_s=300)
        assert timers.settle(WAIT)
        advance(fake_clock, timers, 178)  # local 06:04:58 = server 06:05:00
        [tick] = target.drain()
        assert tick.scheduled_ms == tick.fired_ms == HOUR_MS + 300_000
    finally:
        timers.stop()


def test_a_timer_is_cancelled_when_its_owner_stops(fake_clock, timers):
    owner = ProbeActor.start(journal=Journal())
    target = QueueTarget()
    timers.interval("poll", target, period_s=1, owner=owner)
    owner.stop(block=True, timeout=WAIT)
    advance(fake_clock, timers, 5)
    assert target.drain() == []
    assert timers.active == 0


def test_a_timer_whose_target_actor_died_cancels_itself(fake_clock, timers):
    journal = Journal()
    ref = ProbeActor.start(journal=journal)
    timers.interval("poll", ref, period_s=1)
    advance(fake_clock, timers, 1)
    assert journal.wait_for("tick", "ProbeActor")
    ref.stop(block=True, timeout=WAIT)
    advance(fake_clock, timers, 1)
    assert timers.active == 0


def test_cancel_stops_a_timer_and_is_idempotent(fake_clock, timers):
    target = QueueTarget()
    handle = timers.interval("poll", target, period_s=1)
    assert handle.active
    handle.cancel()
    handle.cancel()
    advance(fake_clock, timers, 3)
    assert target.drain() == []
    assert not handle.active


def test_once_delivers_its_message_after_the_delay_and_then_ends(fake_clock, timers):
    target = QueueTarget()
    timers.once(2.5, target, ProbeWork(n=1))
    advance(fake_clock, timers, 2)
    assert target.drain() == []
    advance(fake_clock, timers, 0.5)
    advance(fake_clock, timers, 10)
    assert target.drain() == [ProbeWork(n=1)]
    assert timers.active == 0


def test_a_timer_addressed_by_name_reaches_whichever_incarnation_is_current(fake_clock):
    registry = NameRegistry()
    timers = TimerService(fake_clock, registry=registry).start()
    try:
        first, second = QueueTarget(), QueueTarget()
        registry.register("scanner", first)
        timers.interval("poll", "scanner", period_s=1)
        advance(fake_clock, timers, 1)
        registry.register("scanner", second)  # a restart replaced the incarnation
        advance(fake_clock, timers, 1)
        registry.unregister("scanner")  # down: the tick is counted, the timer stays
        advance(fake_clock, timers, 1)
        assert [t.sequence for t in first.drain()] == [0]
        assert [t.sequence for t in second.drain()] == [1]
        assert registry.undelivered("scanner") == 1
        assert timers.active == 1
    finally:
        timers.stop()


def test_a_supervised_actors_own_timer_ticks_it_and_dies_with_it(fake_clock, timers):
    journal = Journal()
    context = ChildContext.standalone("scanner", clock=fake_clock, timers=timers)
    ref = ProbeActor.start(context=context, journal=journal, script=Script(timer_period_s=60))
    ref.ask(Ping(), timeout=WAIT)
    advance(fake_clock, timers, 60)
    assert journal.wait_for("tick", "scanner")
    assert timers.active == 1
    ref.stop(block=True, timeout=WAIT)
    assert timers.active == 0


def test_timer_arguments_that_cannot_work_are_refused(fake_clock):
    timers = TimerService(fake_clock)
    target = QueueTarget()
    with pytest.raises(ValueError, match="period"):
        timers.interval("x", target, period_s=0)
    with pytest.raises(ValueError, match="offset"):
        timers.aligned("x", target, period_s=60, offset_s=60)
    with pytest.raises(ValueError, match="registry"):
        timers.interval("x", "by-name", period_s=1)
    with pytest.raises(ValueError, match="max_catch_up"):
        TimerService(fake_clock, max_catch_up=0)


def test_ticks_told_to_a_dead_ref_do_not_raise_in_the_scheduler(fake_clock, timers):
    ref = ProbeActor.start(journal=Journal())
    ref.stop(block=True, timeout=WAIT)
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(Ping())
    timers.once(0, ref, Ping())
    assert timers.settle(WAIT)
    assert timers.running
