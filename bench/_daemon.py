"""The daemon under test as a helper process: the real supervision tree against the simulator.

The tree is the production one, :func:`supervisors.app.build_tree` on ``Config()`` defaults
(price cache, store, poster, REST gateway, HTTP API, volume scanner, kline feed shards, market
feed), started with the Binance server-time offset and the garbage collector's threshold
(:func:`supervisors.runtime.tune_gc`) like ``run.py`` does, with only these changes:

- the simulator's WebSocket and REST URLs (nothing leaves 127.0.0.1); the state directory in
  the run's scratch directory; the VolSpike backend double as PROD backend when given;
- ``funding_api_port``: a free port picked by the harness (fixed, like 8888 in production, so a
  restarted API binds the same port again); ``health_log_interval_s=0`` (no health lines);
- variant ``"bench"`` (what the harness runs): every child's restart backoff and every feed's
  reconnect backoff set to zero, and the root's restart intensity raised, so that repeated
  injected crashes neither wait seconds nor make the root give up, and 1000 reconnects do not
  take 1000 x the production 0.5-60 s backoff. Delays only come into play when something
  fails, so the steady-state figures are the production tree's; the production backoff of each
  child is reported next to the restart figures.

Everything else (feed timeouts, stall detection, the API server, the cache, the outbox) is as
shipped. Variant ``"production"`` keeps the delays too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import re
import resource
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pykka
from loguru import logger
from pykka.messages import ProxyCall

from actors.feed import FeedActor
from bench._cpu import CpuMeter
from messages.control import Ping
from messages.feed import FeedData
from messages.market import MarkPrices
from messages.types import Symbol
from supervisors.app import Boards, build_tree
from supervisors.backoff import BackoffPolicy
from supervisors.clock import SystemClock
from supervisors.config import Config
from supervisors.root import start_tree
from supervisors.runtime import tune_gc

if TYPE_CHECKING:
    import queue

__all__ = ["DaemonHost", "read_rss_kb"]

_RESTART_LINE = re.compile(r"^(\S+) .*; restart #(\d+).* in ([0-9.]+) s")
_POISON_SYMBOL = Symbol("BENCHPOISONUSDT")
_MAX_BOARD_RECORDS = 500_000


def read_rss_kb() -> int:
    """This process's resident set size in KiB (``VmRSS`` of ``/proc/self/status``)."""
    try:
        with Path("/proc/self/status").open(encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return int(usage.ru_maxrss)  # peak, not current: only where /proc is missing


def _http_get_status(port: int, path: str, timeout: float = 0.5) -> int | None:
    """Status of one GET on a fresh connection, ``None`` when nobody answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
            )
            head = sock.recv(64)
    except OSError:
        return None
    if head.startswith(b"HTTP/1.1 ") and len(head) >= 12:
        return int(head[9:12])
    return None


class DaemonHost(CpuMeter):
    """A started tree and the probes the benchmarks need.

    Args:
        ws_base_url: the simulator's WebSocket root plus ``/market``.
        rest_url: the simulator's REST root.
        port: the API port.
        state_dir: the daemon's state directory (SQLite).
        backend_url: the backend double (PROD), or ``None`` for the local SQLite sink only.
        backend_key: its ingest key.
        variant: ``"bench"`` or ``"production"`` (see the module docstring).
        settings: more configuration (the OI universe of :meth:`bench._sim.SimHost.oi_plan`).
    """

    def __init__(
        self,
        *,
        ws_base_url: str,
        rest_url: str,
        port: int,
        state_dir: str,
        backend_url: str | None = None,
        backend_key: str | None = None,
        variant: str = "bench",
        settings: dict[str, Any] | None = None,
    ) -> None:
        self._restart_lines: list[tuple[float, str, int, float]] = []
        self._sink = logger.add(
            self._on_log,
            level="WARNING",
            format="{message}",
            filter=lambda record: "restart #" in record["message"],
        )
        base: dict[str, Any] = {
            "funding_api_port": port,
            "health_log_interval_s": 0.0,
            "state_dir": Path(state_dir),
        }
        if backend_url is not None:
            base |= {"volspike_api_url": backend_url, "volspike_api_key": backend_key}
        self.config = Config().replace(**(base | (settings or {})))
        tune_gc(self.config.gc_young_threshold)
        self.boards = Boards()
        self.clock = SystemClock()
        spec = build_tree(self.config, self.boards, ws_base_url=ws_base_url, rest_base_url=rest_url)
        children = spec.kwargs["children"]
        kwargs = dict(spec.kwargs)
        if variant == "bench":
            now = BackoffPolicy.immediate()
            kwargs["children"] = tuple(
                dataclasses.replace(
                    c,
                    backoff=now,
                    kwargs={**c.kwargs, "backoff": now}
                    if issubclass(c.actor_class, FeedActor)
                    else c.kwargs,
                )
                for c in children
            )
            kwargs["max_restarts"] = 10_000
        elif variant != "production":
            raise ValueError(f"unknown variant {variant!r}")
        self.child_names = [c.name for c in children]
        self.feed_names = [c.name for c in children if issubclass(c.actor_class, FeedActor)]
        self.production_backoff = {c.name: dataclasses.asdict(c.backoff) for c in children}
        self.variant = variant
        self._watch_stop = threading.Event()
        self._board_log: list[tuple[float, int | None]] = []
        self.handle = start_tree(
            dataclasses.replace(spec, kwargs=kwargs),
            server_time=self.boards.server_time,
            wait_started_s=30.0,
        )
        if not self.handle.started:
            self.handle.shutdown("did not start", timeout=20)
            raise RuntimeError("the tree did not start within 30 s")
        self.port = int(self.handle.registry.ask("http-api", "port", timeout=5))
        self._watcher = threading.Thread(target=self._watch_board, name="bench-board-watch")
        self._watcher.start()

    # --- plumbing -------------------------------------------------------------------------------

    def _on_log(self, message: Any) -> None:
        match = _RESTART_LINE.match(str(message).strip())
        if match:
            path, number, delay = match.groups()
            name = path.rsplit("/", 1)[-1]
            self._restart_lines.append((time.monotonic(), name, int(number), float(delay)))

    def _watch_board(self) -> None:
        """Record ``(monotonic, newest E)`` after every frame the board applies (bounded)."""
        board = self.boards.prices
        while not self._watch_stop.is_set() and len(self._board_log) < _MAX_BOARD_RECORDS:
            frames = board.stats.frames
            if board.wait_for_update(frames, timeout=0.5):
                self._board_log.append((time.monotonic(), board.stats.last_event_time_ms))

    def info(self) -> dict[str, Any]:
        """Port, pid, children and the production backoff of each child."""
        return {
            "port": self.port,
            "pid": os.getpid(),
            "variant": self.variant,
            "children": self.child_names,
            "feeds": self.feed_names,
            "production_backoff": self.production_backoff,
            "volume_multiple": self.config.volume_multiple,
            "min_quote_vol": self.config.min_quote_vol,
        }

    def close(self) -> None:
        """Stop the tree in reverse order; raise if it does not end cleanly."""
        self._watch_stop.set()
        self._watcher.join(5.0)
        code = self.handle.shutdown("benchmark over", timeout=30)
        with contextlib.suppress(ValueError):
            logger.remove(self._sink)
        if code != 0:
            raise RuntimeError(f"tree ended with exit code {code}: {self.handle.reason}")

    # --- state ----------------------------------------------------------------------------------

    def wait_filled(self, symbols: int, timeout: float) -> int:
        """Wait (bounded) until the board holds ``symbols`` symbols; returns how many it holds."""
        board = self.boards.prices
        deadline = time.monotonic() + timeout
        while len(board) < symbols and time.monotonic() < deadline:
            board.wait_for_update(board.stats.frames, timeout=0.2)
        return len(board)

    def board_log(self, since: float) -> list[tuple[float, int | None]]:
        """``(monotonic, newest E)`` of every frame applied at or after ``since``."""
        log = self._board_log
        return [entry for entry in log[-20_000:] if entry[0] >= since]

    def frames(self) -> int:
        """Frames applied to the board so far."""
        return self.boards.prices.stats.frames

    def frames_by_feed(self) -> dict[str, float]:
        """Frames each feed has received (its current incarnation's ``feed_frames_total``)."""
        return {n: self.feed_counters(n).get("feed_frames_total", 0) for n in self.feed_names}

    def feed_counters(self, name: str = "feed-market") -> dict[str, float]:
        """One feed's counters (connects, disconnects, frames ...)."""
        return dict(self.boards.status.counters().get(name, {}))

    def counters(self) -> dict[str, dict[str, float]]:
        """Every actor's published counters (what ``/metrics`` shows)."""
        return {name: dict(values) for name, values in self.boards.status.counters().items()}

    def connected_feeds(self) -> dict[str, float]:
        """Feeds with an open connection now, and their ``feed_connects_total``."""
        out = {}
        for name in self.feed_names:
            status = self.boards.status.status(name)
            if status is not None and getattr(status, "connected", False):
                out[name] = self.feed_counters(name).get("feed_connects_total", 0)
        return out

    def wait_connects(self, before: dict[str, float], timeout: float) -> dict[str, float]:
        """Wait (bounded) until every feed in ``before`` connected more times than that."""
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while True:
            now = {n: self.feed_counters(n).get("feed_connects_total", 0) for n in before}
            if all(now[n] > before[n] for n in before) or time.monotonic() >= deadline:
                return now
            pause.wait(0.001)

    def children(self) -> list[dict[str, Any]]:
        """Per child: name, state, restarts, generation (from the root's health report)."""
        report = self.handle.health(timeout=2.0)
        return [
            {"name": c.name, "state": c.state, "restarts": c.restarts, "generation": c.generation}
            for c in report.children
        ]

    def scanner_ready_symbols(self) -> list[str]:
        """Symbols the volume scanner watches with their previous hour known."""
        registry = self.handle.registry
        universe = registry.ask("volume-scanner", "universe", timeout=5)
        missing = set(registry.ask("volume-scanner", "needs_backfill", timeout=5))
        return [s for s in universe if s not in missing]

    def scanner_ready(self, symbols: list[str]) -> bool:
        """Whether the volume scanner has ``symbols`` in its universe with their history."""
        registry = self.handle.registry
        universe = set(registry.ask("volume-scanner", "universe", timeout=5))
        missing = set(registry.ask("volume-scanner", "needs_backfill", timeout=5))
        return all(s in universe and s not in missing for s in symbols)

    def settled(self) -> dict[str, Any]:
        """Start-up progress: kline shards with data, symbols still waiting for history."""
        try:
            pending = len(self.handle.registry.ask("volume-scanner", "needs_backfill", timeout=5))
        except (pykka.ActorDeadError, pykka.Timeout):
            pending = -1
        return {"kline_feeds_live": len(self.kline_feeds_live()), "backfill_pending": pending}

    def backlog(self) -> dict[str, int]:
        """Messages waiting in each child's inbox (``ActorRef.actor_inbox``), non-zero only."""
        out = {}
        for name in self.child_names:
            ref = self.handle.registry.get(name)
            inbox = None if ref is None else cast("queue.Queue[Any]", ref.actor_inbox)
            size = 0 if inbox is None else inbox.qsize()
            if size:
                out[name] = int(size)
        return out

    def market_lag_ms(self) -> int | None:
        """How far behind the exchange the board is: receipt minus event time of BTCUSDT's value.

        A backlog that sits in socket buffers (frames not read yet) shows here, not in inboxes.
        """
        record = self.boards.prices.get("BTCUSDT")
        if record is None:
            return None
        return int(record.received_ms - record.event_time_ms)

    def wait_drained(self, limit: int, lag_ms: int, timeout: float) -> dict[str, Any]:
        """Wait (bounded) until at most ``limit`` messages wait in all inboxes together and the
        market feed is less than ``lag_ms`` behind."""
        started = time.monotonic()
        before, lag_before = self.backlog(), self.market_lag_ms()
        now, lag = before, lag_before

        def busy() -> bool:
            return sum(now.values()) > limit or (lag is not None and lag > lag_ms)

        pause = threading.Event()
        while busy() and time.monotonic() - started < timeout:
            pause.wait(0.25)
            now, lag = self.backlog(), self.market_lag_ms()
        return {
            "backlog_before": before,
            "market_lag_ms_before": lag_before,
            "backlog_after": now,
            "market_lag_ms_after": lag,
            "waited_s": round(time.monotonic() - started, 2),
            "drained": not busy(),
        }

    def kline_feeds_live(self) -> list[str]:
        """Kline shards that have received data."""
        live = []
        for name in self.feed_names:
            status = self.boards.status.status(name)
            if name != "feed-market" and status is not None and status.data_age_s is not None:
                live.append(name)
        return live

    def memory(self, *, collect: bool = True) -> dict[str, int]:
        """RSS (KiB), threads and open file descriptors, after a full ``gc.collect()``."""
        if collect:
            gc.collect()
        try:
            fds = sum(1 for _ in Path("/proc/self/fd").iterdir())
        except OSError:
            fds = -1
        return {
            "rss_kb": read_rss_kb(),
            "threads": threading.active_count(),
            "fds": fds,
            "symbols": len(self.boards.prices),
        }

    # --- 3. enrichment, in process --------------------------------------------------------------

    def enrich_inproc(self, symbols: list[str], reps: int) -> dict[str, Any]:
        """Time one in-process query for ``symbols``, ``reps`` times, two ways.

        ``entries``: :meth:`PriceBoard.entries` (values with age and stale flag, what a scanner
        needs); ``records``: :meth:`PriceBoard.records` plus a dict lookup per symbol.
        """
        board = self.boards.prices
        clock = self.clock
        stale = self.config.stale_after_s
        wanted = list(symbols)
        entries_s: list[float] = []
        records_s: list[float] = []
        found = missing = 0
        perf = time.perf_counter
        for _ in range(reps):
            t0 = perf()
            got, lost = board.entries(wanted, now_mono=clock.monotonic(), stale_after_s=stale)
            t1 = perf()
            records = board.records()
            rows = [records.get(s) for s in wanted]
            t2 = perf()
            entries_s.append(t1 - t0)
            records_s.append(t2 - t1)
            found, missing = len(got), len(lost)
            del rows
        return {"entries_s": entries_s, "records_s": records_s, "found": found, "missing": missing}

    # --- 7. restart -----------------------------------------------------------------------------

    def _feed_connection_id(self, feed: str) -> int | None:
        prefix = f"Feed-{feed}-"
        ids = [
            int(t.name[len(prefix) :])
            for t in threading.enumerate()
            if t.name.startswith(prefix) and t.name[len(prefix) :].isdigit() and t.is_alive()
        ]
        return max(ids) if ids else None

    def _inject(self, actor: str) -> str:
        """Make ``actor``'s current incarnation raise inside a ``tell`` handler."""
        registry = self.handle.registry
        if actor == "price-cache":
            # A frame whose event time is a string: PriceBoard.apply raises TypeError.
            poison = MarkPrices(
                symbols=(_POISON_SYMBOL,),
                event_times_ms=("not-a-time",),  # type: ignore[arg-type]
                mark_prices=(1.0,),
                index_prices=(None,),
                funding_rates=(None,),
                next_funding_times_ms=(None,),
                received_ms=1,  # type: ignore[arg-type]
            )
            registry.tell(actor, poison)
            return "MarkPrices with a string event time (PriceBoard.apply raises TypeError)"
        cid = self._feed_connection_id(actor) if actor == "feed-market" else None
        if cid is not None:
            # Data for the live connection whose event times cannot be compared: the feed's
            # _handle_data raises TypeError computing the newest event time.
            poison = MarkPrices(
                symbols=(_POISON_SYMBOL, _POISON_SYMBOL),
                event_times_ms=("not-a-time", 1),  # type: ignore[arg-type]
                mark_prices=(1.0, 1.0),
                index_prices=(None, None),
                funding_rates=(None, None),
                next_funding_times_ms=(None, None),
                received_ms=1,  # type: ignore[arg-type]
            )
            registry.tell(
                actor,
                FeedData(connection_id=cid, message=poison, received_mono=time.monotonic()),
            )
            return "FeedData for the live connection with mixed-type event times (TypeError)"
        # Any other actor: pykka's own ProxyCall message, told (not asked): on_receive() without
        # its argument raises TypeError in the actor's thread, exactly like a handler bug.
        ref = registry.get(actor)
        if ref is None:
            raise RuntimeError(f"{actor} is not running")
        ref.tell(ProxyCall(attr_path=("on_receive",), args=(), kwargs={}))
        return "pykka ProxyCall told to on_receive() without its argument (TypeError)"

    def _generation(self, actor: str, timeout: float = 0.5) -> int | None:
        try:
            pong = self.handle.registry.ask(actor, Ping(), timeout=timeout)
        except (pykka.ActorDeadError, pykka.Timeout):
            return None
        return int(pong.generation)

    def _wait_ready(self, actor: str, running: float, deadline: float) -> float | None:
        """When the restarted ``actor`` can serve again (see :meth:`restart_probe`)."""
        if actor == "http-api":
            ready = lambda: _http_get_status(self.port, "/funding/BTCUSDT") == 200  # noqa: E731
        elif actor in self.feed_names:
            # the new incarnation publishes fresh counters: connects_total 0, then 1 when open
            ready = lambda: self.feed_counters(actor).get("feed_connects_total", 0) >= 1  # noqa: E731
        else:
            return running
        pause = threading.Event()
        while time.monotonic() < deadline:
            if ready():
                return time.monotonic()
            pause.wait(0.0005)
        return None

    def restart_probe(self, actor: str, timeout: float = 15.0) -> dict[str, Any]:
        """Crash ``actor`` once and time its way back (seconds from the injection).

        - ``running_s``: the new incarnation answered a ``Ping`` (its ``on_start`` is done);
        - ``ready_s``: it can serve again: the API answered ``GET /funding/BTCUSDT`` with 200
          on a new connection; a feed's new WebSocket connection is open; any other actor is
          running (it handles whatever arrives from then on);
        - ``next_frame_s`` (price cache, market feed): the board applied a new frame after
          ``running_s``, which includes waiting for the exchange's next push.
        """
        gen0 = self._generation(actor, timeout=2.0)
        if gen0 is None:
            raise RuntimeError(f"{actor} does not answer before the injection")
        before = {c["name"]: c["restarts"] for c in self.children()}
        lines_before = len(self._restart_lines)
        board = self.boards.prices
        pause = threading.Event()
        t0 = time.monotonic()
        how = self._inject(actor)
        deadline = t0 + timeout
        running = ready = next_frame = None
        while time.monotonic() < deadline:
            gen = self._generation(actor, timeout=0.2)
            if gen is not None and gen > gen0:
                running = time.monotonic()
                break
            pause.wait(0.0005)
        frames = board.stats.frames
        if running is not None:
            ready = self._wait_ready(actor, running, deadline)
        if (
            running is not None
            and actor in ("price-cache", "feed-market")
            and board.wait_for_update(frames, timeout=max(0.0, deadline - time.monotonic()))
        ):
            next_frame = time.monotonic()
        delays = [d for (_, name, _, d) in self._restart_lines[lines_before:] if name == actor]
        after = {c["name"]: c["restarts"] for c in self.children()}

        def since(t: float | None) -> float | None:
            return None if t is None else t - t0

        return {
            "injected": how,
            "running_s": since(running),
            "ready_s": since(ready),
            "next_frame_s": since(next_frame),
            "backoff_s": delays[0] if delays else None,
            "restarts": {k: after.get(k, 0) - before.get(k, 0) for k in after},
            "t_inject": t0,
            "t_ready": ready,
        }
