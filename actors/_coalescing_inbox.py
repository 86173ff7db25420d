"""An actor inbox that keeps a slow price cache from growing a backlog (latest value wins).

pykka's inbox is an unbounded ``queue.Queue``: a feed that outpaces its consumer grows the
queue without limit (reliability §3 item 6). Here, a ``MarkPrices`` that is *told* while an
older told ``MarkPrices`` still waits is merged into that one instead of queued behind it:
per symbol the newer event wins, so nothing the reader could still see is lost, and the queue
holds at most one pending frame however slow the consumer is. Merges are counted.

Asks and every other message are queued as usual, in order.
"""

from __future__ import annotations

import queue
from typing import Any

from pykka._envelope import Envelope

from messages.market import MarkPrices

__all__ = ["CoalescingInbox", "merge_mark_prices"]


def merge_mark_prices(older: MarkPrices, newer: MarkPrices) -> MarkPrices:
    """One frame holding every symbol of both; for a symbol in both, the newer event wins."""
    rows: dict[str, tuple[Any, ...]] = {}
    for frame in (older, newer):
        for row in zip(
            frame.symbols,
            frame.event_times_ms,
            frame.mark_prices,
            frame.index_prices,
            frame.funding_rates,
            frame.next_funding_times_ms,
            strict=True,
        ):
            kept = rows.get(row[0])
            if kept is None or row[1] >= kept[1]:
                rows[row[0]] = row
    columns = list(zip(*rows.values(), strict=True)) if rows else [(), (), (), (), (), ()]
    return MarkPrices(
        symbols=tuple(columns[0]),
        event_times_ms=tuple(columns[1]),
        mark_prices=tuple(columns[2]),
        index_prices=tuple(columns[3]),
        funding_rates=tuple(columns[4]),
        next_funding_times_ms=tuple(columns[5]),
        received_ms=max(older.received_ms, newer.received_ms),
        rejected=older.rejected + newer.rejected,
    )


class CoalescingInbox(queue.Queue):
    """``queue.Queue`` for pykka envelopes that merges waiting ``MarkPrices`` tells."""

    def __init__(self) -> None:
        super().__init__()
        self.coalesced = 0
        """Frames merged into a waiting frame instead of queued (read from any thread)."""

    def _put(self, item: Any) -> None:
        # Runs with the queue's mutex held (queue.Queue.put), so the search and the swap are
        # atomic with respect to the consumer's get().
        message = getattr(item, "message", None)
        if isinstance(message, MarkPrices) and item.reply_to is None:
            waiting = self.queue
            for index in range(len(waiting) - 1, -1, -1):
                other = waiting[index]
                if isinstance(other.message, MarkPrices) and other.reply_to is None:
                    waiting[index] = Envelope(merge_mark_prices(other.message, message))
                    self.coalesced += 1
                    return
        super()._put(item)
