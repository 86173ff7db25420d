from __future__ import annotations

import threading

import pytest

from supervisors.clock import Clock, FakeClock, ServerTimeOffset, SystemClock


def test_both_clocks_satisfy_the_clock_protocol():
    assert isinstance(SystemClock(), Clock)
    assert isinstance(FakeClock(), Clock)


def test_the_system_clock_reads_consistent_wall_time():
    clock = SystemClock()
    assert abs(clock.time_ms() - clock.time() * 1000) < 1000
    event = threading.Event()
    event.set()
    assert clock.wait(10, event) is True


def test_a_fake_clock_moves_only_when_advanced():
    clock = FakeClock(start=1_000.0, monotonic_start=5.0)
    assert (clock.time(), clock.monotonic(), clock.time_ms()) == (1_000.0, 5.0, 1_000_000)
    clock.advance(2.5)
    assert (clock.time(), clock.monotonic()) == (1_002.5, 7.5)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


def test_a_waiter_wakes_when_fake_time_reaches_its_deadline_and_not_before():
    clock = FakeClock()
    done = threading.Event()
    result: list[bool] = []

    def waiter():
        result.append(clock.wait(10, threading.Event()))
        done.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert clock.wait_for_waiters(1)
    clock.advance(9.9)
    assert not done.wait(0.1)
    clock.advance(0.1)
    assert done.wait(5)
    thread.join(5)
    assert result == [False]
    assert clock.waiters == 0


def test_setting_the_event_releases_a_fake_waiter_without_advancing():
    clock = FakeClock()
    event = threading.Event()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (clock.wait(3600, event), done.set()))
    thread.start()
    assert clock.wait_for_waiters(1)
    event.set()
    assert done.wait(5)
    thread.join(5)


def test_a_wall_jump_does_not_move_monotonic_time():
    clock = FakeClock(start=100.0, monotonic_start=1.0)
    clock.jump_wall(-50)
    assert (clock.time(), clock.monotonic()) == (50.0, 1.0)
    clock.set_time(60.0)
    assert (clock.time(), clock.monotonic()) == (60.0, 11.0)


def test_server_time_offset_uses_the_round_trip_midpoint():
    clock = FakeClock(start=1_000.0)
    offset = ServerTimeOffset(clock)
    assert offset.now_ms() == 1_000_000
    assert offset.update(server_time_ms=1_000_250, sent_ms=999_900, received_ms=1_000_100) == 250
    assert offset.now_ms() == 1_000_250
    assert offset.samples == 1
    with pytest.raises(ValueError, match="before"):
        offset.update(server_time_ms=1, sent_ms=10, received_ms=5)
