"""The REST gateway: every Binance REST call of the process, under one weight budget.

Protocol (messages in :mod:`messages.rest`)::

    caller ──RestRequest──► gateway ──RestResponse──► reply_to or caller (registry, at send)
    anyone ──GetRestGatewayStatus (ask)──► gateway ──► RestGatewayStatus
    gateway ──RestResponse(path="/fapi/v1/exchangeInfo")──► exchange_info_to names, for
              the gateway's own fetches (at start, then every exchange_info_every_s)
    worker threads ──RestCallResult──► gateway;  timer service ──RestRelease / Tick──► gateway

Every accepted request gets exactly one ``RestResponse``, also when it is refused, dropped or
the gateway stops (``error_type="stopped"``). Callers still keep their own timeout: a crash
loses the message being handled at that instant (it is redelivered once to the successor).

What the gateway does, in its own thread and never sleeping:

- computes each request's weight (:func:`~actors._rest_client.endpoint_weight`) and asks the
  :class:`~actors._weight_budget.WeightBudget`, whose minutes are Binance server-time minutes
  (the :class:`~supervisors.clock.ServerTimeOffset`, measured with ``/fapi/v1/time`` at start
  and every ``time_sync_every_s``); the limit comes from ``exchangeInfo.rateLimits``, the
  target is ``target_fraction`` of it (2000 of 2400); every ``X-MBX-USED-WEIGHT-1m`` raises
  the count (when sent and answered in the same minute); ``exchangeInfo`` and server-time
  calls jump their queue and may use the reserve above the target (up to 2200), so a minute
  spent by OI polling and backfills does not hold back a restarted scanner's shard plan;
- requests that cannot leave wait in a bounded queue, FIFO per priority, released by a
  one-shot timer when budget returns; when it is full the newest request of the lowest class
  present is dropped (``queue_full``);
- HTTP 429 pauses *all* requests until ``Retry-After`` (else the next minute), 418 freezes them
  until the ban ends (see :func:`~actors._rest_client.pause_until_ms`), plus
  ``pause_margin_s``; the request goes back to the front of its queue;
- 5xx, 408, timeouts and connection errors are retried after jittered delays, at most
  ``max_attempts`` attempts in all, each paying its weight; any other 4xx is answered at once;
- publishes :class:`~messages.rest.RestGatewayStatus` and counters on the status board, and
  ``rest_weight_used_total`` per caller under the name ``"<gateway>/<caller>"``.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from actors._rest_client import (
    RestClient,
    RestTimeouts,
    RestWorkers,
    endpoint_weight,
    error_body,
    pause_until_ms,
    request_weight_limit,
)
from actors._weight_budget import MINUTE_MS, WeightBudget, header_counts
from messages.control import Tick
from messages.rest import (
    GetRestGatewayStatus,
    RestCallResult,
    RestGatewayStatus,
    RestRelease,
    RestRequest,
    RestResponse,
    rest_request,
)
from messages.types import TimestampMs
from supervisors.actor import SupervisedActor
from supervisors.backoff import BackoffPolicy
from supervisors.clock import ServerTimeOffset

if TYPE_CHECKING:
    from collections.abc import Sequence

    from actors._status import StatusBoard
    from messages._base import Message
    from messages.rest import RestErrorType
    from supervisors.context import ChildContext
    from supervisors.timers import TimerHandle

__all__ = ["RestGatewayActor"]

_PRIORITIES = ("high", "normal", "low")
_CONTROL_PATHS = frozenset({"/fapi/v1/exchangeInfo", "/fapi/v1/time"})
"""Control-plane calls (tiny weights that the universe, the shard plan and the server-time
offset wait on): they go to the front of their queue and may use the budget's reserve."""
_RETRY_STATUS = frozenset({408, 500, 502, 503, 504})


@dataclass(slots=True, eq=False)
class _Pending:
    """One accepted request and its attempts so far."""

    request: RestRequest
    weight: int
    accepted: float  # monotonic
    attempts: int = 0
    throttled: int = 0
    sent_server_ms: int = 0
    waited_s: float | None = None
    last: RestCallResult | None = None


class RestGatewayActor(SupervisedActor):
    """The one door to Binance REST (see the module docstring).

    Args:
        context: from the supervisor.
        base_url: ``https://fapi.binance.com`` (or the simulator's ``rest_url``).
        status: the status board.
        server_time: the app's shared offset (a private one when ``None``).
        budget: a budget shared by every incarnation, so pauses and counts survive restarts.
        target_fraction: the share of the exchange's limit spent per minute.
        max_queued: requests waiting at most. max_in_flight: worker threads.
        max_attempts: attempts per request on retryable failures (also the number of 429/418
            answers one request may get before it is given up). retry: the retry delays.
        timeouts: connect/read timeouts of every call.
        pause_margin_s: added to every 429/418 pause (server time offset error).
        time_sync_every_s, exchange_info_every_s: refresh periods (``None``: only at start).
        exchange_info_to: names told each exchangeInfo the gateway fetches itself.
    """

    def __init__(  # noqa: PLR0913 - keyword-only settings
        self,
        *,
        context: ChildContext | None = None,
        base_url: str,
        status: StatusBoard,
        server_time: ServerTimeOffset | None = None,
        budget: WeightBudget | None = None,
        target_fraction: float = 2000 / 2400,
        max_queued: int = 1000,
        max_in_flight: int = 4,
        max_attempts: int = 3,
        retry: BackoffPolicy | None = None,
        timeouts: RestTimeouts | None = None,
        pause_margin_s: float = 0.25,
        time_sync_every_s: float | None = 300.0,
        exchange_info_every_s: float | None = 3600.0,
        exchange_info_to: Sequence[str] = (),
    ) -> None:
        super().__init__(context=context)
        if not 0 < target_fraction <= 1 or min(max_queued, max_in_flight, max_attempts) < 1:
            raise ValueError("target_fraction must be in (0, 1]; counts must be at least 1")
        self._base_url, self._status, self._fraction = base_url, status, target_fraction
        self._offset = server_time or ServerTimeOffset(self.clock)
        self._budget = budget or WeightBudget(limit=2400, target=round(2400 * target_fraction))
        self._max_queued, self._max_in_flight = max_queued, max_in_flight
        self._max_attempts = max_attempts
        self._retry = retry or BackoffPolicy(initial_s=0.25, max_s=5.0, jitter=0.5)
        self._timeouts, self._margin_ms = timeouts or RestTimeouts(), round(pause_margin_s * 1000)
        self._periods = {"rest-time": time_sync_every_s, "rest-info": exchange_info_every_s}
        self._exchange_info_to = tuple(exchange_info_to)
        self._queues: dict[str, deque[_Pending]] = {p: deque() for p in _PRIORITIES}
        self._retries: list[tuple[float, int, _Pending]] = []  # (due, ticket, pending) heap
        self._deadlines: list[tuple[float, int, _Pending]] = []  # (expiry, seq, pending) heap
        self._in_flight: dict[int, _Pending] = {}
        self._tickets = itertools.count(1)
        self._workers: RestWorkers | None = None
        self._release: TimerHandle | None = None
        self._release_due = 0.0
        self._blocked_until = 0.0  # monotonic: the budget refuses everything until then
        self._blocked_by_budget = False  # ... because the minute is spent (not a 429/418)
        self._counts: Counter[str] = Counter()

    # --- lifecycle (actor thread) -------------------------------------------------------------

    def on_start(self) -> None:
        """Start the workers and timers; queue the server-time and exchangeInfo fetches."""
        if self.timers is None:
            raise RuntimeError(f"{self.path} needs a timer service")
        # One pooled connection per worker thread, or urllib3 discards (and re-opens) them.
        client = RestClient(
            self._base_url, self.clock, timeouts=self._timeouts, pool_size=self._max_in_flight
        )
        tell, threads = self.actor_ref.tell, self._max_in_flight
        self._workers = RestWorkers(self.name, client, tell, threads=threads)
        for timer, period in self._periods.items():
            if period:
                self.start_timer(timer, period_s=period)
        self._fetch_own("/fapi/v1/time")
        self._fetch_own("/fapi/v1/exchangeInfo")
        self._pump()
        self._publish()

    def _close(self) -> None:
        if self._release is not None:
            self._release.cancel()
        waiting = [p for q in self._queues.values() for p in q]
        waiting += [p for _, _, p in self._retries] + list(self._in_flight.values())
        for pending in waiting:
            self._answer(pending, "stopped", "the REST gateway stopped; ask again")
        if self._workers is not None and not self._workers.stop(timeout=1.0):
            self._log.info("REST worker threads still in a call; they end at its timeout")

    def redeliverable(self, message: Message) -> bool:
        """Only a request deserves a second try; results and timer messages are stale."""
        return isinstance(message, RestRequest)

    # --- messages (actor thread) --------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        """Dispatch, then send what may leave and publish the status."""
        match message:
            case RestRequest():
                self._handle_request(message)
            case RestCallResult():
                self._handle_result(message)
            case RestRelease():
                self._release = None
            case Tick(timer="rest-time"):
                self._fetch_own("/fapi/v1/time")
            case Tick(timer="rest-info"):
                self._fetch_own("/fapi/v1/exchangeInfo")
            case GetRestGatewayStatus():
                return self._snapshot()
            case _:
                return super().on_receive(message)
        self._pump()
        self._publish()
        return None

    def _fetch_own(self, path: str) -> None:
        name = path.rsplit("/", 1)[-1]
        self._handle_request(rest_request(path, request_id=name, caller=self.name, priority="high"))

    def _handle_request(self, request: RestRequest) -> None:
        self._counts["rest_requests_total"] += 1
        weight = endpoint_weight(request.path, {p.name: p.value for p in request.params})
        pending = _Pending(request, weight or 0, self.clock.monotonic())
        if weight is None or weight > self._budget.target or request.priority not in _PRIORITIES:
            why = f"{request.path} (weight {weight}), priority {request.priority!r}"
            self._answer(pending, "invalid_request", f"cannot be sent: {why}")
        else:
            self._enqueue(pending, front=request.path in _CONTROL_PATHS)
            if request.expires_after_s is not None:
                expiry = pending.accepted + request.expires_after_s
                heapq.heappush(self._deadlines, (expiry, next(self._tickets), pending))

    def _enqueue(self, pending: _Pending, *, front: bool = False) -> None:
        if sum(map(len, self._queues.values())) >= self._max_queued:
            lowest = next(p for p in reversed(_PRIORITIES) if self._queues[p])
            if _PRIORITIES.index(pending.request.priority) >= _PRIORITIES.index(lowest):
                self._answer(pending, "queue_full", f"{self._max_queued} requests queued")
                return
            self._answer(self._queues[lowest].pop(), "queue_full", "dropped for a higher class")
        queue = self._queues[pending.request.priority]
        queue.appendleft(pending) if front else queue.append(pending)

    def _pump(self) -> None:
        """Send what the budget allows; arm the release timer for the rest."""
        now = self.clock.monotonic()
        while self._retries and self._retries[0][0] <= now:
            self._enqueue(heapq.heappop(self._retries)[2], front=True)
        while self._deadlines and self._deadlines[0][0] <= now:
            pending = heapq.heappop(self._deadlines)[2]
            waiting = self._queues[pending.request.priority]
            if pending.attempts == 0 and pending in waiting:  # neither answered nor sent yet
                waiting.remove(pending)
                self._answer(pending, "expired", f"not sent in {pending.request.expires_after_s}s")
        while len(self._in_flight) < self._max_in_flight:
            queue = next((self._queues[p] for p in _PRIORITIES if self._queues[p]), None)
            if queue is None:
                break
            pending, server_ms = queue[0], self._offset.now_ms()
            control = pending.request.path in _CONTROL_PATHS
            if now < self._blocked_until and not (control and self._blocked_by_budget):
                break
            decision = self._budget.acquire(
                pending.weight, server_ms, pending.request.caller, reserve=control
            )
            if not decision.granted:
                self._blocked_until = max(self._blocked_until, now + decision.wait_s)
                self._blocked_by_budget = decision.reason == "budget"
                self._counts[f"rest_waits_{decision.reason.replace('-', '_')}_total"] += 1
                break
            self._send(queue.popleft(), server_ms, now)
        blocked = self._blocked_until > now and any(self._queues.values())
        due = [self._blocked_until] if blocked else []
        due += [heap[0][0] for heap in (self._retries, self._deadlines) if heap]
        if due:
            self._arm(min(due))

    def _send(self, pending: _Pending, server_ms: int, now: float) -> None:
        assert self._workers is not None
        ticket = next(self._tickets)
        pending.attempts += 1
        pending.sent_server_ms, pending.waited_s = server_ms, now - pending.accepted
        self._in_flight[ticket] = pending
        self._counts["rest_weight_used_total"] += pending.weight
        params = tuple((p.name, p.value) for p in pending.request.params)
        self._workers.submit(ticket, pending.request.path, params)

    def _arm(self, due: float) -> None:
        """Have one ``RestRelease`` arrive at monotonic ``due`` (or earlier, if one is set)."""
        if self._release is not None and self._release.active and self._release_due <= due:
            return
        if self._release is not None:
            self._release.cancel()
        assert self.timers is not None
        self._release_due = due
        delay = due - self.clock.monotonic() + 0.002
        self._release = self.timers.once(delay, self.actor_ref, RestRelease(), owner=self.actor_ref)

    def _handle_result(self, result: RestCallResult) -> None:
        pending = self._in_flight.pop(result.ticket, None)
        if pending is None:
            return
        pending.last, status, now_ms = result, result.status, self._offset.now_ms()
        if result.used_weight is not None and header_counts(pending.sent_server_ms, now_ms):
            self._budget.observe_used_weight(result.used_weight, now_ms)
        code_msg = error_body(result.body)
        text = code_msg[1] if code_msg else (result.detail or f"HTTP {status}")
        if status in (429, 418):
            self._throttled(pending, status, text, now_ms)
        elif status is not None and 200 <= status < 300:
            self._succeeded(pending, result)
        elif (
            status in _RETRY_STATUS or result.failure in ("timeout", "connection")
        ) and pending.attempts < self._max_attempts:
            self._counts["rest_retries_total"] += 1
            due = self.clock.monotonic() + self._retry.delay(pending.attempts - 1, random.random())
            heapq.heappush(self._retries, (due, result.ticket, pending))
        elif status is None:
            self._answer(pending, "timeout" if result.failure == "timeout" else "connection", text)
        else:
            self._answer(pending, "exchange" if code_msg else "http", text)

    def _throttled(self, pending: _Pending, status: int, text: str, now_ms: int) -> None:
        assert pending.last is not None
        until = pause_until_ms(status, pending.last.retry_after_s, text, now_ms) + self._margin_ms
        if status == 429:
            self._budget.rate_limited((until - now_ms) / 1000, now_ms)
        else:
            self._budget.banned(until)
        pause_s = (self._budget.paused_until_ms - now_ms) / 1000
        self._blocked_until = max(self._blocked_until, self.clock.monotonic() + pause_s)
        self._blocked_by_budget = False
        self._counts[f"rest_{status}_total"] += 1
        self._log.warning("HTTP {}: all REST paused for {:.1f} s: {}", status, pause_s, text)
        pending.throttled += 1
        if pending.throttled >= self._max_attempts:
            self._answer(pending, "rate_limited" if status == 429 else "banned", text)
        else:
            self._enqueue(pending, front=True)

    def _succeeded(self, pending: _Pending, result: RestCallResult) -> None:
        path = pending.request.path
        if path in ("/fapi/v1/time", "/fapi/v1/exchangeInfo"):
            try:
                body = orjson.loads(result.body or b"")
            except orjson.JSONDecodeError as exc:
                body = {}
                self._log.warning("{} answered with a body that is not JSON: {}", path, exc)
            server_ms = body.get("serverTime") if isinstance(body, dict) else None
            if path == "/fapi/v1/time" and isinstance(server_ms, int):
                self._offset.update(server_ms, result.sent_ms, result.received_ms)
            limit = request_weight_limit(body) if path == "/fapi/v1/exchangeInfo" else None
            if limit is not None:
                self._set_limit(limit)
        self._answer(pending, None, None)
        if path == "/fapi/v1/exchangeInfo" and pending.request.caller == self.name:
            response = self._response(pending, None, None)
            for name in self._exchange_info_to:
                self.registry.tell(name, response)

    def _set_limit(self, limit: int) -> None:
        target = max(1, round(limit * self._fraction))
        if (limit, target) != (self._budget.limit, self._budget.target):
            self._log.info("REST weight: limit {} per minute, target {}", limit, target)
        self._budget.set_limit(limit)
        self._budget.target, self._blocked_until = target, 0.0

    # --- answers and status -------------------------------------------------------------------

    def _response(
        self, pending: _Pending, kind: RestErrorType | None, text: str | None
    ) -> RestResponse:
        request, last = pending.request, pending.last
        code_msg = error_body(last.body) if last is not None and kind is not None else None
        waited = pending.waited_s
        return RestResponse(
            request_id=request.request_id,
            caller=request.caller,
            path=request.path,
            ok=kind is None,
            status=last.status if last is not None else None,
            body=last.body if last is not None else None,
            error_type=kind,
            error_code=code_msg[0] if code_msg else None,
            error_message=text,
            weight=pending.weight * pending.attempts,
            attempts=pending.attempts,
            used_weight=last.used_weight if last is not None else None,
            answered_ms=TimestampMs(self._offset.now_ms()),
            waited_s=self.clock.monotonic() - pending.accepted if waited is None else waited,
        )

    def _answer(self, pending: _Pending, kind: RestErrorType | None, text: str | None) -> None:
        self._counts["rest_ok_total" if kind is None else f"rest_error_{kind}_total"] += 1
        request = pending.request
        if request.caller == self.name:
            if kind not in (None, "stopped"):
                self._log.warning("{} failed: {}: {}", request.path, kind, text)
            return
        response = self._response(pending, kind, text)
        if not self.registry.tell(request.reply_to or request.caller, response):
            self._counts["rest_undeliverable_total"] += 1

    def _snapshot(self) -> RestGatewayStatus:
        budget, now_ms = self._budget, self._offset.now_ms()
        headroom = budget.headroom(now_ms)  # also rolls the window
        paused = budget.paused_until_ms > now_ms
        return RestGatewayStatus(
            limit=budget.limit,
            target=budget.target,
            window_used=budget.used if budget.window_start_ms == now_ms - now_ms % MINUTE_MS else 0,
            headroom=headroom,
            paused_until_ms=TimestampMs(budget.paused_until_ms) if paused else None,
            pause_reason=budget.pause_reason if paused else None,
            queued=sum(map(len, self._queues.values())) + len(self._retries),
            in_flight=len(self._in_flight),
            server_time_offset_ms=self._offset.offset_ms,
            time_synced=self._offset.samples > 0,
        )

    def _publish(self) -> None:
        snap = self._snapshot()
        self._status.publish(self.name, snap)
        self._status.count(
            self.name,
            {
                **self._counts,
                "rest_weight_limit": snap.limit,
                "rest_weight_target": snap.target,
                "rest_weight_window_used": snap.window_used,
                "rest_queued": snap.queued,
                "rest_in_flight": snap.in_flight,
                "rest_paused": float(snap.paused_until_ms is not None),
            },
        )
        for caller, weight in self._budget.by_caller.items():  # a handful of callers
            self._status.count(f"{self.name}/{caller}", {"rest_weight_used_total": weight})
