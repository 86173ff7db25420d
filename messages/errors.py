"""The one exception tree of the daemon.

::

    VolspikeError
    ├── ConfigError           a setting is missing or invalid (fatal at start)
    ├── CodecError            bytes that are not a message of this format version
    ├── FrameError            an exchange frame we cannot turn into a message (counted, skipped)
    ├── FeedError             a WebSocket feed failed (connect, stall, protocol)
    ├── RestError             a REST call to the exchange failed
    │   ├── RateLimitedError  HTTP 429: pause every REST caller until ``retry_after``
    │   ├── IpBannedError     HTTP 418: freeze every REST caller until ``until_ms``
    │   └── ExchangeError     a Binance ``{"code","msg"}`` error body (``-1121`` etc.)
    ├── DeliveryError         a sink refused or could not take a payload
    └── SupervisionError      a supervisor gave up (restart intensity exceeded)

:func:`is_retryable` is the single place that decides whether an operation that failed with a
given exception is worth trying again.
"""

from __future__ import annotations

import socket

__all__ = [
    "CodecError",
    "ConfigError",
    "DeliveryError",
    "ExchangeError",
    "FeedError",
    "FrameError",
    "IpBannedError",
    "RateLimitedError",
    "RestError",
    "SupervisionError",
    "VolspikeError",
    "is_retryable",
]


class VolspikeError(Exception):
    """Base class of every error the daemon raises on purpose."""


class ConfigError(VolspikeError):
    """A configuration value is missing or invalid.

    Attributes:
        setting: the setting's name as the user writes it (env var, TOML key or flag).
    """

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


class CodecError(VolspikeError):
    """Bytes that cannot be decoded into a message (corrupt, unknown type, other version)."""


class FrameError(VolspikeError):
    """An exchange frame that cannot be turned into a message.

    Attributes:
        reason: a short, stable code for counting (``"bad_json"``, ``"bad_price"`` …).
        detail: a human explanation naming the offending field and value.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class FeedError(VolspikeError):
    """A WebSocket feed failed: refused handshake, stall, protocol error."""


class RestError(VolspikeError):
    """A REST call to the exchange failed.

    Attributes:
        status: the HTTP status, or ``None`` when no response arrived.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RateLimitedError(RestError):
    """HTTP 429: the IP's request weight is exhausted; wait ``retry_after_s``."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message, status=429)
        self.retry_after_s = retry_after_s


class IpBannedError(RestError):
    """HTTP 418: the IP is banned until ``until_ms`` (epoch milliseconds)."""

    def __init__(self, message: str, *, until_ms: int) -> None:
        super().__init__(message, status=418)
        self.until_ms = until_ms


class ExchangeError(RestError):
    """A Binance error body ``{"code": <negative int>, "msg": "..."}``."""

    def __init__(self, message: str, *, status: int, code: int) -> None:
        super().__init__(message, status=status)
        self.code = code


class DeliveryError(VolspikeError):
    """A sink failed to take a payload.

    Attributes:
        status: the HTTP status when there was one.
        retryable: whether the same payload may succeed later.
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class SupervisionError(VolspikeError):
    """A supervisor exceeded its restart intensity and gave up."""


_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def is_retryable(exc: BaseException) -> bool:
    """Whether an operation that raised ``exc`` may succeed if tried again later.

    Network trouble, timeouts, 408/429 and 5xx are retryable; validation errors, other 4xx
    and configuration errors are not.
    """
    if isinstance(exc, DeliveryError):
        return exc.retryable
    if isinstance(exc, (IpBannedError, RateLimitedError)):
        return True
    if isinstance(exc, RestError):
        return exc.status is None or exc.status in _RETRYABLE_STATUS
    if isinstance(exc, (ConfigError, CodecError, FrameError)):
        return False
    # requests' ConnectionError and Timeout derive from OSError via IOError.
    return isinstance(exc, (OSError, TimeoutError, socket.timeout, FeedError))
