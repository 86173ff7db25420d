"""SupervisedActor on its own: every death path is reported, BaseException is contained.

These tests also pin the pykka internals the base class hooks (``_actor_loop_setup`` and
``_handle_receive``): if a pykka upgrade changes them, this file fails.
"""

from __future__ import annotations

import pykka
import pytest

from messages.codec import decode, encode
from messages.control import ChildFailed, ChildStarted, Ping, Pong, Progress, Redelivered
from supervisors import ChildContext, ContainedExitError, FakeClock, SupervisedActor

from .probes import (
    WAIT,
    Journal,
    ProbeActor,
    ProbeCrash,
    ProbePoison,
    ProbeProgress,
    ProbeStopSelf,
    ProbeWork,
    Recorder,
    Script,
    TickDropper,
)


class Bystander(pykka.ThreadingActor):
    """A plain pykka actor that must survive other actors' deaths."""


def start_probe(journal, script=None, *, name="probe", clock=None, actor_class=ProbeActor):
    recorder = Recorder()
    context = ChildContext.standalone(name, parent=recorder, clock=clock)
    ref = actor_class.start(context=context, journal=journal, script=script or Script())
    return ref, recorder


def test_it_answers_ping_with_a_pong_naming_itself_and_its_generation(journal):
    ref, _ = start_probe(journal, name="cache")
    assert ref.ask(Ping(), timeout=WAIT) == Pong(name="cache", generation=1)


def test_it_reports_child_started_once_on_start_has_returned(journal):
    _, recorder = start_probe(journal)
    started = recorder.next(ChildStarted)
    assert started == ChildStarted(child="probe", generation=1)
    assert journal.events("started", "probe")


def test_an_exception_in_a_tell_handler_is_reported_with_the_message_after_close(journal):
    ref, recorder = start_probe(journal)
    ref.tell(ProbePoison(n=3))
    report = recorder.next(ChildFailed)
    assert report.abnormal
    assert report.failure.error_type == "ValueError"
    assert report.failure.phase == "receive"
    assert decode(report.crashed_on) == ProbePoison(n=3)
    assert not report.redelivered
    assert journal.events("close", "probe"), "_close ran before the report was sent"
    assert not ref.is_alive()


def test_an_exception_in_on_start_is_reported_and_close_still_runs(journal):
    ref, recorder = start_probe(journal, Script(fail_starts=1))
    report = recorder.next(ChildFailed)
    assert report.failure.phase == "start"
    assert report.failure.error_message == "start failed"
    assert report.crashed_on is None
    assert journal.events("close", "probe")
    assert not ref.is_alive()
    assert recorder.drain() == [], "no ChildStarted for a failed start"


def test_an_exception_in_close_during_a_normal_stop_is_reported_as_abnormal(journal):
    ref, recorder = start_probe(journal, Script(raise_in_close=1))
    ref.tell(ProbeStopSelf())
    report = recorder.next(ChildFailed)
    assert report.abnormal
    assert report.failure.phase == "stop"
    assert report.failure.error_type == "OSError"


def test_a_normal_stop_is_reported_as_a_normal_exit(journal):
    ref, recorder = start_probe(journal)
    ref.stop(block=True, timeout=WAIT)
    report = recorder.next(ChildFailed)
    assert not report.abnormal
    assert report.failure is None
    assert len(journal.events("close", "probe")) == 1


@pytest.mark.parametrize("kind", ["system_exit", "keyboard_interrupt", "base_exception"])
def test_a_base_exception_in_a_handler_stops_only_that_actor(journal, kind):
    bystander = Bystander.start()
    ref, recorder = start_probe(journal)
    ref.tell(ProbeCrash(kind=kind))
    report = recorder.next(ChildFailed)
    assert report.abnormal
    assert report.failure.phase == "receive"
    assert not ref.is_alive()
    assert bystander.is_alive(), "pykka's stop_all() was not triggered"
    assert bystander in pykka.ActorRegistry.get_all()


def test_a_keyboard_interrupt_in_on_start_is_contained_and_reported(journal):
    bystander = Bystander.start()
    ref, recorder = start_probe(journal, Script(exit_on_start=1))
    report = recorder.next(ChildFailed)
    assert report.failure.error_type == "KeyboardInterrupt"
    assert report.failure.phase == "start"
    assert not ref.is_alive()
    assert bystander.is_alive()


def test_a_base_exception_during_an_ask_reaches_the_caller_and_stops_the_actor(journal):
    ref, recorder = start_probe(journal)
    with pytest.raises(ContainedExitError) as caught:
        ref.ask(ProbeCrash(kind="system_exit"), timeout=WAIT)
    assert isinstance(caught.value.__cause__, SystemExit)
    assert recorder.next(ChildFailed).abnormal
    assert not ref.is_alive()


def test_an_exception_during_an_ask_goes_back_to_the_caller_and_the_actor_carries_on(journal):
    ref, recorder = start_probe(journal)
    with pytest.raises(RuntimeError, match="boom"):
        ref.ask(ProbeCrash(), timeout=WAIT)
    assert ref.ask(Ping(), timeout=WAIT).name == "probe"
    assert [m for m in recorder.drain() if isinstance(m, ChildFailed)] == []


def test_close_runs_exactly_once_per_incarnation(journal):
    ref, recorder = start_probe(journal)
    ref.tell(ProbeCrash())
    recorder.next(ChildFailed)
    assert len(journal.events("close", "probe")) == 1


def test_progress_is_rate_limited_to_one_message_per_interval():
    journal, clock = Journal(), FakeClock()
    ref, recorder = start_probe(journal, clock=clock)
    for _ in range(500):
        ref.tell(ProbeProgress())
    ref.ask(Ping(), timeout=WAIT)
    assert len([m for m in recorder.drain() if isinstance(m, Progress)]) == 1
    clock.advance(0.5)
    ref.tell(ProbeProgress())
    ref.ask(Ping(), timeout=WAIT)
    assert [m for m in recorder.drain() if isinstance(m, Progress)] == []
    clock.advance(0.5)
    ref.tell(ProbeProgress())
    ref.ask(Ping(), timeout=WAIT)
    progress = [m for m in recorder.drain() if isinstance(m, Progress)]
    assert len(progress) == 1
    assert progress[0].at_ms == clock.time_ms()


def test_a_redelivered_message_is_handled_like_the_original(journal):
    ref, _ = start_probe(journal)
    ref.tell(Redelivered(payload=encode(ProbeWork(n=7))))
    ref.ask(Ping(), timeout=WAIT)
    assert journal.events("work", "probe") == [("work", "probe", 1, 7)]


def test_a_crash_on_a_redelivered_message_is_flagged_as_the_second_strike(journal):
    ref, recorder = start_probe(journal)
    ref.tell(Redelivered(payload=encode(ProbePoison(n=1))))
    report = recorder.next(ChildFailed)
    assert report.redelivered
    assert decode(report.crashed_on) == ProbePoison(n=1)


def test_a_message_the_actor_declines_to_redeliver_is_not_sent_back(journal):
    ref, recorder = start_probe(journal, actor_class=TickDropper)
    ref.tell(ProbePoison())
    report = recorder.next(ChildFailed)
    assert report.abnormal
    assert report.crashed_on is None


def test_subclasses_may_not_override_the_hooks_that_report_deaths():
    with pytest.raises(TypeError, match="on_stop"):

        class Overrider(SupervisedActor):
            def on_stop(self) -> None:
                pass

    with pytest.raises(TypeError, match="on_failure"):

        class Overrider2(SupervisedActor):
            def on_failure(self, *args) -> None:
                pass


def test_a_standalone_actor_without_timers_refuses_to_start_a_timer(journal):
    class NeedsTimer(SupervisedActor):
        def on_receive(self, message):
            return self.start_timer("x", period_s=1.0)

    ref = NeedsTimer.start()
    with pytest.raises(RuntimeError, match="no timer service"):
        ref.ask("go", timeout=WAIT)
