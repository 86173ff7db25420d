from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from actors._payloads import outbox_entries
from actors._store import DB_NAME, MIGRATIONS, Migration, StateStore, StoreError, sql_migration
from messages import (
    LiquidUniverse,
    OiAlert,
    OiSample,
    OiSamples,
    Symbol,
    TimestampMs,
    UniverseMember,
    VolumeAlert,
)

REPO = Path(__file__).resolve().parents[2]
HOUR = TimestampMs(1_764_943_200_000)  # 2025-12-05T14:00:00Z
SINKS = ("prod", "dev")


def volume_alert(symbol: str = "BTCUSDT", hour: int = HOUR, kind: str = "SPIKE") -> VolumeAlert:
    return VolumeAlert(
        symbol=Symbol(symbol),
        asset=symbol.replace("USDT", ""),
        current_volume=5_200_000.0,
        previous_volume=1_500_000.0,
        volume_ratio=3.4666,
        message=f"{symbol} hourly volume 5.20M (3.47x prev) — VOLUME SPIKE!",
        timestamp_ms=TimestampMs(hour + 600_000),
        detection_time_ms=TimestampMs(hour + 600_123),
        hour_timestamp_ms=TimestampMs(hour),
        alert_type=kind,  # type: ignore[arg-type]
        price=65_000.5,
        candle_direction="bullish",
    )


def oi_alert(symbol: str = "ETHUSDT", ts: int = HOUR + 10_000) -> OiAlert:
    return OiAlert(
        symbol=Symbol(symbol),
        direction="UP",
        baseline=1_000_000.0,
        current=1_040_000.0,
        pct_change=0.04,
        abs_change=40_000.0,
        timestamp_ms=TimestampMs(ts),
        timeframe="5 min",
        funding_rate=0.0000128,
    )


def samples(n: int, created_ms: int, *, mark: float | None = 2.5) -> OiSamples:
    items = tuple(
        OiSample(
            symbol=Symbol(f"S{i:03d}USDT"),
            open_interest=1000.0 + i,
            time_ms=TimestampMs(created_ms - 1000 + i),
            mark_price=mark,
        )
        for i in range(n)
    )
    return OiSamples(items=items, source="realtime", created_ms=TimestampMs(created_ms))


def enqueue(store: StateStore, message, sinks=SINKS, now_ms: int = HOUR) -> int:
    return store.enqueue_many(outbox_entries(message), sinks, now_ms)


@pytest.fixture
def store(tmp_path: Path):
    with StateStore(tmp_path) as opened:
        yield opened


@pytest.fixture
def raw(tmp_path: Path):
    """Open the database file directly, as a user's ``sqlite3`` would; closed at teardown."""
    opened: list[sqlite3.Connection] = []

    def connect(directory: Path = tmp_path) -> sqlite3.Connection:
        opened.append(sqlite3.connect(directory / DB_NAME))
        return opened[-1]

    yield connect
    for conn in opened:
        conn.close()


# --- schema -----------------------------------------------------------------------------------


def test_a_new_database_is_schema_v1_in_wal_mode_with_every_table(tmp_path, raw):
    StateStore(tmp_path / "state").close()
    conn = raw(tmp_path / "state")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables >= {
        "outbox", "deliveries", "counters", "kv", "oi_history", "volume_alerts", "oi_samples",
        "oi_alerts",
    }  # fmt: skip
    assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_v1_database_migrates_to_v2_and_keeps_its_rows(tmp_path, raw):
    with StateStore(tmp_path) as v1:
        enqueue(v1, volume_alert())
        v1.kv_put("volume", "last", {"BTCUSDT": HOUR}, HOUR)
    v2_step = sql_migration(
        2, "remember the HTTP status", "ALTER TABLE deliveries ADD COLUMN last_status INTEGER"
    )
    with StateStore(tmp_path, migrations=(*MIGRATIONS, v2_step)) as v2:
        assert v2.schema_version == 2
        assert v2.kv_get("volume", "last") == {"BTCUSDT": HOUR}
        assert [item.kind for item in v2.due("prod", HOUR)] == ["volume_alert"]
    columns = [r[1] for r in raw().execute("PRAGMA table_info(deliveries)")]
    assert "last_status" in columns


def test_a_failing_migration_rolls_back_and_leaves_the_previous_version(tmp_path, raw):
    StateStore(tmp_path).close()

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x INTEGER)")
        conn.execute("THIS IS NOT SQL")

    step = Migration(2, "broken", broken)
    with pytest.raises(StoreError, match="syntax error"):
        StateStore(tmp_path, migrations=(*MIGRATIONS, step))
    conn = raw()
    assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    assert (
        conn.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchone() is None
    )


def test_a_database_newer_than_the_program_is_refused(tmp_path, raw):
    StateStore(tmp_path).close()
    conn = raw()
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    with pytest.raises(StoreError, match="newer than this program"):
        StateStore(tmp_path)


def test_migrations_out_of_order_are_refused(tmp_path):
    with pytest.raises(StoreError, match="should be v2"):
        StateStore(tmp_path, migrations=(*MIGRATIONS, sql_migration(3, "skips v2")))


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path):
    (tmp_path / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a database"):
        StateStore(tmp_path)


# --- outbox -----------------------------------------------------------------------------------


def test_enqueue_is_idempotent_on_the_key(store):
    assert store.enqueue("volume_alert", volume_alert(), "volume:k", SINKS, HOUR)
    assert not store.enqueue("volume_alert", volume_alert(), "volume:k", ("prod", "tg"), HOUR + 5)
    assert store.backlog() == {"prod": {"volume_alert": 1}, "dev": {"volume_alert": 1}}
    (item,) = store.due("prod", HOUR + 5)
    assert store.mark_delivered(item.outbox_id, "prod", HOUR + 6)
    assert not store.enqueue("volume_alert", volume_alert(), "volume:k", SINKS, HOUR + 7)
    assert store.due("prod", HOUR + 8) == []


def test_the_same_alert_rebuilt_after_a_restart_is_a_duplicate(tmp_path):
    with StateStore(tmp_path) as first:
        assert enqueue(first, volume_alert()) == 1
    with StateStore(tmp_path) as second:
        assert enqueue(second, volume_alert()) == 0
        assert enqueue(second, volume_alert(kind="HALF_UPDATE")) == 1


def test_due_returns_alerts_before_samples_then_oldest_first(store):
    enqueue(store, samples(150, HOUR), now_ms=HOUR)
    enqueue(store, volume_alert("AAAUSDT"), now_ms=HOUR + 1)
    enqueue(store, oi_alert("BBBUSDT"), now_ms=HOUR + 2)
    enqueue(store, volume_alert("CCCUSDT"), now_ms=HOUR + 3)
    enqueue(store, LiquidUniverse(members=(member("AAAUSDT"),), updated_ms=HOUR), now_ms=HOUR + 4)
    order = [(item.kind, item.message().symbol) for item in store.due("prod", HOUR + 10)[:3]]
    assert order == [
        ("volume_alert", "AAAUSDT"), ("oi_alert", "BBBUSDT"), ("volume_alert", "CCCUSDT"),
    ]  # fmt: skip
    assert [item.kind for item in store.due("prod", HOUR + 10)[3:]] == [
        "universe", "oi_samples", "oi_samples",
    ]  # fmt: skip
    assert len(store.due("prod", HOUR + 10, limit=2)) == 2


def member(symbol: str) -> UniverseMember:
    return UniverseMember(
        symbol=Symbol(symbol), quote_volume_24h=5e6, entered_ms=None, last_seen_ms=HOUR
    )


def test_a_sink_backing_off_or_failing_never_blocks_another_sink(store):
    for i in range(5):
        enqueue(store, volume_alert(f"S{i}USDT"), now_ms=HOUR + i)
    for item in store.due("dev", HOUR + 10):
        assert store.mark_retry(
            item.outbox_id, "dev", next_attempt_ms=HOUR + 60_000, error="HTTP 503", now_ms=HOUR
        )
    assert store.due("dev", HOUR + 10) == []
    assert store.next_due_ms("dev") == HOUR + 60_000
    prod = store.due("prod", HOUR + 10)
    assert len(prod) == 5
    store.mark_failed_permanent(prod[0].outbox_id, "prod", error="HTTP 400", now_ms=HOUR + 11)
    assert [i.outbox_id for i in store.due("prod", HOUR + 12)] == [i.outbox_id for i in prod[1:]]
    assert len(store.due("dev", HOUR + 60_000)) == 5
    assert store.due("dev", HOUR + 60_000)[0].attempts == 1


def test_a_payload_is_never_delivered_twice_to_the_same_sink(store):
    enqueue(store, oi_alert())
    (item,) = store.due("prod", HOUR)
    assert store.mark_delivered(item.outbox_id, "prod", HOUR + 1)
    assert not store.mark_delivered(item.outbox_id, "prod", HOUR + 2)
    assert not store.mark_retry(item.outbox_id, "prod", next_attempt_ms=0, error="x", now_ms=0)
    assert store.due("prod", HOUR + 10**9) == []
    assert store.requeue_failed("prod", HOUR + 3) == 0  # delivered is not failed
    assert store.due("prod", HOUR + 10**9) == []
    assert len(store.due("dev", HOUR)) == 1  # the other sink still has it


def test_a_lease_keeps_an_item_from_being_handed_out_twice_until_it_expires(store):
    enqueue(store, volume_alert())
    assert len(store.due("prod", HOUR, lease_ms=30_000)) == 1
    assert store.due("prod", HOUR + 29_999) == []
    assert len(store.due("prod", HOUR + 30_000)) == 1  # e.g. the worker died mid-request


def test_permanent_failures_are_kept_reported_and_can_be_requeued(store):
    enqueue(store, volume_alert())
    (item,) = store.due("prod", HOUR)
    store.mark_failed_permanent(item.outbox_id, "prod", error="HTTP 401 Unauthorized", now_ms=HOUR)
    (failed,) = store.failed_deliveries()
    assert (failed.sink, failed.kind, failed.last_error) == (
        "prod",
        "volume_alert",
        "HTTP 401 Unauthorized",
    )
    assert store.prune_outbox(HOUR + 10**9) == 0
    assert store.requeue_failed("prod", HOUR + 5) == 1
    (again,) = store.due("prod", HOUR + 5)
    assert (again.outbox_id, again.attempts) == (item.outbox_id, 0)


def test_prune_removes_only_payloads_settled_for_every_sink(store):
    enqueue(store, volume_alert("AAAUSDT"))
    enqueue(store, volume_alert("BBBUSDT"))
    first, second = store.due("prod", HOUR)
    for sink in SINKS:
        store.mark_delivered(first.outbox_id, sink, HOUR)
    store.mark_delivered(second.outbox_id, "prod", HOUR)  # dev still pending
    assert store.prune_outbox(HOUR) == 0  # nothing older than the cutoff
    assert store.prune_outbox(HOUR + 1) == 1
    assert store.backlog() == {"dev": {"volume_alert": 1}}


def test_the_sample_backlog_drops_the_oldest_whole_batches_and_counts_them(tmp_path):
    with StateStore(tmp_path, max_sample_batches=3) as store:
        for b in range(5):  # 5 batches of 250 samples = 3 chunks each
            enqueue(store, samples(250, HOUR + b * 10_000), now_ms=HOUR + b * 10_000)
        pending = store.due("prod", HOUR + 10**6, limit=100)
        assert {item.message().created_ms for item in pending} == {
            HOUR + 20_000, HOUR + 30_000, HOUR + 40_000,
        }  # fmt: skip
        assert len(pending) == 9
        assert store.dropped_samples() == {"prod": 6, "dev": 6}
        assert store.backlog() == {"prod": {"oi_samples": 9}, "dev": {"oi_samples": 9}}


def test_each_drop_is_reported_once_and_the_totals_persist(tmp_path):
    with StateStore(tmp_path, max_sample_batches=2) as store:
        for b in range(2):
            enqueue(store, samples(250, HOUR + b * 10_000), now_ms=HOUR + b * 10_000)
        assert store.take_dropped() == {}  # within the bound
        enqueue(store, samples(250, HOUR + 20_000), now_ms=HOUR + 20_000)
        assert store.take_dropped() == {"prod": 3, "dev": 3}  # the oldest batch: 3 chunks
        assert store.take_dropped() == {}  # reported once
        enqueue(store, volume_alert(), now_ms=HOUR + 30_000)  # alerts never push anything out
        enqueue(store, samples(10, HOUR + 40_000), sinks=("dev",), now_ms=HOUR + 40_000)
        assert store.take_dropped() == {"dev": 3}
    with StateStore(tmp_path) as reopened:
        assert reopened.take_dropped() == {}  # this connection's drops only ...
        assert reopened.dropped_samples() == {"prod": 3, "dev": 6}  # ... the totals persist


def test_a_sink_that_keeps_up_loses_no_samples_while_another_is_bounded(tmp_path):
    with StateStore(tmp_path, max_sample_batches=2) as store:
        for b in range(4):
            enqueue(store, samples(10, HOUR + b), now_ms=HOUR + b)
            for item in store.due("prod", HOUR + b):
                store.mark_delivered(item.outbox_id, "prod", HOUR + b)
        assert store.dropped_samples() == {"dev": 2}
        assert store.backlog() == {"dev": {"oi_samples": 2}}


def test_alerts_are_never_dropped_by_the_backlog_bound(tmp_path):
    with StateStore(tmp_path, max_sample_batches=1) as store:
        for i in range(30):
            enqueue(store, volume_alert(f"S{i}USDT"), now_ms=HOUR + i)
            enqueue(store, oi_alert(f"S{i}USDT"), now_ms=HOUR + i)
            enqueue(store, samples(120, HOUR + i), now_ms=HOUR + i)
        backlog = store.backlog()["prod"]
        assert backlog == {"volume_alert": 30, "oi_alert": 30, "oi_samples": 2}
        assert store.dropped_samples()["prod"] == 58


def test_enqueue_needs_a_sink(store):
    with pytest.raises(ValueError, match="sink"):
        enqueue(store, volume_alert(), sinks=())


# --- durability -------------------------------------------------------------------------------

KILLED_WRITER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from actors._store import StateStore
from messages import OiSample, Symbol, TimestampMs
from tests.actors.test_store import HOUR, enqueue, oi_alert, volume_alert
store = StateStore({state!r})
enqueue(store, volume_alert())
enqueue(store, oi_alert())
(item,) = store.due("prod", HOUR, limit=1)
store.mark_delivered(item.outbox_id, "prod", HOUR + 1)
store.kv_put("oi.cooldown", "BTCUSDT|UP|5 min", HOUR, HOUR)
store.append_oi_history([OiSample(symbol=Symbol("BTCUSDT"), open_interest=1.5,
                                  time_ms=TimestampMs(HOUR))])
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_committed_writes_survive_kill_9(tmp_path):
    script = KILLED_WRITER.format(repo=str(REPO), state=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=REPO,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert (tmp_path / f"{DB_NAME}-wal").exists()  # not checkpointed: recovery reads the WAL
    with StateStore(tmp_path) as store:
        assert [i.kind for i in store.due("prod", HOUR + 2)] == ["oi_alert"]
        assert [i.kind for i in store.due("dev", HOUR + 2)] == ["volume_alert", "oi_alert"]
        assert store.kv_get("oi.cooldown", "BTCUSDT|UP|5 min") == HOUR
        assert [s.open_interest for s in store.load_oi_history(0)] == [1.5]


# --- key-value, history ------------------------------------------------------------------------


def test_kv_round_trips_plain_data_and_messages(store):
    universe = LiquidUniverse(members=(member("BTCUSDT"),), updated_ms=HOUR)
    store.kv_put("universe", "current", universe, HOUR)
    store.kv_put("volume", "alerted", {"BTCUSDT": [HOUR, 10]}, HOUR)
    store.kv_put("volume", "alerted", {"BTCUSDT": [HOUR, 20]}, HOUR + 1)
    assert store.kv_get("universe", "current") == universe
    assert store.kv_items("volume") == {"alerted": {"BTCUSDT": [HOUR, 20]}}
    assert store.kv_get("volume", "missing", default=0) == 0
    assert store.kv_delete("volume", "alerted")
    assert not store.kv_delete("volume", "alerted")
    assert store.kv_items("volume") == {}


def test_oi_history_appends_once_loads_since_and_prunes(store):
    def sample(symbol: str, t: int, mark: float | None = None) -> OiSample:
        return OiSample(
            symbol=Symbol(symbol), open_interest=float(t), time_ms=TimestampMs(t), mark_price=mark
        )

    rows = [sample("ETHUSDT", 3, 2.0), sample("BTCUSDT", 1), sample("BTCUSDT", 2, 9.5)]
    assert store.append_oi_history(rows) == 3
    assert store.append_oi_history(rows[:1]) == 0
    assert store.load_oi_history(2) == [sample("BTCUSDT", 2, 9.5), sample("ETHUSDT", 3, 2.0)]
    assert store.prune_oi_history(3) == 2
    assert store.load_oi_history(0) == [sample("ETHUSDT", 3, 2.0)]


# --- local sink -------------------------------------------------------------------------------


def test_the_local_sink_stores_readable_columns_with_null_for_absent_values(store, tmp_path, raw):
    alert = volume_alert()
    assert store.record_local(alert, "volume:k", HOUR + 700_000) == 1
    assert store.record_local(alert, "volume:k", HOUR + 800_000) == 0
    conn = raw()
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM volume_alerts").fetchone())
    assert row == {
        "id": 1, "idempotency_key": "volume:k", "symbol": "BTCUSDT", "asset": "BTC",
        "alert_type": "SPIKE", "is_update": 0, "current_volume": 5_200_000.0,
        "previous_volume": 1_500_000.0, "volume_ratio": 3.4666, "price": 65_000.5,
        "funding_rate": None, "candle_direction": "bullish", "price_change": None,
        "oi_change": None, "message": alert.message, "timestamp": "2025-12-05T14:10:00Z",
        "detection_time": "2025-12-05T14:10:00Z", "hour_timestamp": "2025-12-05T14:00:00Z",
        "recorded_at": "2025-12-05T14:11:40Z",
    }  # fmt: skip


def test_the_local_sink_stores_oi_alerts_and_samples_once(store, tmp_path, raw):
    assert store.record_local(oi_alert(), "oi-alert:k", HOUR) == 1
    batch = samples(3, HOUR, mark=None)
    assert store.record_local(batch, "", HOUR) == 3
    assert store.record_local(batch, "", HOUR) == 0
    conn = raw()
    assert conn.execute(
        "SELECT symbol, direction, timeframe, baseline_oi, current_oi, funding_rate,"
        " price_change FROM oi_alerts"
    ).fetchall() == [("ETHUSDT", "UP", "5 min", 1_000_000.0, 1_040_000.0, 0.0000128, None)]
    assert conn.execute(
        "SELECT symbol, open_interest, open_interest_usd, mark_price, timestamp, source"
        " FROM oi_samples ORDER BY id LIMIT 1"
    ).fetchone() == ("S000USDT", 1000.0, None, None, "2025-12-05T13:59:59Z", "realtime")
    assert store.prune_local_samples(HOUR - 999) == 1
    with pytest.raises(TypeError, match="local sink"):
        store.record_local(LiquidUniverse(members=(), updated_ms=HOUR), "", HOUR)


def test_close_is_idempotent(tmp_path):
    store = StateStore(tmp_path)
    store.close()
    store.close()


def test_close_still_closes_when_the_file_is_locked_by_another_writer(tmp_path):
    """Seen at a SIGTERM: the poster's ``PRAGMA optimize`` met the store actor's write lock."""
    store = StateStore(tmp_path)
    real = store._conn
    closed = []

    class Locked:
        in_transaction = False

        def execute(self, sql, *args):
            if sql.startswith("PRAGMA optimize"):
                raise sqlite3.OperationalError("database is locked")
            return real.execute(sql, *args)

        def close(self):
            closed.append(True)
            real.close()

    store._conn = Locked()
    store.close()  # no exception escapes
    assert closed == [True]
    with pytest.raises(sqlite3.ProgrammingError):
        real.execute("SELECT 1")
