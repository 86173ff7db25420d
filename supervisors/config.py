"""Configuration: defaults, an optional TOML file, environment variables, CLI overrides.

Precedence, lowest to highest: built-in default < TOML file < environment < command line.
Every setting is declared once in :data:`SETTINGS`, which drives parsing, validation,
``--print-config`` and the configuration table in the README.

- Environment names are the original system's where it had one (``VOLSPIKE_API_URL``,
  ``OI_MAX_REQ_PER_MIN`` ...), otherwise ``VOLSPIKE_<NAME>``.
- TOML keys are the settings' lower-case names (``funding_api_port = 8888``), at top level.
- On the command line, ``--set name=value`` overrides any setting; a few have their own flag.

A wrong value fails at start with one :class:`~messages.errors.ConfigError` line naming the
setting as the user wrote it. A typo must not silently fall back to a default, so an unknown
name is an error too, with "did you mean X?" when a known name is close:

- an unknown TOML key or ``--set`` name;
- an unknown variable under a prefix only this program (or the original) uses:
  ``VOLSPIKE_``, ``OI_``, ``FUNDING_API_``;
- a variable under a prefix other software shares (``TELEGRAM_``, ``BINANCE_``, ``VOLUME_``,
  ``MIN_``, or holding ``CHAT``) only when it is very close to one of ours
  (``TELEGRAM_TOKN``, ``CHATID``); ``TELEGRAM_BOT_API_SECRET`` and the like are left alone.

The original's retired variables (:data:`LEGACY_ENV`) warn instead; ``VOLSPIKE_FIXTURES_DIR``
and ``VOLSPIKE_SIM_FIXTURES`` (the test suite's and the simulator's) are not settings and pass.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from messages.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "LEGACY_ENV",
    "SETTINGS",
    "Config",
    "Setting",
    "load_config",
    "render_config",
    "settings_table",
    "strip_userinfo",
]

Source = Literal["default", "toml", "env", "cli"]


@dataclass(frozen=True, slots=True)
class Setting:
    """How one configuration value is named, parsed, checked and documented."""

    name: str
    """Field name on :class:`Config`, and the TOML key / ``--set`` name."""
    env: str
    """Environment variable name."""
    kind: Literal["str", "int", "float", "bool", "url", "path", "symbols", "level"]
    """How the text is parsed."""
    help: str
    """One line for the README table and ``--help``."""
    secret: bool = False
    """Redacted wherever it is shown or logged."""
    minimum: float | None = None
    """Smallest accepted number (inclusive)."""
    maximum: float | None = None
    """Largest accepted number (inclusive)."""
    schemes: tuple[str, ...] = ()
    """Accepted URL schemes for ``url`` settings."""


def _s(name: str, env: str | None, kind: Any, help_: str, **kw: Any) -> Setting:
    return Setting(name, env or f"VOLSPIKE_{name.upper()}", kind, help_, **kw)


_HTTP = ("http", "https")
_WS = ("ws", "wss")

SETTINGS: tuple[Setting, ...] = (
    # --- delivery
    _s(
        "volspike_api_url",
        "VOLSPIKE_API_URL",
        "url",
        "PROD backend base URL; unset = no backend (local SQLite sink)",
        schemes=_HTTP,
    ),
    _s(
        "volspike_api_key",
        "VOLSPIKE_API_KEY",
        "str",
        "PROD ingest key, sent as X-API-Key",
        secret=True,
    ),
    _s(
        "volspike_api_url_dev",
        "VOLSPIKE_API_URL_DEV",
        "url",
        "optional DEV backend base URL",
        schemes=_HTTP,
    ),
    _s("volspike_api_key_dev", "VOLSPIKE_API_KEY_DEV", "str", "DEV ingest key", secret=True),
    _s("telegram_token", "TELEGRAM_TOKEN", "str", "Telegram bot token", secret=True),
    _s("chat_id", "CHAT_ID", "str", "Telegram chat id for alerts"),
    _s("telegram_api_url", "TELEGRAM_API_URL", "url", "Telegram Bot API base URL", schemes=_HTTP),
    # --- exchange
    _s("binance_rest_url", "BINANCE_REST_URL", "url", "Binance USD-M REST base URL", schemes=_HTTP),
    _s(
        "binance_ws_url",
        "BINANCE_WS_URL",
        "url",
        "Binance USD-M WebSocket base URL, with the /market route",
        schemes=_WS,
    ),
    # --- local API and state
    _s("funding_api_host", "FUNDING_API_HOST", "str", "HTTP API bind address"),
    _s(
        "funding_api_port",
        "FUNDING_API_PORT",
        "int",
        "HTTP API port (0 = any free port)",
        minimum=0,
        maximum=65535,
    ),
    _s(
        "state_dir",
        "VOLSPIKE_STATE_DIR",
        "path",
        "directory of the SQLite state (outbox, dedup, OI history, local sink)",
    ),
    # --- freshness and feeds
    _s("stale_after_s", None, "float", "a cached value older than this is stale", minimum=1),
    _s(
        "evict_after_s",
        None,
        "float",
        "a symbol not updated for this long is dropped from the cache",
        minimum=60,
    ),
    _s(
        "feed_stall_after_s",
        None,
        "float",
        "a feed with no data (or no advancing event time) this long reconnects",
        minimum=1,
    ),
    _s(
        "feed_rotate_after_s",
        None,
        "float",
        "planned reconnect before Binance's 24 h cut",
        minimum=60,
    ),
    _s(
        "kline_streams_per_connection",
        None,
        "int",
        "kline streams per WebSocket connection",
        minimum=1,
        maximum=1024,
    ),
    # --- REST budget and OI poller
    _s(
        "rest_weight_target",
        None,
        "int",
        "REST weight per minute to aim at (Binance limit is 2400)",
        minimum=1,
        maximum=2400,
    ),
    _s(
        "oi_max_req_per_min",
        "OI_MAX_REQ_PER_MIN",
        "int",
        "open-interest requests per minute at most",
        minimum=1,
    ),
    _s(
        "oi_min_interval_sec",
        "OI_MIN_INTERVAL_SEC",
        "float",
        "shortest OI re-sample interval per symbol",
        minimum=0.5,
    ),
    _s(
        "oi_max_interval_sec",
        "OI_MAX_INTERVAL_SEC",
        "float",
        "longest OI re-sample interval per symbol",
        minimum=0.5,
    ),
    _s(
        "oi_spike_threshold_pct_5min",
        "OI_SPIKE_THRESHOLD_PCT_5MIN",
        "float",
        "5-minute OI alert threshold (fraction)",
        minimum=0,
    ),
    _s(
        "oi_spike_threshold_pct_15min",
        "OI_SPIKE_THRESHOLD_PCT_15MIN",
        "float",
        "15-minute OI alert threshold (fraction)",
        minimum=0,
    ),
    _s(
        "oi_spike_threshold_pct_60min",
        "OI_SPIKE_THRESHOLD_PCT_60MIN",
        "float",
        "1-hour OI alert threshold (fraction)",
        minimum=0,
    ),
    _s(
        "oi_lookback_window_5min",
        "OI_LOOKBACK_WINDOW_5MIN",
        "float",
        "5-minute lookback (s)",
        minimum=1,
    ),
    _s(
        "oi_lookback_window_15min",
        "OI_LOOKBACK_WINDOW_15MIN",
        "float",
        "15-minute lookback (s)",
        minimum=1,
    ),
    _s(
        "oi_lookback_window_60min",
        "OI_LOOKBACK_WINDOW_60MIN",
        "float",
        "1-hour lookback (s)",
        minimum=1,
    ),
    _s(
        "oi_alert_cooldown_5min",
        "OI_ALERT_COOLDOWN_5MIN",
        "float",
        "5-minute alert cooldown (s)",
        minimum=0,
    ),
    _s(
        "oi_alert_cooldown_15min",
        "OI_ALERT_COOLDOWN_15MIN",
        "float",
        "15-minute alert cooldown (s)",
        minimum=0,
    ),
    _s(
        "oi_alert_cooldown_60min",
        "OI_ALERT_COOLDOWN_60MIN",
        "float",
        "1-hour alert cooldown (s)",
        minimum=0,
    ),
    _s(
        "oi_min_delta_contracts",
        "OI_MIN_DELTA_CONTRACTS",
        "float",
        "minimum OI change in contracts for an alert",
        minimum=0,
    ),
    _s(
        "oi_min_delta_usd",
        "OI_MIN_DELTA_USD",
        "float",
        "optional minimum OI change in USD notional for an alert",
        minimum=0,
    ),
    _s(
        "oi_liquid_enter_quote_24h",
        "OI_LIQUID_ENTER_QUOTE_24H",
        "float",
        "24 h quote volume to enter the liquid universe",
        minimum=0,
    ),
    _s(
        "oi_liquid_exit_quote_24h",
        "OI_LIQUID_EXIT_QUOTE_24H",
        "float",
        "24 h quote volume below which a symbol leaves it",
        minimum=0,
    ),
    _s(
        "oi_universe_post",
        "OI_UNIVERSE_POST",
        "bool",
        "post the liquid universe to the backend's liquid-universe/update endpoint",
    ),
    _s(
        "oi_universe_evaluate_sec",
        "OI_UNIVERSE_EVALUATE_SEC",
        "float",
        "seconds between liquid-universe evaluations",
        minimum=1,
    ),
    _s(
        "oi_universe_exclude",
        "OI_UNIVERSE_EXCLUDE",
        "symbols",
        "comma-separated symbols never polled",
    ),
    # --- volume spikes
    _s(
        "volume_multiple",
        "VOLUME_MULTIPLE",
        "float",
        "spike when current hour >= this x previous hour",
        minimum=1,
    ),
    _s(
        "min_quote_vol",
        "MIN_QUOTE_VOL",
        "float",
        "and current hour quote volume >= this (USDT)",
        minimum=0,
    ),
    # --- operations
    _s(
        "health_log_interval_s",
        None,
        "float",
        "seconds between health lines in the log (0 = off)",
        minimum=0,
    ),
    _s(
        "gc_young_threshold",
        None,
        "int",
        "allocations between the garbage collector's young passes, set by run.py "
        "(Python 3.11's default is 700; 0 = leave Python's settings alone)",
        minimum=0,
        maximum=2**31 - 1,
    ),
    _s("log_level", None, "level", "DEBUG, INFO, WARNING or ERROR"),
    _s("log_json", None, "bool", "write JSON lines instead of text"),
)

_BY_NAME = {s.name: s for s in SETTINGS}
_BY_ENV = {s.env: s for s in SETTINGS}
_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# Variables the original read that no longer mean anything; warn instead of failing.
LEGACY_ENV = (
    "OI_SPIKE_THRESHOLD_PCT",
    "OI_DUMP_THRESHOLD_PCT",
    "OI_LOOKBACK_WINDOW_SEC",
    "OI_ALERT_COOLDOWN_SEC",
    "WS_FUNDING_ENABLED",
    "WS_FUNDING_API_URL",
    "BINANCE_PROXY_URL",
)


@dataclass(frozen=True, slots=True)
class Config:
    """The effective configuration (immutable). Field docs are in :data:`SETTINGS`."""

    volspike_api_url: str | None = None
    volspike_api_key: str | None = None
    volspike_api_url_dev: str | None = None
    volspike_api_key_dev: str | None = None
    telegram_token: str | None = None
    chat_id: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    binance_rest_url: str = "https://fapi.binance.com"
    binance_ws_url: str = "wss://fstream.binance.com/market"
    funding_api_host: str = "127.0.0.1"
    funding_api_port: int = 8888
    state_dir: Path = Path("./state")
    stale_after_s: float = 180.0
    evict_after_s: float = 3600.0
    feed_stall_after_s: float = 15.0
    feed_rotate_after_s: float = 23 * 3600.0
    kline_streams_per_connection: int = 200
    rest_weight_target: int = 2000
    oi_max_req_per_min: int = 2000
    oi_min_interval_sec: float = 5.0
    oi_max_interval_sec: float = 20.0
    oi_spike_threshold_pct_5min: float = 0.03
    oi_spike_threshold_pct_15min: float = 0.07
    oi_spike_threshold_pct_60min: float = 0.12
    oi_lookback_window_5min: float = 300.0
    oi_lookback_window_15min: float = 900.0
    oi_lookback_window_60min: float = 3600.0
    oi_alert_cooldown_5min: float = 600.0
    oi_alert_cooldown_15min: float = 900.0
    oi_alert_cooldown_60min: float = 3600.0
    oi_min_delta_contracts: float = 5000.0
    oi_min_delta_usd: float | None = None
    oi_liquid_enter_quote_24h: float = 4_000_000.0
    oi_liquid_exit_quote_24h: float = 2_000_000.0
    oi_universe_post: bool = False
    oi_universe_evaluate_sec: float = 10.0
    oi_universe_exclude: tuple[str, ...] = ("USDCUSDT",)
    volume_multiple: float = 3.0
    min_quote_vol: float = 3_000_000.0
    health_log_interval_s: float = 60.0
    gc_young_threshold: int = 20_000
    log_level: str = "INFO"
    log_json: bool = False
    sources: dict[str, Source] = field(default_factory=dict, compare=False, repr=False)
    """Where each non-default value came from."""

    # The built-in defaults are the field defaults above; SETTINGS holds everything else.

    @property
    def has_prod_backend(self) -> bool:
        """True when a PROD backend is configured."""
        return self.volspike_api_url is not None

    @property
    def has_dev_backend(self) -> bool:
        """True when a DEV backend is configured."""
        return self.volspike_api_url_dev is not None

    @property
    def has_telegram(self) -> bool:
        """True when Telegram delivery is configured."""
        return self.telegram_token is not None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value that is set, to register with the log redactor.

        That is the secret settings, and the credentials inside any URL setting
        (``https://user:password@host``).
        """
        values = [getattr(self, s.name) for s in SETTINGS if s.secret]
        for s in SETTINGS:
            if s.kind == "url" and getattr(self, s.name):
                values.extend(_url_credentials(getattr(self, s.name)))
        return tuple(dict.fromkeys(v for v in values if v))

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied and validated."""
        merged = {s.name: getattr(self, s.name) for s in SETTINGS} | changes
        config = Config(**merged, sources=dict(self.sources))
        _check_relations(config)
        return config


_TOML_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "symbols": (list, str),
}


def _parse(  # noqa: C901, PLR0912 - one branch per kind reads best
    setting: Setting, raw: Any, where: str, *, typed: bool = False
) -> Any:
    """Text (env, CLI) or a TOML value (``typed``) → the setting's type, checked."""

    def fail(problem: str) -> ConfigError:
        return ConfigError(where, problem)

    if typed:
        wanted = _TOML_TYPES.get(setting.kind, (str,))
        if not isinstance(raw, wanted) or (bool not in wanted and isinstance(raw, bool)):
            names = " or ".join(t.__name__ for t in wanted)
            raise fail(f"expected a TOML {names}, got {raw!r}")

    if isinstance(raw, str):
        raw = raw.strip()
        if raw == "" and _DEFAULTS[setting.name] is None:
            return None
    kind = setting.kind
    if kind in ("str", "url", "path", "level"):
        if not isinstance(raw, str):
            raise fail(f"expected text, got {raw!r}")
        if raw == "":
            raise fail("must not be empty")
    if kind == "str":
        return raw
    if kind == "path":
        return Path(raw).expanduser()
    if kind == "level":
        level = raw.upper()
        if level not in _LEVELS:
            raise fail(f"{raw!r} is not a log level ({', '.join(_LEVELS)})")
        return level
    if kind == "url":
        parts = urlsplit(raw)
        if parts.scheme not in setting.schemes or not parts.netloc:
            raise fail(f"{raw!r} is not a {'/'.join(setting.schemes)} URL")
        return raw.rstrip("/")
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise fail(f"{raw!r} is not a boolean (true/false)")
    if kind == "symbols":
        items = raw if isinstance(raw, list) else str(raw).split(",")
        return tuple(str(x).strip().upper() for x in items if str(x).strip())
    # int / float
    if isinstance(raw, bool):
        raise fail(f"expected a number, got {raw!r}")
    try:
        number: float = int(raw) if kind == "int" else float(raw)
    except (TypeError, ValueError):
        kind_text = "an integer" if kind == "int" else "a number"
        raise fail(f"{raw!r} is not {kind_text}") from None
    if kind == "float" and not math.isfinite(number):
        raise fail(f"{raw!r} is not a finite number")
    if setting.minimum is not None and number < setting.minimum:
        raise fail(f"{raw!r} is below the minimum {setting.minimum:g}")
    if setting.maximum is not None and number > setting.maximum:
        raise fail(f"{raw!r} is above the maximum {setting.maximum:g}")
    return number


def _written(config: Config, name: str, like: str | None = None) -> str:
    """``name`` as the user wrote it: the variable, ``--set name`` or the TOML key.

    A setting left at its default is named the way the setting ``like`` was written (a
    variable next to a variable, a setting name next to a ``--set`` or a TOML key).
    """
    source = config.sources.get(name)
    if source is None and like is not None:
        return name if config.sources.get(like) in ("cli", "toml") else _BY_NAME[name].env
    if source == "cli":
        return f"--set {name}"
    if source == "toml":
        return name
    return _BY_NAME[name].env


def _number(value: float) -> str:
    return format(value, ".15g")


def _check_relations(config: Config) -> None:
    named = functools.partial(_written, config)
    pairs = (
        ("volspike_api_url", "volspike_api_key"),
        ("volspike_api_url_dev", "volspike_api_key_dev"),
        ("telegram_token", "chat_id"),
    )
    for first, second in pairs:
        a, b = getattr(config, first), getattr(config, second)
        if (a is None) != (b is None):
            have, missing = (first, second) if a is not None else (second, first)
            raise ConfigError(
                named(missing, have),
                f"must be set together with {named(have)} (only one of the two is set)",
            )
    if config.volspike_api_url_dev is not None and config.volspike_api_url is None:
        dev = "volspike_api_url_dev"
        raise ConfigError(
            named(dev), f"a DEV backend needs a PROD backend too ({named('volspike_api_url', dev)})"
        )
    ordered = (
        ("oi_min_interval_sec", "oi_max_interval_sec"),
        ("oi_liquid_exit_quote_24h", "oi_liquid_enter_quote_24h"),
    )
    for low, high in ordered:
        small, large = getattr(config, low), getattr(config, high)
        if small <= large:
            continue
        if high in config.sources and low not in config.sources:  # blame what the user set
            raise ConfigError(
                named(high),
                f"{_number(large)} is less than {named(low, high)} ({_number(small)})",
            )
        raise ConfigError(
            named(low), f"{_number(small)} is greater than {named(high, low)} ({_number(large)})"
        )


_STRICT_PREFIXES = ("VOLSPIKE_", "OI_", "FUNDING_API_")
"""Environment prefixes that belong to this program (and the original): unknown is an error."""
_SHARED_PREFIXES = ("TELEGRAM_", "BINANCE_", "VOLUME_", "MIN_")
"""Prefixes other software uses too (an environment file may be shared): unknown is never an
error there, only a warning when it is close to one of ours (``TELEGRAM_TOKN``, but also
another program's ``TELEGRAM_BOT_TOKEN``)."""
_OTHER_ENV = frozenset({"VOLSPIKE_FIXTURES_DIR", "VOLSPIKE_SIM_FIXTURES"})
"""Ours, but not settings: read by the test suite and the simulator, accepted here."""
_SHARED_CUTOFF = 0.85
_SUGGEST_CUTOFF = 0.8
"""difflib ratios: a suggestion must be this close (``FUNDING_API_PROT`` → 0.94)."""


def _did_you_mean(name: str, known: Iterable[str], cutoff: float) -> str | None:
    """The closest current name (a retired one is never suggested), if any is this close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=cutoff)
    return close[0] if close else None


def _unknown(name: str, known: Iterable[str], cutoff: float = _SUGGEST_CUTOFF) -> str:
    """The problem text for an unknown name, with a suggestion when one is close."""
    guess = _did_you_mean(name, known, cutoff)
    return "unknown setting" + (f", did you mean {guess}?" if guess else " (a typo?)")


def _check_unknown_env(name: str, warn: Callable[[str], None] | None) -> None:
    """Raise for an unknown variable under our own prefixes; warn for a near miss elsewhere.

    Under a shared prefix (:data:`_SHARED_PREFIXES`) only a name close to a setting is worth a
    warning; the others belong to other programs.
    """
    if name in _OTHER_ENV:
        return
    if name.startswith(_STRICT_PREFIXES):
        raise ConfigError(name, _unknown(name, _BY_ENV))
    if warn is not None and (name.startswith(_SHARED_PREFIXES) or "CHAT" in name):
        guess = _did_you_mean(name, _BY_ENV, _SHARED_CUTOFF)
        if guess is not None:
            warn(f"{name} is not a setting (ignored); did you mean {guess}?")


def load_config(  # noqa: C901 - three sources, each checked in place
    *,
    toml_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Config:
    """Build the effective configuration.

    Args:
        toml_path: an optional TOML file (``--config``).
        environ: the environment (``os.environ`` by default).
        overrides: ``name -> text`` from the command line.
        warn: called with a sentence for each legacy variable that is set but no longer read.

    Raises:
        ConfigError: naming the first setting that is missing, unknown or invalid.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    if toml_path is not None:
        path = Path(toml_path)
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError("--config", f"cannot read {path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None
        for key, raw in document.items():
            setting = _BY_NAME.get(key)
            if setting is None:
                raise ConfigError(f"{path}: {key}", _unknown(str(key), _BY_NAME))
            values[key] = _parse(setting, raw, f"{path}: {key}", typed=True)
            sources[key] = "toml"
    for name, raw in sorted(env.items()):  # sorted: the same first error on every start
        setting = _BY_ENV.get(name)
        if setting is None:
            if name in LEGACY_ENV:
                if warn is not None:
                    warn(f"{name} is set but no longer read (see the configuration table)")
            else:
                _check_unknown_env(name, warn)
            continue
        values[setting.name] = _parse(setting, raw, name)
        sources[setting.name] = "env"
    for name, raw in (overrides or {}).items():
        setting = _BY_NAME.get(name)
        if setting is None:
            raise ConfigError(f"--set {name}", _unknown(name, _BY_NAME))
        values[name] = _parse(setting, raw, f"--set {name}")
        sources[name] = "cli"
    config = Config(**values, sources=sources)
    _check_relations(config)
    return config


def _authority(url: str) -> tuple[int, int] | None:
    """Where the authority (``user:pw@host:port``) of ``scheme://authority/...`` is."""
    sep = url.find("://")
    if sep <= 0 or not _SCHEME.fullmatch(url[:sep]):
        return None
    start, end = sep + 3, len(url)
    for stop in "/?#":
        found = url.find(stop, start)
        if 0 <= found < end:
            end = found
    return start, end


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def strip_userinfo(url: str) -> str:
    """``url`` without the ``user:password@`` part of its authority, otherwise unchanged.

    ``https://u:pw@host:8443/p?q`` → ``https://host:8443/p?q``; a URL without credentials,
    or text that is not a URL, comes back as it was.
    """
    span = _authority(url)
    if span is None:
        return url
    start, end = span
    at = url.rfind("@", start, end)
    if at < 0:
        return url
    return url[:start] + url[at + 1 :]


def _url_credentials(url: str) -> list[str]:
    """The secret parts of a URL's userinfo, as written and percent-decoded.

    That is the password, or the user when there is no password (a token as the user name).
    """
    span = _authority(url)
    if span is None:
        return []
    start, end = span
    at = url.rfind("@", start, end)
    if at < 0:
        return []
    user, colon, password = url[start:at].partition(":")
    secret = password if colon else user
    return [secret, unquote(secret)] if secret else []


def _show(setting: Setting, value: Any) -> str:
    if value is None:
        return "(unset)"
    if setting.secret:
        return "*** (set)"
    if isinstance(value, tuple):
        return ",".join(value)
    if setting.kind == "url":
        shown = strip_userinfo(value)
        return shown if shown == value else f"{shown} (credentials hidden)"
    return str(value)


def render_config(config: Config) -> str:
    """The effective configuration as ``name = value  # source`` lines, secrets redacted."""
    width = max(len(s.name) for s in SETTINGS)
    lines = []
    for setting in SETTINGS:
        value = _show(setting, getattr(config, setting.name))
        lines.append(
            f"{setting.name:<{width}} = {value}  # {config.sources.get(setting.name, 'default')}"
        )
    return "\n".join(lines)


def settings_table() -> str:
    """The README's configuration table (Markdown), generated from :data:`SETTINGS`."""
    rows = ["| setting (TOML / `--set`) | environment | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = _show(s, _DEFAULTS[s.name])
        rows.append(f"| `{s.name}` | `{s.env}` | `{default}` | {s.help} |")
    return "\n".join(rows)


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Config)}
assert set(_BY_NAME) == set(_DEFAULTS) - {"sources"}, "SETTINGS and Config fields differ"
