"""REST conversation: every Binance REST call of the process goes through the gateway.

Who sends what (the gateway is :class:`~actors.rest_gateway.RestGatewayActor`, registered
as ``"rest-gateway"`` in the app)::

    caller ──RestRequest──────────► gateway    tell; the gateway computes the weight itself
    gateway ──RestResponse────────► caller     tell, to ``reply_to`` (else ``caller``), looked
                                               up by name when the answer is ready; exactly
                                               one per accepted or refused request
    gateway ──RestResponse────────► subscribers  each exchangeInfo the gateway fetches itself
                                               (start, then hourly), ``request_id`` "exchangeInfo"
    anyone ──GetRestGatewayStatus─► gateway    ask(timeout=...); the answer is RestGatewayStatus
                                               (also published on the status board)
    worker thread ──RestCallResult─► gateway   internal: one finished HTTP attempt
    timer service ──RestRelease────► gateway   internal: budget or pause over, retry due

Requests are plain ``GET``s on public endpoints: idempotent, so the gateway may retry them.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from messages._base import Message, message
from messages.errors import ExchangeError, IpBannedError, RateLimitedError, RestError
from messages.types import TimestampMs

__all__ = [
    "GetRestGatewayStatus",
    "RestCallResult",
    "RestErrorType",
    "RestGatewayStatus",
    "RestParam",
    "RestPriority",
    "RestRelease",
    "RestRequest",
    "RestResponse",
    "rest_request",
]

RestPriority = Literal["high", "normal", "low"]
"""Queue class of a request: ``high`` leaves before ``normal``, ``normal`` before ``low``;
FIFO within a class."""

RestErrorType = Literal[
    "exchange",
    "http",
    "timeout",
    "connection",
    "rate_limited",
    "banned",
    "queue_full",
    "expired",
    "invalid_request",
    "stopped",
]
"""Why a :class:`RestResponse` is not ``ok``:

- ``exchange``: a Binance ``{"code","msg"}`` error (``-1121`` Invalid symbol …), not retried;
- ``http``: another non-2xx answer (5xx after the last retry, 403 WAF page, …);
- ``timeout`` / ``connection``: no answer, after the last retry;
- ``rate_limited`` / ``banned``: 429 / 418 kept coming back for this request;
- ``queue_full``: dropped (or refused) because the gateway's queue was full;
- ``expired``: still queued after ``RestRequest.expires_after_s``;
- ``invalid_request``: an endpoint the gateway has no weight for, or a malformed request;
- ``stopped``: the gateway stopped (or crashed) before answering; ask again later.
"""


@message
class RestParam(Message):
    """One query-string parameter."""

    name: str
    """Parameter name as Binance spells it (``"symbol"``, ``"limit"``)."""
    value: str
    """Its value, already a string (``"BTCUSDT"``, ``"500"``)."""


@message
class RestRequest(Message):
    """Ask the gateway for one ``GET`` (build it with :func:`rest_request`)."""

    request_id: str
    """Chosen by the caller and echoed in the response (unique per caller is enough)."""
    caller: str
    """The caller's actor name: who pays the weight in the metrics, and the default
    address of the response."""
    path: str
    """The endpoint (``"/fapi/v1/openInterest"``); it must have a known weight."""
    params: tuple[RestParam, ...] = ()
    """Query parameters, in order."""
    reply_to: str | None = None
    """Registry name to tell the response to, when not ``caller``."""
    priority: RestPriority = "normal"
    """Queue class."""
    expires_after_s: float | None = None
    """Give up (``expired``) if the call could not leave within this many seconds; ``None``
    waits as long as it takes (bounded by the queue size)."""


def rest_request(  # noqa: PLR0913 - the message's fields, keyword-only
    path: str,
    *,
    request_id: str,
    caller: str,
    params: dict[str, str | int] | None = None,
    reply_to: str | None = None,
    priority: RestPriority = "normal",
    expires_after_s: float | None = None,
) -> RestRequest:
    """Build a :class:`RestRequest` from a plain parameter mapping (values made strings)."""
    return RestRequest(
        request_id=request_id,
        caller=caller,
        path=path,
        params=tuple(RestParam(name=k, value=str(v)) for k, v in (params or {}).items()),
        reply_to=reply_to,
        priority=priority,
        expires_after_s=expires_after_s,
    )


@message
class RestResponse(Message):
    """The one answer to a :class:`RestRequest`."""

    request_id: str
    """The request's ``request_id``."""
    caller: str
    """The request's ``caller``."""
    path: str
    """The request's ``path``."""
    ok: bool
    """True for an HTTP 2xx answer; ``body`` then holds the JSON."""
    status: int | None = None
    """HTTP status of the last attempt; ``None`` when no answer came (or none was sent)."""
    body: bytes | None = None
    """The raw body of the last answer (JSON on success, the error body otherwise)."""
    error_type: RestErrorType | None = None
    """Why it is not ``ok`` (see :data:`RestErrorType`)."""
    error_code: int | None = None
    """Binance's ``code`` (``-1121``) when the error body had one."""
    error_message: str | None = None
    """Binance's ``msg``, or a description of the failure."""
    weight: int = 0
    """Weight the gateway charged for this request, every attempt included."""
    attempts: int = 0
    """HTTP attempts made (0 when refused before sending)."""
    used_weight: int | None = None
    """``X-MBX-USED-WEIGHT-1m`` of the last answer: the IP's weight in that minute."""
    answered_ms: TimestampMs = TimestampMs(0)
    """When the gateway answered, in Binance server time."""
    waited_s: float = 0.0
    """Seconds between the gateway accepting the request and the last attempt leaving
    (queueing for budget, pauses and retry delays)."""

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            RestError: when there is no body or it is not JSON.
        """
        if self.body is None:
            raise RestError(f"{self.path}: no body ({self.error_type})", status=self.status)
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise RestError(f"{self.path}: body is not JSON: {exc}", status=self.status) from exc

    def error(self) -> RestError | None:
        """The failure as an exception of the one error tree, or ``None`` when ``ok``.

        For ``rate_limited`` / ``banned`` the gateway has already waited the pause out, so
        ``retry_after_s`` / ``until_ms`` are 0: sending the request again is allowed.
        """
        if self.ok:
            return None
        text = f"{self.path}: {self.error_type}: {self.error_message}"
        if self.error_type == "rate_limited":
            return RateLimitedError(text, retry_after_s=0.0)
        if self.error_type == "banned":
            return IpBannedError(text, until_ms=0)
        if self.error_code is not None and self.status is not None:
            return ExchangeError(text, status=self.status, code=self.error_code)
        return RestError(text, status=self.status)


@message
class GetRestGatewayStatus(Message):
    """Ask the gateway for a :class:`RestGatewayStatus` (``ask`` with a timeout)."""


@message
class RestGatewayStatus(Message):
    """The gateway's budget and queue at one instant (also on the status board)."""

    limit: int
    """The exchange's REQUEST_WEIGHT per minute (from exchangeInfo)."""
    target: int
    """What the gateway allows itself per minute."""
    window_used: int
    """Weight counted in the current server-time minute (ours, raised to the header)."""
    headroom: int
    """Weight still available in this minute (0 while paused)."""
    paused_until_ms: TimestampMs | None
    """Server time until which no request leaves (429/418), or ``None``."""
    pause_reason: str | None
    """``"rate-limited"`` or ``"banned"`` while paused."""
    queued: int
    """Requests waiting (for budget, a pause or a retry delay)."""
    in_flight: int
    """Requests being sent right now."""
    server_time_offset_ms: int
    """Binance server time minus local time."""
    time_synced: bool
    """Whether the offset was measured at least once."""


@message
class RestCallResult(Message):
    """Internal: one finished HTTP attempt, told by a worker thread to its gateway."""

    ticket: int
    """The gateway's number for the attempt."""
    status: int | None
    """HTTP status, or ``None`` when no answer came."""
    body: bytes | None = None
    """Raw body."""
    used_weight: int | None = None
    """``X-MBX-USED-WEIGHT-1m`` (read case-insensitively)."""
    retry_after_s: float | None = None
    """``Retry-After`` in seconds, when sent."""
    failure: Literal["timeout", "connection", "other"] | None = None
    """Why no answer came."""
    detail: str | None = None
    """The exception, for ``failure``."""
    sent_ms: int = 0
    """Local wall clock just before sending."""
    received_ms: int = 0
    """Local wall clock when the answer (or the failure) came."""


@message
class RestRelease(Message):
    """Internal: the gateway's one-shot timer fired (budget back, pause over, retry due)."""
