"""What the benchmarks share: helper processes started on first use and stopped after last use.

- ``pool``: two spawned worker processes for the HTTP clients (load generator, poller, probe
  subscriber, enrichment client);
- ``sim``: the simulator (650 symbols; ``!markPrice@arr@1s`` every 0.25 s by default, tickers
  every second, every kline stream every 250 ms) with the VolSpike backend double;
- ``daemon``: the production tree against ``sim`` with its failure delays set to zero (see
  :mod:`bench._daemon`), for benchmarks 2-8, in that order (the restart and reconnect
  benchmarks come last).

The runner calls :meth:`Env.prepare` before each benchmark (the pool and the simulator start
side by side) and :meth:`Env.release` after it, with what the remaining benchmarks still need;
everything else is stopped then, daemons before the simulator, and :meth:`Env.close` stops the
rest.
"""

from __future__ import annotations

import contextlib
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from bench._cpu import CpuLayout
from bench._host import Host
from bench._load import make_pool
from supervisors.config import Config

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from bench._profile import Profile

__all__ = ["Env", "free_port"]


DRAINED_LIMIT = 200
"""Messages left in all the daemon's inboxes together below which it counts as idle."""
DRAINED_LAG_MS = 300
"""...and how far behind the exchange its price board may be (frames unread in sockets)."""
SETTLE_TIMEOUT_S = 30.0
"""How long a new daemon may take to reach steady state (kline data, start-up backfill done)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Env:
    """Shared helper processes for one run.

    Args:
        profile: the run's sizes and durations.
        log_path: where helper processes write their WARNING+ log lines.
        work_dir: a scratch directory (state files of the baseline).
    """

    def __init__(
        self,
        profile: Profile,
        *,
        log_path: str,
        work_dir: str,
        layout: CpuLayout | None = None,
    ) -> None:
        self.profile = profile
        self.layout = layout or CpuLayout(None, None)
        self.log_path = log_path
        self.work_dir = work_dir
        self._pool: ProcessPoolExecutor | None = None
        self._hosts: dict[str, Host] = {}
        self._daemons = 0
        self._daemon_started = time.monotonic()
        self.settle_log: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.oi_plan: dict[str, Any] | None = None
        """The OI universe every daemon of the run gets (:meth:`bench._sim.SimHost.oi_plan`)."""

    # --- resources ------------------------------------------------------------------------------

    @property
    def pool(self) -> ProcessPoolExecutor:
        """The client worker pool (two processes: a poller and a probe, or two load clients)."""
        if self._pool is None:
            self._pool = make_pool(2, self.layout.load)
        return self._pool

    def prepare(self, needs: set[str] | frozenset[str]) -> None:
        """Start the pool and the simulator, if needed, side by side (the daemon stays lazy)."""
        with ThreadPoolExecutor(max_workers=2) as starter:
            futures: list[Future[Any]] = []
            if "sim" in needs and "sim" not in self._hosts:
                futures.append(starter.submit(self.host, "sim"))
            if "pool" in needs:
                futures.append(starter.submit(lambda: self.pool))
            for future in futures:
                future.result()

    def host(self, name: str) -> Host:
        """The helper process ``name`` (``sim`` or ``daemon``), started if needed."""
        existing = self._hosts.get(name)
        if existing is not None and existing.alive:
            return existing
        p = self.profile
        if name == "sim":
            host = Host(
                "bench._sim:SimHost",
                log_path=self.log_path,
                cpus=self.layout.load,
                nice=self.layout.sim_nice,
                symbols=p.symbols,
                mark_period_s=p.mark_period_s,
                ticker_period_s=p.ticker_period_s,
                backend=True,
            )
        elif name == "daemon":
            self._daemon_started = time.monotonic()
            host = self.daemon(self.host("sim"), variant="bench")
        else:
            raise KeyError(name)
        self._hosts[name] = host
        return host

    def daemon(self, sim: Host, *, variant: str) -> Host:
        """A new daemon process (the caller closes it) against ``sim``, filled with every symbol."""
        self._daemons += 1
        state_dir = Path(self.work_dir) / f"state-{self._daemons}-{variant}"
        state_dir.mkdir(parents=True, exist_ok=True)
        settings: dict[str, Any] = {}
        if self.profile.oi_scope is not None:
            if self.oi_plan is None:
                self.oi_plan = sim.call(
                    "oi_plan",
                    self.profile.oi_scope,
                    self.profile.oi_liquid,
                    Config().oi_universe_exclude,
                    timeout=60.0,
                )
            settings = {k: v for k, v in self.oi_plan.items() if k.startswith("oi_")}
        if self.profile.oi_evaluate_s is not None:
            settings["oi_universe_evaluate_sec"] = self.profile.oi_evaluate_s
        host = Host(
            "bench._daemon:DaemonHost",
            log_path=self.log_path,
            cpus=self.layout.system_under_test,
            ws_base_url=sim.info["ws_url"] + "/market",
            rest_url=sim.info["rest_url"],
            port=free_port(),
            state_dir=str(state_dir),
            backend_url=sim.info["backend_url"],
            backend_key=sim.info["backend_key"],
            variant=variant,
            settings=settings,
        )
        want = len(sim.info["symbols"])
        got = host.call("wait_filled", want, 20.0, timeout=30.0)
        if got < want:
            self.errors.append(f"daemon {variant}: only {got}/{want} symbols after 20 s")
        # steady state: the kline shards carry data and (full mode) the scanner's start-up
        # backfill (~650 REST requests paced by the weight budget, ~10 s) is done
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        state = host.call("settled")
        while time.monotonic() < deadline and (
            (self.profile.settle_klines and state["kline_feeds_live"] == 0)
            or (self.profile.settle_backfill and state["backfill_pending"] != 0)
        ):
            time.sleep(0.2)
            state = host.call("settled")
        self.settle_log.append({"variant": variant, **state})
        return host

    def drain(self) -> dict[str, Any] | None:
        """Let the running daemon work off what earlier benchmarks left in its inboxes."""
        host = self._hosts.get("daemon")
        if host is None or not host.alive:
            return None
        timeout = self.profile.drain_timeout_s
        state = dict(
            host.call(
                "wait_drained", DRAINED_LIMIT, DRAINED_LAG_MS, timeout, timeout=timeout + 30.0
            )
        )
        if self.profile.idle_cpu_s > 0:  # the daemon's own load, before this benchmark adds any
            now = time.monotonic()
            window = (now + 0.02, now + 0.02 + self.profile.idle_cpu_s)
            state["idle_cpu_cores"] = host.call("cpu_window", *window, timeout=30.0)
            state["daemon_age_s"] = round(now - self._daemon_started, 1)
        return state

    def backlog(self) -> dict[str, int] | None:
        """The running daemon's inbox backlogs (``None`` without a daemon)."""
        host = self._hosts.get("daemon")
        if host is None or not host.alive:
            return None
        return dict(host.call("backlog"))

    # --- lifecycle ------------------------------------------------------------------------------

    def release(self, keep: set[str]) -> None:
        """Stop every started helper whose name is not in ``keep``."""
        # daemons before the simulators they read from
        for name in sorted(self._hosts, key=lambda n: 0 if n.startswith("daemon") else 1):
            if name not in keep:
                self._stop(name)
        if "pool" not in keep and self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _stop(self, name: str) -> None:
        host = self._hosts.pop(name)
        error = host.close()
        if error:
            self.errors.append(f"{name}: {error.strip()}")

    def close(self) -> None:
        """Stop everything."""
        self.release(set())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.close()
