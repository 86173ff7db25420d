"""Real Binance USD-M history from the fixtures, or a small synthetic universe without them.

Reads ``binance-history/`` (1h klines of ~540 perpetuals, 4h open interest, funding rates, the
2026-03-19 symbol manifest, a 2024 mainnet exchangeInfo) into one :class:`History`. Loading
takes under a second and is cached per directory, so many simulators in one test session share
it. If the files are missing, :func:`load_history` logs one warning and builds a deterministic
synthetic universe with the same structure, so every code path above stays the same.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

__all__ = ["HOUR_MS", "History", "HourRow", "SymbolSeries", "load_history"]

HOUR_MS = 3_600_000
KLINES_ALL = "um_klines_1h_all-symbols_2026-03-12_2026-03-19.csv"
KLINES_60 = "um_klines_1h_60-symbols_2026-02-19_2026-03-19.csv"
OI_FILES = (
    "um_openInterestHist_4h_60-symbols_2026-02-20_2026-03-20.csv",
    "um_openInterestHist_4h_all-symbols_2026-03-12_2026-03-20.csv",
)
FUNDING_FILES = (
    "um_fundingRate_60-symbols_2026-02-19_2026-03-20.csv",
    "um_fundingRate_all-symbols_2026-03-12_2026-03-20.csv",
)
MANIFEST = "um_perpetual_symbols_2026-03-19_manifest.json"
EXCHANGE_INFO = "um_exchangeInfo_2024-10-20.json"


@dataclass(frozen=True, slots=True)
class HourRow:
    """One real 1h candle; ``raw`` keeps the exchange's own strings (o, h, l, c, v, q)."""

    open_ms: int
    o: float
    h: float
    l: float  # noqa: E741 - Binance's own field letter
    c: float
    v: float
    q: float
    n: int
    raw: tuple[str, str, str, str, str, str]


@dataclass(slots=True)
class SymbolSeries:
    """The contiguous hourly history of one symbol, with its OI and funding series."""

    symbol: str
    rows: list[HourRow]
    oi: list[tuple[int, float]] = field(default_factory=list)
    """``(timestamp_ms, sum_open_interest)`` every 4 h, ascending."""
    funding: list[tuple[int, float]] = field(default_factory=list)
    """``(fundingTime_ms, rate)`` ascending (times carry Binance's few-ms jitter)."""
    price_decimals: int = 2
    qty_decimals: int = 3
    quote_decimals: int = 5

    @property
    def start_ms(self) -> int:
        """Open time of the first hour."""
        return self.rows[0].open_ms

    @property
    def end_ms(self) -> int:
        """End (exclusive) of the last hour."""
        return self.rows[-1].open_ms + HOUR_MS


@dataclass(slots=True)
class History:
    """Everything the market model draws from."""

    series: dict[str, SymbolSeries]
    """Symbols with real hourly data."""
    order: list[str]
    """The universe in manifest order (may include names without data, e.g. non-ASCII ones)."""
    exchange_info: dict[str, object] | None
    """A real exchangeInfo body used as the template for symbol entries, or ``None``."""
    window_start_ms: int
    """First hour every series covers (replay starts here by default)."""
    window_end_ms: int
    """End of the common window."""
    synthetic: bool = False
    source: str = ""


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def _read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        return list(reader)


def _hour_row(open_ms: int, raw: tuple[str, str, str, str, str, str], trades: int) -> HourRow:
    o, h, low, c, v, q = (float(x) for x in raw)
    return HourRow(open_ms, o, h, low, c, v, q, trades, raw)


def _load_klines(path: Path, into: dict[str, list[HourRow]]) -> None:
    for row in _read_csv(path):
        raw = (row[2], row[3], row[4], row[5], row[6], row[7])
        into.setdefault(row[0], []).append(_hour_row(int(row[1]), raw, int(row[8])))


def _build_series(rows: list[HourRow], symbol: str) -> SymbolSeries:
    rows.sort(key=lambda r: r.open_ms)
    dedup: list[HourRow] = []
    for r in rows:
        if not dedup or r.open_ms > dedup[-1].open_ms:
            dedup.append(r)
    sample = dedup[-48:]
    return SymbolSeries(
        symbol=symbol,
        rows=dedup,
        price_decimals=max(_decimals(r.raw[i]) for r in sample for i in range(4)),
        qty_decimals=max(_decimals(r.raw[4]) for r in sample),
        quote_decimals=max(_decimals(r.raw[5]) for r in sample),
    )


def _attach_series(history_dir: Path, series: dict[str, SymbolSeries]) -> None:
    """Attach the OI and funding rows of every known symbol (sorted, deduplicated)."""
    for name in OI_FILES:
        if (history_dir / name).exists():
            for ts, sym, oi, _value in _read_csv(history_dir / name):
                if sym in series:
                    series[sym].oi.append((int(ts), float(oi)))
    for name in FUNDING_FILES:
        if (history_dir / name).exists():
            for ts, sym, rate in _read_csv(history_dir / name):
                if sym in series:
                    series[sym].funding.append((int(ts), float(rate)))
    for s in series.values():
        s.oi = sorted(dict(s.oi).items())
        s.funding = sorted(dict(s.funding).items())


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


@functools.lru_cache(maxsize=4)
def _load_real(history_dir: Path) -> History:
    rows: dict[str, list[HourRow]] = {}
    _load_klines(history_dir / KLINES_ALL, rows)
    full = [r for r in rows.values() if len(r) > 100]
    start = max(min(x.open_ms for x in r) for r in full)
    end = min(max(x.open_ms for x in r) for r in full) + HOUR_MS
    if (history_dir / KLINES_60).exists():
        _load_klines(history_dir / KLINES_60, rows)
    series = {sym: _build_series(r, sym) for sym, r in rows.items()}
    _attach_series(history_dir, series)
    manifest = _read_json(history_dir / MANIFEST)
    order = [str(x) for x in manifest.get("symbol_list", [])] if isinstance(manifest, dict) else []
    seen = set(order)
    order += sorted(s for s in series if s not in seen)
    info = _read_json(history_dir / EXCHANGE_INFO)
    return History(series, order, info, start, end, synthetic=False, source=str(history_dir))


SYNTHETIC_BASES: tuple[tuple[str, float, float], ...] = (
    ("BTCUSDT", 71_000.0, 450e6),
    ("ETHUSDT", 2_100.0, 250e6),
    ("SOLUSDT", 88.0, 60e6),
    ("XRPUSDT", 1.45, 40e6),
    ("BNBUSDT", 640.0, 15e6),
    ("DOGEUSDT", 0.095, 25e6),
    ("ADAUSDT", 0.42, 8e6),
    ("LINKUSDT", 13.5, 6e6),
    ("AVAXUSDT", 19.0, 5e6),
    ("LTCUSDT", 85.0, 4e6),
    ("DOTUSDT", 3.9, 3e6),
    ("TRXUSDT", 0.24, 2e6),
    ("SUIUSDT", 2.6, 9e6),
    ("HYPEUSDT", 38.0, 30e6),
    ("PEPEUSDT", 0.0000071, 12e6),
    ("ARBUSDT", 0.31, 2.5e6),
    ("OPUSDT", 0.62, 1.8e6),
    ("NEARUSDT", 2.4, 2.2e6),
    ("APTUSDT", 4.8, 1.6e6),
    ("FORTHUSDT", 2.1, 0.05e6),
)
SYNTHETIC_START_MS = 1_773_342_000_000  # 2026-03-12 19:00 UTC, like the real window
SYNTHETIC_HOURS = 168


def _synthetic_series(symbol: str, price: float, hourly_quote: float, seed: int) -> SymbolSeries:
    rng = random.Random(f"synthetic:{seed}:{symbol}")
    decimals = max(2, min(8, 5 - math.floor(math.log10(price))))
    qty_decimals = 3 if price > 1000 else (1 if price > 1 else 0)
    rows: list[HourRow] = []
    p = price
    for i in range(SYNTHETIC_HOURS):
        o = p
        c = o * math.exp(rng.gauss(0.0, 0.008))
        h = max(o, c) * (1 + abs(rng.gauss(0, 0.004)))
        low = min(o, c) * (1 - abs(rng.gauss(0, 0.004)))
        q = hourly_quote * math.exp(rng.gauss(0.0, 0.45))
        if rng.random() < 0.02:
            q *= rng.uniform(3.5, 12.0)
        v = q / ((o + c) / 2)
        raw6 = (
            f"{o:.{decimals}f}", f"{h:.{decimals}f}", f"{low:.{decimals}f}", f"{c:.{decimals}f}",
            f"{v:.{qty_decimals}f}", f"{q:.5f}",
        )  # fmt: skip
        rows.append(_hour_row(SYNTHETIC_START_MS + i * HOUR_MS, raw6, max(1, int(q / 2000.0))))
        p = float(raw6[3])
    oi_level = hourly_quote * 3 / price
    oi = []
    for k in range(0, SYNTHETIC_HOURS + 8, 4):
        oi_level *= math.exp(rng.gauss(0.0, 0.02))
        oi.append((SYNTHETIC_START_MS - 3 * HOUR_MS + k * HOUR_MS, round(oi_level, qty_decimals)))
    funding = [
        (SYNTHETIC_START_MS - 3 * HOUR_MS + k * HOUR_MS + rng.randint(0, 9), rng.gauss(5e-5, 8e-5))
        for k in range(0, SYNTHETIC_HOURS + 8, 8)
    ]
    return SymbolSeries(symbol, rows, oi, funding, decimals, qty_decimals, 5)


@functools.lru_cache(maxsize=4)
def _load_synthetic(seed: int) -> History:
    series = {
        sym: _synthetic_series(sym, price, quote, seed) for sym, price, quote in SYNTHETIC_BASES
    }
    end = SYNTHETIC_START_MS + SYNTHETIC_HOURS * HOUR_MS
    order = [s for s, _, _ in SYNTHETIC_BASES]
    return History(series, order, None, SYNTHETIC_START_MS, end, synthetic=True, source="synthetic")


def load_history(fixtures_dir: Path, seed: int = 0) -> History:
    """Load the real history below ``fixtures_dir/binance-history``, or the synthetic fallback.

    Args:
        fixtures_dir: the fixtures root (holding ``binance-history/``).
        seed: seed of the synthetic fallback (the real data does not depend on it).
    """
    history_dir = Path(fixtures_dir) / "binance-history"
    if (history_dir / KLINES_ALL).is_file():
        return _load_real(history_dir.resolve())
    logger.warning(
        "simulator: no fixtures at {} - using the built-in synthetic universe ({} symbols)",
        history_dir,
        len(SYNTHETIC_BASES),
    )
    return _load_synthetic(seed)
