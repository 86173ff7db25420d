"""6. Open-interest freshness and REST weight, sustained, with the five-minute snapshot.

Binance has no open-interest stream: the poller samples ``/fapi/v1/openInterest`` for every
symbol of the liquid universe through the REST gateway's one weight budget, and every five
minutes on the clock it posts a snapshot of every TRADING symbol, polling the non-liquid ones
(spread over 270 s) inside the same budget. Measured from the
simulator's own REST request log (every request with its time, status, weight and the
``X-MBX-USED-WEIGHT-1m`` it answered), over the whole time the harness's daemon has been
polling: from its first ``openInterest`` request (about 10 s after start, at the universe's
first evaluation) through the benchmarks before this one (so under their load too) plus
``oi_extra_s`` more seconds, and at least ``oi_min_span_s`` in all.

- re-sample interval (the age a sample reaches before the next one): for every symbol polled
  in realtime, the time between two consecutive requests for it; p50 / p99 / max over all of
  them, and each symbol's worst, after the first ``Profile.oi_warm_up_s`` (full mode: 120 s;
  the start-up, when the scanner's backfill of every symbol shares the budget, is reported on
  its own; the shorter modes poll too briefly to leave it out, so theirs is included). Realtime
  symbols are told from snapshot-only ones by their request rate (a liquid symbol is asked
  every ~10 s, a non-liquid one once per snapshot, at least 270 s apart), so the snapshot's
  polls do not pass for stale realtime samples;
- weight: the mean weight per minute over the window (all REST users: realtime polls, the
  snapshot's sweep, the scanner's backfill …) and the highest ``X-MBX-USED-WEIGHT-1m`` the
  simulator reported (its calendar-minute counter); both must stay within 2000;
- 429 / 418 answers;
- the snapshot, from the poller's counters: snapshots completed, the last one's completeness
  (samples posted / TRADING symbols covered, failures omitted), its lateness (slot to post,
  which must stay below the 300 s period) and how many symbols it reused and polled. The full
  mode waits (at most ``SNAPSHOT_WAIT_S``) for one to complete when none has yet; if the sweep
  is still running then, it is judged from the request log on its pace (polls so far against
  an even spread over 270 s, none failed). The shorter modes report what the daemon did.

The target is stated for 340 liquid symbols among Binance's ~540 TRADING USDT perpetuals. The
simulator lists 650, so the harness gives every daemon an OI universe of that shape
(:meth:`bench._sim.SimHost.oi_plan`: liquid thresholds and ``oi_universe_exclude`` chosen from
the market's 24 h volumes so that 340 symbols stay liquid for the whole run and 540 are in
scope); the check requires at least that many realtime symbols. The daemon's code and its other
settings are the production ones.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from bench._report import fmt, not_available, ok
from bench._stats import rounded, summary

if TYPE_CHECKING:
    from bench._env import Env
    from bench._host import Host

__all__ = ["NAME", "run"]

NAME = "oi_freshness"
TITLE = "OI freshness and REST weight, liquid universe plus the 5-minute snapshot, sustained"
TARGET = {
    "text": (
        "every liquid symbol re-sampled <= 10.5 s and the 5-minute snapshot of every TRADING "
        "symbol complete before the next slot, within 2000 weight/min, 0 x 429"
    ),
    "metric": "oi_resample_interval_max_s",
    "op": "<=",
    "value": 10.5,
    "weight_per_min_max": 2000,
    "http_429": 0,
}
ANCHOR = {"text": "30 s (ops docs)", "s": 30}
MAX_INTERVAL_S = 10.5
MAX_WEIGHT_PER_MIN = 2000
SNAPSHOT_PERIOD_S = 300.0
SNAPSHOT_WAIT_S = 180.0
"""Full mode: how long to wait for a first completed snapshot. A sweep ends ~270 s after its
slot, and the first slot comes up to 300 s after the daemon's start, so waiting for certain
would break ``make bench``'s 10 minutes; a sweep still running then is judged on its pace."""
SNAPSHOT_SWEEP_S = 270.0
"""The poller spreads a snapshot's polls over this much of the period."""
REALTIME_MAX_GAP_S = 60.0
"""A symbol whose median gap between two requests is at most this is polled in realtime."""
_OI_PATH = "/fapi/v1/openInterest"
_POLLER = "oi-poller"


def _snapshot_counters(daemon: Any) -> dict[str, float]:
    return dict(daemon.call("counters", timeout=30.0).get(_POLLER, {}))


def _wait_for_snapshot(daemon: Any, wait_s: float) -> dict[str, float]:
    """The poller's counters once it completed a snapshot, or after ``wait_s`` (bounded)."""
    deadline = time.monotonic() + wait_s
    counters = _snapshot_counters(daemon)
    while counters.get("oi_snapshots_total", 0) < 1 and time.monotonic() < deadline:
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
        counters = _snapshot_counters(daemon)
    return counters


def _snapshot_report(counters: dict[str, float]) -> dict[str, Any]:
    done = int(counters.get("oi_snapshots_total", 0))
    report: dict[str, Any] = {
        "completed": done,
        "trading_symbols": int(counters.get("oi_trading_symbols", 0)),
        "reserve_per_min": rounded(counters.get("oi_snapshot_reserve_per_min", 0.0)),
        "failed_total": int(counters.get("oi_snapshot_failed_total", 0)),
        "overruns_total": int(counters.get("oi_snapshot_overruns_total", 0)),
        "skipped_total": int(counters.get("oi_snapshots_skipped_total", 0)),
    }
    if done:
        symbols = counters.get("oi_snapshot_last_symbols", 0)
        samples = counters.get("oi_snapshot_last_samples", 0)
        report["last"] = {
            "slot_ms": int(counters.get("oi_snapshot_last_slot_ms", 0)),
            "symbols": int(symbols),
            "samples": int(samples),
            "completeness": rounded(samples / symbols) if symbols else None,
            "reused": int(counters.get("oi_snapshot_last_reused", 0)),
            "polled": int(counters.get("oi_snapshot_last_polled", 0)),
            "failed": int(counters.get("oi_snapshot_last_failed", 0)),
            "without_mark": int(counters.get("oi_snapshot_last_without_mark", 0)),
            "lateness_s": rounded(counters.get("oi_snapshot_last_duration_seconds", 0.0)),
        }
    return report


_Row = tuple[int, str, str | None, int, int, int]
"""A request of the simulator's log: ``(time_ms, path, symbol, status, weight, used_1m)``."""


def _first_polls(sim: Host, wait_s: float) -> list[_Row] | None:
    """The simulator's request log once the poller's first request is in it (``None``: not
    within ``wait_s``; an error when a mode that means to measure waited that long)."""
    deadline = time.monotonic() + wait_s
    while True:
        rows: list[_Row] = sim.call("rest_log", 0, timeout=30.0)[1]
        if any(r[1] == _OI_PATH for r in rows):
            return rows
        if time.monotonic() >= deadline:
            if wait_s >= 30:
                raise RuntimeError(f"the poller sent no request within {wait_s:g} s")
            return None
        time.sleep(0.5)


def run(env: Env) -> dict[str, Any]:
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
    rows = _first_polls(sim, p.oi_wait_s)
    if rows is None:
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
    first_oi_ms = next(r[0] for r in rows if r[1] == _OI_PATH)
    polled_s = time.time() - first_oi_ms / 1000  # the simulator's clock is the wall clock
    time.sleep(max(p.oi_extra_s, p.oi_min_span_s - polled_s))
    counters = _wait_for_snapshot(daemon, SNAPSHOT_WAIT_S if p.name == "full" else 0.0)
    snapshot = _snapshot_report(counters)
    _, rows = sim.call("rest_log", 0, timeout=30.0)
    oi = [r for r in rows if r[1] == _OI_PATH]
    first_ms, last_ms = oi[0][0], rows[-1][0]
    window = [r for r in rows if r[0] >= first_ms]
    minutes = max(1e-9, (last_ms - first_ms) / 60_000)
    times, snapshot_only = _split_realtime(oi, (last_ms - first_ms) / 1000)
    intervals: list[float] = []
    startup: list[float] = []
    worst: dict[str, float] = {}
    warm_up_s = p.oi_warm_up_s
    warm_ms = first_ms + int(warm_up_s * 1000)
    for symbol, stamps in times.items():
        # a snapshot poll of a liquid symbol whose realtime sample was stale adds a request
        # between two realtime ones: it only shortens a gap, never hides a long one
        for a, b in itertools.pairwise(stamps):
            (startup if a < warm_ms else intervals).append((b - a) / 1000)
        gaps = [(b - a) / 1000 for a, b in itertools.pairwise(stamps) if a >= warm_ms]
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
            reason=(
                f"polling ran {span_s:.0f} s, {warm_up_s:g} s of it start-up (reported apart): "
                "no sustained re-sample interval"
            ),
            target=TARGET,
            anchor=ANCHOR,
        )
    throttled = sum(1 for r in window if r[3] in (429, 418))
    weight_per_min = sum(r[4] for r in window) / minutes
    peak_used = max((r[5] for r in window), default=0)
    value = iv["max"]
    last = snapshot.get("last")
    snapshot["in_progress"] = progress = _sweep_progress(
        window, snapshot_only, last_ms, snapshot["trading_symbols"] - len(times)
    )
    snapshot_ok = last is None or (
        last["failed"] == 0
        and last["samples"] == last["symbols"]
        and last["lateness_s"] is not None
        and last["lateness_s"] < SNAPSHOT_PERIOD_S
    )
    plan = env.oi_plan
    wanted = plan["liquid"] if plan is not None else 0
    passed = (
        value <= MAX_INTERVAL_S
        and len(times) >= wanted
        and max(weight_per_min, peak_used) <= MAX_WEIGHT_PER_MIN
        and throttled == 0
        and snapshot_ok
        and (last is not None or p.name != "full" or progress["on_pace"])
    )
    su = summary(startup)
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
            f"  first {warm_up_s:g} s (start-up backfill shares the budget; n={su['n']})",
            f"p50 {fmt(su['median'])} / p99 {fmt(su['p99'])} / max {fmt(su['max'])} s",
            "(reported)",
            "",
            "",
            "",
        ]
        if warm_up_s > 0
        else [
            "  (start-up included: this mode polls too briefly to leave it out)",
            "",
            "",
            "",
            "",
            "",
        ],
        [
            "  REST weight / min (mean; peak 1m counter)",
            f"{weight_per_min:,.0f} ; {peak_used:,}",
            "<= 2,000 ; <= 2,000",
            "",
            "",
            "",
        ],
        [f"  429/418 answers over {span_s:.0f} s", str(throttled), "0", "", "", ""],
        _snapshot_row(snapshot),
    ]
    return ok(
        number=6,
        title=TITLE,
        metric="largest time between two samples of the same symbol, after the start-up minutes",
        unit="s",
        value=value,
        target=TARGET,
        baseline=None,
        ratio=None,
        anchor=ANCHOR,
        passed=passed,
        measured={
            "resample_interval_s": iv,
            "startup_interval_s": summary(startup),
            "warm_up_s": warm_up_s,
            "oi_universe": None
            if plan is None
            else {k: v for k, v in plan.items() if k not in ("oi_universe_exclude", "spike_safe")},
            "worst_symbol_interval_s": summary(worst.values()),
            "symbols": len(times),
            "symbols_wanted": wanted,
            "symbols_sampled_once": len(single),
            "symbols_not_sampled_in_the_last_10_5_s": len(stale_at_end),
            "oi_requests": len(oi),
            "window_s": rounded(span_s),
            "weight_per_min_mean": rounded(weight_per_min),
            "used_weight_1m_peak": peak_used,
            "http_429_or_418": throttled,
            "snapshot": snapshot,
            "snapshot_only_symbols": len(snapshot_only),
            "snapshot_only_requests": sum(len(v) for v in snapshot_only.values()),
            "statuses": {
                str(k): sum(1 for r in window if r[3] == k) for k in {r[3] for r in window}
            },
        },
        rows=rows_out,
        notes=[
            (
                f"oi: measured over {span_s:.0f} s of polling, during the benchmarks before it "
                f"(their load included); {len(times)} symbols polled in realtime"
                + (
                    f" of an OI universe of {plan['scope']} shaped like Binance's (340 liquid of "
                    "~540; bench._sim.SimHost.oi_plan)"
                    if plan is not None
                    else " (the daemon's defaults on the simulator's volumes)"
                )
            ),
            (
                f"snapshot: {snapshot['completed']} completed, covering "
                f"{snapshot['trading_symbols']} TRADING symbols (~540 on Binance); "
                f"{len(snapshot_only)} symbols were polled only for it in the window"
                if snapshot["completed"]
                else "snapshot: none completed in this mode's window (they run at :00/:05 … "
                f"and take ~{SNAPSHOT_SWEEP_S:g} s; the full mode waits up to "
                f"{SNAPSHOT_WAIT_S:g} s, then judges the running sweep on its pace)"
            ),
        ],
    )


def _split_realtime(
    oi: list[tuple[int, str, str | None, int, int, int]], span_s: float
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Answered request times per symbol: (polled in realtime, polled only for the snapshot)."""
    every: dict[str, list[int]] = defaultdict(list)
    for r in oi:
        if r[2] is not None and r[3] == 200:
            every[r[2]].append(r[0])
    realtime: dict[str, list[int]] = {}
    snapshot_only: dict[str, list[int]] = {}
    for symbol, stamps in every.items():
        gaps = sorted((b - a) / 1000 for a, b in itertools.pairwise(stamps))
        frequent = len(stamps) >= 2 and gaps[len(gaps) // 2] <= REALTIME_MAX_GAP_S
        # a symbol asked once counts as realtime only when the window is too short to tell
        once = len(stamps) == 1 and span_s < 2 * REALTIME_MAX_GAP_S
        (realtime if frequent or once else snapshot_only)[symbol] = stamps
    return realtime, snapshot_only


def _sweep_progress(
    window: list[tuple[int, str, str | None, int, int, int]],
    snapshot_only: dict[str, list[int]],
    now_ms: int,
    planned: int,
) -> dict[str, Any]:
    """The current slot's sweep from the request log: polls so far against its even pace."""
    slot_ms = now_ms - now_ms % int(SNAPSHOT_PERIOD_S * 1000)
    rows = [r for r in window if r[0] >= slot_ms and r[1] == _OI_PATH and r[2] in snapshot_only]
    elapsed_s = (now_ms - slot_ms) / 1000
    expected = max(0, planned) * min(1.0, elapsed_s / SNAPSHOT_SWEEP_S)
    polled = len({r[2] for r in rows})
    failed = sum(1 for r in rows if r[3] != 200)
    return {
        "slot_ms": slot_ms,
        "elapsed_s": rounded(elapsed_s),
        "planned_polls": planned,
        "polled": polled,
        "expected_by_now": rounded(expected),
        "failed": failed,
        # one spacing of slack: the next poll may be due this very moment, or in flight
        "on_pace": planned > 0 and failed == 0 and polled >= math.floor(expected) - 2,
    }


def _snapshot_row(snapshot: dict[str, Any]) -> list[str]:
    last = snapshot.get("last")
    if last is None:
        progress = snapshot.get("in_progress") or {}
        text = (
            f"sweep in progress: {progress.get('polled')} of {progress.get('planned_polls')} "
            f"polled after {fmt(progress.get('elapsed_s'))} s (pace: "
            f"{fmt(progress.get('expected_by_now'))}), {progress.get('failed')} failed"
        )
        return ["  5-min snapshot (none completed yet)", text, "complete, < 300 s", "", "", ""]
    return [
        f"  5-min snapshot ({snapshot['completed']} done): samples / symbols; lateness",
        (
            f"{last['samples']} / {last['symbols']} ({last['reused']} reused, "
            f"{last['polled']} polled, {last['failed']} failed); {fmt(last['lateness_s'])} s"
        ),
        "all; < 300 s",
        "",
        "",
        "",
    ]
