"""The store: the one writer of the state other actors persist, and their loader at start-up.

Owns a :class:`~actors._store.StateStore` (``$VOLSPIKE_STATE_DIR/volspike.db``: WAL,
``synchronous=FULL``, schema versioned and migrated on open), opened in ``on_start`` in this
actor's thread and closed in ``_close``. It writes the ``kv`` table (the volume scanner's dedup
and owed updates, the OI rule's INSIDE/OUTSIDE state and cooldowns, the universe's hysteresis)
and the OI history; the poster opens its own connection for the outbox and the local sink's
tables (see :mod:`actors.poster`). Every write is committed before the next message is read,
so a ``kill -9`` loses nothing that was handled.

How other actors use it::

    # persist (tell; fire and forget, in inbox order):
    self.registry.tell("store", PutState.of("oi-rule", "state", rule.export_state(now_ms)))
    self.registry.tell("store", samples)                 # OiSamples → OI history
    # load once, in on_start (ask with a timeout; the store never asks anybody, so no deadlock):
    reply = self.registry.ask("store", GetState(namespace="oi-rule", key="state"), timeout=5)
    rule.import_state(reply.value({}), now_ms)
    history = self.registry.ask("store", LoadOiHistory(since_ms=now_ms - 3_900_000), timeout=10)

Start the store before the actors that load from it (children start in spec order, each after
the previous one's ``on_start`` returned). An ``ask`` that fails (``pykka.Timeout``,
``ActorDeadError``) should be treated by the asker as "no saved state", logged, and not fatal.

Accepts: ``PutState``, ``DeleteState``, ``OiSamples`` (tell); ``GetState``, ``GetStates``,
``LoadOiHistory`` (ask); ``Tick(timer="store-prune")``. Emits nothing.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from actors._store import StateStore
from messages.control import Tick
from messages.delivery import (
    DeleteState,
    GetState,
    GetStates,
    LoadOiHistory,
    OiHistoryReply,
    PutState,
    StateEntry,
    StateReply,
    StatesReply,
)
from messages.open_interest import OiSamples
from supervisors.actor import SupervisedActor
from supervisors.spec import ChildSpec

if TYPE_CHECKING:
    from actors._status import StatusBoard
    from supervisors.config import Config
    from supervisors.context import ChildContext

__all__ = ["StoreActor"]


class StoreActor(SupervisedActor):
    """The state database's writer for kv state and OI history.

    Args:
        context: from the supervisor.
        state_dir: directory of ``volspike.db`` (created if missing).
        synchronous: SQLite ``synchronous``: ``FULL`` (survives power loss) or ``NORMAL``.
        oi_history_retention_s: OI history older than this is pruned (the longest lookback is
            an hour, plus its tolerance).
        prune_period_s: how often the OI history is pruned.
        status: where counters for ``/metrics`` are published.
    """

    def __init__(  # noqa: PLR0913 - keyword-only settings
        self,
        *,
        context: ChildContext | None = None,
        state_dir: Path | str,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        oi_history_retention_s: float = 2 * 3600.0,
        prune_period_s: float = 300.0,
        status: StatusBoard | None = None,
    ) -> None:
        super().__init__(context=context)
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        if oi_history_retention_s <= 0 or prune_period_s <= 0:
            raise ValueError("oi_history_retention_s and prune_period_s must be positive")
        self._state_dir = Path(state_dir)
        self._synchronous = synchronous
        self._retention_ms = round(oi_history_retention_s * 1000)
        self._prune_period_s = prune_period_s
        self._status = status
        self._store: StateStore | None = None
        self._counts: Counter[str] = Counter()

    @classmethod
    def spec(
        cls, config: Config, *, name: str = "store", status: StatusBoard | None = None
    ) -> ChildSpec:
        """The store's child spec for ``config``; put it before every actor that loads state."""
        return ChildSpec(
            name=name,
            actor_class=cls,
            kwargs={"state_dir": config.state_dir, "status": status},
        )

    @property
    def store(self) -> StateStore:
        """The open database (actor thread only)."""
        if self._store is None:
            raise RuntimeError("the store is not open")
        return self._store

    # --- lifecycle ------------------------------------------------------------------------------

    def on_start(self) -> None:
        """Open (and migrate) the database (actor thread)."""
        self._store = StateStore(self._state_dir, synchronous=self._synchronous)
        self._log.info(
            "state database {} (schema v{}, WAL, synchronous={})",
            self._store.path.resolve(),
            self._store.schema_version,
            self._synchronous,
        )
        if self.timers is not None:
            self.start_timer("store-prune", period_s=self._prune_period_s)

    def _close(self) -> None:
        """Close the database (actor thread)."""
        if self._store is not None:
            self._store.close()
            self._store = None

    # --- messages -------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        """Dispatch (actor thread)."""
        match message:
            case PutState():
                self._handle_put(message)
            case DeleteState(namespace=namespace, key=key):
                self.store.kv_delete(namespace, key)
                self._count("deletes_total")
            case OiSamples():
                self._handle_samples(message)
            case GetState(namespace=namespace, key=key):
                return self._handle_get(namespace, key)
            case GetStates(namespace=namespace):
                return self._handle_get_all(namespace)
            case LoadOiHistory(since_ms=since_ms):
                samples = tuple(self.store.load_oi_history(since_ms))
                self._count("oi_history_loads_total")
                return OiHistoryReply(samples=samples)
            case Tick(timer="store-prune"):
                self._handle_prune()
            case _:
                return super().on_receive(message)
        return None

    def _handle_put(self, message: PutState) -> None:
        try:
            value = orjson.loads(message.json)
        except orjson.JSONDecodeError as exc:
            self._log.error(
                "PutState {}/{}: not JSON ({}); ignored", message.namespace, message.key, exc
            )
            return
        self.store.kv_put(message.namespace, message.key, value, self.clock.time_ms())
        self._count("puts_total")

    def _handle_samples(self, message: OiSamples) -> None:
        added = self.store.append_oi_history(message.items)
        self._count("oi_history_rows_total", added)

    def _handle_get(self, namespace: str, key: str) -> StateReply:
        value = self.store.kv_get(namespace, key, _MISSING)
        blob = None if value is _MISSING else orjson.dumps(value)
        return StateReply(namespace=namespace, key=key, json=blob)

    def _handle_get_all(self, namespace: str) -> StatesReply:
        items = self.store.kv_items(namespace)
        entries = tuple(StateEntry(key=k, json=orjson.dumps(v)) for k, v in items.items())
        return StatesReply(namespace=namespace, entries=entries)

    def _handle_prune(self) -> None:
        pruned = self.store.prune_oi_history(self.clock.time_ms() - self._retention_ms)
        if pruned:
            self._log.debug("pruned {} OI history row(s)", pruned)
        self._count("oi_history_pruned_total", pruned)

    def _count(self, name: str, value: int = 1) -> None:
        self._counts[name] += value
        if self._status is not None:
            self._status.count(self.name, {f"store_{k}": v for k, v in self._counts.items()})


_MISSING: Any = object()
