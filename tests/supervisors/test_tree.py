"""Whole trees: escalation and exit codes, ordered start, reverse stop, hung children, names."""

from __future__ import annotations

import threading
import time

import pykka

from messages.control import ChildFailed, FailureInfo, Ping, Shutdown
from supervisors import Supervisor, start_tree

from .probes import WAIT, ProbeCrash, ProbeHang, ProbeWork, Script, probe, root


def health_of(handle, name):
    return {c.name: c for c in handle.health(timeout=WAIT).children}[name]


def test_exceeding_the_intensity_at_the_root_ends_the_tree_with_a_non_zero_exit_code(journal, logs):
    handle = start_tree(
        root([probe("ok", journal), probe("doomed", journal)], max_restarts=2, within_s=60),
        wait_started_s=WAIT,
    )
    for generation in (1, 2, 3):
        assert journal.wait_for("started", "doomed", count=generation)
        handle.registry.tell("doomed", ProbeCrash())
    assert handle.wait(WAIT) == 1
    assert handle.failure.phase == "escalated"
    assert handle.failure.error_type == "SupervisionError"
    assert "more than 2 restarts in 60 s" in handle.reason
    assert journal.generations("close", "ok") == [1], "the siblings were stopped cleanly"
    assert not handle.timers.running
    assert logs.wait_for("tree root ended with exit code 1")
    assert [ref for ref in pykka.ActorRegistry.get_all() if ref.is_alive()] == []


def test_a_child_supervisor_that_gives_up_is_restarted_by_its_parent(trees, journal):
    inner = Supervisor.spec(
        "inner",
        children=[probe("flaky", journal), probe("after", journal)],
        max_restarts=1,
        health_log_interval_s=None,
    )
    handle = trees(root([probe("first", journal), inner]))
    handle.registry.tell("flaky", ProbeCrash())
    assert journal.wait_for("started", "flaky", count=2)
    handle.registry.tell("flaky", ProbeCrash())  # the second restart within the window
    assert journal.wait_for("started", "flaky", count=3)  # a fresh subtree
    assert journal.wait_for("started", "after", count=2)
    report = handle.health(timeout=WAIT)
    by_name = {c.name: c for c in report.children}
    assert by_name["inner"].restarts == 1
    assert by_name["inner"].last_failure.error_type == "SupervisionError"
    assert by_name["inner"].last_failure.phase == "escalated"
    assert by_name["first"].restarts == 0
    assert journal.generations("started", "first") == [1]
    assert handle.wait(0) is None, "the root is still up"


def test_a_shutdown_returns_the_requested_exit_code(journal):
    handle = start_tree(root([probe("a", journal)]), wait_started_s=WAIT)
    assert handle.shutdown("maintenance", exit_code=3, timeout=WAIT) == 3
    assert handle.reason == "maintenance"


def test_a_plain_stop_of_the_root_is_a_clean_exit(journal):
    handle = start_tree(root([probe("a", journal)]), wait_started_s=WAIT)
    handle.ref.stop(block=True, timeout=WAIT)
    assert handle.wait(WAIT) == 0


def test_a_shutdown_told_to_a_nested_supervisor_stops_the_whole_tree(journal):
    inner = Supervisor.spec("inner", children=[probe("leaf", journal)], health_log_interval_s=None)
    handle = start_tree(root([probe("a", journal), inner]), wait_started_s=WAIT)
    assert handle.registry.tell("inner", Shutdown(reason="fatal config", exit_code=2))
    assert handle.wait(WAIT) == 2
    assert journal.generations("close", "a") == [1]
    assert journal.generations("close", "leaf") == [1]


def test_children_start_in_order_each_after_the_previous_start_handshake(trees, journal):
    gate = threading.Event()
    handle = trees(
        root([probe("a", journal, Script(start_gate=gate)), probe("b", journal)]),
        wait_started_s=None,
    )
    assert journal.wait_for("start", "a")
    assert not handle.started
    gate.set()
    assert handle.wait_started(WAIT)
    order = [(e[0], e[1]) for e in journal.events() if e[0] in ("start", "started")]
    assert order == [("start", "a"), ("started", "a"), ("start", "b"), ("started", "b")]


def test_stop_order_is_the_reverse_of_start_order_across_nested_supervisors(journal):
    inner = Supervisor.spec(
        "inner", children=[probe("i1", journal), probe("i2", journal)], health_log_interval_s=None
    )
    handle = start_tree(
        root([probe("a", journal), inner, probe("z", journal)]), wait_started_s=WAIT
    )
    assert handle.shutdown(timeout=WAIT) == 0
    started = [e[1] for e in journal.events("started")]
    closed = [e[1] for e in journal.events("close")]
    assert started == ["a", "i1", "i2", "z"]
    assert closed == ["z", "i2", "i1", "a"]


def test_a_hung_child_cannot_hang_shutdown(journal, logs):
    gate = threading.Event()
    try:
        handle = start_tree(
            root(
                [
                    probe("first", journal),
                    probe("stuck", journal, Script(close_gate=gate), stop_timeout_s=0.2),
                    probe("last", journal),
                ]
            ),
            wait_started_s=WAIT,
        )
        began = time.monotonic()
        assert handle.shutdown(timeout=WAIT) == 0
        assert time.monotonic() - began < 2.0
        assert logs.wait_for("root/stuck did not stop within 0.2 s; abandoned")
        assert [e[1] for e in journal.events("close")] == ["last", "stuck", "first"]
    finally:
        gate.set()


def test_a_sibling_reaches_a_restarted_child_by_name_and_misses_are_counted(trees, journal):
    handle = trees(root([probe("cache", journal), probe("feed", journal)]))
    registry = handle.registry
    old = registry.get("cache")
    assert registry.tell("cache", ProbeWork(n=1))
    registry.tell("cache", ProbeCrash())
    assert journal.wait_for("started", "cache", count=2)
    assert registry.tell("cache", ProbeWork(n=2))
    assert registry.ask("cache", Ping(), timeout=WAIT).generation == 2
    assert registry.get("cache") is not old
    assert [(e[2], e[3]) for e in journal.events("work", "cache")] == [(1, 1), (2, 2)]
    assert registry.tell("nobody", ProbeWork()) is False
    assert registry.undelivered("nobody") == 1


def test_a_name_used_twice_in_one_tree_fails_the_start_and_the_tree_exits_non_zero(journal):
    inner = Supervisor.spec("inner", children=[probe("dup", journal)], health_log_interval_s=None)
    handle = start_tree(root([probe("dup", journal), inner], max_restarts=0), wait_started_s=WAIT)
    assert handle.wait(WAIT) == 1
    assert journal.generations("close", "dup") == [1]


def test_an_abandoned_subtree_shutting_down_late_does_not_unregister_its_replacement(
    trees, journal
):
    gate = threading.Event()
    try:
        grandchild = probe("g", journal, Script(hang_starts=1, hang_gate=gate), stop_timeout_s=0.3)
        inner = Supervisor.spec(
            "inner", children=[grandchild], start_timeout_s=0.3, health_log_interval_s=None
        )
        handle = trees(root([inner]))  # the first inner is abandoned, the second one starts
        assert handle.started
        assert handle.registry.ask("g", Ping(), timeout=WAIT).name == "g"
        inner_health = handle.health(timeout=WAIT).children[0]
        assert inner_health.abandoned == 1
        assert inner_health.last_failure.phase == "start_timeout"
        assert len(journal.events("start", "g")) == 2
    finally:
        gate.set()


def test_a_crash_reported_during_shutdown_does_not_turn_a_clean_exit_into_a_failure(journal):
    handle = start_tree(root([probe("a", journal)], max_restarts=0), wait_started_s=WAIT)
    crash = FailureInfo(error_type="RuntimeError", error_message="late", at_ms=0)
    handle.ref.tell(Shutdown(reason="deploy"))
    handle.ref.tell(ChildFailed(child="a", generation=1, failure=crash))  # before the stop pill
    assert handle.wait(WAIT) == 0
    assert handle.reason == "deploy"


def test_a_sibling_that_does_not_stop_in_time_during_a_restart_is_abandoned_and_restarted(
    trees, journal, logs
):
    gate = threading.Event()
    try:
        handle = trees(
            root(
                [
                    probe("a", journal),
                    probe("b", journal, Script(close_gate=gate), stop_timeout_s=0.3),
                ],
                strategy="rest_for_one",
            )
        )
        crashed_at = time.monotonic()
        handle.registry.tell("a", ProbeCrash())
        assert logs.wait_for("root/b did not stop within 0.3 s; abandoned")
        assert journal.wait_for("started", "b", count=2)
        restarted_at = journal.timed("start", "a")[1][0]
        assert restarted_at - crashed_at >= 0.3, "a waited for b's stop deadline"
        assert journal.generations("close", "b") == [1]  # still stuck in it: abandoned
        a, b = health_of(handle, "a"), health_of(handle, "b")
        assert (a.state, a.generation, a.restarts, a.abandoned) == ("running", 2, 1, 0)
        assert (b.state, b.generation, b.restarts, b.abandoned) == ("running", 2, 1, 1)
        assert handle.registry.ask("b", Ping(), timeout=WAIT).generation == 2
    finally:
        gate.set()


def test_a_hung_child_past_its_progress_deadline_is_abandoned_and_restarted(
    trees, journal, fake_clock, logs
):
    gate = threading.Event()
    try:
        script = Script(hang_gate=gate)
        handle = trees(
            root([probe("feed", journal, script, progress_deadline_s=30, stop_timeout_s=2)]),
            clock=fake_clock,
        )
        hung = handle.registry.get("feed")
        hung.tell(ProbeHang())
        assert journal.wait_for("hang", "feed")
        fake_clock.advance(31)
        assert handle.timers.settle(WAIT)
        handle.ref.ask(Ping(), timeout=WAIT)  # the check ran: the stop is queued behind the hang
        assert logs.wait_for("root/feed: no progress for 31.0 s, deadline 30 s; restarting it")
        assert health_of(handle, "feed").state == "stopping"
        fake_clock.advance(2)  # its stop deadline
        assert handle.timers.settle(WAIT)
        assert journal.wait_for("started", "feed", count=2)
        assert logs.wait_for("root/feed did not stop within 2 s; abandoned")
        feed = health_of(handle, "feed")
        assert (feed.state, feed.generation, feed.restarts, feed.abandoned) == ("running", 2, 1, 1)
        assert feed.last_failure.phase == "liveness"
        assert hung.is_alive(), "the hung incarnation is left behind, not waited for"
        assert journal.generations("close", "feed") == []
    finally:
        gate.set()
