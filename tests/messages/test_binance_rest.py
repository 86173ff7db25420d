from __future__ import annotations

import json

import orjson
import pytest

from messages.binance_rest import kline_rows, open_interest_sample, trading_usdt_perpetuals
from messages.errors import FrameError


def test_the_fragment_keeps_exactly_the_two_trading_usdt_perpetuals(fixtures_dir):
    body = (fixtures_dir / "binance" / "rest_exchangeInfo_fragment_2021-07-22.json").read_bytes()
    assert trading_usdt_perpetuals(body) == ("BTCUSDT", "ETHUSDT")


def test_a_full_real_exchange_info_is_filtered_on_all_three_fields(fixtures_dir):
    body = (fixtures_dir / "binance" / "rest_exchangeInfo_full_2021-07-22.json").read_bytes()
    symbols = trading_usdt_perpetuals(body)
    assert len(symbols) == 117
    assert "BTCSTUSDT" not in symbols  # contractType "" while PENDING_TRADING
    assert "BTCUSDT_210924" not in symbols
    assert "BTCBUSD" not in symbols
    mainnet = (fixtures_dir / "binance-history" / "um_exchangeInfo_2024-10-20.json").read_bytes()
    symbols = trading_usdt_perpetuals(mainnet)
    assert len(symbols) == 297  # 18 SETTLING, 26 USDC, quarterlies and one BTC-quoted left out
    assert "WAVESUSDT" not in symbols


def test_exchange_info_without_a_symbols_list_is_a_frame_error():
    for body in (b"{}", b"[]", b"nope", json.dumps({"symbols": 3})):
        with pytest.raises(FrameError):
            trading_usdt_perpetuals(body)


def test_real_kline_rows_parse_with_closed_decided_by_the_clock(fixtures_dir):
    body = (fixtures_dir / "binance" / "rest_klines_BTCUSDT_1m_limit3_2024-04-10.json").read_bytes()
    rows = json.loads(body)
    klines, bad = kline_rows("BTCUSDT", "1m", body, now_ms=rows[2][6])
    assert bad == ()
    assert [k.open_time_ms for k in klines] == [r[0] for r in rows]
    assert [k.quote_volume for k in klines] == [float(r[7]) for r in rows]
    assert [k.closed for k in klines] == [True, True, False]
    assert klines[1].low == 70459.40
    assert klines[1].trade_count == 9
    assert klines[2].taker_buy_quote_volume == 929.12130


def test_a_bad_kline_row_is_skipped_and_reported():
    good = [1, "1", "1", "1", "1", "1", 2, "3", 4, "0", "0", "0"]
    bad = [1, "1", "1", "1", "NaN", "1", 2, "3", 4, "0", "0", "0"]
    klines, errors = kline_rows("X", "1h", orjson.dumps([good, bad, [1, 2]]), now_ms=10)
    assert len(klines) == 1
    assert [e.reason for e in errors] == ["bad_number", "bad_kline"]


def test_open_interest_answers_in_both_real_key_orders(fixtures_dir):
    lines = (fixtures_dir / "binance" / "rest_openInterest_samples.jsonl").read_text().splitlines()
    first = open_interest_sample(lines[0])
    raw = json.loads(lines[0])
    assert (first.symbol, first.open_interest, first.time_ms) == (
        raw["symbol"],
        float(raw["openInterest"]),
        raw["time"],
    )
    pretty = open_interest_sample(lines[2])  # the pretty-printed one, other key order
    assert pretty.symbol == "BTCUSDT"
    assert pretty.mark_price is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"symbol":"X","openInterest":"0","time":1}',
        b'{"symbol":"X","time":1}',
        b'{"openInterest":"1","time":1}',
        b'{"symbol":"X","openInterest":"1","time":"1"}',
        b"[]",
    ],
)
def test_a_bad_open_interest_answer_is_a_frame_error(body):
    with pytest.raises(FrameError):
        open_interest_sample(body)
