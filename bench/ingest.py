"""1. Feed ingest: a 650-symbol ``!markPrice@arr@1s`` frame, parsed and applied to the board.

The frame is built with the real per-entry shape and key order of a 2026 ``/market`` capture
(``fixtures/binance/ws_markPrice_samples.jsonl`` line 4: ``e,E,s,p,ap,P,i,r,T,st``), compact
JSON in the combined ``{"stream","data"}`` envelope, for the TRADING USDT perpetuals of the
recorded exchangeInfo padded with synthetic names to 650. Every timed iteration gets a new event
time, so :meth:`PriceBoard.apply` really replaces every record (an old ``E`` would be skipped).

Timed per frame, interleaved round by round: ours (``parse_frame`` + ``PriceBoard.apply``),
``parse_frame`` alone, the floors (stdlib ``json.loads`` and ``orjson.loads`` of the same bytes),
and the original's handler (``json.loads`` + state update + full ``indent=2`` rewrite of the
state file through a temp file and a rename; :mod:`bench._baseline_original`).
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson

from actors._price_board import PriceBoard
from bench._baseline_original import StateFileWriter
from bench._report import fmt, ok
from bench._stats import rounded, summary
from messages.binance import parse_frame
from simulator.config import resolve_fixtures_dir

if TYPE_CHECKING:
    from collections.abc import Callable

    from bench._env import Env
    from messages.market import MarkPrices

__all__ = ["NAME", "build_frame", "run"]

NAME = "ingest"
TITLE = "Feed ingest, 650-symbol mark-price frame (parse + apply)"
ANCHOR = {
    "text": "4.6 ms, 11.5x a bare stdlib json.loads (state file rewritten every frame)",
    "ms": 4.6,
    "ratio": 11.5,
}
TARGET = {
    "text": "<= 2x a bare JSON parse of the same bytes",
    "metric": "ratio_to_json_loads",
    "op": "<=",
    "value": 2.0,
}
_E0 = 1786171884000
_STREAM = "!markPrice@arr@1s"


def _fixtures_dir() -> Path:
    return resolve_fixtures_dir(None)


def _symbols(n: int) -> tuple[list[str], str]:
    """``n`` symbols: the recorded TRADING USDT perpetuals first, then ``SIMnnnUSDT``."""
    real: list[str] = []
    source = "synthetic"
    path = _fixtures_dir() / "binance-history" / "um_exchangeInfo_2024-10-20.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        real = [
            s["symbol"]
            for s in info["symbols"]
            if s.get("status") == "TRADING"
            and s.get("quoteAsset") == "USDT"
            and s.get("contractType") == "PERPETUAL"
        ]
        source = f"{len(real[:n])} from {path.name}"
    except (OSError, ValueError, KeyError):
        real = []
    names = real[:n]
    k = 0
    while len(names) < n:
        names.append(f"SIM{k:03d}USDT")
        k += 1
    if len(real) < n:
        source += f" + {n - min(n, len(real))} synthetic"
    return names, source


def _entry_template() -> tuple[dict[str, Any], str]:
    path = _fixtures_dir() / "binance" / "ws_markPrice_samples.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        sample = json.loads(lines[3])["data"]
    except (OSError, ValueError, IndexError, KeyError):
        return {
            "e": "markPriceUpdate",
            "E": _E0,
            "s": "BTCUSDT",
            "p": "64991.37858696",
            "ap": "64991.37858696",
            "P": "64980.01344384",
            "i": "65016.05673913",
            "r": "0.00003936",
            "T": 1786176000000,
            "st": 1,
        }, "built-in copy of the 2026 capture"
    return sample, f"{path.name} line 4"


def build_frame(n: int, seed: int = 1) -> tuple[bytes, dict[str, Any]]:
    """A compact combined ``!markPrice@arr@1s`` frame of ``n`` entries, and its sources."""
    names, symbol_source = _symbols(n)
    template, shape_source = _entry_template()
    rng = random.Random(seed)
    items = []
    for name in names:
        price = 10 ** rng.uniform(-4, 5)
        mark = f"{price:.8f}"
        item: dict[str, Any] = {}
        for key, value in template.items():  # the capture's key order
            if key == "E":
                item[key] = _E0
            elif key == "s":
                item[key] = name
            elif key in ("p", "ap"):
                item[key] = mark
            elif key == "P":
                item[key] = f"{price * (1 + rng.uniform(-3e-4, 3e-4)):.8f}"
            elif key == "i":
                item[key] = f"{price * (1 + rng.uniform(-5e-4, 5e-4)):.8f}"
            elif key == "r":
                item[key] = f"{rng.uniform(-3e-4, 6e-4):.8f}"
            else:
                item[key] = value
        items.append(item)
    raw = json.dumps({"stream": _STREAM, "data": items}, separators=(",", ":")).encode()
    return raw, {"symbols": symbol_source, "entry_shape": shape_source, "bytes": len(raw)}


def _with_event_time(raw: bytes, event_ms: int) -> bytes:
    return raw.replace(b'"E":%d' % _E0, b'"E":%d' % event_ms)


def run(env: Env) -> dict[str, Any]:
    """Time every subject, round-robin, ``ingest_rounds`` x ``ingest_iterations``."""
    p = env.profile
    raw0, source = build_frame(p.symbols)
    board = PriceBoard()
    event = [_E0]
    perf = time.perf_counter

    def next_raw() -> bytes:
        event[0] += 1000
        return _with_event_time(raw0, event[0])

    def ours(raw: bytes) -> None:
        parsed = parse_frame(raw, event[0] + 5)
        board.apply(cast("MarkPrices", parsed.message), time.monotonic())

    def parse_only(raw: bytes) -> None:
        parse_frame(raw, event[0] + 5)

    loads = json.loads
    oloads = orjson.loads
    tmp = tempfile.TemporaryDirectory(prefix="bench-ingest-", dir=env.work_dir)
    writer = StateFileWriter(Path(tmp.name) / ".funding_state.json")

    subjects: dict[str, tuple[Callable[[bytes], object], int]] = {
        "ours_parse_apply": (ours, p.ingest_iterations),
        "parse_frame_only": (parse_only, p.ingest_iterations),
        "json_loads": (loads, p.ingest_iterations),
        "orjson_loads": (oloads, p.ingest_iterations),
        "original_handler": (writer.handle, max(2, p.ingest_iterations // 4)),
    }
    ours(next_raw())  # warm up: the board holds every symbol from here on
    writer.handle(next_raw())
    per_round: dict[str, list[float]] = {k: [] for k in subjects}
    for _ in range(p.ingest_rounds):
        for name, (fn, iterations) in subjects.items():
            spent = 0.0
            for _ in range(iterations):
                raw = next_raw()
                t0 = perf()
                fn(raw)
                spent += perf() - t0
            per_round[name].append(spent / iterations)
    tmp.cleanup()
    if len(board) != p.symbols:
        raise RuntimeError(f"the board holds {len(board)} symbols, expected {p.symbols}")

    ms = {k: summary(v, scale=1e3) for k, v in per_round.items()}
    ratios = [
        o / j for o, j in zip(per_round["ours_parse_apply"], per_round["json_loads"], strict=True)
    ]
    o_ratios = [
        o / j for o, j in zip(per_round["ours_parse_apply"], per_round["orjson_loads"], strict=True)
    ]
    orig_ratios = [
        o / j for o, j in zip(per_round["original_handler"], per_round["json_loads"], strict=True)
    ]
    ratio = ms["ours_parse_apply"]["median"] / ms["json_loads"]["median"]
    ratio_orjson = ms["ours_parse_apply"]["median"] / ms["orjson_loads"]["median"]
    orig_ratio = ms["original_handler"]["median"] / ms["json_loads"]["median"]
    o, j = ms["ours_parse_apply"], ms["json_loads"]

    def mmm(s: dict[str, Any]) -> str:
        return f"{fmt(s['min'])} / {fmt(s['median'])} / {fmt(s['max'])} ms"

    rows = [
        [
            "ours: parse_frame + PriceBoard.apply",
            mmm(o),
            "<= 2x json.loads",
            f"json.loads {mmm(j)}",
            f"{ratio:.2f}x",
            "4.6 ms, 11.5x",
        ],
        ["  floor 2: orjson.loads", mmm(ms["orjson_loads"]), "", "", f"{ratio_orjson:.2f}x", ""],
        ["  parse_frame alone", mmm(ms["parse_frame_only"]), "", "", "", ""],
        [
            "  original handler (stand-in, same run)",
            mmm(ms["original_handler"]),
            "",
            "",
            f"{orig_ratio:.1f}x",
            "4.6 ms, 11.5x",
        ],
    ]
    return ok(
        number=1,
        title=TITLE,
        metric="parse + apply per frame / json.loads of the same bytes",
        unit="x",
        value=rounded(ratio),
        target=TARGET,
        baseline={"name": "stdlib json.loads of the same bytes", "ms": j},
        ratio=rounded(ratio),
        anchor=ANCHOR,
        passed=ratio <= TARGET["value"],
        measured={
            "per_frame_ms": ms,
            "ratio_to_json_loads": {"of_medians": rounded(ratio), "per_round": summary(ratios)},
            "ratio_to_orjson_loads": {
                "of_medians": rounded(ratio_orjson),
                "per_round": summary(o_ratios),
            },
            "original_handler_ratio_to_json_loads": {
                "of_medians": rounded(orig_ratio),
                "per_round": summary(orig_ratios),
            },
            "frame": source,
            "rounds": p.ingest_rounds,
            "iterations_per_round": p.ingest_iterations,
        },
        rows=rows,
        notes=[
            (
                f"ingest frame: {source['bytes']:,} bytes, {p.symbols} entries "
                f"({source['symbols']}; entry shape from {source['entry_shape']})"
            ),
        ],
    )
