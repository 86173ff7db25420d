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

Secrets (API keys, the Telegram token, passwords inside URLs) are registered with
:func:`register_secret` and replaced by ``***`` in every line that reaches a sink, exception
text included, whatever their source (loguru, a stdlib logger, an uncaught exception). Telegram
bot paths (``/bot<id>:<token>/``) and ``X-API-Key`` headers are masked even when the value was
never registered. In JSON mode the message, the exception text and the bound values are masked
*before* serialization: JSON escapes quotes, backslashes and control characters, so a secret
holding one would no longer match once serialized.

An exception nobody catches, in the main thread (:data:`sys.excepthook`) or in a helper thread
(:data:`threading.excepthook`), is logged at ``ERROR`` through the same pipeline instead of
being printed raw to standard error. :func:`teardown_logging` puts the previous hooks back.
"""

from __future__ import annotations

import inspect
import json as _json
import logging
import re
import sys
import threading
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import TracebackType

__all__ = [
    "HUMAN_FORMAT",
    "InterceptHandler",
    "redact",
    "register_secret",
    "setup_logging",
    "teardown_logging",
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


def _clean(value: Any) -> Any:
    """``value`` made JSON-ready with every string redacted (before serialization)."""
    if value is None or value.__class__ in (bool, int, float):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return redact(str(value))


def _json_sink(stream: TextIO) -> Callable[[Any], None]:
    """A sink writing loguru's ``serialize=True`` layout, redacted before ``json.dumps``."""

    def write(message: Any) -> None:
        record = message.record
        exception = record["exception"]
        if exception is not None:
            exception = {
                "type": None if exception.type is None else exception.type.__name__,
                "value": None if exception.value is None else redact(str(exception.value)),
                "traceback": bool(exception.traceback),
            }
        document = {
            "text": redact(str(message)),
            "record": {
                "elapsed": {
                    "repr": str(record["elapsed"]),
                    "seconds": record["elapsed"].total_seconds(),
                },
                "exception": exception,
                "extra": _clean(record["extra"]),
                "file": {"name": record["file"].name, "path": record["file"].path},
                "function": record["function"],
                "level": {
                    "icon": record["level"].icon,
                    "name": record["level"].name,
                    "no": record["level"].no,
                },
                "line": record["line"],
                "message": redact(record["message"]),
                "module": record["module"],
                "name": record["name"],
                "process": {"id": record["process"].id, "name": record["process"].name},
                "thread": {"id": record["thread"].id, "name": record["thread"].name},
                "time": {"repr": str(record["time"]), "timestamp": record["time"].timestamp()},
            },
        }
        stream.write(_json.dumps(document, default=str, ensure_ascii=False) + "\n")
        stream.flush()

    return write


# --- uncaught exceptions -------------------------------------------------------------------

_saved_hooks: tuple[Any, Any] | None = None
"""(sys.excepthook, threading.excepthook) as they were before :func:`setup_logging`."""


def _log_uncaught(
    where: str,
    actor: str,
    exc_type: type[BaseException],
    exc: BaseException | None,
    tb: TracebackType | None,
) -> None:
    logger.opt(exception=(exc_type, exc, tb)).bind(actor=actor).error(
        "uncaught {} in {}", exc_type.__name__, where
    )


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    """:data:`threading.excepthook`: log through loguru (the default prints raw)."""
    if args.exc_type is SystemExit:  # what the default hook ignores too
        return
    name = args.thread.name if args.thread is not None else "an unknown thread"
    _log_uncaught(f"thread {name}", name, args.exc_type, args.exc_value, args.exc_traceback)
    _chain(1, args)


def _sys_hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """:data:`sys.excepthook`: log through loguru (the default prints raw)."""
    _log_uncaught("the main thread", "main", exc_type, exc, tb)
    _chain(0, exc_type, exc, tb)


def _chain(index: int, *args: Any) -> None:
    """Call the hook that was installed before ours.

    Not Python's own raw printer: it would print the traceback a second time, unredacted.
    """
    saved = _saved_hooks
    if saved is None:
        return
    previous = saved[index]
    if previous not in (sys.__excepthook__, threading.__excepthook__):
        previous(*args)


def _install_hooks() -> None:
    global _saved_hooks  # noqa: PLW0603 - one process-wide pair of hooks
    with _lock:
        if _saved_hooks is None:
            _saved_hooks = (sys.excepthook, threading.excepthook)
        sys.excepthook = _sys_hook
        threading.excepthook = _thread_hook


def teardown_logging() -> None:
    """Undo :func:`setup_logging`: remove the sinks, put back the exception hooks it replaced.

    Registered secrets stay registered.
    """
    global _saved_hooks  # noqa: PLW0603 - one process-wide pair of hooks
    logger.remove()
    with _lock:
        if _saved_hooks is not None:
            sys.excepthook, threading.excepthook = _saved_hooks
            _saved_hooks = None


def setup_logging(
    *,
    level: str = "INFO",
    json: bool = False,
    stream: TextIO | None = None,
    secrets: Iterable[str | None] = (),
) -> None:
    """Configure the process-wide pipeline (call once, from the main thread, at start).

    Also installs :data:`sys.excepthook` and :data:`threading.excepthook`, so an exception
    nobody catches is logged here (formatted, JSON, redacted) rather than printed raw; a hook
    someone else installed before (not Python's default) is still called after ours.
    :func:`teardown_logging` undoes all of it.

    Args:
        level: the minimum level written (``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``).
        json: write one JSON object per line (loguru's serialized layout) instead of text.
        stream: where to write; standard error by default.
        secrets: values to redact from every line (see :func:`register_secret`).
    """
    for secret in secrets:
        register_secret(secret)
    out = stream if stream is not None else sys.stderr
    logger.remove()
    logger.configure(extra={"actor": "main"})
    logger.add(
        _json_sink(out) if json else _redacting_sink(out),
        level=level.upper(),
        format="{message}" if json else HUMAN_FORMAT,
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
    _install_hooks()
