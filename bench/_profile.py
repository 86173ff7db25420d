"""How long and how often each benchmark runs, per mode (``full``, ``quick``, ``tiny``).

``full`` is ``make bench`` (under 10 minutes on 2 cores), ``quick`` is ``make bench QUICK=1``
(under 1 minute), ``tiny`` is for the smoke test only (structure, not numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PROFILES", "Profile"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """Every knob of a run."""

    name: str
    symbols: int = 650
    """Universe size of the simulator and of the synthetic ingest frame."""
    run_order: tuple[str, ...] | None = None
    """Another order to run the benchmarks in (``None``: :data:`bench.RUN_ORDER`)."""

    # 1. ingest
    ingest_rounds: int
    ingest_iterations: int

    # the simulator every benchmark from 2 on runs against
    mark_period_s: float = 0.25
    """``!markPrice@arr@1s`` period (Binance: 1 s; 4 x faster gives 4 x the samples). Kline
    streams run at Binance's 250 ms, tickers at its 1 s."""
    ticker_period_s: float = 1.0
    settle_klines: bool = True
    """Wait for the kline shards' first data before measuring (tiny: no)."""
    drain_timeout_s: float = 60.0
    """Before each benchmark, wait at most this long for the daemon's inboxes to empty."""
    idle_cpu_s: float = 1.0
    """Before each benchmark, read the daemon's CPU use over this long (no load added)."""
    settle_backfill: bool = True
    """Wait for the scanner's start-up backfill (~10 s) before measuring (quick/tiny: no)."""

    # 2. tick to readable
    t2r_ours_s: float
    t2r_baseline_s: float

    # 3. enrichment
    enrich_symbols: int = 534
    enrich_http_reps: int
    enrich_inproc_reps: int

    # 4. API throughput
    api_duration_s: float
    api_reps: int
    api_points: tuple[tuple[str, int], ...] = (
        ("funding", 1),
        ("funding", 8),
        ("funding", 32),
        ("health", 8),
    )

    # 5. alert latency
    alert_spikes: int = 8
    alert_gap_s: float = 0.4

    # 6. OI freshness
    oi_extra_s: float = 1.0
    """Polling observed after the benchmarks before it (whose time counts too)."""
    oi_min_span_s: float = 12.0
    """Polling observed in all, at least (a re-sample interval is ~10 s)."""
    oi_wait_s: float = 40.0
    """How long to wait for the poller's first request (it starts ~10 s after the daemon)."""
    oi_warm_up_s: float = 0.0
    """Re-sample intervals that begin this soon after the first OI request are reported apart
    (the start-up minutes, shared with the scanner's backfill of every symbol)."""
    oi_evaluate_s: float | None = None
    """The daemon's ``oi_universe_evaluate_sec`` (``None``: its default, 10 s; the poller
    starts at the universe's first evaluation)."""
    oi_scope: int | None = 540
    """Symbols the daemon's OI universe covers (Binance: ~540 TRADING USDT perpetuals; the
    simulator lists ``symbols``); ``None``: the daemon's defaults on the simulator's volumes."""
    oi_liquid: int = 340
    """...of which liquid (the target is stated for 340), see :meth:`bench._sim.SimHost.oi_plan`."""

    # 7. restart
    restart_reps: int
    restart_actors: tuple[str, ...] | None = None
    """Children to crash (``None``: every kind of child of the tree)."""

    # 8. memory
    memory_warmup_s: float
    memory_reconnects: int
    memory_run_s: float
    memory_samples: int = 10


PROFILES = {
    "full": Profile(
        name="full",
        ingest_rounds=15,
        ingest_iterations=40,
        t2r_ours_s=45.0,
        t2r_baseline_s=30.0,
        enrich_http_reps=9,
        enrich_inproc_reps=300,
        api_duration_s=5.0,
        api_reps=3,
        alert_spikes=60,
        alert_gap_s=1.0,
        oi_extra_s=20.0,
        oi_min_span_s=60.0,
        oi_warm_up_s=120.0,
        restart_reps=5,
        memory_warmup_s=10.0,
        memory_reconnects=1000,
        memory_run_s=60.0,
    ),
    "quick": Profile(
        name="quick",
        settle_backfill=False,
        drain_timeout_s=5.0,
        idle_cpu_s=0.3,
        ingest_rounds=5,
        ingest_iterations=20,
        t2r_ours_s=4.0,
        t2r_baseline_s=3.0,
        enrich_http_reps=3,
        enrich_inproc_reps=50,
        api_duration_s=0.6,
        api_reps=2,
        alert_spikes=8,
        alert_gap_s=0.3,
        restart_reps=1,
        oi_min_span_s=11.0,
        memory_warmup_s=0.5,
        memory_reconnects=50,
        memory_run_s=3.0,
        memory_samples=4,
    ),
    "tiny": Profile(
        name="tiny",
        # the API and restart runs fill the seconds the kline shards may take to get their
        # streams (the scanner re-tells its plan every 5 s), before the alert run needs them
        run_order=(
            "ingest",
            "tick_to_readable",
            "enrichment",
            "api_throughput",
            "restart",
            "alert_latency",
            "oi_freshness",
            "memory",
        ),
        settle_klines=False,
        settle_backfill=False,
        drain_timeout_s=1.0,
        idle_cpu_s=0.0,
        symbols=100,
        ingest_rounds=2,
        ingest_iterations=3,
        mark_period_s=0.1,
        t2r_ours_s=0.8,
        t2r_baseline_s=1.6,
        enrich_symbols=80,
        enrich_http_reps=1,
        enrich_inproc_reps=3,
        api_duration_s=0.25,
        api_reps=1,
        alert_spikes=2,
        alert_gap_s=0.2,
        oi_extra_s=0.0,
        oi_min_span_s=7.0,
        oi_wait_s=10.0,
        oi_evaluate_s=1.0,
        oi_scope=None,
        restart_reps=1,
        restart_actors=("price-cache", "http-api", "feed-market"),
        memory_warmup_s=0.3,
        memory_reconnects=3,
        memory_run_s=0.5,
        memory_samples=2,
    ),
}
