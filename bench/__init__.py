"""Benchmarks: every performance target of ``../shared/DESIGN.md``, measured in one run.

``python -m bench`` (``make bench``) runs them against the local simulator on 127.0.0.1 and
prints one JSON report on standard output and a readable table on standard error; ``--quick``
(``make bench QUICK=1``) is the same with shorter runs. Numbering follows issue 9:

=  ====================  ==========================================================
1  ``ingest``            650-symbol mark-price frame, parse + apply vs ``json.loads``
2  ``tick_to_readable``  exchange push -> readable over HTTP, vs the state-file pattern
3  ``enrichment``        534 symbols: 534 local HTTP GETs vs one in-process query
4  ``api_throughput``    ``/funding/{symbol}`` and ``/health`` with 1, 8, 32 clients
5  ``alert_latency``     scripted volume crossing -> SPIKE at the backend double
6  ``oi_freshness``      open-interest re-sample interval, REST weight, 429s (sustained)
7  ``restart``           crash each actor; time to serve again; ticks siblings missed
8  ``memory``            RSS after warm-up, 1000 reconnects and a long run
=  ====================  ==========================================================

Helper processes (simulator, daemon, baseline, HTTP clients) are described in
:mod:`bench._env`; the report format in :mod:`bench._report`.
"""

from __future__ import annotations

__all__ = ["BENCHMARKS", "RUN_ORDER", "Benchmark"]

from typing import NamedTuple


class Benchmark(NamedTuple):
    """One entry of the run order."""

    name: str
    module: str
    needs: frozenset[str]
    """Shared helpers it uses (see :class:`bench._env.Env`), kept alive until it has run."""


RUN_ORDER = (
    "ingest",
    "tick_to_readable",
    "enrichment",
    "alert_latency",
    "api_throughput",
    "oi_freshness",
    "restart",
    "memory",
)
"""The order they run in: the API load (which saturates the daemon for a while) after the
latency-sensitive ones; OI freshness late, so the daemon has been running long enough for its
first five-minute snapshot (and the API load counts against the budget too); the crashes and
reconnects last. The report keeps the numbering."""

BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("ingest", "bench.ingest", frozenset()),
    Benchmark("tick_to_readable", "bench.tick_to_readable", frozenset({"pool", "sim", "daemon"})),
    Benchmark("enrichment", "bench.enrichment", frozenset({"pool", "sim", "daemon"})),
    Benchmark("api_throughput", "bench.api_throughput", frozenset({"pool", "sim", "daemon"})),
    Benchmark("alert_latency", "bench.alert_latency", frozenset({"sim", "daemon"})),
    Benchmark("oi_freshness", "bench.oi_freshness", frozenset({"sim", "daemon"})),
    Benchmark("restart", "bench.restart", frozenset({"sim", "daemon"})),
    Benchmark("memory", "bench.memory", frozenset({"sim", "daemon"})),
)
