"""The blocking side of the REST gateway: Binance's weights and errors, one Session, workers.

- :func:`endpoint_weight`: the weight of one ``GET`` (``spec/binance-usdm.md`` §2), computed
  here and never taken from callers;
- :func:`used_weight`, :func:`retry_after_s`, :func:`error_body`, :func:`banned_until_ms`:
  reading answers (headers case-insensitively, ``{"code","msg"}`` bodies, ``banned until <ms>``);
- :class:`RestClient`: one ``requests.Session`` with a connection pool and
  ``timeout=(connect, read)`` on every call (requests has no default timeout); it never
  retries by itself, so the gateway decides every retry and pays its weight;
- :class:`RestWorkers`: a few daemon threads that run calls and only hand each outcome to the
  owning actor (``tell``) as a :class:`~messages.rest.RestCallResult`.
"""

from __future__ import annotations

import queue
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import pykka
import requests
from requests.adapters import HTTPAdapter

from messages.rest import RestCallResult

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from supervisors.clock import Clock

__all__ = [
    "RestClient",
    "RestTimeouts",
    "RestWorkers",
    "banned_until_ms",
    "endpoint_weight",
    "error_body",
    "klines_weight",
    "pause_until_ms",
    "request_weight_limit",
    "retry_after_s",
    "used_weight",
]

_KLINES = frozenset(
    {
        "/fapi/v1/klines",
        "/fapi/v1/continuousKlines",
        "/fapi/v1/indexPriceKlines",
        "/fapi/v1/markPriceKlines",
        "/fapi/v1/premiumIndexKlines",
    }
)
_FIXED = {
    "/fapi/v1/ping": 1,
    "/fapi/v1/time": 1,
    "/fapi/v1/exchangeInfo": 1,
    "/fapi/v1/openInterest": 1,
    "/fapi/v1/trades": 5,
    "/fapi/v1/historicalTrades": 20,
    "/fapi/v1/aggTrades": 20,
    # Weight 0, but each has its own per-IP request limit that the budget does not track.
    "/fapi/v1/fundingRate": 0,
    "/fapi/v1/fundingInfo": 0,
    "/futures/data/openInterestHist": 0,
}
_BY_SYMBOL = {  # path: (with symbol, without)
    "/fapi/v1/premiumIndex": (1, 10),
    "/fapi/v1/ticker/24hr": (1, 40),
    "/fapi/v1/ticker/price": (1, 2),
    "/fapi/v1/ticker/bookTicker": (2, 5),
}
_DEPTH = ((50, 2), (100, 5), (500, 10))
_USED_WEIGHT_HEADER = "x-mbx-used-weight-1m"
_MINUTE_MS = 60_000
_SHORTEST_BAN_MS = 120_000
_BANNED_UNTIL = re.compile(r"banned until (\d{10,16})")


def klines_weight(limit: int) -> int:
    """Weight of the klines family by ``limit``: [1,100) 1, [100,500) 2, [500,1000] 5, else 10."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name, "")
    return int(raw) if raw.isdigit() else default


def endpoint_weight(path: str, params: Mapping[str, str]) -> int | None:
    """The request weight of ``GET path?params``, or ``None`` for an endpoint we do not know.

    A malformed ``limit`` counts as the default (Binance charges before it validates).
    """
    if path in _KLINES:
        return klines_weight(_int_param(params, "limit", 500))
    if path in _FIXED:
        return _FIXED[path]
    if path in _BY_SYMBOL:
        one, many = _BY_SYMBOL[path]
        return one if params.get("symbol") else many
    if path == "/fapi/v1/depth":
        limit = _int_param(params, "limit", 500)
        return next((w for top, w in _DEPTH if limit <= top), 20)
    return None


def used_weight(headers: Mapping[str, str]) -> int | None:
    """``X-MBX-USED-WEIGHT-1m`` looked up case-insensitively; ``None`` if absent or odd."""
    for name, value in headers.items():
        if name.lower() == _USED_WEIGHT_HEADER:
            return int(value) if value.strip().isdigit() else None
    return None


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (Binance sends an integer), looked up case-insensitively."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                seconds = float(value.strip())
            except ValueError:
                return None  # an HTTP-date: Binance does not send those
            return seconds if seconds >= 0 else None
    return None


def error_body(body: bytes | None) -> tuple[int, str] | None:
    """``(code, msg)`` of a Binance error body ``{"code": -1121, "msg": "..."}``, else ``None``."""
    if not body:
        return None
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    code, msg = data.get("code"), data.get("msg")
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(msg, str):
        return None
    return code, msg


def banned_until_ms(message: str) -> int | None:
    """The ban's end from a 418 message ("... IP banned until 1660090423228. ..."), else None."""
    found = _BANNED_UNTIL.search(message)
    return int(found.group(1)) if found else None


def pause_until_ms(status: int, retry_after: float | None, message: str, now_ms: int) -> int:
    """When REST may resume after a 429 or 418 answered at ``now_ms`` (server time, ms).

    429: ``Retry-After``, else the next calendar minute (when the window resets). 418: the
    later of ``Retry-After`` and the body's ``banned until <ms>``, else two minutes (the
    shortest ban Binance gives).
    """
    ends = [now_ms + round(retry_after * 1000)] if retry_after is not None else []
    if status == 418:
        until = banned_until_ms(message)
        ends += [until] if until is not None else []
        return max(ends, default=now_ms + _SHORTEST_BAN_MS)
    return max(ends, default=now_ms - now_ms % _MINUTE_MS + _MINUTE_MS)


def request_weight_limit(exchange_info: Any) -> int | None:
    """REQUEST_WEIGHT per one minute from an exchangeInfo body's ``rateLimits``, else None."""
    limits = exchange_info.get("rateLimits") if isinstance(exchange_info, dict) else None
    for entry in limits if isinstance(limits, list) else ():
        if not isinstance(entry, dict):
            continue
        kind = (entry.get("rateLimitType"), entry.get("interval"), entry.get("intervalNum", 1))
        limit = entry.get("limit")
        if kind == ("REQUEST_WEIGHT", "MINUTE", 1) and isinstance(limit, int) and limit > 0:
            return limit
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class RestTimeouts:
    """Seconds a call may take (requests applies ``read_s`` to each socket read)."""

    connect_s: float = 3.05
    """TCP connect (slightly above a 3 s SYN retransmit)."""
    read_s: float = 10.0
    """Waiting for the answer to start, and between two reads of it."""

    def __post_init__(self) -> None:
        """Refuse timeouts that would wait forever or not at all."""
        if self.connect_s <= 0 or self.read_s <= 0:
            raise ValueError("REST timeouts must be positive")


class RestClient:
    """``GET``s against one base URL through one pooled ``requests.Session``. Thread-safe.

    Args:
        base_url: ``https://fapi.binance.com`` or the simulator's ``rest_url``.
        clock: stamps ``sent_ms`` / ``received_ms`` (for the server time offset).
        timeouts: connect and read timeouts, passed on every call.
        pool_size: connections kept open (one per worker thread is enough).
        session: an injected session (tests); its adapters are left as they are.
    """

    def __init__(
        self,
        base_url: str,
        clock: Clock,
        *,
        timeouts: RestTimeouts | None = None,
        pool_size: int = 4,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._clock = clock
        self.timeouts = timeouts or RestTimeouts()
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            # max_retries=0: no hidden retries; every attempt goes through the weight budget.
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            session.headers["User-Agent"] = "volspike-actors"
        self._session = session

    def get(self, ticket: int, path: str, params: tuple[tuple[str, str], ...]) -> RestCallResult:
        """Make one attempt; never raises (a failure is described in the result)."""
        timeout = (self.timeouts.connect_s, self.timeouts.read_s)
        sent_ms = self._clock.time_ms()
        try:
            response = self._session.get(self.base_url + path, params=params, timeout=timeout)
            body = response.content
        except requests.Timeout as exc:  # ConnectTimeout and ReadTimeout
            return self._failed(ticket, "timeout", exc, sent_ms)
        except requests.ConnectionError as exc:  # refused, reset, DNS
            return self._failed(ticket, "connection", exc, sent_ms)
        except requests.RequestException as exc:  # a bad URL, a broken chunked body ...
            return self._failed(ticket, "other", exc, sent_ms)
        headers = response.headers
        return RestCallResult(
            ticket=ticket,
            status=response.status_code,
            body=body,
            used_weight=used_weight(headers),
            retry_after_s=retry_after_s(headers),
            sent_ms=sent_ms,
            received_ms=self._clock.time_ms(),
        )

    def _failed(self, ticket: int, failure: Any, exc: Exception, sent_ms: int) -> RestCallResult:
        return RestCallResult(
            ticket=ticket,
            status=None,
            failure=failure,
            detail=f"{type(exc).__name__}: {exc}"[:300],
            sent_ms=sent_ms,
            received_ms=self._clock.time_ms(),
        )

    def close(self) -> None:
        """Close the pooled connections (a session passed in is left open)."""
        if self._owns_session:
            self._session.close()


_Job = tuple[int, str, tuple[tuple[str, str], ...]]


class RestWorkers:
    """``threads`` daemon threads (``Rest-<name>-<i>``) that run calls and deliver the results.

    Args:
        name: the owner's name, for thread names.
        client: makes the calls.
        deliver: the owning actor's ``tell``; the only thing the threads do besides calling.
        threads: how many calls may be in flight at once.
    """

    def __init__(
        self,
        name: str,
        client: RestClient,
        deliver: Callable[[RestCallResult], None],
        *,
        threads: int = 4,
    ) -> None:
        if threads < 1:
            raise ValueError("at least one REST worker thread is needed")
        self._client = client
        self._deliver = deliver
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"Rest-{name}-{i}", daemon=True)
            for i in range(1, threads + 1)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, ticket: int, path: str, params: tuple[tuple[str, str], ...]) -> None:
        """Queue one attempt (any thread); a free worker takes it at once."""
        self._jobs.put((ticket, path, params))

    def stop(self, timeout: float = 1.0) -> bool:
        """Ask every thread to end and wait up to ``timeout`` in all; ``True`` if they did.

        A thread still inside a call ends when the call's own timeout expires; its result is
        then dropped (the owner is gone).
        """
        for _ in self._threads:
            self._jobs.put(None)
        per_thread = timeout / len(self._threads)
        for thread in self._threads:
            thread.join(per_thread)
        self._client.close()
        return not any(t.is_alive() for t in self._threads)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            result = self._client.get(*job)
            try:
                self._deliver(result)
            except pykka.ActorDeadError:
                continue  # the owner crashed or stopped; its successor does not know the ticket
