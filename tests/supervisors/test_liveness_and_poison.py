"""Liveness deadlines and the is_alive() sweep (fake clock), and poison messages."""

from __future__ import annotations

from messages.control import Ping

from .probes import (
    WAIT,
    ProbeCrash,
    ProbeFlaky,
    ProbePoison,
    ProbeProgress,
    ProbeVanish,
    ProbeWork,
    TickDropper,
    probe,
    root,
)


def sync(handle, *names):
    """Every message told so far to ``names``, then to the root, has been handled."""
    for name in names:
        handle.registry.ask(name, Ping(), timeout=WAIT)
    handle.ref.ask(Ping(), timeout=WAIT)


def advance(handle, clock, seconds):
    clock.advance(seconds)
    assert handle.timers.settle(WAIT)
    handle.ref.ask(Ping(), timeout=WAIT)  # the supervisor has handled the ticks


def children(handle):
    return {c.name: c for c in handle.health(timeout=WAIT).children}


def test_a_silent_child_is_restarted_by_liveness_and_the_reason_is_logged(
    trees, journal, fake_clock, logs
):
    handle = trees(
        root([probe("feed", journal, progress_deadline_s=30), probe("quiet", journal)]),
        clock=fake_clock,
    )
    handle.registry.tell("feed", ProbeProgress())
    sync(handle, "feed")
    advance(handle, fake_clock, 31.2)
    assert journal.wait_for("started", "feed", count=2)
    assert logs.wait_for("root/feed: no progress for 31.2 s, deadline 30 s; restarting it")
    feed = children(handle)["feed"]
    assert feed.last_failure.error_type == "LivenessTimeout"
    assert feed.last_failure.phase == "liveness"
    assert feed.restarts == 1
    assert journal.generations("close", "feed") == [1], "stopped cleanly before the restart"
    assert journal.generations("started", "quiet") == [1], "no deadline, never restarted"


def test_a_child_that_keeps_reporting_progress_is_left_alone(trees, journal, fake_clock):
    handle = trees(root([probe("feed", journal, progress_deadline_s=30)]), clock=fake_clock)
    for _ in range(4):
        handle.registry.tell("feed", ProbeProgress())
        sync(handle, "feed")
        advance(handle, fake_clock, 20)
    assert journal.generations("started", "feed") == [1]
    assert children(handle)["feed"].last_progress_ms == fake_clock.time_ms() - 20_000


def test_a_child_that_dies_without_reporting_is_restarted_by_the_sweep(
    trees, journal, fake_clock, logs
):
    handle = trees(root([probe("ghost", journal, stop_timeout_s=2)]), clock=fake_clock)
    handle.registry.tell("ghost", ProbeVanish())
    assert journal.wait_for("vanish", "ghost")
    advance(handle, fake_clock, 1)  # first seen dead
    assert journal.generations("start", "ghost") == [1]
    advance(handle, fake_clock, 2)  # still no report after its stop timeout
    assert journal.wait_for("started", "ghost", count=2)
    assert logs.wait_for("root/ghost stopped without reporting its exit")
    assert children(handle)["ghost"].last_failure.phase == "vanished"


def test_a_message_that_crashes_the_child_twice_is_dropped_logged_and_counted(trees, journal, logs):
    handle = trees(root([probe("worker", journal)]))
    handle.registry.tell("worker", ProbePoison(n=1))
    assert journal.wait_for("started", "worker", count=3)
    handle.registry.tell("worker", ProbeWork(n=2))
    sync(handle, "worker")
    assert journal.events("poisoned", "worker") == [
        ("poisoned", "worker", 1, 1),
        ("poisoned", "worker", 2, 1),
    ]
    assert journal.events("work", "worker") == [("work", "worker", 3, 2)]
    worker = children(handle)["worker"]
    assert worker.dropped_messages == 1
    assert worker.restarts == 2
    assert logs.wait_for("root/worker crashed twice on the same message; dropped it (1 so far)")


def test_a_message_that_crashes_only_once_is_redelivered_and_handled(trees, journal, script):
    script.flaky = 1
    handle = trees(root([probe("worker", journal, script)]))
    handle.registry.tell("worker", ProbeFlaky(n=5))
    assert journal.wait_for("flaky-ok", "worker")
    assert journal.events("flaky-ok", "worker") == [("flaky-ok", "worker", 2, 5)]
    assert children(handle)["worker"].dropped_messages == 0


def test_a_message_the_child_declines_to_redeliver_is_lost_with_the_incarnation(trees, journal):
    handle = trees(root([probe("feed", journal, actor_class=TickDropper)]))
    handle.registry.tell("feed", ProbePoison(n=1))
    assert journal.wait_for("started", "feed", count=2)
    sync(handle, "feed")
    assert journal.generations("poisoned", "feed") == [1]
    assert children(handle)["feed"].dropped_messages == 0


def test_a_one_shot_crash_is_not_counted_as_a_dropped_message(trees, journal):
    handle = trees(root([probe("worker", journal)]))
    handle.registry.tell("worker", ProbeCrash())
    assert journal.wait_for("started", "worker", count=2)
    sync(handle, "worker")
    assert children(handle)["worker"].dropped_messages == 0
