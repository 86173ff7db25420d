"""Configuration of the Binance simulator: one frozen dataclass, every knob in one place.

Cadences, pings and lifetimes are **real** seconds (they shape the transport a client sees);
market time, kline boundaries, weight windows, bans and scenario times are **simulated** time
(the simulator's :class:`~simulator.clock.SimClock`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["DEFAULT_FIXTURES_DIR", "FIXTURES_ENV_VAR", "SimulatorConfig", "resolve_fixtures_dir"]

FIXTURES_ENV_VAR = "VOLSPIKE_FIXTURES_DIR"
"""Environment variable that overrides the default fixtures directory (the test suite reads it
too); ``VOLSPIKE_SIM_FIXTURES``, its older name, is still read when it is not set."""
_OLD_FIXTURES_ENV_VAR = "VOLSPIKE_SIM_FIXTURES"

DEFAULT_FIXTURES_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"
"""``../shared/fixtures`` relative to the repository root."""


def resolve_fixtures_dir(configured: Path | str | None) -> Path:
    """The fixtures directory to use: the configured one, else the env var, else the default."""
    if configured is not None:
        return Path(configured)
    env = os.environ.get(FIXTURES_ENV_VAR) or os.environ.get(_OLD_FIXTURES_ENV_VAR)
    if env:
        return Path(env)
    return DEFAULT_FIXTURES_DIR


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Everything the simulator can be told. Defaults reproduce Binance's documented numbers.

    Use :func:`dataclasses.replace` to derive variants (tests shorten every period).
    """

    host: str = "127.0.0.1"
    """Interface to bind; keep it on loopback."""
    ws_port: int = 0
    """WebSocket port (0: a free port chosen by the OS)."""
    rest_port: int = 0
    """REST port (0: a free port chosen by the OS)."""

    fixtures_dir: Path | None = None
    """Root of the fixtures (``binance/`` and ``binance-history/``); ``None``: see
    :func:`resolve_fixtures_dir`. Missing files fall back to a synthetic universe."""
    symbols: int | None = None
    """Universe size: ``None`` = every symbol of the real manifest (543); fewer takes the first
    N in manifest order (BTCUSDT, ETHUSDT, ...); more pads with synthetic ``SIMnnnUSDT`` names."""
    symbol_names: tuple[str, ...] | None = None
    """The universe by name, in this order (overrides ``symbols``): a replay of a chosen few
    symbols. Names without real data (e.g. the manifest's non-ASCII ones, or made-up names)
    borrow another symbol's series, as in the full universe."""
    seed: int = 0
    """Seed of every random draw; the market is a deterministic function of (seed, time)."""
    mode: Literal["live", "replay"] = "live"
    """``live``: each symbol plays its real history from a seeded phase, wrapping around;
    ``replay``: the clock starts in the real history window and plays it hour by hour."""
    speed: float = 1.0
    """Simulated seconds per real second of the built-in accelerated clock."""
    start_ms: int | None = None
    """Simulated start time (``None``: now in live mode, the history window start in replay)."""
    history_days: int = 70
    """How far back REST klines reach (as if every symbol was onboarded then; 70 days covers
    ``interval=1h&limit=1500``)."""
    extra_contracts: bool = True
    """Add non-matching exchangeInfo entries (PENDING_TRADING, quarterly, USDC, SETTLING)."""

    kline_period: float = 0.25
    """Real seconds between kline stream updates."""
    mark_price_period: float = 3.0
    """Real seconds between ``@markPrice`` / ``!markPrice@arr`` pushes."""
    mark_price_fast_period: float = 1.0
    """Real seconds between ``@markPrice@1s`` / ``!markPrice@arr@1s`` pushes."""
    ticker_period: float = 1.0
    """Real seconds between ``!ticker@arr`` (and ``@ticker``/``miniTicker``) pushes."""

    max_streams_per_connection: int = 1024
    """Streams one connection may hold (older docs say 200)."""
    max_messages_per_second: int = 10
    """Incoming frames (text, ping, pong) per second before the server disconnects."""
    ping_interval: float = 180.0
    """Real seconds between server pings."""
    pong_timeout: float = 600.0
    """Real seconds a ping may stay unanswered before the server disconnects."""
    connection_lifetime: float = 86_400.0
    """Real seconds after which the server closes a connection."""
    close_timeout: float = 1.0
    """Real seconds the server waits for the client's side of a closing handshake."""
    send_queue_limit: int = 10_000
    """Frames queued for one slow client before the server drops it."""

    weight_limit: int = 2400
    """REQUEST_WEIGHT per IP per calendar minute (simulated clock)."""
    ban_after_violations: int = 3
    """Requests tolerated during a 429 pause before a 418 ban."""
    ban_base_seconds: float = 120.0
    """First ban length; each further ban doubles it."""
    ban_max_seconds: float = 259_200.0
    """Longest ban (3 days)."""
    timeout_hold_seconds: float = 30.0
    """How long a REST "timeout" fault holds a request before dropping it."""

    extra: dict[str, str] = field(default_factory=dict)
    """Free-form labels (shown by ``python -m simulator``); not interpreted."""

    def __post_init__(self) -> None:
        if self.mode not in ("live", "replay"):
            raise ValueError(f"mode must be 'live' or 'replay', not {self.mode!r}")
        if self.speed <= 0:
            raise ValueError("speed must be > 0")
        if self.symbols is not None and self.symbols < 1:
            raise ValueError("symbols must be >= 1")
        if self.symbol_names is not None:
            names = tuple(self.symbol_names)
            if not names or len(set(names)) != len(names) or not all(names):
                raise ValueError("symbol_names must be distinct, non-empty names")
            object.__setattr__(self, "symbol_names", names)
        for name in (
            "kline_period",
            "mark_price_period",
            "mark_price_fast_period",
            "ticker_period",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
