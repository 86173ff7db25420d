"""8. Memory: the daemon's RSS after warm-up, after N feed reconnects, and after a long run.

The daemon runs alone in its process (the simulator and the harness are other processes), so
``VmRSS`` is the daemon's own. It is the harness's daemon (the production tree with every feed's
reconnect backoff set to zero, see :mod:`bench._daemon`; the crashes of the restart benchmark
happened before the warm-up reading), against the shared simulator (650 symbols, a mark frame
every 0.25 s = 4 x Binance's cadence, tickers every second, every kline stream every 250 ms as
on Binance: ~2,600 kline frames/s).

1. warm-up: ``memory_warmup_s`` of normal traffic, then a reading;
2. N reconnects: ``sim.faults.drop_connections()`` (TCP abort of every connection: the market
   feed and each kline shard), waiting each time until every feed that was connected has
   connected again (its ``feed_connects_total`` went up), readings along the way;
3. a long run: ``memory_run_s`` of that traffic, readings along the way.

A reading is RSS, threads and open file descriptors, after a ``gc.collect()`` in the daemon.
A leak grows with what causes it, so "flat" is judged on the trend, not on one step (the
allocator and SQLite's page caches grow in steps: full runs showed one step of 0.5-1.5 MiB
between two readings, flat before and after): over each phase's second half the RSS slope,
with the largest single step between two readings taken out (:func:`_slope`; the step is
reported, and must stay under :data:`MAX_STEP_KB`), stays under :data:`MAX_SLOPE_KB_PER_100`
KiB per 100 reconnects / :data:`MAX_SLOPE_KB_PER_MIN` KiB per minute (runs of 200 reconnects /
30 s or more), threads and descriptors do not grow, and the total growth stays under
:data:`MAX_GROWTH_KB`. A leak per reconnect or per minute grows between every two readings, so
it still shows in the slope of the rest.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bench._report import fmt, ok
from bench._stats import rounded, summary

if TYPE_CHECKING:
    from bench._env import Env
    from bench._host import Host

__all__ = ["NAME", "run"]

NAME = "memory"
TITLE = "Memory: RSS over reconnects and a long run"
MAX_SLOPE_KB_PER_100 = 64
MAX_SLOPE_KB_PER_MIN = 512
MAX_GROWTH_KB = 8192
MAX_STEP_KB = 4096
MIN_SOAK_FOR_TREND_S = 30.0
MIN_RECONNECTS_FOR_TREND = 200
TARGET = {
    "text": "flat RSS over 1000 reconnects and a long soak (second-half trend <= 64 KiB per 100 "
    "reconnects and <= 512 KiB/min, total growth <= 8 MiB, threads and fds not growing)",
    "metric": "rss_growth_kb",
    "op": "<=",
    "value": MAX_GROWTH_KB,
}
ANCHOR = {"text": "- (the original was never measured)"}

Reading = tuple[float, int, int, int]
"""``(x, rss_kb, threads, fds)``."""


def _largest_step(points: list[Reading]) -> tuple[int, int]:
    """``(index, KiB)`` of the largest RSS rise between two readings of the second half."""
    half = points[len(points) // 2 :]
    steps = [(i, half[i][1] - half[i - 1][1]) for i in range(1, len(half))]
    return max(steps, key=lambda s: s[1], default=(0, 0))


def _slope(points: list[Reading]) -> float | None:
    """Least-squares slope of RSS over ``x`` in the second half of the readings, with the
    largest single step (:func:`_largest_step`) taken out of the readings after it."""
    half = points[len(points) // 2 :]
    if len(half) < 2:
        return None
    at, size = _largest_step(points)
    if size > 0:
        half = [(x, rss - (size if i >= at else 0), t, f) for i, (x, rss, t, f) in enumerate(half)]
    n = len(half)
    mx = sum(p[0] for p in half) / n
    my = sum(p[1] for p in half) / n
    var = sum((p[0] - mx) ** 2 for p in half)
    if var == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in half) / var


FD_STEP_ALLOWED = 1
"""One more descriptor over a half is a pool opening a connection late (a REST or backend
keep-alive socket), not a leak: a descriptor leaked per reconnect would show hundreds."""


def _growing(points: list[Reading], index: int) -> int:
    """How much column ``index`` (2 threads, 3 fds) grew over the second half."""
    half = points[len(points) // 2 :]
    return int(half[-1][index] - half[0][index]) if len(half) >= 2 else 0


def _reading(daemon: Host, x: float) -> Reading:
    m = daemon.call("memory")
    return (x, int(m["rss_kb"]), int(m["threads"]), int(m["fds"]))


def _reconnect(daemon: Host, sim: Host, count: int, samples: int) -> dict[str, Any]:
    every = max(1, count // samples)
    points: list[Reading] = []
    timeouts = 0
    durations: list[float] = []
    t0 = time.monotonic()
    feeds: list[int] = []
    for i in range(1, count + 1):
        before = daemon.call("connected_feeds")
        feeds.append(len(before))
        started = time.monotonic()
        sim.call("drop")
        after = daemon.call("wait_connects", before, 10.0, timeout=20.0)
        durations.append(time.monotonic() - started)
        if any(after[n] <= before[n] for n in before):
            timeouts += 1
            if timeouts > 5:
                break
        if i % every == 0 or i == count:
            points.append(_reading(daemon, i))
    slope = _slope(points)
    return {
        "reconnects": count,
        "timeouts": timeouts,
        "seconds": time.monotonic() - t0,
        "readings": points,
        "rss_kb": summary(p[1] for p in points),
        "drop_to_reconnected_ms": summary(durations, scale=1e3),
        "feeds_reconnected_each_time": summary(feeds),
        "slope_kb_per_100": None if slope is None else rounded(slope * 100),
        "largest_step_kb": _largest_step(points)[1],
        "threads_growth_second_half": _growing(points, 2),
        "fds_growth_second_half": _growing(points, 3),
    }


def _soak(daemon: Host, duration_s: float, samples: int) -> dict[str, Any]:
    points: list[Reading] = []
    frames0 = daemon.call("frames")
    by_feed0 = daemon.call("frames_by_feed")
    t0 = time.monotonic()
    step = duration_s / max(1, samples)
    for k in range(1, samples + 1):
        time.sleep(max(0.0, t0 + k * step - time.monotonic()))
        points.append(_reading(daemon, time.monotonic() - t0))
    slope = _slope(points)
    return {
        "seconds": time.monotonic() - t0,
        "frames_applied": daemon.call("frames") - frames0,
        "frames_received": {
            name: count - by_feed0.get(name, 0)
            for name, count in daemon.call("frames_by_feed").items()
        },
        "readings": points,
        "rss_kb": summary(p[1] for p in points),
        "slope_kb_per_min": None if slope is None else rounded(slope * 60),
        "largest_step_kb": _largest_step(points)[1],
        "threads_growth_second_half": _growing(points, 2),
        "fds_growth_second_half": _growing(points, 3),
    }


def run(env: Env) -> dict[str, Any]:
    """Warm-up, reconnects, soak; readings at each step."""
    p = env.profile
    sim = env.host("sim")
    daemon = env.host("daemon")
    deadline = time.monotonic() + 30.0
    while not daemon.call("kline_feeds_live") and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(p.memory_warmup_s)
    warm = daemon.call("memory")
    reconnects = _reconnect(daemon, sim, p.memory_reconnects, p.memory_samples)
    time.sleep(min(1.0, p.memory_warmup_s))
    after_reconnects = daemon.call("memory")
    soak = _soak(daemon, p.memory_run_s, p.memory_samples)
    after_soak = daemon.call("memory")

    growth_reconnects = after_reconnects["rss_kb"] - warm["rss_kb"]
    growth_soak = after_soak["rss_kb"] - after_reconnects["rss_kb"]
    growth_total = after_soak["rss_kb"] - warm["rss_kb"]
    changed = {
        "threads": after_soak["threads"] - warm["threads"],
        "fds": after_soak["fds"] - warm["fds"],
    }
    checks = {
        # a trend from a few dozen reconnects or a few seconds is allocator noise: judged on
        # runs of 200 reconnects / 30 s and more (shorter runs: total growth only)
        "reconnects: RSS trend": reconnects["reconnects"] < MIN_RECONNECTS_FOR_TREND
        or (reconnects["slope_kb_per_100"] or 0) <= MAX_SLOPE_KB_PER_100,
        "soak: RSS trend": soak["seconds"] < MIN_SOAK_FOR_TREND_S
        or (soak["slope_kb_per_min"] or 0) <= MAX_SLOPE_KB_PER_MIN,
        "total growth": growth_total <= MAX_GROWTH_KB,
        "one step at most, and small": max(reconnects["largest_step_kb"], soak["largest_step_kb"])
        <= MAX_STEP_KB,
        "threads not growing": reconnects["threads_growth_second_half"] <= 0
        and soak["threads_growth_second_half"] <= 0,
        "fds not growing": reconnects["fds_growth_second_half"] <= FD_STEP_ALLOWED
        and soak["fds_growth_second_half"] <= FD_STEP_ALLOWED,
        "every reconnect completed": reconnects["timeouts"] == 0,
    }
    grown_threads = reconnects["threads_growth_second_half"] + soak["threads_growth_second_half"]
    grown_fds = reconnects["fds_growth_second_half"] + soak["fds_growth_second_half"]
    mib = 1 / 1024
    kline_frames = int(
        sum(n for name, n in soak["frames_received"].items() if name != "feed-market")
    )
    rows = [
        ["RSS after warm-up", f"{fmt(warm['rss_kb'] * mib)} MiB", "", "", "", "-"],
        [
            f"  after {p.memory_reconnects} reconnects (+growth)",
            f"{fmt(after_reconnects['rss_kb'] * mib)} MiB ({growth_reconnects:+,} KiB)",
            "trend <= 64 KiB/100",
            "",
            f"{fmt(reconnects['slope_kb_per_100'])} KiB/100",
            "",
        ],
        [
            f"  after {soak['seconds']:.0f} s of traffic (+growth)",
            f"{fmt(after_soak['rss_kb'] * mib)} MiB ({growth_soak:+,} KiB)",
            "trend <= 512 KiB/min",
            "",
            f"{fmt(soak['slope_kb_per_min'])} KiB/min",
            "",
        ],
        [
            "  threads / fds vs warm-up (2nd-half growth)",
            f"{changed['threads']:+d} / {changed['fds']:+d} ({grown_threads:+d} / {grown_fds:+d})",
            "not growing",
            "",
            "",
            "",
        ],
    ]
    failed = [name for name, good in checks.items() if not good]
    return ok(
        number=8,
        title=TITLE,
        metric="RSS growth from warm-up to the end (reconnects + soak)",
        unit="KiB",
        value=growth_total,
        target=TARGET,
        baseline=None,
        ratio=None,
        anchor=ANCHOR,
        passed=not failed,
        measured={
            "after_warmup": warm,
            "after_reconnects": after_reconnects,
            "after_soak": after_soak,
            "growth_kb": {
                "reconnects": growth_reconnects,
                "soak": growth_soak,
                "total": growth_total,
            },
            "threads_fds_vs_warmup": changed,
            "checks": checks,
            "reconnects": reconnects,
            "soak": soak,
            "mark_period_s": p.mark_period_s,
        },
        rows=rows,
        notes=[
            (
                f"memory: {reconnects['reconnects']} reconnects (of every feed) took "
                f"{reconnects['seconds']:.1f} s; the soak applied {soak['frames_applied']:,} "
                f"mark frames and received {kline_frames:,} kline frames"
                + (f"; missed: {', '.join(failed)}" if failed else "")
            ),
        ],
    )
