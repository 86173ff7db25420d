"""The simulator as a helper process, with a record of when each mark-price frame was pushed.

The simulator has no "frame sent" callback, so the send instant is taken where its publisher
thread hands a built frame to the WebSocket server: :meth:`WsServer.publish` of *this* process's
server instance is wrapped (no source change). For every ``!markPrice@arr@1s`` frame it records
the frame's exchange event time ``E`` and ``time.monotonic()`` (a system-wide clock on Linux,
comparable across processes). What follows the hand-off (the server's event loop wrapping the
frame in the combined envelope, queueing it and writing it to the socket) is counted as part of
the latency, so the figure is if anything pessimistic.

The simulator runs on :class:`~supervisors.clock.SystemClock` (speed 1), so ``E`` is the wall
clock at the moment the frame was *built*; latencies measured from ``E`` are reported too, as a
cross-check that includes the simulator's own ~10 ms frame build.

With ``backend=True`` the process also runs the VolSpike :class:`~simulator.BackendDouble`, and
:meth:`SimHost.spike` scripts volume spikes (``sim.scenarios.volume_spike``) whose crossing
instant is computed the way ``tests/test_end_to_end.py`` does.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench._cpu import CpuMeter
from simulator import BackendDouble, Simulator, SimulatorConfig
from simulator.backend import VOLUME_ALERTS
from supervisors.clock import SystemClock

__all__ = ["BACKEND_KEY", "MARK_STREAM", "SimHost", "event_time_of"]

BACKEND_KEY = "bench-ingest-key"

MARK_STREAM = "!markPrice@arr@1s"
_MAX_RECORDS = 200_000
OI_PLAN_HORIZON_S = 1200.0
"""How far ahead :meth:`SimHost.oi_plan` keeps its liquid set stable (a full run takes ~9 min)."""


def event_time_of(raw: str) -> int | None:
    """The first ``"E":<int>`` of a raw JSON frame (every entry of one frame shares it)."""
    at = raw.find('"E":')
    if at < 0:
        return None
    start = at + 4
    end = start
    n = len(raw)
    while end < n and raw[end].isdigit():
        end += 1
    return int(raw[start:end]) if end > start else None


class SimHost(CpuMeter):
    """A started :class:`~simulator.Simulator` plus the push record.

    Args:
        symbols: universe size (the real manifest first, then synthetic names).
        mark_period_s: period of ``!markPrice@arr@1s`` (Binance: 1 s).
        ticker_period_s: period of ``!ticker@arr`` (Binance: 1 s).
        kline_period_s: period of each ``<sym>@kline_1h`` stream (Binance: 250 ms).
        seed: the market's seed.
        backend: also run the VolSpike backend double.
    """

    def __init__(
        self,
        *,
        symbols: int,
        mark_period_s: float,
        ticker_period_s: float = 1.0,
        kline_period_s: float = 0.25,
        seed: int = 7,
        backend: bool = False,
    ) -> None:
        config = SimulatorConfig(
            symbols=symbols,
            mark_price_fast_period=mark_period_s,
            ticker_period=ticker_period_s,
            kline_period=kline_period_s,
            seed=seed,
        )
        self.sim = Simulator(config, clock=SystemClock())
        self._lock = threading.Lock()
        self._marks: list[tuple[int, float]] = []
        self._count = 0
        self._written: list[tuple[int, float]] = []
        self._record_pushes()
        self.backend = BackendDouble(api_key=BACKEND_KEY).start() if backend else None
        try:
            self.sim.start()
        except Exception:
            if self.backend is not None:
                self.backend.stop()
            raise
        self.symbols = [i.symbol for i in self.sim.market.listed()]

    def _record_pushes(self) -> None:
        """Note each mark frame's hand-off to the server and its writes to market connections."""
        server = self.sim.ws
        original = server.publish

        def publish(frames: list[tuple[str, str]]) -> None:
            now = time.monotonic()
            for stream, raw in frames:
                if stream == MARK_STREAM:
                    event = event_time_of(raw)
                    if event is not None:
                        with self._lock:
                            self._count += 1
                            if len(self._marks) < _MAX_RECORDS:
                                self._marks.append((event, now))
            original(frames)

        server.publish = publish  # type: ignore[method-assign]
        mark_prefix = b'{"stream":"' + MARK_STREAM.encode() + b'"'

        def written(streams: tuple[str, ...], data: bytes) -> None:
            # a client's market connection (the probe's carries the mark stream alone)
            if len(streams) > 1 and data.startswith(mark_prefix):
                event = event_time_of(data[:160].decode("ascii", "replace"))
                if event is not None and len(self._written) < _MAX_RECORDS:
                    self._written.append((event, time.monotonic()))  # loop thread only

        server.on_frame_sent = written

    def info(self) -> dict[str, Any]:
        """URLs, the universe, and the backend double's URL and key (if any)."""
        return {
            "ws_url": self.sim.ws_url,
            "rest_url": self.sim.rest_url,
            "symbols": self.symbols,
            "backend_url": None if self.backend is None else self.backend.url,
            "backend_key": None if self.backend is None else BACKEND_KEY,
        }

    def spike(
        self, symbol: str, *, multiple: float, min_quote_volume: float, ratio: float = 8.0
    ) -> dict[str, Any]:
        """Script a volume spike on ``symbol`` now; when the rule's thresholds are crossed.

        The extra volume ramps linearly over about a second; the crossing is where the hour's
        quote volume reaches ``max(multiple x previous hour, min_quote_volume)``.
        """
        spike = self.sim.scenarios.volume_spike(
            symbol, ratio=ratio, by_minute=0.01, min_quote_volume=max(5e6, min_quote_volume)
        )
        threshold = max(multiple * spike.previous_quote_volume, min_quote_volume)
        before = spike.target_quote_volume - spike.extra_quote_volume
        if spike.extra_quote_volume <= 0:
            fraction = 0.0
        else:
            fraction = min(1.0, max(0.0, (threshold - before) / spike.extra_quote_volume))
        crossing_ms = spike.at_ms + fraction * (spike.by_ms - spike.at_ms)
        return {
            "symbol": symbol,
            "at_ms": spike.at_ms,
            "by_ms": spike.by_ms,
            "crossing_s": crossing_ms / 1000.0,
            "already_above": before >= threshold,
        }

    def oi_plan(
        self,
        scope: int,
        liquid: int,
        exclude: tuple[str, ...] = (),
        horizon_s: float = OI_PLAN_HORIZON_S,
    ) -> dict[str, Any]:
        """Daemon settings that put ``scope`` symbols in the OI universe, ``liquid`` of them liquid.

        The simulator lists more TRADING perpetuals (650) than Binance (~540), and its 24 h
        volumes drift, so a symbol near the liquid threshold may enter or leave mid-run. From
        the market's (deterministic) 24 h quote volumes now and over the next ``horizon_s``:
        the ``liquid`` most traded symbols whose volume stays clear of the others' (those that
        would cross the threshold are left out of the OI universe), an enter threshold between
        the two groups and an exit threshold below the liquid group's lowest; the rest of the
        scope is the next most traded symbols, everything else goes into ``oi_universe_exclude``
        (with ``exclude``, the daemon's own default exclusions, kept).
        """
        now = int(time.time() * 1000)
        steps = [now + int(horizon_s * 1000 * k / 6) for k in range(7)]

        def volume(symbol: str, t: int) -> float:
            agg = self.sim.market.rolling_24h(symbol, t)
            return agg.q if agg is not None else 0.0

        series = {s: [volume(s, t) for t in steps] for s in self.symbols if s not in exclude}
        ranked = sorted(series, key=lambda s: series[s][0], reverse=True)
        top = ranked[:liquid]
        floor = min(min(series[s]) for s in top)
        enter = floor * 0.99
        crossing = [s for s in ranked[liquid:] if max(series[s]) >= enter]
        others = [s for s in ranked[liquid:] if s not in crossing]
        rest = others[: max(0, scope - liquid)]
        in_scope = set(top) | set(rest)
        excluded = tuple(sorted(s for s in self.symbols if s not in in_scope))
        return {
            "oi_liquid_enter_quote_24h": enter,
            "oi_liquid_exit_quote_24h": enter / 2,
            "oi_universe_exclude": excluded,
            # a scripted volume spike on these leaves the OI universe as it is
            "spike_safe": tuple(sorted(set(top) | set(excluded))),
            "liquid": len(top),
            "scope": len(in_scope),
            "left_out_near_threshold": len(crossing),
            "horizon_s": horizon_s,
        }

    def alerts(self) -> list[dict[str, Any]]:
        """Volume alerts the backend double accepted: symbol, type, update flag, arrival."""
        if self.backend is None:
            return []
        return [
            {
                "symbol": r.body.get("symbol"),
                "alertType": r.body.get("alertType"),
                "isUpdate": r.body.get("isUpdate"),
                "at": r.at,
            }
            for r in self.backend.received(VOLUME_ALERTS)
        ]

    def mark_state(self) -> tuple[int, int | None]:
        """``(mark frames pushed so far, E of the last one)``."""
        with self._lock:
            last = self._marks[-1][0] if self._marks else None
            return self._count, last

    def marks(self, since: int = 0) -> list[tuple[int, float]]:
        """``(E, monotonic push instant)`` of every mark frame from index ``since`` on."""
        with self._lock:
            return self._marks[since:]

    def written(self, since: int = 0) -> tuple[int, list[tuple[int, float]]]:
        """``(E, monotonic instant)`` of every mark frame written to a client's market
        connection (its socket write, after the simulator's own queueing) from index ``since``
        on, and the count so far."""
        rows = list(self._written)
        return len(rows), rows[since:]

    def rest_log(
        self, since: int = 0
    ) -> tuple[int, list[tuple[int, str, str | None, int, int, int]]]:
        """REST requests from index ``since``: ``(time_ms, path, symbol, status, weight, used)``.

        Returns the log's length too, to continue from.
        """
        log = self.sim.rest.request_log
        rows = [
            (r.time_ms, r.path, r.params.get("symbol"), r.status, r.weight, r.used_weight)
            for r in log[since:]
        ]
        return len(log), rows

    def ticks(self) -> int:
        """Publishing rounds of the simulator's publisher so far (its cadence health)."""
        return int(self.sim.publisher.ticks)

    def drop(self) -> int:
        """Abort every WebSocket connection (``sim.faults.drop_connections()``)."""
        return self.sim.faults.drop_connections()

    def connections(self) -> int:
        """Open WebSocket connections."""
        return self.sim.ws.connection_count()

    def close(self) -> None:
        """Stop the simulator (and the backend double) and join their threads."""
        try:
            self.sim.stop()
        finally:
            if self.backend is not None:
                self.backend.stop()
