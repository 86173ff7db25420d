"""One logging pipeline: loguru, with the stdlib loggers routed into it and secrets redacted.

pykka, websocket-client and urllib3 log through the standard library. pykka writes the ERROR
record that explains an actor's death to its ``pykka`` logger and nowhere else, so without
:class:`InterceptHandler` an actor can die silently. :func:`setup_logging` installs the handler
on the root logger, so every stdlib record reaches loguru.

Levels, and what they mean here:

- ``ERROR``: something failed and was not recovered by itself (an actor died, a payload was
  refused for good, the root supervisor gave up);
- ``WARNING``: a failure that is being handled (reconnect, retry, restart, stale data,
  rejected frames — rate-limited);
- ``INFO``: lifecycle and health (start, stop, health lines, alerts emitted);
- ``DEBUG``: per-message detail for development.

Secrets (API keys, the Telegram token) are registered with :func:`register_secret` and replaced
by ``***`` in every line that reaches a sink, exception text included, whatever their source.
Telegram bot paths (``/bot<id>:<token>/``) and ``X-API-Key`` headers are masked even when the
value was never registered.
"""

from __future__ import annotations

import inspect
import logging
import re
import sys
import threading
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = [
    "HUMAN_FORMAT",
    "InterceptHandler",
    "redact",
    "register_secret",
    "setup_logging",
]

HUMAN_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <7}</level> | "
    "<cyan>{extra[actor]}</cyan> | {message}"
)

_STDLIB_LOGGERS = ("pykka", "websocket", "urllib3", "requests", "websockets", "simulator")

_lock = threading.Lock()
_secrets: set[str] = set()
_secret_re: re.Pattern[str] | None = None
_PATTERNS = (
    (re.compile(r"(bot)\d+:[A-Za-z0-9_-]{10,}"), r"\1***"),
    (re.compile(r"(?i)(x-api-key['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+"), r"\1***"),
)


def register_secret(value: str | None) -> None:
    """Never print ``value`` again: every log line containing it shows ``***`` instead.

    Values shorter than 4 characters are ignored (they would mask ordinary words).
    """
    global _secret_re  # noqa: PLW0603 - one process-wide redaction set
    if not value or len(value) < 4:
        return
    with _lock:
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_re = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """``text`` with every registered secret and known secret pattern masked."""
    pattern = _secret_re
    if pattern is not None:
        text = pattern.sub("***", text)
    for regex, replacement in _PATTERNS:
        text = regex.sub(replacement, text)
    return text


class InterceptHandler(logging.Handler):
    """Route standard-library log records into loguru, keeping level and caller."""

    def emit(self, record: logging.LogRecord) -> None:
        """Forward one record (runs in whichever thread logged it)."""
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = inspect.currentframe(), 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).bind(actor=record.name).log(
            level, record.getMessage()
        )


def _redacting_sink(stream: TextIO) -> Callable[[Any], None]:
    def write(message: Any) -> None:
        stream.write(redact(str(message)))
        stream.flush()

    return write


def setup_logging(
    *,
    level: str = "INFO",
    json: bool = False,
    stream: TextIO | None = None,
    secrets: Iterable[str | None] = (),
) -> None:
    """Configure the process-wide pipeline (call once, from the main thread, at start).

    Args:
        level: the minimum level written (``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``).
        json: write one JSON object per line (loguru's serialized record) instead of text.
        stream: where to write; standard error by default.
        secrets: values to redact from every line (see :func:`register_secret`).
    """
    for secret in secrets:
        register_secret(secret)
    out = stream if stream is not None else sys.stderr
    logger.remove()
    logger.configure(extra={"actor": "main"})
    logger.add(
        _redacting_sink(out),
        level=level.upper(),
        format="{message}" if json else HUMAN_FORMAT,
        serialize=json,
        colorize=False if json else (hasattr(out, "isatty") and out.isatty()),
        backtrace=False,
        diagnose=False,
        enqueue=False,
    )
    handler = InterceptHandler()
    logging.basicConfig(handlers=[handler], level=0, force=True)
    for name in _STDLIB_LOGGERS:
        std = logging.getLogger(name)
        std.handlers = []
        std.propagate = True
    # pykka logs the exception that killed an actor at ERROR and swallowed ask() failures at
    # INFO; keep both visible. urllib3 is chatty at DEBUG (one line per connection).
    logging.getLogger("pykka").setLevel(logging.INFO)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
