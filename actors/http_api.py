"""The HTTP API actor: serves the price board and the daemon's health on localhost.

Owns an :class:`~actors._http_server.HttpServer` (asyncio in a helper thread) started in
``on_start`` and stopped in ``_close``. Requests are answered in the server's thread straight
from the shared boards (no per-request message round trip). Once a second, on its own thread,
the actor asks the root supervisor for its health report (``ask`` with a timeout), recomputes
health and publishes it; ``/health`` returns that snapshot, so it is as cheap as a lookup.

Accepts: ``Tick(timer="health")``. Emits: ``HealthQuery`` (ask) to the supervisor named
``supervisor``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pykka

from actors._api_routes import ApiRoutes
from actors._health import compute_health, walk_children
from actors._http_server import HttpServer
from actors._status import render_metrics
from messages.control import HealthQuery, HealthReport, Tick
from supervisors.actor import SupervisedActor

if TYPE_CHECKING:
    from collections.abc import Sequence

    from actors._price_board import PriceBoard
    from actors._status import StatusBoard
    from supervisors.context import ChildContext

__all__ = ["HttpApiActor"]


class HttpApiActor(SupervisedActor):
    """``GET /funding/{symbol}``, batch, ``/health``, ``/funding/health``, ``/metrics``.

    Args:
        context: from the supervisor.
        board: the price board to serve.
        status: the status board (feed liveness, counters).
        host: bind address (``127.0.0.1`` by default: the API is local).
        port: bind port; 0 picks a free one (see :attr:`bound_port` via ``ask``).
        feeds: names of the feeds that must be live for the daemon to be healthy.
        supervisor: registry name of the supervisor whose health report to include.
        stale_after_s: per-value stale threshold.
        health_period_s: how often health is recomputed.
    """

    def __init__(  # noqa: PLR0913 - keyword-only settings
        self,
        *,
        context: ChildContext | None = None,
        board: PriceBoard,
        status: StatusBoard,
        host: str = "127.0.0.1",
        port: int = 8888,
        feeds: Sequence[str] = (),
        supervisor: str | None = None,
        stale_after_s: float = 180.0,
        health_period_s: float = 1.0,
    ) -> None:
        super().__init__(context=context)
        self._board = board
        self._status = status
        self._host = host
        self._port = port
        self._feeds = tuple(feeds)
        self._supervisor = supervisor
        self._stale_after_s = stale_after_s
        self._health_period_s = health_period_s
        self._server: HttpServer | None = None
        self._routes: ApiRoutes | None = None
        self._health: tuple[bool, dict[str, Any]] = (
            False,
            {"status": "starting", "reasons": ["starting"]},
        )
        self._health_report: HealthReport | None = None
        self._started_mono = 0.0

    def on_start(self) -> None:
        """Bind and serve (actor thread); a busy port fails the start with the OS error."""
        self._started_mono = self.clock.monotonic()
        self._routes = ApiRoutes(
            self._board, self.clock, self._stale_after_s, self._current_health, self._metrics
        )
        self._server = HttpServer(self._host, self._port, self._routes).start()
        self._refresh_health()
        if self.timers is not None:
            self.start_timer("health", period_s=self._health_period_s)
        self._log.info("serving on http://{}:{}", self._host, self._server.port)

    def _close(self) -> None:
        if self._server is not None and not self._server.stop(timeout=5.0):
            self._log.warning("HTTP server thread did not stop within 5 s")
        self._server = None

    @property
    def bound_port(self) -> int | None:
        """The port actually bound (useful with ``port=0``)."""
        return None if self._server is None else self._server.port

    def on_receive(self, message: Any) -> Any:
        """Dispatch (actor thread)."""
        match message:
            case Tick(timer="health"):
                self._refresh_health()
            case "port":
                return self.bound_port
            case _:
                return super().on_receive(message)
        return None

    def _refresh_health(self) -> None:
        if self._supervisor is not None:
            try:
                reply = self.registry.ask(self._supervisor, HealthQuery(), timeout=1.0)
            except (pykka.Timeout, pykka.ActorDeadError, LookupError) as exc:
                self._log.debug("no health report from {}: {}", self._supervisor, exc)
                reply = None
            self._health_report = reply if isinstance(reply, HealthReport) else None
        now = self.clock.monotonic()
        self._health = compute_health(
            statuses=self._status.statuses(),
            board=self._board,
            feeds=self._feeds,
            report=self._health_report,
            now_mono=now,
            stale_after_s=self._stale_after_s,
            status_max_age_s=max(5.0, 5 * self._health_period_s),
            uptime_s=now - self._started_mono,
        )
        routes = self._routes
        if routes is not None:
            self._status.count(
                self.name,
                {
                    "http_requests_total": routes.requests,
                    "http_not_found_total": routes.not_found,
                    "http_bad_requests_total": routes.bad_requests,
                },
            )

    def _current_health(self) -> tuple[bool, dict[str, Any]]:
        return self._health

    def _metrics(self) -> str:
        stats = self._board.stats
        gauges = {"cache_size": float(len(self._board)), "healthy": 1.0 if self._health[0] else 0.0}
        if stats.last_apply_mono is not None:
            gauges["data_age_seconds"] = self.clock.monotonic() - stats.last_apply_mono
        if self._health_report is not None:
            gauges["actor_restarts"] = float(
                sum(c.restarts for _, c in walk_children(self._health_report))
            )
        return render_metrics(self._status.counters(), gauges)
