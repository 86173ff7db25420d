from __future__ import annotations

import queue
import threading
import time
from typing import Any

import pytest
from pykka._envelope import Envelope

from actors._coalescing_inbox import CoalescingInbox, merge_mark_prices
from actors._price_board import PriceBoard
from actors._status import StatusBoard
from actors.price_cache import PriceCacheActor
from messages import GetPrice, GetPrices, MarkPrice, MarkPrices

pytestmark = pytest.mark.usefixtures("_stop_all")


def _frame(event_ms: int, *symbols: str, price: float | None = None) -> MarkPrices:
    return MarkPrices.from_items(
        [
            MarkPrice(symbol=s, event_time_ms=event_ms, mark_price=price or float(event_ms))
            for s in symbols
        ],
        received_ms=int(time.time() * 1000),
    )


def test_merging_keeps_every_symbol_and_the_newer_event_wins():
    merged = merge_mark_prices(_frame(1, "A", "B"), _frame(2, "B", "C"))
    assert dict(zip(merged.symbols, merged.event_times_ms, strict=True)) == {"A": 1, "B": 2, "C": 2}
    older_late = merge_mark_prices(_frame(5, "A"), _frame(3, "A"))
    assert older_late.event_times_ms == (5,)


def test_the_inbox_merges_waiting_mark_price_tells_but_queues_asks_and_others():
    inbox = CoalescingInbox()
    inbox.put(Envelope(_frame(1, "A")))
    inbox.put(Envelope("other"))
    inbox.put(Envelope(_frame(2, "B")))
    ask = Envelope(_frame(3, "C"), reply_to=object())
    inbox.put(ask)
    assert inbox.qsize() == 3
    assert inbox.coalesced == 1
    first = inbox.get_nowait().message
    assert first.symbols == ("A", "B")
    assert inbox.get_nowait().message == "other"
    assert inbox.get_nowait() is ask
    with pytest.raises(queue.Empty):
        inbox.get_nowait()


class GatedCache(PriceCacheActor):
    """A cache that can be made slow: "hold" blocks its thread until the gate opens."""

    def __init__(self, *, gate: threading.Event, holding: threading.Event, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gate = gate
        self._holding = holding

    def on_receive(self, message: Any) -> Any:
        if message == "hold":
            self._holding.set()
            self._gate.wait(10)
            return None
        return super().on_receive(message)


def test_a_slow_cache_never_builds_a_backlog_and_ends_with_the_latest_values():
    gate, holding = threading.Event(), threading.Event()
    board, status = PriceBoard(), StatusBoard()
    ref = GatedCache.start(gate=gate, holding=holding, board=board, status=status)
    try:
        ref.tell("hold")
        assert holding.wait(5)
        symbols = [f"S{i}USDT" for i in range(650)]
        for n in range(1, 201):
            ref.tell(_frame(n, *symbols))
        assert ref.actor_inbox.qsize() == 1  # 200 frames told, one waiting
    finally:
        gate.set()
    reply = ref.ask(GetPrices(symbols=("S0USDT", "S649USDT")), timeout=5)
    assert [e.event_time_ms for e in reply.entries] == [200, 200]
    assert ref.ask(GetPrice(symbol="s5usdt"), timeout=5).entries[0].mark_price == 200.0
    assert status.counters()["GatedCache"]["price_frames_coalesced_total"] == 199
    assert board.stats.frames == 1


def test_unknown_symbols_come_back_as_missing():
    ref = PriceCacheActor.start(board=PriceBoard(), status=StatusBoard())
    ref.tell(_frame(7, "BTCUSDT"))
    reply = ref.ask(GetPrices(symbols=("BTCUSDT", "NOPEUSDT")), timeout=5)
    assert [e.symbol for e in reply.entries] == ["BTCUSDT"]
    assert reply.missing == ("NOPEUSDT",)
    assert reply.entries[0].stale is False
