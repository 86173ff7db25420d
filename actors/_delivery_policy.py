"""Pure delivery policy: what an HTTP outcome means, when to try again, how fast to send.

No I/O and no clock: callers pass the current time and a random value, so every decision is
testable exactly.

Outcome classes (:func:`classify_response`, :func:`classify_exception`)::

    2xx                                   delivered
    408, 429, 5xx                         retry   (Retry-After / Telegram retry_after honoured)
    other 4xx, 1xx, 3xx                   failed  (kept in the outbox as failed_permanent)
    connection errors, timeouts, OSError  retry   (messages.errors.is_retryable)
    ValueError / TypeError (bad URL, …)   failed  (a configuration or programming error)

A retry waits :meth:`RetryPolicy.next_attempt_ms`: the server's own wait when it gave one
(capped at ``max_retry_after_s``), else jittered exponential backoff from
:class:`supervisors.backoff.BackoffPolicy` (1 s, 2 s, 4 s … capped at 5 min, ±20 %). Alerts are
retried until delivered; nothing here gives up on a retryable outcome.

Telegram's published limits (about one message per second per chat, 20 per minute in a group)
are two token buckets per chat (:class:`ChatRateLimiter`); a 429 pauses that chat for
``retry_after``. A burst of alert texts (the hh:00 FULL_UPDATEs) is packed into as few messages
as fit Telegram's 4096-character limit (:func:`merge_texts`) instead of one message each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal

import orjson

from messages.errors import is_retryable
from supervisors.backoff import BackoffPolicy

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DEFAULT_BACKOFF",
    "TELEGRAM_MAX_CHARS",
    "ChatRateLimiter",
    "MergedText",
    "Outcome",
    "RetryPolicy",
    "TokenBucket",
    "Verdict",
    "classify_exception",
    "classify_response",
    "merge_texts",
    "parse_retry_after",
    "telegram_length",
    "telegram_retry_after",
]

Outcome = Literal["delivered", "retry", "failed"]
"""``failed`` is permanent: the same request can never succeed; keep it and report it."""

_RETRY_STATUS = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one delivery attempt came to."""

    outcome: Outcome
    """Delivered, retry later, or failed for good."""
    reason: str
    """A short human reason for ``last_error`` (``"HTTP 503"``, ``"ReadTimeout: …"``)."""
    status: int | None = None
    """The HTTP status, when a response arrived."""
    retry_after_s: float | None = None
    """The server's requested wait, when it gave one."""


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def parse_retry_after(value: str | None, now_ms: int) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), or ``None``."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now_ms / 1000
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def telegram_retry_after(body: bytes | str | Mapping[str, Any] | None) -> float | None:
    """``parameters.retry_after`` of a Telegram error body, or ``None``."""
    if body is None:
        return None
    parsed: Any = body
    if isinstance(body, (bytes, str)):
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(parsed, Mapping):
        return None
    parameters = parsed.get("parameters")
    value = parameters.get("retry_after") if isinstance(parameters, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        return None
    return float(value)


def _snippet(body: bytes | str | Mapping[str, Any] | None) -> str:
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return " " + " ".join(text.split())[:120] if text.strip() else ""


def classify_response(
    status: int,
    *,
    now_ms: int,
    headers: Mapping[str, str] | None = None,
    body: bytes | str | Mapping[str, Any] | None = None,
) -> Verdict:
    """Classify an HTTP response (see the module table).

    Args:
        status: the HTTP status code.
        now_ms: the current wall-clock time (for an HTTP-date ``Retry-After``).
        headers: the response headers, any case.
        body: the response body (raw or parsed); read for Telegram's ``retry_after`` and for
            the reason text.
    """
    if 200 <= status < 300:
        return Verdict("delivered", f"HTTP {status}", status)
    reason = f"HTTP {status}{_snippet(body)}"
    if status in _RETRY_STATUS or 500 <= status < 600:
        wait = parse_retry_after(_header(headers, "Retry-After"), now_ms)
        if wait is None:
            wait = telegram_retry_after(body)
        return Verdict("retry", reason, status, wait)
    return Verdict("failed", reason, status)


def classify_exception(exc: BaseException) -> Verdict:
    """Classify an exception raised instead of a response (connection error, timeout, …)."""
    reason = f"{type(exc).__name__}: {exc}"[:200]
    # requests' InvalidURL, MissingSchema, InvalidHeader … are ValueErrors as well as OSErrors.
    if isinstance(exc, (ValueError, TypeError)):
        return Verdict("failed", reason)
    return Verdict("retry" if is_retryable(exc) else "failed", reason)


DEFAULT_BACKOFF = BackoffPolicy(initial_s=1.0, max_s=300.0, multiplier=2.0, jitter=0.2)
"""Delivery backoff: 1 s doubling to a 5-minute cap, ±20 % jitter."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When to try a payload again after a retryable outcome."""

    backoff: BackoffPolicy = DEFAULT_BACKOFF
    """Delay shape when the server gave no wait."""
    max_retry_after_s: float = 3600.0
    """Ceiling on a server-requested wait (a misconfigured server cannot park us for days)."""

    def delay_s(
        self, attempt: int, random_value: float, retry_after_s: float | None = None
    ) -> float:
        """Seconds before the next try.

        Args:
            attempt: failed attempts before this one (0 after the first failure).
            random_value: uniform in ``[0, 1)`` for the jitter.
            retry_after_s: the server's wait, honoured exactly when given (never earlier).
        """
        if retry_after_s is not None:
            return min(max(0.0, retry_after_s), self.max_retry_after_s)
        return self.backoff.delay(attempt, random_value)

    def next_attempt_ms(
        self, now_ms: int, attempt: int, random_value: float, retry_after_s: float | None = None
    ) -> int:
        """The wall-clock instant of the next try (for ``StateStore.mark_retry``)."""
        return now_ms + math.ceil(self.delay_s(attempt, random_value, retry_after_s) * 1000)


@dataclass(slots=True)
class TokenBucket:
    """A token bucket refilled continuously; time is passed in (milliseconds).

    Args:
        capacity: the burst size (tokens when full).
        refill_per_s: tokens added per second.
    """

    capacity: float
    refill_per_s: float
    tokens: float = math.nan
    """Tokens now; starts full."""
    updated_ms: int | None = None
    """When ``tokens`` was last brought up to date."""

    def __post_init__(self) -> None:
        """Check the shape and start full."""
        if self.capacity < 1 or self.refill_per_s <= 0:
            raise ValueError("a bucket needs capacity >= 1 and a positive refill rate")
        if math.isnan(self.tokens):
            self.tokens = self.capacity

    def _refill(self, now_ms: int) -> None:
        if self.updated_ms is not None and now_ms > self.updated_ms:
            elapsed = (now_ms - self.updated_ms) / 1000
            self.tokens = min(self.capacity, self.tokens + elapsed * self.refill_per_s)
        if self.updated_ms is None or now_ms > self.updated_ms:
            self.updated_ms = now_ms

    def wait_s(self, now_ms: int) -> float:
        """Seconds until one token is available (0 when one is), without taking it."""
        self._refill(now_ms)
        missing = 1.0 - self.tokens
        return 0.0 if missing <= 1e-9 else missing / self.refill_per_s

    def take(self, now_ms: int) -> None:
        """Take one token (the caller checked :meth:`wait_s` first)."""
        self._refill(now_ms)
        self.tokens -= 1.0


def _telegram_buckets() -> tuple[TokenBucket, ...]:
    # A bucket allows at most capacity + rate * T in any window T: 1 per second, and
    # 5 + 0.25 * 60 = 20 in any minute (Telegram's group limit), sustained 15 per minute.
    return (TokenBucket(capacity=1, refill_per_s=1.0), TokenBucket(capacity=5, refill_per_s=0.25))


@dataclass(slots=True)
class ChatRateLimiter:
    """Per-chat send permission for Telegram: every bucket must grant, and no 429 pause."""

    buckets_factory: Callable[[], tuple[TokenBucket, ...]] = _telegram_buckets
    """Makes a chat's buckets (default: one per second, and at most 20 in any minute)."""
    _chats: dict[str, tuple[TokenBucket, ...]] = field(default_factory=dict)
    _paused_until_ms: dict[str, int] = field(default_factory=dict)

    def acquire(self, chat_id: str, now_ms: int) -> float:
        """Ask to send one message now: 0.0 means go (counted); otherwise seconds to wait."""
        paused = self._paused_until_ms.get(chat_id, 0)
        if now_ms < paused:
            return (paused - now_ms) / 1000
        buckets = self._chats.get(chat_id)
        if buckets is None:
            buckets = self._chats[chat_id] = tuple(self.buckets_factory())
        wait = max(bucket.wait_s(now_ms) for bucket in buckets)
        if wait > 0:
            return wait
        for bucket in buckets:
            bucket.take(now_ms)
        return 0.0

    def pause(self, chat_id: str, now_ms: int, retry_after_s: float) -> None:
        """Hold every message to ``chat_id`` for ``retry_after_s`` (after a Telegram 429)."""
        until = now_ms + math.ceil(max(0.0, retry_after_s) * 1000)
        self._paused_until_ms[chat_id] = max(self._paused_until_ms.get(chat_id, 0), until)


# --- Telegram bursts ---------------------------------------------------------------------------

TELEGRAM_MAX_CHARS = 4096
"""Telegram's limit for one message's text, counted in UTF-16 code units to be safe."""


def telegram_length(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units; an emoji counts 2)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True, slots=True)
class MergedText:
    """One Telegram message made of one or more input texts."""

    text: str
    """The merged text, within the limit."""
    sources: tuple[int, ...]
    """Indexes of the input texts it contains, ascending."""


def _fit(text: str, limit: int) -> str:
    if telegram_length(text) <= limit:
        return text
    kept, used = [], 0
    for char in text:
        width = telegram_length(char)
        if used + width > limit - 1:
            break
        kept.append(char)
        used += width
    return "".join(kept) + "…"


def merge_texts(
    texts: Sequence[str], *, limit: int = TELEGRAM_MAX_CHARS, separator: str = "\n\n"
) -> list[MergedText]:
    """Pack a burst of texts, in order, into as few messages as fit ``limit``.

    Greedy in order: the order of the alerts is kept, and each message holds consecutive texts.
    A single text longer than ``limit`` is truncated with ``…`` (alert texts are a few hundred
    characters; the full record is in the backend and the local sink), so every input belongs to
    exactly one message and delivering a message delivers exactly its ``sources``.
    """
    if limit < 2:
        raise ValueError("limit must be at least 2")
    merged: list[MergedText] = []
    parts: list[str] = []
    indexes: list[int] = []
    size = 0
    gap = telegram_length(separator)
    for index, raw in enumerate(texts):
        text = _fit(raw, limit)
        width = telegram_length(text)
        if parts and size + gap + width > limit:
            merged.append(MergedText(separator.join(parts), tuple(indexes)))
            parts, indexes, size = [], [], 0
        size += width + (gap if parts else 0)
        parts.append(text)
        indexes.append(index)
    if parts:
        merged.append(MergedText(separator.join(parts), tuple(indexes)))
    return merged
