from __future__ import annotations

import threading

from actors._price_board import PriceBoard
from messages import MarkPrice, MarkPrices


def _frame(*entries, received_ms=1_000):
    return MarkPrices.from_items(
        [
            MarkPrice(symbol=s, event_time_ms=e, mark_price=p, funding_rate=f)
            for s, e, p, f in entries
        ],
        received_ms=received_ms,
    )


def test_the_latest_value_wins_and_old_frames_cannot_move_a_value_backwards():
    board = PriceBoard()
    assert board.apply(_frame(("BTCUSDT", 10, 100.0, 0.001)), received_mono=1.0) == 1
    assert board.apply(_frame(("BTCUSDT", 12, 101.0, None)), received_mono=2.0) == 1
    assert board.apply(_frame(("BTCUSDT", 11, 99.0, 0.5)), received_mono=3.0) == 0
    record = board.get("BTCUSDT")
    assert (record.mark_price, record.funding_rate, record.event_time_ms) == (101.0, None, 12)
    assert board.stats.frames == 3
    assert board.stats.updates == 2
    assert board.stats.last_event_time_ms == 12


def test_entries_report_age_stale_and_missing_symbols():
    board = PriceBoard()
    board.apply(_frame(("A", 1, 1.0, 0.0), ("B", 1, 2.0, None)), received_mono=100.0)
    board.apply(_frame(("B", 2, 2.5, None)), received_mono=250.0)
    found, missing = board.entries(["B", "A", "C"], now_mono=300.0, stale_after_s=180)
    assert [(e.symbol, e.age_s, e.stale) for e in found] == [("B", 50.0, False), ("A", 200.0, True)]
    assert missing == ("C",)
    assert board.entry("A", now_mono=300.0, stale_after_s=180).funding_rate == 0.0
    assert board.entry("Z", now_mono=300.0, stale_after_s=180) is None
    everything, none = board.entries(None, now_mono=300.0, stale_after_s=180)
    assert [e.symbol for e in everything] == ["A", "B"]
    assert none == ()


def test_symbols_not_updated_for_a_while_are_evicted():
    board = PriceBoard()
    board.apply(_frame(("OLDUSDT", 1, 1.0, None), ("NEWUSDT", 1, 1.0, None)), received_mono=10.0)
    board.apply(_frame(("NEWUSDT", 2, 1.0, None)), received_mono=500.0)
    assert board.evict(older_than_mono=100.0) == ("OLDUSDT",)
    assert "OLDUSDT" not in board
    assert len(board) == 1
    assert board.stats.evicted == 1


def test_a_reader_can_wait_for_the_next_frame():
    board = PriceBoard()
    seen = board.stats.frames
    threading.Timer(0.01, board.apply, args=(_frame(("A", 1, 1.0, None)), 1.0)).start()
    assert board.wait_for_update(seen, timeout=5)
    assert not board.wait_for_update(board.stats.frames, timeout=0.01)


def test_readers_never_see_a_torn_record_while_the_writer_runs():
    board = PriceBoard()
    stop = threading.Event()
    bad: list[object] = []

    def read():
        for _ in range(200_000):
            if stop.is_set():
                return
            record = board.get("A")
            if record is not None and record.mark_price != record.event_time_ms:
                bad.append(record)
            board.records()

    reader = threading.Thread(target=read)
    reader.start()
    for n in range(1, 3001):
        board.apply(_frame(("A", n, float(n), None), (f"S{n % 50}", n, 1.0, None)), received_mono=n)
    stop.set()
    reader.join(10)
    assert bad == []


def test_a_frame_applied_directly_is_not_applied_or_counted_again_when_its_copy_arrives():
    board = PriceBoard()
    direct = _frame(("BTCUSDT", 10, 100.0, 0.001))
    assert board.apply(direct, received_mono=1.0, direct=True) == 1
    assert board.apply(direct, received_mono=2.0) == 0  # the cache actor's copy
    assert board.get("BTCUSDT").received_mono == 1.0
    assert board.stats.frames == 1
    # an equal frame that is another object (a replay after a reconnect) is applied as usual
    assert board.apply(_frame(("BTCUSDT", 10, 100.0, 0.001)), received_mono=3.0) == 1
    assert board.stats.frames == 2


def test_eviction_and_direct_writes_from_two_threads_keep_the_board_consistent():
    board = PriceBoard()
    symbols = [f"S{n}USDT" for n in range(200)]
    done = threading.Event()

    def writer():
        for event in range(1, 301):
            board.apply(
                _frame(*((s, event, 1.0 + event, None) for s in symbols)), event, direct=True
            )
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    evicted = 0
    for _ in range(10_000):
        evicted += len(board.evict(older_than_mono=board.stats.last_apply_mono or 0.0))
        if done.is_set():
            break
    thread.join(10)
    assert not thread.is_alive()
    board.apply(_frame(*((s, 301, 9.0, None) for s in symbols)), 301.0)
    assert len(board) == len(symbols)
    assert all(board.get(s).event_time_ms == 301 for s in symbols)
    assert board.stats.evicted == evicted
