"""The SQLite state store: durable outbox, key-value state, OI history and the local sink.

One :class:`StateStore` owns one :class:`sqlite3.Connection` to ``<state_dir>/volspike.db`` and
must be used from the thread that opened it (the StoreActor's: open it in ``on_start``, close it
in ``on_stop``). Every write is one ``BEGIN IMMEDIATE … COMMIT`` transaction.

Durability: WAL journal with ``synchronous=FULL`` by default. In WAL mode a committed
transaction is in the ``-wal`` file before ``commit`` returns, so it survives ``kill -9`` with
either NORMAL or FULL; FULL also fsyncs the WAL on every commit, so it survives a power cut or a
kernel crash too. The daemon commits a few times per second at most, so the fsync is cheap, and
an alert accepted into the outbox is never lost. ``synchronous="NORMAL"`` trades that for speed.

Schema versions are ``PRAGMA user_version``; :data:`MIGRATIONS` upgrades an older file one
version at a time, each step in its own transaction (SQLite DDL is transactional, so a failed
step leaves the previous version intact). A file newer than the program is refused. To add v2,
append a step; never edit a released one::

    MIGRATIONS = (
        sql_migration(1, "initial schema", *_V1.split(";")),
        sql_migration(2, "remember the HTTP status",
                      "ALTER TABLE deliveries ADD COLUMN last_status INTEGER"),
    )

Outbox model: ``outbox`` holds each payload once (unique idempotency key, message encoded with
:func:`messages.encode`); ``deliveries`` holds one row per (payload, sink) with its own status,
attempts and next attempt time, so sinks progress independently and a payload is delivered at
most once per sink. Pending OI-sample batches per sink are bounded (oldest whole batches are
marked ``dropped`` and counted); alerts are never dropped.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import orjson
from loguru import logger

from actors._payloads import (
    PRIORITY,
    SAMPLE_KIND,
    OutboxEntry,
    iso_utc,
    oi_alert_body,
    volume_alert_body,
)
from messages import Message, OiAlert, OiSample, OiSamples, VolumeAlert, decode, encode
from messages.errors import VolspikeError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from actors._payloads import PayloadKind

__all__ = [
    "DB_NAME",
    "MIGRATIONS",
    "FailedDelivery",
    "Migration",
    "OutboxItem",
    "StateStore",
    "StoreError",
    "sql_migration",
]

DB_NAME = "volspike.db"
"""File name of the database inside the state directory."""


class StoreError(VolspikeError):
    """The state database cannot be used (newer schema, no WAL support, broken migrations)."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: brings a database from ``version - 1`` to ``version``."""

    version: int
    """The ``user_version`` after this step."""
    description: str
    """What the step does (logged and shown in errors)."""
    apply: Callable[[sqlite3.Connection], None]
    """Runs inside the step's transaction; must not commit."""


def sql_migration(version: int, description: str, *statements: str) -> Migration:
    """A migration made of SQL statements run in order."""

    def apply(conn: sqlite3.Connection) -> None:
        for statement in statements:
            conn.execute(statement)

    return Migration(version, description, apply)


_V1 = """
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    priority INTEGER NOT NULL,
    batch TEXT,
    payload BLOB NOT NULL,
    created_ms INTEGER NOT NULL) STRICT;
CREATE INDEX outbox_kind_batch ON outbox (kind, batch);
CREATE TABLE deliveries (
    outbox_id INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    sink TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'delivered', 'failed_permanent', 'dropped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error TEXT,
    delivered_ms INTEGER,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (outbox_id, sink)) STRICT, WITHOUT ROWID;
CREATE INDEX deliveries_due ON deliveries (sink, next_attempt_ms) WHERE status = 'pending';
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT, WITHOUT ROWID;
CREATE TABLE kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    format TEXT NOT NULL CHECK (format IN ('json', 'message')),
    value ANY NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)) STRICT, WITHOUT ROWID;
CREATE TABLE oi_history (
    symbol TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    open_interest REAL NOT NULL,
    mark_price REAL,
    PRIMARY KEY (symbol, time_ms)) STRICT, WITHOUT ROWID;
CREATE INDEX oi_history_time ON oi_history (time_ms);
CREATE TABLE volume_alerts (
    id INTEGER PRIMARY KEY, idempotency_key TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL, asset TEXT NOT NULL, alert_type TEXT NOT NULL,
    is_update INTEGER NOT NULL, current_volume REAL NOT NULL, previous_volume REAL NOT NULL,
    volume_ratio REAL NOT NULL, price REAL, funding_rate REAL, candle_direction TEXT,
    price_change REAL, oi_change REAL, message TEXT NOT NULL, timestamp TEXT NOT NULL,
    detection_time TEXT NOT NULL, hour_timestamp TEXT NOT NULL, recorded_at TEXT NOT NULL
) STRICT;
CREATE INDEX volume_alerts_timestamp ON volume_alerts (timestamp);
CREATE TABLE oi_samples (
    id INTEGER PRIMARY KEY,
    symbol TEXT NOT NULL, open_interest REAL NOT NULL, open_interest_usd REAL, mark_price REAL,
    funding_rate REAL, timestamp TEXT NOT NULL, time_ms INTEGER NOT NULL, source TEXT NOT NULL,
    UNIQUE (symbol, time_ms, source)) STRICT;
CREATE INDEX oi_samples_time ON oi_samples (time_ms);
CREATE TABLE oi_alerts (
    id INTEGER PRIMARY KEY, idempotency_key TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL, direction TEXT NOT NULL, timeframe TEXT NOT NULL,
    baseline_oi REAL NOT NULL, current_oi REAL NOT NULL, pct_change REAL NOT NULL,
    abs_change REAL NOT NULL, price_change REAL, funding_rate REAL, timestamp TEXT NOT NULL,
    source TEXT NOT NULL, recorded_at TEXT NOT NULL) STRICT;
CREATE INDEX oi_alerts_timestamp ON oi_alerts (timestamp)
"""

MIGRATIONS: tuple[Migration, ...] = (sql_migration(1, "initial schema", *_V1.split(";")),)
"""Every schema step, in order; ``MIGRATIONS[i].version == i + 1``."""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One pending delivery of one payload to one sink."""

    outbox_id: int
    sink: str
    kind: str
    idempotency_key: str
    payload: bytes
    """The message, as :func:`messages.encode` wrote it."""
    created_ms: int
    attempts: int
    """Failed attempts so far (the ``attempt`` for the next backoff delay)."""

    def message(self) -> Message:
        """Decode the payload (raises ``CodecError`` for bytes of another format version)."""
        return decode(self.payload)


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    """A delivery that failed for good (kept for reporting and for ``requeue_failed``)."""

    outbox_id: int
    sink: str
    kind: str
    idempotency_key: str
    attempts: int
    last_error: str | None
    failed_ms: int


class StateStore:
    """The daemon's SQLite database (see the module docstring).

    Args:
        state_dir: directory of the database; created if missing.
        synchronous: ``"FULL"`` (default, survives power loss) or ``"NORMAL"`` (survives process
            death only).
        max_sample_batches: pending OI-sample batches kept per sink; older ones are dropped.
        migrations: the schema steps (tests pass extra ones).

    Raises:
        StoreError: if the file is not a database, its schema is newer than ``migrations``, a
            migration's SQL fails, or WAL is unavailable.
    """

    def __init__(
        self,
        state_dir: Path | str,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        max_sample_batches: int = 120,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        if max_sample_batches < 1:
            raise ValueError("max_sample_batches must be at least 1")
        self.max_sample_batches = max_sample_batches
        self._dropped: Counter[str] = Counter()  # since take_dropped, this connection
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(state_dir) / DB_NAME
        """Where the database lives (tell the user)."""
        self._conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            self._configure(synchronous)
            self._migrate(tuple(migrations))
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreError(f"{self.path}: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise

    # --- connection and schema --------------------------------------------------------------

    def _configure(self, synchronous: str) -> None:
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: WAL journal unavailable (got {mode!r})")
        self._conn.execute(f"PRAGMA synchronous = {synchronous}")
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.execute("PRAGMA busy_timeout = 5000")

    def _migrate(self, migrations: tuple[Migration, ...]) -> None:
        for index, step in enumerate(migrations, start=1):
            if step.version != index:
                raise StoreError(f"migration {step.description!r} should be v{index}")
        current = self.schema_version
        if current > len(migrations):
            raise StoreError(
                f"{self.path} has schema v{current}, newer than this program (v{len(migrations)})"
            )
        for step in migrations[current:]:
            with self._tx() as conn:
                step.apply(conn)
                conn.execute(f"PRAGMA user_version = {step.version}")

    @property
    def schema_version(self) -> int:
        """The database's ``user_version``."""
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Optimise the query planner's statistics if the file is free, then close (idempotent).

        ``PRAGMA optimize`` writes; while another connection (the store actor's, at the same
        shutdown) holds the write lock, SQLite refuses at once instead of waiting, and the
        statistics can wait for the next stop: the connection is closed either way.
        """
        try:
            self._conn.execute("PRAGMA optimize")
        except sqlite3.ProgrammingError:
            return  # already closed
        except sqlite3.OperationalError as exc:
            logger.debug("state database: PRAGMA optimize skipped at close ({})", exc)
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- outbox -------------------------------------------------------------------------------

    def enqueue(  # noqa: PLR0913 (the outbox contract: what, for whom, when)
        self,
        kind: PayloadKind,
        message: Message,
        idempotency_key: str,
        sinks: Sequence[str],
        now_ms: int,
        *,
        batch: str | None = None,
    ) -> bool:
        """Store one payload for ``sinks``; False (and nothing changes) if the key exists."""
        entry = OutboxEntry(kind, message, idempotency_key, batch)
        return self.enqueue_many([entry], sinks, now_ms) == 1

    def enqueue_many(
        self, entries: Sequence[OutboxEntry], sinks: Sequence[str], now_ms: int
    ) -> int:
        """Store payloads for ``sinks`` in one transaction; returns how many were new.

        A key already in the outbox is skipped: first write wins, sinks are not added. Sample
        entries then enforce the per-sink batch bound (what it drops: :meth:`take_dropped`).
        """
        if not sinks:
            raise ValueError("a payload needs at least one sink")
        inserted = 0
        dropped: Counter[str] = Counter()
        with self._tx() as conn:
            for entry in entries:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO outbox (idempotency_key, kind, priority, batch, payload,"
                    " created_ms) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        entry.idempotency_key,
                        entry.kind,
                        PRIORITY.get(entry.kind, 1),
                        entry.batch,
                        encode(entry.message),
                        now_ms,
                    ),
                )
                if cursor.rowcount == 0:
                    continue
                inserted += 1
                conn.executemany(
                    "INSERT INTO deliveries (outbox_id, sink, status, next_attempt_ms, updated_ms)"
                    " VALUES (?, ?, 'pending', ?, ?)",
                    [(cursor.lastrowid, sink, now_ms, now_ms) for sink in dict.fromkeys(sinks)],
                )
            if any(entry.kind == SAMPLE_KIND for entry in entries):
                for sink in dict.fromkeys(sinks):
                    dropped[sink] += self._bound_samples(sink, now_ms)
        self._dropped.update(+dropped)  # committed: now they count
        return inserted

    def take_dropped(self) -> dict[str, int]:
        """Sample chunks the backlog bound dropped, by sink, since the last call (then reset).

        Only this connection's drops: the persisted totals are :meth:`dropped_samples`.
        """
        dropped, self._dropped = dict(self._dropped), Counter()
        return dropped

    def _bound_samples(self, sink: str, now_ms: int) -> int:
        """Drop the oldest pending sample batches of ``sink`` beyond the bound; returns chunks."""
        batches = [
            row[0]
            for row in self._conn.execute(
                "SELECT COALESCE(o.batch, 'row:' || o.id) AS b FROM deliveries d"
                " JOIN outbox o ON o.id = d.outbox_id WHERE d.sink = ? AND d.status = 'pending'"
                " AND o.kind = ? GROUP BY b ORDER BY MIN(o.created_ms), MIN(o.id)",
                (sink, SAMPLE_KIND),
            )
        ]
        dropped = 0
        for batch in batches[: max(0, len(batches) - self.max_sample_batches)]:
            dropped += self._conn.execute(
                "UPDATE deliveries SET status = 'dropped', updated_ms = ?,"
                " last_error = 'superseded: sample backlog bound' WHERE sink = ?"
                " AND status = 'pending' AND outbox_id IN (SELECT id FROM outbox WHERE kind = ?"
                " AND COALESCE(batch, 'row:' || id) = ?)",
                (now_ms, sink, SAMPLE_KIND, batch),
            ).rowcount
        if dropped:
            self._conn.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                (f"dropped_samples:{sink}", dropped),
            )
        return dropped

    def due(
        self, sink: str, now_ms: int, limit: int = 100, *, lease_ms: int = 0
    ) -> list[OutboxItem]:
        """Pending deliveries for ``sink`` whose time has come: alerts first, then oldest.

        Args:
            sink: the sink asking.
            now_ms: the current wall-clock time.
            limit: at most this many.
            lease_ms: if positive, the returned items are not due again for this long, so a
                second caller (or a second call before the outcome is recorded) does not get
                them too; after a crash the lease simply expires.
        """
        rows = self._conn.execute(
            "SELECT o.id, d.sink, o.kind, o.idempotency_key, o.payload, o.created_ms, d.attempts"
            " FROM deliveries d JOIN outbox o ON o.id = d.outbox_id WHERE d.sink = ?"
            " AND d.status = 'pending' AND d.next_attempt_ms <= ?"
            " ORDER BY o.priority, o.created_ms, o.id LIMIT ?",
            (sink, now_ms, limit),
        ).fetchall()
        items = [OutboxItem(*row) for row in rows]
        if lease_ms > 0 and items:
            with self._tx() as conn:
                conn.executemany(
                    "UPDATE deliveries SET next_attempt_ms = ? WHERE outbox_id = ? AND sink = ?"
                    " AND status = 'pending'",
                    [(now_ms + lease_ms, item.outbox_id, sink) for item in items],
                )
        return items

    def next_due_ms(self, sink: str) -> int | None:
        """When the earliest pending delivery for ``sink`` becomes due (``None``: nothing)."""
        row = self._conn.execute(
            "SELECT MIN(next_attempt_ms) FROM deliveries WHERE sink = ? AND status = 'pending'",
            (sink,),
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def _settle(self, outbox_id: int, sink: str, assignments: str, params: tuple[Any, ...]) -> bool:
        with self._tx() as conn:
            cursor = conn.execute(
                f"UPDATE deliveries SET {assignments} WHERE outbox_id = ? AND sink = ?"  # noqa: S608
                " AND status = 'pending'",
                (*params, outbox_id, sink),
            )
        return cursor.rowcount == 1

    def mark_delivered(self, outbox_id: int, sink: str, now_ms: int) -> bool:
        """Record success; False if it was not pending (already delivered, dropped, failed)."""
        return self._settle(
            outbox_id,
            sink,
            "status = 'delivered', delivered_ms = ?, updated_ms = ?",
            (now_ms, now_ms),
        )

    def mark_retry(
        self, outbox_id: int, sink: str, *, next_attempt_ms: int, error: str, now_ms: int
    ) -> bool:
        """Record a retryable failure: one more attempt, not due before ``next_attempt_ms``."""
        return self._settle(
            outbox_id,
            sink,
            "attempts = attempts + 1, next_attempt_ms = ?, last_error = ?, updated_ms = ?",
            (next_attempt_ms, error, now_ms),
        )

    def mark_failed_permanent(self, outbox_id: int, sink: str, *, error: str, now_ms: int) -> bool:
        """Record a permanent failure (kept, reported, never retried unless requeued)."""
        return self._settle(
            outbox_id,
            sink,
            "status = 'failed_permanent', attempts = attempts + 1, last_error = ?, updated_ms = ?",
            (error, now_ms),
        )

    def requeue_failed(self, sink: str, now_ms: int) -> int:
        """Make ``sink``'s permanent failures pending again (after fixing a key or URL)."""
        with self._tx() as conn:
            return conn.execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_ms = ?,"
                " updated_ms = ? WHERE sink = ? AND status = 'failed_permanent'",
                (now_ms, now_ms, sink),
            ).rowcount

    def backlog(self) -> dict[str, dict[str, int]]:
        """Pending deliveries by sink, then kind."""
        result: dict[str, dict[str, int]] = {}
        for sink, kind, count in self._conn.execute(
            "SELECT d.sink, o.kind, COUNT(*) FROM deliveries d JOIN outbox o ON o.id = d.outbox_id"
            " WHERE d.status = 'pending' GROUP BY d.sink, o.kind"
        ):
            result.setdefault(sink, {})[kind] = count
        return result

    def dropped_samples(self) -> dict[str, int]:
        """Sample chunks dropped by the backlog bound since the database was made, by sink."""
        prefix = "dropped_samples:"
        rows = self._conn.execute("SELECT name, value FROM counters WHERE name LIKE 'dropped%'")
        return {name.removeprefix(prefix): value for name, value in rows}

    def failed_deliveries(self, limit: int = 100) -> list[FailedDelivery]:
        """The most recent permanent failures."""
        rows = self._conn.execute(
            "SELECT o.id, d.sink, o.kind, o.idempotency_key, d.attempts, d.last_error, d.updated_ms"
            " FROM deliveries d JOIN outbox o ON o.id = d.outbox_id"
            " WHERE d.status = 'failed_permanent' ORDER BY d.updated_ms DESC LIMIT ?",
            (limit,),
        )
        return [FailedDelivery(*row) for row in rows]

    def prune_outbox(self, before_ms: int) -> int:
        """Delete payloads older than ``before_ms`` that are settled for every sink.

        Payloads still pending or failed for some sink are kept. A pruned key can be enqueued
        again, so keep more than the longest time a producer may repeat a key (hours).
        """
        with self._tx() as conn:
            return conn.execute(
                "DELETE FROM outbox WHERE created_ms < ? AND NOT EXISTS (SELECT 1 FROM deliveries"
                " d WHERE d.outbox_id = outbox.id AND d.status IN ('pending', 'failed_permanent'))",
                (before_ms,),
            ).rowcount

    # --- key-value state ----------------------------------------------------------------------

    def kv_put(self, namespace: str, key: str, value: Any, now_ms: int) -> None:
        """Store a message (msgpack codec) or JSON-able plain data under ``namespace``/``key``."""
        blob: bytes | str
        if isinstance(value, Message):
            fmt, blob = "message", encode(value)
        else:
            fmt, blob = "json", orjson.dumps(value).decode()
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO kv (namespace, key, format, value, updated_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                (namespace, key, fmt, blob, now_ms),
            )

    def kv_get(self, namespace: str, key: str, default: Any = None) -> Any:
        """The stored value, or ``default``."""
        row = self._conn.execute(
            "SELECT format, value FROM kv WHERE namespace = ? AND key = ?", (namespace, key)
        ).fetchone()
        return default if row is None else _kv_value(*row)

    def kv_items(self, namespace: str) -> dict[str, Any]:
        """Every key and value of ``namespace``."""
        rows = self._conn.execute(
            "SELECT key, format, value FROM kv WHERE namespace = ? ORDER BY key", (namespace,)
        )
        return {key: _kv_value(fmt, value) for key, fmt, value in rows}

    def kv_delete(self, namespace: str, key: str) -> bool:
        """Remove a key; False if it was not there."""
        with self._tx() as conn:
            sql = "DELETE FROM kv WHERE namespace = ? AND key = ?"
            return conn.execute(sql, (namespace, key)).rowcount == 1

    # --- OI history ---------------------------------------------------------------------------

    def append_oi_history(self, samples: Iterable[OiSample]) -> int:
        """Add samples (a repeated symbol and time is ignored); returns how many were new."""
        rows = [(s.symbol, s.time_ms, s.open_interest, s.mark_price) for s in samples]
        with self._tx() as conn:
            before = conn.total_changes
            conn.executemany("INSERT OR IGNORE INTO oi_history VALUES (?, ?, ?, ?)", rows)
            return conn.total_changes - before

    def load_oi_history(self, since_ms: int) -> list[OiSample]:
        """Samples at or after ``since_ms``, by symbol then time (funding is not kept)."""
        rows = self._conn.execute(
            "SELECT symbol, time_ms, open_interest, mark_price FROM oi_history"
            " WHERE time_ms >= ? ORDER BY symbol, time_ms",
            (since_ms,),
        )
        return [
            OiSample(symbol=s, time_ms=t, open_interest=oi, mark_price=m) for s, t, oi, m in rows
        ]

    def prune_oi_history(self, before_ms: int) -> int:
        """Delete history older than ``before_ms``."""
        with self._tx() as conn:
            sql = "DELETE FROM oi_history WHERE time_ms < ?"
            return conn.execute(sql, (before_ms,)).rowcount

    # --- local SQLite sink --------------------------------------------------------------------

    def record_local(self, message: Message, idempotency_key: str, now_ms: int) -> int:
        """Insert a message into the user-facing tables; returns rows added (0 if already there).

        Alert columns are the backend payload's fields in snake_case (``baseline_oi`` and
        ``current_oi`` for the OI alert's ``baseline``/``current``), NULL where the payload omits
        one. Idempotent: alerts are unique by key, samples by (symbol, time, source).
        """
        extra = {"idempotency_key": idempotency_key, "recorded_at": iso_utc(now_ms)}
        match message:
            case VolumeAlert():
                rows = [(_VOLUME_COLUMNS, volume_alert_body(message) | extra)]
                table = "volume_alerts"
            case OiAlert():
                rows = [(_OI_ALERT_COLUMNS, oi_alert_body(message) | extra)]
                table = "oi_alerts"
            case OiSamples():
                rows = [(_SAMPLE_COLUMNS, _sample_row(s, message.source)) for s in message.items]
                table = "oi_samples"
            case _:
                raise TypeError(f"the local sink does not take {type(message).__name__}")
        with self._tx() as conn:
            before = conn.total_changes
            for columns, row in rows:
                names = ", ".join(columns.values())
                marks = ", ".join("?" * len(columns))
                conn.execute(
                    f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})",  # noqa: S608
                    [row.get(field) for field in columns],
                )
            return conn.total_changes - before

    def prune_local_samples(self, before_ms: int) -> int:
        """Delete local ``oi_samples`` rows older than ``before_ms`` (alerts are kept)."""
        with self._tx() as conn:
            sql = "DELETE FROM oi_samples WHERE time_ms < ?"
            return conn.execute(sql, (before_ms,)).rowcount


def _kv_value(fmt: str, value: Any) -> Any:
    return decode(value) if fmt == "message" else orjson.loads(value)


def _columns(*fields: str, **renamed: str) -> dict[str, str]:
    snake = {f: "".join(f"_{c.lower()}" if c.isupper() else c for c in f) for f in fields}
    return snake | renamed


_VOLUME_COLUMNS = _columns(
    "idempotency_key", "symbol", "asset", "alertType", "isUpdate", "currentVolume",
    "previousVolume", "volumeRatio", "price", "fundingRate", "candleDirection", "priceChange",
    "oiChange", "message", "timestamp", "detectionTime", "hourTimestamp", "recorded_at",
)  # fmt: skip
_OI_ALERT_COLUMNS = _columns(
    "idempotency_key", "symbol", "direction", "timeframe", "pctChange", "absChange",
    "priceChange", "fundingRate", "timestamp", "source", "recorded_at",
    baseline="baseline_oi", current="current_oi",
)  # fmt: skip
_SAMPLE_COLUMNS = _columns(
    "symbol", "open_interest", "open_interest_usd", "mark_price", "funding_rate", "timestamp",
    "time_ms", "source",
)  # fmt: skip


def _sample_row(sample: OiSample, source: str) -> dict[str, Any]:
    return {
        "symbol": sample.symbol,
        "open_interest": sample.open_interest,
        "open_interest_usd": sample.open_interest_usd,
        "mark_price": sample.mark_price,
        "funding_rate": sample.funding_rate,
        "timestamp": iso_utc(sample.time_ms),
        "time_ms": sample.time_ms,
        "source": source,
    }
