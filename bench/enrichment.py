"""3. Enrichment for a 534-symbol scan: 534 local HTTP GETs versus one in-process query.

The original scanner asked its own funding API once per symbol (``requests``, timeout 1 s).
Here that pattern runs against *our* API (the harness's daemon, the production tree), from a
worker process with one keep-alive ``requests.Session``, so client and server do not share a GIL.

The in-process query is what an actor of the same process (the future scanner) does: one
:meth:`PriceBoard.entries` call for the 534 symbols, returning each value with its age and stale
flag. ``records() + lookups`` (a copy of the table and a dict lookup per symbol) is reported too.
Both run inside the daemon's process, while the feed keeps writing the board.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench._load import enrich_http
from bench._report import fmt, ok
from bench._stats import rounded, summary

if TYPE_CHECKING:
    from bench._env import Env

__all__ = ["NAME", "run"]

NAME = "enrichment"
TITLE = "Enrichment of a 534-symbol scan"
TARGET = {
    "text": "one in-process query, < 5 ms",
    "metric": "inproc_ms_median",
    "op": "<",
    "value": 5.0,
}
ANCHOR = {"text": "478 ms of local HTTP; ~53 min when the API answers 503", "http_ms": 478}


def run(env: Env) -> dict[str, Any]:
    """HTTP scans from a worker, then in-process queries in the daemon."""
    p = env.profile
    sim = env.host("sim")
    daemon = env.host("daemon")
    symbols = list(sim.info["symbols"])[: p.enrich_symbols]
    http = env.pool.submit(enrich_http, daemon.info["port"], symbols, p.enrich_http_reps).result(
        timeout=120
    )
    inproc = daemon.call("enrich_inproc", symbols, p.enrich_inproc_reps, timeout=120)
    h = summary(http["durations_s"], scale=1e3)
    e = summary(inproc["entries_s"], scale=1e3)
    r = summary(inproc["records_s"], scale=1e3)
    value = e["median"]
    ratio = None if not h["median"] else value / h["median"]
    passed = (
        value is not None
        and value < TARGET["value"]
        and inproc["found"] == len(symbols)
        and http["ok"] == len(symbols)
    )

    def mmm(s: dict[str, Any]) -> str:
        return f"{fmt(s['min'])} / {fmt(s['median'])} / {fmt(s['max'])} ms"

    rows = [
        [
            f"ours: one in-process query ({len(symbols)} symbols)",
            mmm(e),
            "< 5 ms",
            f"HTTP {fmt(h['median'])} ms",
            f"{ratio:.5f}x" if ratio else "-",
            "478 ms (HTTP)",
        ],
        ["  records() + dict lookups", mmm(r), "", "", "", ""],
        [f"  baseline: {len(symbols)} GETs to our API", mmm(h), "", "", "", ""],
    ]
    return ok(
        number=3,
        title=TITLE,
        metric="in-process query for the scan's symbols (PriceBoard.entries)",
        unit="ms",
        value=value,
        target=TARGET,
        baseline={
            "name": f"{len(symbols)} sequential GET /funding/{{symbol}} to our API "
            "(requests.Session, keep-alive)",
            "ms": h,
            "answered_200": http["ok"],
        },
        ratio=rounded(ratio),
        anchor=ANCHOR,
        passed=passed,
        measured={
            "inproc_entries_ms": e,
            "inproc_records_lookup_ms": r,
            "http_scan_ms": h,
            "http_per_symbol_ms": rounded(h["median"] / len(symbols)) if h["median"] else None,
            "symbols": len(symbols),
            "found_inproc": inproc["found"],
            "speedup_vs_http": rounded(None if not value else h["median"] / value),
        },
        rows=rows,
    )
