"""7. Restart: crash each actor of the tree with an injected exception; time until it serves
again, and the ticks its siblings missed meanwhile.

The daemon is the production tree with every child's restart backoff set to zero and the
root's restart intensity raised, so repeated crashes can be measured back to back (see
:mod:`bench._daemon`). The production backoff of each child is reported next to the figures: a
real restart takes the measured time plus that delay. Every kind of child is crashed (of the
four kline shards, the first), ``restart_reps`` rounds.

Injections (nothing in the actors is changed; each makes the actor's own thread raise inside a
``tell`` handler, the path a bug would take):

- ``price-cache``: a ``MarkPrices`` whose event time is a string (``PriceBoard.apply`` raises);
- ``feed-market``: a ``FeedData`` for the live connection whose event times cannot be compared
  (the feed raises computing the newest event time);
- every other child (store, poster, REST gateway, HTTP API, volume scanner, a kline shard):
  pykka's ``ProxyCall`` to ``on_receive()`` without its argument (TypeError).

Serving again (judged against the target on the slowest of all the crashes): the API answered
``GET /funding/BTCUSDT`` with 200 on a new connection; a feed's new WebSocket connection is
open; any other actor is running (it answered a ``Ping``, so it handles whatever arrives from
then on). "Next frame applied" (cache,
market feed) adds the wait for the exchange's next push.

Ticks missed, per crash, from the injection until 0.3 s after the actor served again:

- API: ``GET /funding/BTCUSDT`` requests that failed (a poller in the harness asks every 2 ms
  over keep-alive);
- data path: mark-price pushes (the simulator's record) whose value, or a newer one, did not
  reach the price board within 1 s (the daemon records the board's newest event time after
  every applied frame);
- restarts of any other child.

They count as the siblings' misses except where they are the crashed actor's own loss (the
API's failed requests when the API crashed; data-path misses when the cache or the market feed
crashed), which are reported separately.
"""

from __future__ import annotations

import bisect
import contextlib
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from bench._report import fmt, ok
from bench._stats import rounded, summary

if TYPE_CHECKING:
    from bench._env import Env
    from bench._host import Host

__all__ = ["NAME", "run"]

NAME = "restart"
TITLE = "Restart of a crashed actor"
OVERHEAD_TARGET_S = 0.100
FRESHNESS_LIMIT_S = 1.0
SETTLE_S = 0.3
TARGET = {
    "text": "serving again <= 100 ms + backoff; siblings see no gap (0 missed ticks)",
    "metric": "worst_serving_minus_backoff_ms",
    "op": "<=",
    "value": 100.0,
    "sibling_missed_ticks": 0,
}
ANCHOR = {"text": "systemd restart, 5-10 s", "min_s": 5, "max_s": 10}
_POLL_EVERY_S = 0.002
_DATA_OWNERS = ("price-cache", "feed-market")


class _ApiWatch(threading.Thread):
    """``GET /funding/BTCUSDT`` every 2 ms over keep-alive; records ``(t, ok)``."""

    def __init__(self, port: int, limit_s: float) -> None:
        super().__init__(name="bench-api-watch", daemon=True)
        self.port = port
        self.limit_s = limit_s
        self.samples: list[tuple[float, bool]] = []
        self.stop_event = threading.Event()

    def _ask(self, sock: socket.socket) -> bool:
        sock.sendall(b"GET /funding/BTCUSDT HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            body += chunk
        return head[9:12] == b"200"

    def run(self) -> None:
        deadline = time.monotonic() + self.limit_s
        sock: socket.socket | None = None
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            now = time.monotonic()
            good = False
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
                good = self._ask(sock)
            except OSError:
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()
                sock = None
            self.samples.append((now, good))
            self.stop_event.wait(_POLL_EVERY_S)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def failures(self, start: float, end: float) -> tuple[int, int]:
        """``(failed, total)`` requests started in ``[start, end]``."""
        window = [good for t, good in list(self.samples) if start <= t <= end]
        return sum(1 for good in window if not good), len(window)


def _stale_pushes(
    pushes: list[tuple[int, float]], board: list[tuple[float, int | None]], start: float, end: float
) -> tuple[int, int]:
    """``(late, total)`` pushes in ``[start, end]`` whose value took > 1 s to reach the board."""
    times = [t for t, _ in board]
    events: list[int] = []
    newest = 0
    for _, event in board:  # the board's newest event time never goes back
        newest = max(newest, event or 0)
        events.append(newest)
    late = total = 0
    for event, pushed in pushes:
        if not start <= pushed <= end:
            continue
        total += 1
        at = bisect.bisect_left(events, event)
        if at == len(events) or times[at] - pushed > FRESHNESS_LIMIT_S:
            late += 1
    return late, total


def _probe(daemon: Host, actor: str) -> dict[str, Any]:
    probe: dict[str, Any] = daemon.call("restart_probe", actor, 15.0, timeout=40.0)
    ready = probe["t_ready"] if probe["t_ready"] is not None else time.monotonic()
    probe["t_end"] = ready + SETTLE_S
    time.sleep(max(0.0, probe["t_end"] - time.monotonic()))
    return probe


def _account(
    probe: dict[str, Any],
    actor: str,
    pushes: list[tuple[int, float]],
    board: list[tuple[float, int | None]],
    watch: _ApiWatch,
) -> dict[str, Any]:
    start, end = probe["t_inject"], probe["t_end"]
    late, pushes_total = _stale_pushes(pushes, board, start, end)
    failed, asked = watch.failures(start, end)
    other_restarts = sum(n for name, n in probe["restarts"].items() if name != actor)
    api_sibling = 0 if actor == "http-api" else failed
    data_sibling = 0 if actor in _DATA_OWNERS else late
    return {
        **probe,
        "api_requests_during": asked,
        "api_failed_requests": failed,
        "pushes_during": pushes_total,
        "pushes_late": late,
        "other_restarts": other_restarts,
        "sibling_missed_ticks": api_sibling + data_sibling + other_restarts,
        "own_losses": failed if actor == "http-api" else late if actor in _DATA_OWNERS else 0,
    }


def _order(children: list[str]) -> list[str]:
    """Every child once; of the kline shards only the first (they are the same actor type)."""
    out: list[str] = []
    shard_seen = False
    for name in children:
        if name.startswith("feed-klines-"):
            if shard_seen:
                continue
            shard_seen = True
        out.append(name)
    return out


def run(env: Env) -> dict[str, Any]:
    """Each actor type, ``restart_reps`` crashes, one after the other."""
    p = env.profile
    sim = env.host("sim")
    daemon = env.host("daemon")
    backoff = daemon.info["production_backoff"]
    actors = _order(daemon.info["children"])
    if p.restart_actors is not None:
        actors = [a for a in actors if a in p.restart_actors]
    watch = _ApiWatch(daemon.info["port"], limit_s=600.0)
    watch.start()
    raw: list[tuple[str, dict[str, Any]]] = []
    try:
        deadline = time.monotonic() + 30.0
        shards = any(a.startswith("feed-klines-") for a in actors)
        while shards and not daemon.call("kline_feeds_live") and time.monotonic() < deadline:
            time.sleep(0.2)
        pushed0, _ = sim.call("mark_state")
        first = time.monotonic()
        for _ in range(p.restart_reps):
            raw.extend((actor, _probe(daemon, actor)) for actor in actors)
        time.sleep(FRESHNESS_LIMIT_S + 0.2)  # the last window's pushes may still arrive
        pushes = sim.call("marks", pushed0)
        board = daemon.call("board_log", first - 2.0)
        final = daemon.call("children")
    finally:
        watch.stop_event.set()
        watch.join(5.0)
    probes: dict[str, list[dict[str, Any]]] = {a: [] for a in actors}
    for actor, probe in raw:
        probes[actor].append(_account(probe, actor, pushes, board, watch))

    per_actor: dict[str, Any] = {}
    worst = 0.0
    worst_actor = None
    misses = 0
    complete = True
    rows = []
    for actor, runs in probes.items():
        serving = [r["ready_s"] for r in runs]
        overhead = [
            None if r["ready_s"] is None else r["ready_s"] - (r["backoff_s"] or 0.0) for r in runs
        ]
        complete = complete and all(s is not None for s in serving)
        missed = sum(r["sibling_missed_ticks"] for r in runs)
        misses += missed
        over = summary(overhead, scale=1e3)
        # every crash must meet the target, not the typical one: judged on each actor's worst
        if over["max"] is not None and over["max"] > worst:
            worst, worst_actor = over["max"], actor
        prod = backoff.get(actor, {})
        per_actor[actor] = {
            "injected": runs[0]["injected"],
            "running_again_ms": summary((r["running_s"] for r in runs), scale=1e3),
            "serving_again_ms": summary(serving, scale=1e3),
            "next_frame_applied_ms": summary((r["next_frame_s"] for r in runs), scale=1e3),
            "backoff_applied_ms": summary((r["backoff_s"] for r in runs), scale=1e3),
            "serving_minus_backoff_ms": over,
            "sibling_missed_ticks": missed,
            "api_failed_requests": sum(r["api_failed_requests"] for r in runs),
            "api_requests_during": sum(r["api_requests_during"] for r in runs),
            "pushes_during": sum(r["pushes_during"] for r in runs),
            "pushes_late_over_1s": sum(r["pushes_late"] for r in runs),
            "other_restarts": sum(r["other_restarts"] for r in runs),
            "own_losses": sum(r["own_losses"] for r in runs),
            "production_backoff_s": {k: prod.get(k) for k in ("initial_s", "max_s", "jitter")},
            "crashes": len(runs),
        }
        s = per_actor[actor]["serving_again_ms"]
        rows.append(
            [
                f"{actor} (n={len(runs)})",
                f"{fmt(s['min'])} / {fmt(s['median'])} / {fmt(s['max'])} ms",
                f"<= 100 ms + {prod.get('initial_s', 0):g} s",
                "",
                f"{missed} missed",
                "5-10 s (systemd)",
            ]
        )
    passed = complete and worst <= OVERHEAD_TARGET_S * 1e3 and misses == 0
    return ok(
        number=7,
        title=TITLE,
        metric="slowest single restart: time to serve again, minus the restart backoff",
        unit="ms",
        value=rounded(worst),
        target=TARGET,
        baseline=None,
        ratio=None,
        anchor=ANCHOR,
        passed=passed,
        measured={
            "actors": per_actor,
            "worst_actor": worst_actor,
            "sibling_missed_ticks_total": misses,
            "mark_period_s": p.mark_period_s,
            "restart_backoff_in_this_run": "zero (production backoff listed per actor)",
            "children_at_end": final,
        },
        rows=rows,
        notes=[
            (
                "restart: serving again = API answers / feed reconnected / actor running; "
                "'missed' = sibling ticks (failed API requests, mark pushes > 1 s late, other "
                f"restarts); frames every {p.mark_period_s:g} s; restart backoff zero in "
                "this run (production adds the backoff shown in the target column)"
            ),
        ],
    )
