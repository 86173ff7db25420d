"""The OI board: bounded history per symbol and ``oi_change`` with bounded start and current ages
(WEAK-11: never against a days-old sample)."""

from __future__ import annotations

import threading

import pytest

from actors._oi_board import (
    DEFAULT_MAX_CURRENT_AGE_MS,
    DEFAULT_MAX_START_GAP_MS,
    HOUR_MS,
    OiBoard,
)

H = 1_773_900_000_000  # an hour open (ms)
MIN = 60_000


def board_with(*samples: tuple[int, float], symbol: str = "BTCUSDT") -> OiBoard:
    board = OiBoard()
    for t, oi in samples:
        assert board.add(symbol, t, oi)
    return board


@pytest.mark.parametrize(
    ("samples", "now", "expected", "why"),
    [
        # start: the latest sample at or before the hour open
        ([(H - 10_000, 100.0), (H + 5_000, 101.0), (H + 30 * MIN, 110.0)], H + 31 * MIN, 0.10,
         "latest at or before the open"),
        ([(H, 200.0), (H + 30 * MIN, 150.0)], H + 30 * MIN, -0.25, "exactly at the open"),
        # nothing at or before within the gap: the first one after it, within the gap
        ([(H - 2 * HOUR_MS, 50.0), (H + 2 * MIN, 100.0), (H + 20 * MIN, 120.0)], H + 21 * MIN,
         0.20, "first after the open (the one before is too old)"),
        ([(H + 2 * MIN, 100.0), (H + 20 * MIN, 90.0)], H + 20 * MIN, -0.10, "first after"),
        # WEAK-11: the only earlier sample is too old and the first later one too late
        ([(H - 2 * HOUR_MS, 50.0), (H + 10 * MIN, 100.0), (H + 20 * MIN, 120.0)], H + 21 * MIN,
         None, "no start within the gap"),
        # the current value must be fresh
        ([(H - MIN, 100.0), (H + 10 * MIN, 120.0)], H + 10 * MIN + DEFAULT_MAX_CURRENT_AGE_MS + 1,
         None, "current too old"),
        ([(H - MIN, 100.0), (H + 10 * MIN, 120.0)], H + 10 * MIN + DEFAULT_MAX_CURRENT_AGE_MS,
         0.20, "current just fresh enough"),
        # start and current are the same sample: nothing to compare
        ([(H + MIN, 100.0)], H + 2 * MIN, None, "one sample"),
        ([], H, None, "unknown symbol"),
    ],
)  # fmt: skip
def test_oi_change_table(samples, now, expected, why):
    board = board_with(*samples)
    change = board.oi_change("BTCUSDT", H, now)
    if expected is None:
        assert change is None, why
    else:
        assert change == pytest.approx(expected), why


def test_the_gap_and_age_limits_are_arguments():
    board = board_with((H - 10 * MIN, 100.0), (H + 30 * MIN, 105.0))
    assert board.oi_change("BTCUSDT", H, H + 30 * MIN) is None  # 10 min > the 6 min default
    assert board.oi_change("BTCUSDT", H, H + 30 * MIN, max_start_gap_ms=11 * MIN) == pytest.approx(
        0.05
    )
    assert board.oi_change("BTCUSDT", H, H + 31 * MIN, max_current_age_ms=30_000) is None
    assert DEFAULT_MAX_START_GAP_MS >= 300_000  # one five-minute snapshot step at least


def test_add_keeps_time_order_and_refuses_what_is_not_a_positive_number():
    board = OiBoard()
    assert board.add("X", 1_000, 5.0)
    assert not board.add("X", 1_000, 6.0)  # not newer
    assert not board.add("X", 500, 6.0)
    assert not board.add("X", 2_000, 0.0)
    assert not board.add("X", 2_000, -1.0)
    assert not board.add("X", 2_000, float("nan"))
    assert not board.add("Y", 2_000, float("inf"))
    assert board.history("X") == ((1_000, 5.0),)
    assert board.latest("X") == (1_000, 5.0)
    assert board.latest("Y") is None
    assert "Y" not in board


def test_history_is_bounded_by_the_retention_and_old_symbols_are_pruned():
    board = OiBoard(retention_ms=HOUR_MS)
    step = 10_000
    for k in range(2000):  # 5.5 hours of 10 s samples
        board.add("BTCUSDT", H + k * step, 100.0 + k)
    history = board.history("BTCUSDT")
    newest = history[-1][0]
    assert newest == H + 1999 * step
    # trimmed in amortised steps: never more than retention + the slack behind the newest
    assert newest - history[0][0] <= HOUR_MS + 600_000
    assert newest - history[0][0] >= HOUR_MS
    assert [t for t, _ in history] == sorted(t for t, _ in history)
    board.add("OLDUSDT", H, 1.0)
    assert board.prune(newest) == ["OLDUSDT"]
    assert "OLDUSDT" not in board
    assert "BTCUSDT" in board
    board.forget(["BTCUSDT"])
    assert len(board) == 0


def test_load_takes_rows_in_any_order_and_skips_duplicates():
    board = OiBoard()
    rows = [("B", H + 2, 3.0), ("A", H + 1, 1.0), ("B", H + 1, 2.0), ("B", H + 2, 9.0)]
    assert board.load(rows) == 3
    assert board.history("B") == ((H + 1, 2.0), (H + 2, 3.0))
    assert board.history("A") == ((H + 1, 1.0),)


def test_readers_never_see_a_torn_series_while_the_writer_appends_and_trims():
    board = OiBoard(retention_ms=60_000)
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                history = board.history("BTCUSDT")
                times = [t for t, _ in history]
                assert times == sorted(times)
                assert all(oi == t / 1000 for t, oi in history)
                board.oi_change("BTCUSDT", H, H + 10**9, max_current_age_ms=10**12)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for k in range(1, 30_000):
            t = H + k * 1000
            board.add("BTCUSDT", t, t / 1000)
    finally:
        stop.set()
        for reader in readers:
            reader.join(5)
    assert not errors, errors[0]
