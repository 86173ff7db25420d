"""Embed only the actors you choose: here, durable delivery without the market-data tree.

Your application makes its own alerts and wants what the daemon's poster gives them: each one
committed to the SQLite outbox before any delivery is tried, a duplicate (same symbol-hour and
type) never delivered twice, and every sink retried with backoff. It starts a root supervisor
with just the store and the poster, plus a sink of its own (a callback), tells alerts to the
poster by name, and stops cleanly; what was not delivered stays in the outbox for the next run.

    python examples/embed_store_and_poster.py [STATE_DIR]
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

from actors._sinks import CallbackSink
from actors._store import DB_NAME
from actors.poster import PosterActor
from actors.store import StoreActor
from messages import Message, VolumeAlert
from messages.delivery import DeliveryQuery
from messages.types import Symbol, TimestampMs
from supervisors import Supervisor, start_tree
from supervisors.config import Config

HOUR_MS = 3_600_000


def my_alert(now_ms: int) -> VolumeAlert:
    """An alert your application computed (the numbers are made up)."""
    current, previous = 757_320_000.0, 236_390_000.0
    ratio = current / previous
    return VolumeAlert(
        symbol=Symbol("ETHUSDT"),
        asset="ETH",
        current_volume=current,
        previous_volume=previous,
        volume_ratio=ratio,
        message=f"ETH hourly volume {current / 1e6:.2f}M ({ratio:.2f}× prev) — VOLUME SPIKE!",  # noqa: RUF001
        timestamp_ms=TimestampMs(now_ms),
        detection_time_ms=TimestampMs(now_ms),
        hour_timestamp_ms=TimestampMs(now_ms // HOUR_MS * HOUR_MS),
        price=3120.5,  # optional fields you do not know stay None (omitted, never 0)
    )


def main(
    state_dir: str = "state", timeout: float = 10.0, now_ms: int | None = None
) -> dict[str, Any]:
    """Deliver one alert (told twice) to the callback and the local SQLite sink.

    Run it twice within the hour on the same state directory: the second run delivers nothing.
    """
    # No backend configured: the sinks are yours plus the local SQLite one. Set
    # volspike_api_url / volspike_api_key (or load_config()) to deliver to the backend too.
    config = Config().replace(state_dir=Path(state_dir))
    delivered: list[Message] = []
    arrived = threading.Event()

    def on_alert(message: Message) -> None:  # runs in the sink's own thread
        delivered.append(message)  # raise OSError here to have it retried later
        arrived.set()

    root = Supervisor.spec(
        "root",
        children=[
            StoreActor.spec(config),  # creates / migrates volspike.db; start it first
            PosterActor.spec(config, extra_sinks=[CallbackSink(name="my-app", callback=on_alert)]),
        ],
        health_log_interval_s=None,
    )
    handle = start_tree(root, wait_started_s=timeout)
    try:
        alert = my_alert(int(time.time() * 1000) if now_ms is None else now_ms)
        handle.registry.tell("poster", alert)
        handle.registry.tell("poster", alert)  # the same symbol-hour again: a duplicate
        # Answered after both tells: is anything on its way to my sink? (Nothing is when an
        # earlier run in this hour already delivered this alert: the outbox remembers it.)
        report = handle.registry.ask("poster", DeliveryQuery(), timeout=5)
        mine = report.sink("my-app")
        if mine is not None and mine.pending and not arrived.wait(timeout):
            raise TimeoutError(f"the alert was not delivered within {timeout} s")
    finally:
        handle.shutdown("example finished", timeout=30)  # records every outcome, then stops
    # The outbox and the local sink are plain SQLite tables, readable by anything.
    db = Path(state_dir) / DB_NAME
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        outbox = conn.execute(
            "select o.idempotency_key, d.sink, d.status from outbox o"
            " join deliveries d on d.outbox_id = o.id order by d.sink"
        ).fetchall()
        stored = conn.execute("select symbol, alert_type from volume_alerts").fetchall()
    return {
        "delivered_to_my_sink": [(m.symbol, m.alert_type) for m in delivered],
        "outbox": outbox,
        "stored_locally": stored,
    }


if __name__ == "__main__":
    print(main(*sys.argv[1:2]))
