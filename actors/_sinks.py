"""The sinks behind the poster's outbox, and the thread that drives each one.

One small interface (:class:`Sink`) with three implementations:

- :class:`BackendSink`: the VolSpike backend (PROD or DEV), spec §4: ``X-API-Key``, the exact
  endpoints of :data:`~actors._payloads.ENDPOINTS`, absent fields omitted, the
  ``Idempotency-Key`` header, ``timeout=(connect, read)`` on every request;
- :class:`TelegramSink`: ``POST <TELEGRAM_API_URL>/bot<token>/sendMessage`` for alerts only; the
  texts of one job are merged into as few messages as fit (the hh:00 FULL_UPDATE burst), each
  message waits for the chat's rate limiter, and a 429 pauses the chat for ``retry_after``;
- :class:`CallbackSink`: a callable of an embedding application, called with each message.

A sink is immutable configuration, shared by every poster incarnation. :meth:`Sink.open` makes
the per-incarnation client (:class:`SinkSession`: its own ``requests.Session``, its own rate
limiter) inside the :class:`SinkWorker` thread that uses it; the session's
:meth:`~SinkSession.deliver` is a generator that performs one request per ``next()`` and
yields an :class:`Attempt`, so the worker decides after each request whether to go on.

The worker never touches the database: it gets a job (payloads already read from the outbox
by the poster), delivers, and ``tell``s the poster one
:class:`~messages.delivery.DeliveryOutcome` per payload and a
:class:`~messages.delivery.SinkReady` at the end of the job. A job stops at the first
retryable failure: when the backend is down, one probe per backoff period is enough.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Self

import pykka
import requests
from loguru import logger

from actors._delivery_policy import (
    ChatRateLimiter,
    Outcome,
    Verdict,
    classify_exception,
    classify_response,
    merge_texts,
)
from actors._payloads import (
    ALERT_KINDS,
    CONNECT_TIMEOUT_S,
    ENDPOINTS,
    TELEGRAM_TIMEOUT_S,
    backend_body,
    backend_headers,
    json_bytes,
    telegram_body,
    telegram_path,
    telegram_text,
)
from messages.delivery import DeliveryOutcome, SinkReady
from messages.errors import CodecError, DeliveryError
from supervisors.config import strip_userinfo

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Mapping, Sequence

    from actors._store import OutboxItem
    from messages._base import Message
    from supervisors.clock import Clock
    from supervisors.config import Config

__all__ = [
    "ALL_KINDS",
    "LOCAL_KINDS",
    "LOCAL_SINK",
    "Attempt",
    "BackendSink",
    "CallbackSink",
    "Sink",
    "SinkSession",
    "SinkWorker",
    "TelegramSink",
    "sinks_from_config",
]

ALL_KINDS: frozenset[str] = frozenset({"volume_alert", "oi_alert", "oi_samples", "universe"})
"""Every payload kind."""

LOCAL_SINK = "local"
"""The name of the local SQLite sink (written by the poster itself, in its own thread)."""

LOCAL_KINDS: frozenset[str] = frozenset({"volume_alert", "oi_alert"})
"""What reaches the local SQLite sink through the outbox. OI samples are recorded into its
``oi_samples`` table directly (they are superseded within seconds, and an outbox row per chunk
would double their footprint); the universe is state, not a record."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request and the payloads it carried (several for a merged Telegram message)."""

    items: tuple[OutboxItem, ...]
    """The payloads this request delivered or failed."""
    verdict: Verdict
    """What came of it."""


class SinkSession(Protocol):
    """A sink's client for one poster incarnation, used only in its worker's thread."""

    def deliver(
        self, items: Sequence[OutboxItem], stop: threading.Event
    ) -> Generator[Attempt, None, None]:
        """Deliver ``items`` in order, one request per ``next()``; give up when ``stop`` is set.

        Never raises for a delivery problem: every outcome is an :class:`Attempt`.
        """
        ...

    def close(self) -> None:
        """Release the connection pool."""
        ...


class Sink(Protocol):
    """Where payloads go (immutable configuration, shared by every poster incarnation)."""

    @property
    def name(self) -> str:
        """The sink's name in the outbox (``"prod"``, ``"dev"``, ``"telegram"`` …)."""
        ...

    @property
    def kinds(self) -> frozenset[str]:
        """The payload kinds it takes."""
        ...

    @property
    def linger_s(self) -> float:
        """How long new payloads wait for company before a job starts (burst merging)."""
        ...

    def describe(self) -> str:
        """One line for the start-up log, without secrets."""
        ...

    def open(self, clock: Clock) -> SinkSession:
        """A fresh client (called in the worker's thread)."""
        ...


def _unsendable(item: OutboxItem, exc: Exception) -> Attempt:
    return Attempt((item,), Verdict("failed", f"unsendable payload: {exc}"[:200]))


# --- VolSpike backend ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendSink:
    """A VolSpike backend (PROD or DEV).

    Args:
        name: ``"prod"`` or ``"dev"`` (its rows in the outbox).
        base_url: ``VOLSPIKE_API_URL`` (the endpoint paths are appended).
        api_key: sent as ``X-API-Key``.
        kinds: payload kinds it takes (default: all).
        connect_timeout_s: connect timeout of every request.
        read_timeouts_s: read timeout per kind; default spec §4.9 (5 s alerts, 60 s OI chunks).
        session_factory: makes the ``requests.Session`` (tests may inject adapters).
    """

    name: str
    base_url: str
    api_key: str
    kinds: frozenset[str] = ALL_KINDS
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    read_timeouts_s: Mapping[str, float] | None = None
    session_factory: Callable[[], requests.Session] = requests.Session
    linger_s: float = 0.0

    def describe(self) -> str:
        """Name and URL (the key and any ``user:password@`` are never shown)."""
        return f"{self.name} backend {strip_userinfo(self.base_url)}"

    def read_timeout_s(self, kind: str) -> float:
        """The read timeout for ``kind``."""
        if self.read_timeouts_s is not None and kind in self.read_timeouts_s:
            return self.read_timeouts_s[kind]
        return ENDPOINTS[kind].read_timeout_s

    def open(self, clock: Clock) -> SinkSession:
        """A client with its own connection pool."""
        return _BackendSession(self, clock, self.session_factory())


class _BackendSession:
    def __init__(self, sink: BackendSink, clock: Clock, session: requests.Session) -> None:
        self._sink = sink
        self._clock = clock
        self._session = session
        self._base = sink.base_url.rstrip("/")

    def deliver(
        self, items: Sequence[OutboxItem], stop: threading.Event
    ) -> Generator[Attempt, None, None]:
        for item in items:
            if stop.is_set():
                return
            yield Attempt((item,), self._post(item))

    def _post(self, item: OutboxItem) -> Verdict:
        endpoint = ENDPOINTS.get(item.kind)
        if endpoint is None:
            return Verdict("failed", f"no backend endpoint for {item.kind!r}")
        try:
            body = json_bytes(backend_body(item.message()))
        except (CodecError, ValueError, TypeError) as exc:
            return _unsendable(item, exc).verdict
        timeout = (self._sink.connect_timeout_s, self._sink.read_timeout_s(item.kind))
        try:
            response = self._session.post(
                self._base + endpoint.path,
                data=body,
                headers=backend_headers(self._sink.api_key, item.idempotency_key),
                timeout=timeout,
            )
        except Exception as exc:  # requests' errors, OSError, InvalidURL …
            return classify_exception(exc)
        return classify_response(
            response.status_code,
            now_ms=self._clock.time_ms(),
            headers=response.headers,
            body=response.content,
        )

    def close(self) -> None:
        self._session.close()


# --- Telegram --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TelegramSink:
    """Telegram ``sendMessage`` to one chat, for alerts.

    Args:
        api_url: ``TELEGRAM_API_URL``.
        token: ``TELEGRAM_TOKEN`` (part of the URL path: never logged, removed from errors).
        chat_id: ``CHAT_ID``.
        name: its rows in the outbox.
        linger_s: new alerts wait this long for company, so a burst becomes one message.
        connect_timeout_s: connect timeout.
        read_timeout_s: read timeout (spec §4.9: 5 s).
        limiter_factory: the per-chat rate limiter (default: 1 per second, 20 per minute).
        session_factory: makes the ``requests.Session``.
    """

    api_url: str
    token: str
    chat_id: str
    name: str = "telegram"
    kinds: frozenset[str] = ALERT_KINDS
    linger_s: float = 1.0
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    read_timeout_s: float = TELEGRAM_TIMEOUT_S
    limiter_factory: Callable[[], ChatRateLimiter] = ChatRateLimiter
    session_factory: Callable[[], requests.Session] = requests.Session

    def describe(self) -> str:
        """Name, URL and chat (never the token, nor a ``user:password@``)."""
        return f"{self.name} {strip_userinfo(self.api_url)} chat {self.chat_id}"

    def open(self, clock: Clock) -> SinkSession:
        """A client with its own connection pool and rate limiter."""
        return _TelegramSession(self, clock, self.session_factory(), self.limiter_factory())


class _TelegramSession:
    def __init__(
        self,
        sink: TelegramSink,
        clock: Clock,
        session: requests.Session,
        limiter: ChatRateLimiter,
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._session = session
        self._limiter = limiter
        self._url = sink.api_url.rstrip("/") + telegram_path(sink.token)

    def deliver(
        self, items: Sequence[OutboxItem], stop: threading.Event
    ) -> Generator[Attempt, None, None]:
        texts: list[str] = []
        sendable: list[OutboxItem] = []
        for item in items:
            try:
                text = telegram_text(item.message())
            except CodecError as exc:
                yield _unsendable(item, exc)
                continue
            if text is None:
                yield Attempt((item,), Verdict("failed", f"telegram does not take {item.kind}"))
                continue
            texts.append(text)
            sendable.append(item)
        chat = self._sink.chat_id
        for merged in merge_texts(texts):
            wait = self._limiter.acquire(chat, self._clock.time_ms())
            while wait > 0:
                if stop.wait(wait):
                    return
                wait = self._limiter.acquire(chat, self._clock.time_ms())
            verdict = self._send(merged.text)
            if verdict.status == 429:
                self._limiter.pause(chat, self._clock.time_ms(), verdict.retry_after_s or 1.0)
            yield Attempt(tuple(sendable[i] for i in merged.sources), verdict)

    def _send(self, text: str) -> Verdict:
        try:
            response = self._session.post(
                self._url,
                data=json_bytes(telegram_body(self._sink.chat_id, text)),
                headers={"Content-Type": "application/json"},
                timeout=(self._sink.connect_timeout_s, self._sink.read_timeout_s),
            )
        except Exception as exc:
            verdict = classify_exception(exc)
        else:
            verdict = classify_response(
                response.status_code,
                now_ms=self._clock.time_ms(),
                headers=response.headers,
                body=response.content,
            )
        # requests puts the URL, token included, into its exception texts.
        return dataclasses.replace(verdict, reason=verdict.reason.replace(self._sink.token, "***"))

    def close(self) -> None:
        self._session.close()


# --- callback --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackSink:
    """Hands each payload to a callable of an embedding application, in the sink's thread.

    The callable gets the message (``VolumeAlert``, ``OiAlert``, an ``OiSamples`` chunk of at
    most 100 items, ``LiquidUniverse``). Returning means delivered. Raising
    :class:`~messages.errors.DeliveryError` with ``retryable=True`` (or an ``OSError``) asks
    for a retry with backoff; any other exception marks the payload failed for good (kept in
    the outbox and reported). Delivery is at least once: after a crash or ``kill -9`` between
    the call and its record, the message comes again.

    Args:
        name: its rows in the outbox.
        callback: the callable.
        kinds: payload kinds it takes (default: all).
    """

    name: str
    callback: Callable[[Message], object]
    kinds: frozenset[str] = ALL_KINDS
    linger_s: float = 0.0

    def describe(self) -> str:
        """Name and callable."""
        return f"{self.name} callback {getattr(self.callback, '__qualname__', self.callback)!s}"

    def open(self, clock: Clock) -> SinkSession:
        """The session is just the callable."""
        del clock
        return _CallbackSession(self.callback)


class _CallbackSession:
    def __init__(self, callback: Callable[[Message], object]) -> None:
        self._callback = callback

    def deliver(
        self, items: Sequence[OutboxItem], stop: threading.Event
    ) -> Generator[Attempt, None, None]:
        for item in items:
            if stop.is_set():
                return
            try:
                self._callback(item.message())
            except DeliveryError as exc:
                outcome: Outcome = "retry" if exc.retryable else "failed"
                verdict = Verdict(outcome, f"DeliveryError: {exc}"[:200], exc.status)
            except Exception as exc:
                verdict = classify_exception(exc)
            else:
                verdict = Verdict("delivered", "callback returned")
            yield Attempt((item,), verdict)

    def close(self) -> None:
        pass


def sinks_from_config(
    config: Config, *, extra: Iterable[Sink] = (), telegram_linger_s: float = 1.0
) -> tuple[Sink, ...]:
    """The sinks ``config`` asks for: PROD, DEV and Telegram when set, then ``extra``."""
    sinks: list[Sink] = []
    if config.volspike_api_url and config.volspike_api_key:
        sinks.append(
            BackendSink(
                name="prod", base_url=config.volspike_api_url, api_key=config.volspike_api_key
            )
        )
    if config.volspike_api_url_dev and config.volspike_api_key_dev:
        sinks.append(
            BackendSink(
                name="dev",
                base_url=config.volspike_api_url_dev,
                api_key=config.volspike_api_key_dev,
            )
        )
    if config.telegram_token and config.chat_id:
        sinks.append(
            TelegramSink(
                api_url=config.telegram_api_url,
                token=config.telegram_token,
                chat_id=config.chat_id,
                linger_s=telegram_linger_s,
            )
        )
    sinks.extend(extra)
    return tuple(sinks)


# --- the worker thread -----------------------------------------------------------------------

_ids = itertools.count(1)


@dataclass(slots=True)
class _Job:
    number: int
    items: tuple[OutboxItem, ...]
    reported: set[int] = field(default_factory=set)


class SinkWorker:
    """The thread that delivers one sink's jobs (named ``Sink-<name>-<n>``, a daemon).

    Args:
        sink: the sink.
        clock: for the session.
        deliver: the poster's ``tell`` (called in this thread).
        idle: set whenever a job ends (the poster waits on it while flushing at stop).

    Threads: :meth:`submit`, :meth:`stop`, :meth:`take_unsettled` and :meth:`settled` are
    called from the poster's thread; everything else runs in the worker's.
    """

    def __init__(
        self,
        sink: Sink,
        clock: Clock,
        deliver: Callable[[Any], None],
        *,
        idle: threading.Event | None = None,
    ) -> None:
        self.sink = sink
        self._clock = clock
        self._deliver_to_owner = deliver
        self._idle = idle
        self._cond = threading.Condition()
        self._job: _Job | None = None
        self._stopping = False
        self._abort = threading.Event()
        self._unsettled: dict[int, DeliveryOutcome] = {}
        self._thread = threading.Thread(
            target=self._run, name=f"Sink-{sink.name}-{next(_ids)}", daemon=True
        )

    def start(self) -> Self:
        """Start the thread."""
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        """Whether the thread is running (it ends only when stopped, or on a bug)."""
        return self._thread.is_alive()

    @property
    def busy(self) -> bool:
        """Whether a job is in progress."""
        with self._cond:
            return self._job is not None

    def submit(self, job: int, items: Sequence[OutboxItem]) -> None:
        """Hand over a job (the worker must be idle).

        Raises:
            RuntimeError: if a job is in progress or the worker is stopping.
        """
        with self._cond:
            if self._job is not None or self._stopping:
                raise RuntimeError(f"sink {self.sink.name} cannot take job {job} now")
            self._job = _Job(job, tuple(items))
            self._cond.notify_all()

    def settled(self, outbox_id: int) -> None:
        """The poster recorded the outcome of ``outbox_id``."""
        with self._cond:
            self._unsettled.pop(outbox_id, None)

    def take_unsettled(self) -> list[DeliveryOutcome]:
        """Outcomes reported but never recorded (the poster stopped reading its inbox)."""
        with self._cond:
            outcomes = list(self._unsettled.values())
            self._unsettled.clear()
        return outcomes

    def stop(self, timeout: float) -> bool:
        """Take no more jobs; let the current one run ``timeout`` more seconds, then abort it.

        An aborted job makes no further request; one already on the wire cannot be recalled
        (its outcome is lost, and the payload stays pending). Returns whether the thread ended.
        """
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(max(0.0, timeout))
        if self._thread.is_alive():
            self._abort.set()
            self._thread.join(0.05)
        return not self._thread.is_alive()

    # --- the thread ---------------------------------------------------------------------------

    def _tell(self, message: Any) -> None:
        # When the poster is stopping, unsettled outcomes are collected from take_unsettled.
        with contextlib.suppress(pykka.ActorDeadError):
            self._deliver_to_owner(message)

    def _next_job(self) -> _Job | None:
        with self._cond:
            while self._job is None and not self._stopping:
                self._cond.wait()
            return self._job

    def _run(self) -> None:
        session: SinkSession | None = None
        try:
            session = self.sink.open(self._clock)
            while (job := self._next_job()) is not None:
                self._run_job(session, job)
        except Exception:
            logger.exception("sink {}: worker failed", self.sink.name)
        finally:
            if session is not None:
                session.close()

    def _run_job(self, session: SinkSession, job: _Job) -> None:
        attempts = session.deliver(job.items, self._abort)
        try:
            for attempt in attempts:
                for item in attempt.items:
                    self._report(job, item, attempt.verdict)
                if attempt.verdict.outcome == "retry" or self._abort.is_set():
                    break
        except Exception as exc:
            logger.opt(exception=exc).error("sink {}: delivery raised", self.sink.name)
            first = next((i for i in job.items if i.outbox_id not in job.reported), None)
            if first is not None:
                self._report(job, first, Verdict("retry", f"{type(exc).__name__}: {exc}"[:200]))
        finally:
            attempts.close()
            with self._cond:
                self._job = None
            if self._idle is not None:
                self._idle.set()
            skipped = len(job.items) - len(job.reported)
            self._tell(SinkReady(sink=self.sink.name, job=job.number,
                                 attempted=len(job.reported), skipped=skipped))  # fmt: skip

    def _report(self, job: _Job, item: OutboxItem, verdict: Verdict) -> None:
        job.reported.add(item.outbox_id)
        outcome = DeliveryOutcome(
            sink=self.sink.name,
            job=job.number,
            outbox_id=item.outbox_id,
            kind=item.kind,
            idempotency_key=item.idempotency_key,
            attempts=item.attempts,
            outcome=verdict.outcome,
            reason=verdict.reason,
            status=verdict.status,
            retry_after_s=verdict.retry_after_s,
        )
        with self._cond:
            self._unsettled[item.outbox_id] = outcome
        self._tell(outcome)
