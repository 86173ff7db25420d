"""Restarts: every death path, backoff (real and fake clock), strategies and restart types."""

from __future__ import annotations

import threading
import time

import pytest

from messages.control import Ping
from messages.errors import SupervisionError
from supervisors import BackoffPolicy, ChildSpec, Supervisor

from .probes import (
    WAIT,
    ProbeActor,
    ProbeCrash,
    ProbeStopSelf,
    ProbeWork,
    Script,
    probe,
    root,
)

RESTART_BUDGET_S = 0.1
"""A crashed actor serves again within 100 ms plus its backoff (here: zero backoff)."""


def health_of(handle, name):
    return {c.name: c for c in handle.health(timeout=WAIT).children}[name]


def kill(handle, name, how):
    """Make ``name`` die the way ``how`` says; return the instant its death began.

    ``stop_error`` is a normal stop whose ``_close`` raises (the script must say so); every
    other ``how`` is a :class:`ProbeCrash` kind.
    """
    ref = handle.registry.get(name)
    assert ref is not None
    started = time.monotonic()
    if how == "stop_error":
        ref.tell(ProbeStopSelf())
    else:
        ref.tell(ProbeCrash(kind=how))
    return started


def settle(handle, clock, seconds):
    """Advance the fake clock; every due tick is told and the root has handled it."""
    clock.advance(seconds)
    assert handle.timers.settle(WAIT)
    handle.ref.ask(Ping(), timeout=WAIT)


@pytest.mark.parametrize(
    ("how", "failure"),
    [
        ("exception", "RuntimeError@receive"),
        ("system_exit", "SystemExit@receive"),
        ("keyboard_interrupt", "KeyboardInterrupt@receive"),
        ("base_exception", "BaseException@receive"),
        ("stop_error", "OSError@stop"),
    ],
)
def test_each_death_path_is_detected_and_the_child_restarted_within_100_ms(
    trees, journal, script, how, failure
):
    script.raise_in_close = 1 if how == "stop_error" else 0
    handle = trees(root([probe("worker", journal, script)]))
    died_at = kill(handle, "worker", how)
    assert journal.wait_for("started", "worker", count=2)
    (restarted_at, event), *_ = journal.timed("start", "worker")[1:]
    assert event[2] == 2
    assert restarted_at - died_at < RESTART_BUDGET_S
    worker = health_of(handle, "worker")
    assert worker.restarts == 1
    assert worker.state == "running"
    assert f"{worker.last_failure.error_type}@{worker.last_failure.phase}" == failure


def test_a_failing_on_start_is_detected_and_retried_within_100_ms(trees, journal, script):
    handle = trees(root([probe("worker", journal, script)]))
    script.fail_starts = 1
    kill(handle, "worker", "exception")
    assert journal.wait_for("started", "worker", count=2)
    starts = journal.timed("start", "worker")
    failed_start_at, restarted_at = starts[1][0], starts[2][0]
    assert [e[2] for _, e in starts] == [1, 2, 3]
    assert restarted_at - failed_start_at < RESTART_BUDGET_S
    worker = health_of(handle, "worker")
    assert worker.last_failure.phase == "start"
    assert worker.restarts == 2


@pytest.mark.parametrize(
    ("kind", "error_type"),
    [
        ("system_exit", "SystemExit"),
        ("base_exception", "BaseException"),
        ("keyboard_interrupt", "KeyboardInterrupt"),
    ],
)
def test_a_base_exception_in_on_start_stops_only_that_child_and_is_retried_within_100_ms(
    trees, journal, script, kind, error_type
):
    handle = trees(root([probe("other", journal), probe("worker", journal, script)]))
    script.exit_on_start, script.exit_kind = 1, kind
    kill(handle, "worker", "exception")
    assert journal.wait_for("started", "worker", count=2)
    starts = journal.timed("start", "worker")
    assert [e[2] for _, e in starts] == [1, 2, 3]
    assert starts[2][0] - starts[1][0] < RESTART_BUDGET_S
    assert journal.generations("started", "worker") == [1, 3]
    assert journal.generations("close", "worker") == [1, 2], "the failed start was cleaned up"
    worker = health_of(handle, "worker")
    assert (worker.last_failure.error_type, worker.last_failure.phase) == (error_type, "start")
    assert (worker.state, worker.restarts) == ("running", 2)
    assert handle.registry.ask("other", Ping(), timeout=WAIT).generation == 1
    assert handle.ref.is_alive()


def test_a_restart_waits_for_its_backoff_and_not_much_longer(trees, journal):
    backoff = BackoffPolicy(initial_s=0.2, max_s=1.0, jitter=0.0)
    handle = trees(root([probe("worker", journal, backoff=backoff)]))
    died_at = kill(handle, "worker", "exception")
    assert journal.wait_for("started", "worker", count=2)
    restarted_at = journal.timed("start", "worker")[1][0]
    assert 0.2 <= restarted_at - died_at < 0.2 + RESTART_BUDGET_S


def test_back_to_back_crashes_grow_the_jittered_backoff_and_a_healthy_run_resets_it(
    trees, journal, fake_clock, logs
):
    backoff = BackoffPolicy(initial_s=0.1, max_s=30.0, jitter=0.2, reset_after_s=60.0)
    handle = trees(
        root([probe("worker", journal, backoff=backoff)], rand=lambda: 0.75),  # jitter: +10 %
        clock=fake_clock,
    )
    crashes = [(0.0, 0.11), (0.0, 0.22), (0.0, 0.44), (60.0, 0.11)]  # (healthy run, delay)
    for n, (healthy_s, delay) in enumerate(crashes, start=1):
        settle(handle, fake_clock, healthy_s)
        handle.registry.tell("worker", ProbeCrash())
        assert logs.wait_for(f"root/worker RuntimeError@receive; restart #{n} in {delay:.2f} s")
        settle(handle, fake_clock, delay * 0.9)
        worker = health_of(handle, "worker")
        assert (worker.state, worker.generation) == ("backoff", n), "not before its delay"
        settle(handle, fake_clock, delay * 0.1 + 1e-6)
        assert journal.wait_for("started", "worker", count=n + 1)
    assert journal.generations("started", "worker") == [1, 2, 3, 4, 5]


def test_siblings_keep_processing_while_a_child_is_in_a_crash_loop(trees, journal):
    looping = Script(fail_starts=10**6)
    handle = trees(
        root(
            [probe("steady", journal), probe("looping", journal, looping)],
            max_restarts=10**6,
        ),
        wait_started_s=None,
    )
    assert journal.wait_for("start", "looping", count=20)
    for n in range(200):
        assert handle.registry.tell("steady", ProbeWork(n=n))
    assert handle.registry.ask("steady", Ping(), timeout=WAIT).generation == 1
    assert [e[3] for e in journal.events("work", "steady")] == list(range(200))
    assert len(journal.events("start", "looping")) >= 20
    assert journal.generations("start", "steady") == [1]


def test_system_exit_in_a_child_does_not_stop_its_siblings(trees, journal):
    handle = trees(root([probe("a", journal), probe("b", journal), probe("c", journal)]))
    refs = {name: handle.registry.get(name) for name in "abc"}
    refs["b"].tell(ProbeCrash(kind="system_exit"))
    assert journal.wait_for("started", "b", count=2)
    assert refs["a"].is_alive()
    assert refs["c"].is_alive()
    assert handle.ref.is_alive()
    assert refs["a"].ask(Ping(), timeout=WAIT).generation == 1


def test_one_for_one_restarts_only_the_failed_child(trees, journal):
    handle = trees(root([probe(n, journal) for n in "abc"], strategy="one_for_one"))
    handle.registry.tell("b", ProbeCrash())
    assert journal.wait_for("started", "b", count=2)
    handle.registry.ask("b", Ping(), timeout=WAIT)
    assert journal.generations("started", "a") == [1]
    assert journal.generations("started", "b") == [1, 2]
    assert journal.generations("started", "c") == [1]
    assert [c.restarts for c in handle.health(timeout=WAIT).children] == [0, 1, 0]


def test_rest_for_one_restarts_exactly_the_later_siblings_in_reverse_then_in_order(trees, journal):
    handle = trees(root([probe(n, journal) for n in "abcd"], strategy="rest_for_one"))
    journal_before = len(journal.events())
    handle.registry.tell("b", ProbeCrash())
    assert journal.wait_for("started", "d", count=2)
    after = [(e[0], e[1]) for e in journal.events()[journal_before:] if e[0] != "crash"]
    assert after == [
        ("close", "b"),  # b crashed
        ("close", "d"),  # the later siblings stop, last first
        ("close", "c"),
        ("start", "b"),  # then everything restarts in order
        ("started", "b"),
        ("start", "c"),
        ("started", "c"),
        ("start", "d"),
        ("started", "d"),
    ]
    assert journal.generations("started", "a") == [1]
    assert [c.restarts for c in handle.health(timeout=WAIT).children] == [0, 1, 1, 1]


def test_rest_for_one_leaves_a_temporary_later_sibling_stopped(trees, journal):
    handle = trees(
        root(
            [probe("a", journal), probe("b", journal, restart="temporary")],
            strategy="rest_for_one",
        )
    )
    handle.registry.tell("a", ProbeCrash())
    assert journal.wait_for("started", "a", count=2)
    states = {c.name: c.state for c in handle.health(timeout=WAIT).children}
    assert states == {"a": "running", "b": "stopped"}


def test_a_transient_child_that_stops_normally_is_not_restarted(trees, journal, logs):
    handle = trees(root([probe("job", journal, restart="transient"), probe("other", journal)]))
    handle.registry.tell("job", ProbeStopSelf())
    # Logged by the supervisor once it has handled the exit report and decided.
    assert logs.wait_for("root/job ended (stopped normally); transient, not restarted")
    job = health_of(handle, "job")
    assert job.state == "stopped"
    assert job.restarts == 0
    assert handle.registry.get("job") is None


def test_a_transient_child_that_crashes_is_restarted(trees, journal):
    handle = trees(root([probe("job", journal, restart="transient")]))
    handle.registry.tell("job", ProbeCrash())
    assert journal.wait_for("started", "job", count=2)


def test_a_temporary_child_is_never_restarted(trees, journal, logs):
    handle = trees(root([probe("once", journal, restart="temporary")]))
    handle.registry.tell("once", ProbeCrash())
    assert logs.wait_for("root/once ended (RuntimeError@receive); temporary, not restarted")
    once = health_of(handle, "once")
    assert once.state == "failed"
    assert once.last_failure.error_type == "RuntimeError"
    assert journal.generations("start", "once") == [1]


def test_a_permanent_child_that_stops_normally_is_restarted(trees, journal):
    handle = trees(root([probe("svc", journal)]))
    handle.registry.tell("svc", ProbeStopSelf())
    assert journal.wait_for("started", "svc", count=2)
    assert health_of(handle, "svc").last_failure is None


def test_a_constructor_error_counts_as_a_failure_and_is_retried(trees, journal):
    class FailsOnce(ProbeActor):
        made = 0

        def __init__(self, **kwargs):
            type(self).made += 1
            if type(self).made == 1:
                raise ValueError("bad setting")
            super().__init__(**kwargs)

    handle = trees(root([probe("picky", journal, actor_class=FailsOnce)]))
    assert journal.wait_for("started", "picky")
    picky = health_of(handle, "picky")
    assert picky.last_failure.phase == "init"
    assert picky.last_failure.error_message == "bad setting"
    assert picky.generation == 2


def test_a_child_stuck_in_on_start_is_abandoned_after_its_start_timeout(trees, journal, logs):
    script = Script(gate_first_start_only=True, start_gate=threading.Event())
    try:
        handle = trees(
            root([probe("slow", journal, script, start_timeout_s=0.2), probe("next", journal)]),
        )
        assert journal.wait_for("started", "slow")  # the second incarnation
        assert journal.wait_for("started", "next")
        slow = health_of(handle, "slow")
        assert slow.abandoned == 1
        assert slow.last_failure.phase == "start_timeout"
        assert logs.wait_for("no start handshake within 0.2 s; abandoned")
        assert journal.generations("started", "slow") == [2]
    finally:
        script.start_gate.set()


def test_a_supervisor_spec_refuses_duplicate_names_and_unknown_strategies(journal):
    with pytest.raises(ValueError, match="duplicate"):
        Supervisor.spec("root", children=[probe("x", journal), probe("x", journal)])
    with pytest.raises(ValueError, match="strategy"):
        Supervisor.spec("root", children=[], strategy="one_for_all")


def test_a_supervisor_without_a_timer_service_refuses_to_be_built(journal):
    with pytest.raises(SupervisionError, match="timer service"):
        Supervisor(children=[probe("x", journal)])


def test_a_child_spec_refuses_names_and_timeouts_that_cannot_work(journal):
    with pytest.raises(ValueError, match="invalid child name"):
        ChildSpec(name="a/b", actor_class=ProbeActor)
    with pytest.raises(ValueError, match="timeouts"):
        ChildSpec(name="a", actor_class=ProbeActor, stop_timeout_s=0)
    with pytest.raises(ValueError, match="context"):
        ChildSpec(name="a", actor_class=ProbeActor, kwargs={"context": None})
