"""Timers on a FakeClock: aligned instants, intervals, late slots, cancellation, addressing."""

from __future__ import annotations

import threading

import pykka
import pytest

from messages.control import Ping, Tick
from supervisors import (
    BackoffPolicy,
    ChildContext,
    FakeClock,
    NameRegistry,
    ServerTimeOffset,
    Supervisor,
    TimerService,
    next_aligned_ms,
)

from .conftest import TOP_OF_HOUR
from .probes import (
    WAIT,
    Journal,
    ProbeActor,
    ProbeCrash,
    ProbeHang,
    ProbeStopSelf,
    ProbeWork,
    QueueTarget,
    Script,
    probe,
    root,
)

HOUR_MS = int(TOP_OF_HOUR * 1000)
HOUR_S = 3600


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


def hourly(timers, owner, key="root/scanner", **kwargs):
    """An hourly aligned timer owned by (and ticking) ``owner``, continued under ``key``."""
    return timers.aligned("hour", owner, period_s=HOUR_S, owner=owner, resume_key=key, **kwargs)


def end_incarnation(timers, owner):
    """What SupervisedActor._finish does: the owner is dead and its timers are cancelled."""
    owner.alive = False
    timers.cancel_owned_by(owner)


def test_an_aligned_slot_missed_while_its_owner_was_down_goes_late_to_the_successor(
    fake_clock, timers
):
    first = QueueTarget()
    hourly(timers, first)
    advance(fake_clock, timers, HOUR_S - 120 - 1)  # 06:59:59: the first incarnation dies
    end_incarnation(timers, first)
    advance(fake_clock, timers, 3)  # 07:00:02: the restart is done
    second = QueueTarget()
    hourly(timers, second)
    assert timers.settle(WAIT)
    assert first.drain() == []
    [owed] = second.drain()
    assert owed.scheduled_ms == HOUR_MS + 3_600_000
    assert owed.fired_ms == HOUR_MS + 3_602_000
    assert owed.late
    advance(fake_clock, timers, HOUR_S - 2)  # 08:00: the schedule goes on, on time
    [tick] = second.drain()
    assert (tick.scheduled_ms, tick.fired_ms) == (HOUR_MS + 7_200_000, HOUR_MS + 7_200_000)
    assert not tick.late


def test_slots_owed_to_a_successor_respect_the_catch_up_limits(fake_clock):
    timers = TimerService(fake_clock, max_catch_up=2).start()
    try:
        first, folding = QueueTarget(), QueueTarget()
        five = {"period_s": 300, "resume_key": "root/scanner"}
        timers.aligned("5m", first, owner=first, **five)
        timers.aligned("5m-folded", folding, owner=folding, catch_up=False, **five)
        assert timers.settle(WAIT)
        end_incarnation(timers, first)
        end_incarnation(timers, folding)
        advance(fake_clock, timers, 16 * 60)  # 06:18: down through 06:05, 06:10 and 06:15
        second, folded = QueueTarget(), QueueTarget()
        timers.aligned("5m", second, owner=second, **five)
        timers.aligned("5m-folded", folded, owner=folded, catch_up=False, **five)
        assert timers.settle(WAIT)
        ticks = second.drain()
        assert [t.scheduled_ms - HOUR_MS for t in ticks] == [600_000, 900_000]
        assert [(t.skipped, t.late) for t in ticks] == [(1, True), (0, True)]
        [one] = folded.drain()
        assert (one.scheduled_ms - HOUR_MS, one.skipped, one.late) == (900_000, 2, True)
    finally:
        timers.stop()


def test_a_schedule_stopped_on_purpose_forgotten_or_changed_owes_nothing(fake_clock, timers):
    cancelled, forgotten, kept, changed = (QueueTarget() for _ in range(4))
    hourly(timers, cancelled, key="root/a").cancel()
    hourly(timers, forgotten, key="root/inner/b")
    hourly(timers, kept, key="root/inner-c")
    timers.aligned("hour", changed, period_s=HOUR_S, offset_s=1800, owner=changed, resume_key="d")
    for target in (cancelled, forgotten, kept, changed):
        end_incarnation(timers, target)
    assert timers.forget_slots("root/inner") == 1  # not root/inner-c: a path, not a prefix
    advance(fake_clock, timers, HOUR_S)  # 07:02: the 07:00 slot passed while they were down
    successors = {key: QueueTarget() for key in ("root/a", "root/inner/b", "root/inner-c", "d")}
    for key, target in successors.items():
        hourly(timers, target, key=key)
    assert timers.settle(WAIT)
    owed = {key: [t.scheduled_ms - HOUR_MS for t in t.drain()] for key, t in successors.items()}
    assert owed == {"root/a": [], "root/inner/b": [], "root/inner-c": [3_600_000], "d": []}


def test_a_tick_told_but_never_taken_from_the_inbox_is_owed_to_the_successor(fake_clock, timers):
    lost, handled = QueueTarget(), QueueTarget()
    five = {"period_s": 300, "resume_key": "root/scanner"}
    timers.aligned("5m", lost, owner=lost, **five)
    timers.aligned("5m-handled", handled, owner=handled, **five)
    advance(fake_clock, timers, 180)  # 06:05: both told their tick
    assert [len(lost.drain()), len(handled.drain())] == [1, 1]
    lost.alive = handled.alive = False
    timers.cancel_owned_by(lost, taken={})  # died before taking it from its inbox
    timers.cancel_owned_by(handled, taken={"5m-handled": HOUR_MS + 300_000})
    advance(fake_clock, timers, 60)  # 06:06: the successors start
    lost_next, handled_next = QueueTarget(), QueueTarget()
    timers.aligned("5m", lost_next, owner=lost_next, **five)
    timers.aligned("5m-handled", handled_next, owner=handled_next, **five)
    assert timers.settle(WAIT)
    [again] = lost_next.drain()
    assert (again.scheduled_ms - HOUR_MS, again.late) == (300_000, True)
    assert handled_next.drain() == []


def test_the_same_incarnation_starting_a_timer_again_gets_no_old_slots(fake_clock, timers):
    owner = QueueTarget()
    timers.cancel_owned_by(owner)  # nothing yet
    first = hourly(timers, owner)
    advance(fake_clock, timers, HOUR_S - 120 - 1)
    timers.cancel_owned_by(owner)  # the owner itself stops its timers, alive
    assert not first.active
    advance(fake_clock, timers, 3)
    hourly(timers, owner)
    assert timers.settle(WAIT)
    assert owner.drain() == []


def test_cancel_targeting_stops_only_the_timers_addressed_to_that_name(fake_clock):
    registry = NameRegistry()
    timers = TimerService(fake_clock, registry=registry).start()
    try:
        gone, other = (
            timers.interval("poll", "gone", period_s=1),
            timers.interval("poll", "other", period_s=1),
        )
        assert timers.cancel_targeting("gone") == 1
        assert (gone.active, other.active) == (False, True)
        assert timers.cancel_targeting("gone") == 0
    finally:
        timers.stop()


def test_an_hourly_slot_that_falls_in_a_childs_restart_reaches_its_next_incarnation_late(
    trees, journal, logs
):
    clock = FakeClock(start=TOP_OF_HOUR + HOUR_S - 1)  # 06:59:59
    script = Script(timer_period_s=HOUR_S, timer_aligned=True)
    two_seconds = BackoffPolicy(initial_s=2.0, max_s=2.0, jitter=0.0)
    handle = trees(root([probe("scanner", journal, script, backoff=two_seconds)]), clock=clock)
    handle.registry.tell("scanner", ProbeCrash())
    assert logs.wait_for("root/scanner RuntimeError@receive; restart #1 in 2.00 s")
    advance(clock, handle.timers, 3)  # 07:00:02: the restart, after the 07:00 slot
    assert journal.wait_for("started", "scanner", count=2)
    assert journal.wait_for("tick", "scanner")
    advance(clock, handle.timers, HOUR_S - 2)  # 08:00
    assert journal.wait_for("tick", "scanner", count=2)
    ticks = [(e[2], e[3].scheduled_ms - HOUR_MS, e[3].late) for e in journal.events("tick")]
    assert ticks == [(2, 3_600_000, True), (2, 7_200_000, False)]


def test_a_child_ended_for_good_comes_back_with_a_fresh_schedule_and_no_name_timers(
    trees, journal, logs
):
    clock = FakeClock(start=TOP_OF_HOUR + HOUR_S - 1)  # 06:59:59
    script = Script(timer_period_s=HOUR_S, timer_aligned=True)
    inner = Supervisor.spec(
        "inner",
        children=[probe("job", journal, script, restart="transient"), probe("crasher", journal)],
        max_restarts=0,
        backoff=BackoffPolicy.immediate(),
        health_log_interval_s=None,
    )
    handle = trees(root([inner, probe("other", journal)]), clock=clock)
    to_job = handle.timers.interval("poll", "job", period_s=HOUR_S * 24)
    to_other = handle.timers.interval("poll", "other", period_s=HOUR_S * 24)
    handle.registry.tell("job", ProbeStopSelf())
    assert logs.wait_for("root/inner/job ended (stopped normally); transient, not restarted")
    assert (to_job.active, to_other.active) == (False, True)
    advance(clock, handle.timers, 3)  # 07:00:02: the 07:00 slot passes with job ended
    handle.registry.tell("crasher", ProbeCrash())  # inner gives up; root restarts the subtree
    assert journal.wait_for("started", "job", count=2)
    advance(clock, handle.timers, HOUR_S - 2)  # 08:00
    assert journal.wait_for("tick", "job")
    ticks = [(e[2], e[3].scheduled_ms - HOUR_MS) for e in journal.events("tick", "job")]
    assert ticks == [(1, 7_200_000)], "the new job owes nothing from before it ended"


def test_an_hourly_tick_lost_in_a_crashed_inbox_reaches_the_next_incarnation(trees, journal, logs):
    clock = FakeClock(start=TOP_OF_HOUR + HOUR_S - 1)  # 06:59:59
    gate = threading.Event()
    try:
        script = Script(timer_period_s=HOUR_S, timer_aligned=True, hang_gate=gate)
        two_seconds = BackoffPolicy(initial_s=2.0, max_s=2.0, jitter=0.0)
        handle = trees(root([probe("scanner", journal, script, backoff=two_seconds)]), clock=clock)
        handle.registry.tell("scanner", ProbeHang())
        assert journal.wait_for("hang", "scanner")
        handle.registry.tell("scanner", ProbeCrash())
        advance(clock, handle.timers, 1)  # 07:00: the tick queues behind the crash
        gate.set()
        assert logs.wait_for("root/scanner RuntimeError@receive; restart #1 in 2.00 s")
        advance(clock, handle.timers, 2)  # 07:00:02: the restart
        assert journal.wait_for("tick", "scanner")
        ticks = [(e[2], e[3].scheduled_ms - HOUR_MS, e[3].late) for e in journal.events("tick")]
        assert ticks == [(2, 3_600_000, True)]
    finally:
        gate.set()


def test_a_redelivered_older_tick_does_not_rewind_what_the_next_incarnation_is_owed(
    trees, journal, logs
):
    """A tick its handler crashed on is redelivered to the next incarnation, which may take it
    after the newer slots owed to it (told as its timer starts): taking that older tick must
    not move the incarnation's "last taken" back, or another crash would owe those newer
    slots, already handled, to the incarnation after it."""
    clock = FakeClock(start=TOP_OF_HOUR + 299)  # 06:04:59
    script = Script(
        timer_period_s=300, timer_aligned=True, crash_ticks=1, settle_timers_on_start=True
    )
    two_seconds = BackoffPolicy(initial_s=2.0, max_s=2.0, jitter=0.0)
    handle = trees(root([probe("scanner", journal, script, backoff=two_seconds)]), clock=clock)
    advance(clock, handle.timers, 1)  # 06:05: generation 1 takes the tick and crashes on it
    assert logs.wait_for("root/scanner RuntimeError@receive; restart #1 in 2.00 s")
    advance(clock, handle.timers, 601)  # 06:15:01: restarted after 06:10 and 06:15 passed
    assert journal.wait_for("tick", "scanner", count=4)

    def ticks() -> list[tuple[int, int]]:
        return [(e[2], e[3].scheduled_ms - HOUR_MS) for e in journal.events("tick")]

    # generation 2 took the owed slots, then the 06:05 tick redelivered to it (after the start)
    assert ticks() == [(1, 300_000), (2, 600_000), (2, 900_000), (2, 300_000)]
    handle.registry.tell("scanner", ProbeCrash())
    assert logs.wait_for("root/scanner RuntimeError@receive; restart #2 in 2.00 s")
    advance(clock, handle.timers, 2)  # 06:15:03: generation 3, owed nothing before 06:20
    assert journal.wait_for("started", "scanner", count=3)
    assert handle.registry.ask("scanner", Ping(), timeout=WAIT).generation == 3
    assert len(ticks()) == 4, ticks()
    advance(clock, handle.timers, 297)  # 06:20: on time, and only that slot
    assert journal.wait_for("tick", "scanner", count=5)
    assert handle.registry.ask("scanner", Ping(), timeout=WAIT).generation == 3
    assert ticks()[4:] == [(3, 1_200_000)]
    assert not journal.events("tick")[4][3].late
