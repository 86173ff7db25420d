"""6. Open-interest freshness and REST weight, sustained.

Binance has no open-interest stream: the poller samples ``/fapi/v1/openInterest`` for every
symbol of the liquid universe through the REST gateway's one weight budget. Measured from the
simulator's own REST request log (every request with its time, status, weight and the
``X-MBX-USED-WEIGHT-1m`` it answered), over the whole time the harness's daemon has been
polling: from its first ``openInterest`` request (about 10 s after start, at the universe's
first evaluation) through the benchmarks before this one (so under their load too) plus
``oi_extra_s`` more seconds, and at least ``oi_min_span_s`` in all.

- re-sample interval: for every polled symbol, the time between two consecutive requests for
  it; p50 / p99 / max over all of them, and each symbol's worst;
- weight: the mean weight per minute over the window (all REST users, not only the poller) and
  the highest ``X-MBX-USED-WEIGHT-1m`` the simulator reported (its calendar-minute counter);
- 429 / 418 answers.

The target is stated for 340 symbols (the real liquid universe); the simulator's universe gives
its own count, reported as ``symbols``.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from bench._report import fmt, not_available, ok
from bench._stats import rounded, summary

if TYPE_CHECKING:
    from bench._env import Env

__all__ = ["NAME", "run"]

NAME = "oi_freshness"
TITLE = "OI freshness and REST weight, liquid universe, sustained"
TARGET = {
    "text": "every symbol re-sampled <= 10.5 s within 2000 weight/min, 0 x 429",
    "metric": "oi_resample_interval_max_s",
    "op": "<=",
    "value": 10.5,
    "weight_per_min_max": 2000,
    "http_429": 0,
}
ANCHOR = {"text": "30 s (ops docs)", "s": 30}
MAX_INTERVAL_S = 10.5
MAX_WEIGHT_PER_MIN = 2000
_OI_PATH = "/fapi/v1/openInterest"


def run(env: Env) -> dict[str, Any]:  # noqa: C901 - one report
    """Wait for the poller, let it run a little more, read the simulator's request log."""
    p = env.profile
    sim = env.host("sim")
    daemon = env.host("daemon")
    if "oi-poller" not in daemon.info["children"]:
        return not_available(
            number=6,
            title=TITLE,
            reason="the supervision tree has no open-interest poller (oi-poller) yet",
            target=TARGET,
            anchor=ANCHOR,
        )
    deadline = time.monotonic() + p.oi_wait_s
    rows: list[tuple[int, str, str | None, int, int, int]] = []
    while True:
        _, rows = sim.call("rest_log", 0, timeout=30.0)
        if any(r[1] == _OI_PATH for r in rows):
            break
        if time.monotonic() >= deadline:
            if p.oi_wait_s >= 30:
                raise RuntimeError(f"the poller sent no request within {p.oi_wait_s:g} s")
            return not_available(
                number=6,
                title=TITLE,
                reason=(
                    "the poller had not started yet (its first universe evaluation comes "
                    f"~10 s after start; this mode waits {p.oi_wait_s:g} s)"
                ),
                target=TARGET,
                anchor=ANCHOR,
            )
        time.sleep(0.5)
    first_oi_ms = next(r[0] for r in rows if r[1] == _OI_PATH)
    polled_s = time.time() - first_oi_ms / 1000  # the simulator's clock is the wall clock
    time.sleep(max(p.oi_extra_s, p.oi_min_span_s - polled_s))
    _, rows = sim.call("rest_log", 0, timeout=30.0)
    oi = [r for r in rows if r[1] == _OI_PATH]
    first_ms, last_ms = oi[0][0], rows[-1][0]
    window = [r for r in rows if r[0] >= first_ms]
    minutes = max(1e-9, (last_ms - first_ms) / 60_000)
    times: dict[str, list[int]] = defaultdict(list)
    for r in oi:
        if r[2] is not None and r[3] == 200:
            times[r[2]].append(r[0])
    intervals: list[float] = []
    worst: dict[str, float] = {}
    for symbol, stamps in times.items():
        gaps = [(b - a) / 1000 for a, b in itertools.pairwise(stamps)]
        intervals.extend(gaps)
        if gaps:
            worst[symbol] = max(gaps)
    span_s = (last_ms - first_ms) / 1000
    # informational: a symbol that joined the universe late is sampled once, one that left it
    # stops being sampled; the request log cannot tell those from starvation
    single = [s for s, stamps in times.items() if len(stamps) < 2]
    stale_at_end = [
        s for s, stamps in times.items() if (last_ms - stamps[-1]) / 1000 > MAX_INTERVAL_S
    ]
    iv = summary(intervals)
    if iv["n"] == 0:
        return not_available(
            number=6,
            title=TITLE,
            reason=f"polling ran {span_s:.0f} s, less than one re-sample interval",
            target=TARGET,
            anchor=ANCHOR,
        )
    throttled = sum(1 for r in window if r[3] in (429, 418))
    weight_per_min = sum(r[4] for r in window) / minutes
    peak_used = max((r[5] for r in window), default=0)
    value = iv["max"]
    passed = (
        value is not None
        and value <= MAX_INTERVAL_S
        and weight_per_min <= MAX_WEIGHT_PER_MIN
        and throttled == 0
    )
    rows_out = [
        [
            f"re-sample interval, {len(times)} symbols (n={iv['n']})",
            (
                f"{fmt(iv['min'])} / p50 {fmt(iv['median'])} / p99 {fmt(iv['p99'])} / "
                f"{fmt(iv['max'])} s"
            ),
            "<= 10.5 s",
            "",
            "",
            "30 s",
        ],
        [
            "  REST weight / min (mean; peak 1m counter)",
            f"{weight_per_min:,.0f} ; {peak_used:,}",
            "<= 2,000",
            "",
            "",
            "",
        ],
        [f"  429/418 answers over {span_s:.0f} s", str(throttled), "0", "", "", ""],
    ]
    return ok(
        number=6,
        title=TITLE,
        metric="largest time between two samples of the same symbol",
        unit="s",
        value=value,
        target=TARGET,
        baseline=None,
        ratio=None,
        anchor=ANCHOR,
        passed=passed,
        measured={
            "resample_interval_s": iv,
            "worst_symbol_interval_s": summary(worst.values()),
            "symbols": len(times),
            "symbols_sampled_once": len(single),
            "symbols_not_sampled_in_the_last_10_5_s": len(stale_at_end),
            "oi_requests": len(oi),
            "window_s": rounded(span_s),
            "weight_per_min_mean": rounded(weight_per_min),
            "used_weight_1m_peak": peak_used,
            "http_429_or_418": throttled,
            "statuses": {
                str(k): sum(1 for r in window if r[3] == k) for k in {r[3] for r in window}
            },
        },
        rows=rows_out,
        notes=[
            (
                f"oi: measured over {span_s:.0f} s of polling, during the benchmarks before it "
                f"(their load included); {len(times)} symbols in the simulator's liquid "
                "universe (the target is stated for 340)"
            ),
        ],
    )
