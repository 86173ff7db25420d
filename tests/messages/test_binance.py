from __future__ import annotations

import copy
import json
import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messages import KlineUpdate, MarkPrices, StreamReply, Ticker24h, Tickers
from messages.binance import parse_frame
from messages.errors import FrameError

RECEIVED = 1_786_171_885_000

# Every recorded WebSocket file, by what the per-file tests below check in it; the guard test
# at the end fails when a new ws_*.jsonl file appears in the fixtures without a test here.
MARK_PRICE_FILES = ("ws_markPrice_samples.jsonl", "ws_markPrice_historical_tardis.jsonl")
TICKER_FILES = ("ws_ticker_samples.jsonl",)
KLINE_FILES = (
    "ws_kline_1m_combined_2021-07-22.jsonl",
    "ws_kline_1m_combined_2021-04-17.jsonl",
    "ws_kline_samples_misc.jsonl",
)
OTHER_EVENT_FILES = ("ws_other_frames_2026-08-08.jsonl",)


def _lines(fixtures_dir, name):
    path = fixtures_dir / "binance" / name
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def _data(raw: bytes):
    obj = json.loads(raw)
    return obj.get("data", obj)


def _assert_mark_prices_match(msg: MarkPrices, events: list[dict]) -> None:
    assert len(msg) == len(events)
    assert msg.rejected == 0
    for got, raw in zip(msg, events, strict=True):
        assert got.symbol == raw["s"]
        assert got.event_time_ms == raw["E"]
        assert got.mark_price == float(raw["p"])
        assert got.index_price == (float(raw["i"]) if "i" in raw else None)
        assert got.funding_rate == float(raw["r"])
        assert got.next_funding_time_ms == (raw["T"] or None)


@pytest.mark.parametrize("name", MARK_PRICE_FILES)
def test_every_recorded_mark_price_frame_parses_into_mark_prices(fixtures_dir, name):
    for raw in _lines(fixtures_dir, name):
        parsed = parse_frame(raw, RECEIVED)
        assert isinstance(parsed.message, MarkPrices)
        assert parsed.message.received_ms == RECEIVED
        data = _data(raw)
        _assert_mark_prices_match(parsed.message, data if isinstance(data, list) else [data])


def test_a_2019_frame_without_index_price_leaves_it_unknown_not_zero(fixtures_dir):
    raw = _lines(fixtures_dir, "ws_markPrice_historical_tardis.jsonl")[0]
    (entry,) = parse_frame(raw, RECEIVED).message
    assert entry.index_price is None
    assert entry.mark_price == pytest.approx(8291.34697815)


def test_a_delivery_contract_has_zero_funding_and_no_next_funding_time(fixtures_dir):
    raw = _lines(fixtures_dir, "ws_markPrice_historical_tardis.jsonl")[2]
    (entry,) = parse_frame(raw, RECEIVED).message
    assert entry.symbol == "BTCBUSD_210129"
    assert entry.funding_rate == 0.0  # a real zero, sent as "0.00000000"
    assert entry.next_funding_time_ms is None  # T: 0 means "none", not the epoch


def test_the_newer_ap_and_st_keys_are_ignored(fixtures_dir):
    raw = _lines(fixtures_dir, "ws_markPrice_samples.jsonl")[3]
    assert b'"ap"' in raw and b'"st"' in raw
    (entry,) = parse_frame(raw, RECEIVED).message
    assert entry.mark_price == pytest.approx(64991.37858696)
    assert entry.index_price == pytest.approx(65016.05673913)


def test_a_bare_array_without_envelope_parses_by_event_type(fixtures_dir):
    raw = _lines(fixtures_dir, "ws_markPrice_samples.jsonl")[1]
    bare = orjson.dumps(json.loads(raw)["data"])
    parsed = parse_frame(bare, RECEIVED)
    assert isinstance(parsed.message, MarkPrices)
    assert parsed.message.symbols == ("BTCUSDT", "ETHUSDT")


@pytest.mark.parametrize("name", TICKER_FILES)
def test_every_recorded_ticker_frame_parses_and_p_is_never_taken_as_a_price(fixtures_dir, name):
    for raw in _lines(fixtures_dir, name):
        parsed = parse_frame(raw, RECEIVED)
        assert isinstance(parsed.message, Tickers)
        data = _data(raw)
        events = data if isinstance(data, list) else [data]
        assert len(parsed.message.items) == len(events)
        for got, event in zip(parsed.message.items, events, strict=True):
            assert got.last_price == float(event["c"])
            assert got.quote_volume == float(event["q"])
            assert got.price_change_percent == float(event["P"])
            assert got.last_price != float(event["p"])  # p is the 24 h change (incident I-2)


@pytest.mark.parametrize("name", KLINE_FILES)
def test_every_recorded_kline_frame_parses_into_a_kline_update(fixtures_dir, name):
    closed = 0
    for raw in _lines(fixtures_dir, name):
        parsed = parse_frame(raw, RECEIVED)
        assert isinstance(parsed.message, KlineUpdate)
        k = _data(raw)["k"]
        kline = parsed.message.kline
        assert kline.symbol == k["s"]
        assert kline.interval == k["i"]
        assert (kline.open_time_ms, kline.close_time_ms) == (k["t"], k["T"])
        assert kline.quote_volume == float(k["q"])
        assert kline.close == float(k["c"])
        assert kline.trade_count == k["n"]
        assert kline.closed is k["x"]
        closed += kline.closed
    expected = {
        "ws_kline_1m_combined_2021-07-22.jsonl": 4,
        "ws_kline_1m_combined_2021-04-17.jsonl": 0,
    }
    assert closed == expected.get(name, 1)


@pytest.mark.parametrize("name", OTHER_EVENT_FILES)
def test_events_we_do_not_subscribe_to_are_rejected_as_unknown(fixtures_dir, name):
    for raw in _lines(fixtures_dir, name):
        with pytest.raises(FrameError) as info:
            parse_frame(raw, RECEIVED)
        assert info.value.reason == "unknown_event"


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ({"result": None, "id": 1}, StreamReply(request_id=1)),
        (
            {"result": ["btcusdt@aggTrade"], "id": 3},
            StreamReply(request_id=3, result=("btcusdt@aggTrade",)),
        ),
        (
            {"code": 2, "msg": "Invalid request: too many parameters", "id": 9},
            StreamReply(
                request_id=9, error_code=2, error_msg="Invalid request: too many parameters"
            ),
        ),
    ],
)
def test_socket_request_replies_parse_into_stream_replies(frame, expected):
    assert parse_frame(orjson.dumps(frame), RECEIVED).message == expected


GOOD = {
    "e": "markPriceUpdate",
    "E": 1786171884000,
    "s": "BTCUSDT",
    "p": "64991.37858696",
    "P": "64980.01344384",
    "i": "65016.05673913",
    "r": "0.00003936",
    "T": 1786176000000,
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"p": "NaN"}, "bad_number"),
        ({"p": "nan"}, "bad_number"),
        ({"p": "Infinity"}, "bad_number"),
        ({"p": "inf"}, "bad_number"),
        ({"p": "-1"}, "bad_price"),
        ({"p": "0"}, "bad_price"),
        ({"p": "0.00000000"}, "bad_price"),
        ({"p": "abc"}, "bad_number"),
        ({"p": "64_991.5"}, "bad_number"),
        ({"i": "1_0"}, "bad_number"),
        ({"r": "0.000_1"}, "bad_number"),
        ({"p": ""}, "bad_number"),
        ({"p": None}, "bad_number"),
        ({"p": True}, "bad_number"),
        ({"p": ["1"]}, "bad_number"),
        ({"i": "-5"}, "bad_price"),
        ({"r": "nan"}, "bad_number"),
        ({"E": "1786171884000"}, "bad_integer"),
        ({"E": 0}, "bad_time"),
        ({"T": "soon"}, "bad_integer"),
        ({"s": ""}, "bad_symbol"),
        ({"s": 5}, "bad_symbol"),
    ],
)
def test_a_bad_entry_is_rejected_with_a_typed_reason_and_the_rest_of_the_frame_is_kept(
    change, reason
):
    bad = {**GOOD, "s": "BADUSDT", **change}
    frame = {"stream": "!markPrice@arr@1s", "data": [GOOD, bad, {**GOOD, "s": "ETHUSDT"}]}
    parsed = parse_frame(orjson.dumps(frame), RECEIVED)
    assert parsed.message.symbols == ("BTCUSDT", "ETHUSDT")
    assert parsed.message.rejected == 1
    assert [e.reason for e in parsed.errors] == [reason]


@pytest.mark.parametrize("missing", ["p", "E", "s"])
def test_an_entry_without_a_required_field_is_rejected(missing):
    bad = {k: v for k, v in GOOD.items() if k != missing}
    parsed = parse_frame(orjson.dumps([GOOD, bad]), RECEIVED)
    assert len(parsed.message) == 1
    assert parsed.message.rejected == 1


def test_an_empty_funding_rate_is_unknown_not_zero():
    parsed = parse_frame(orjson.dumps({**GOOD, "r": ""}), RECEIVED)
    (entry,) = parsed.message
    assert entry.funding_rate is None


def test_negative_and_zero_funding_rates_are_real_values():
    frame = [{**GOOD, "r": "-0.02"}, {**GOOD, "s": "ETHUSDT", "r": "0"}]
    parsed = parse_frame(orjson.dumps(frame), RECEIVED)
    assert parsed.message.funding_rates == (-0.02, 0.0)


def test_a_ticker_inside_a_mark_price_stream_is_rejected_not_stored_as_a_price():
    ticker = {"e": "24hrTicker", "E": 1, "s": "ETHUSDT", "p": "24.69", "c": "1782.02", "q": "1"}
    frame = {"stream": "!markPrice@arr@1s", "data": [GOOD, ticker]}
    parsed = parse_frame(orjson.dumps(frame), RECEIVED)
    assert parsed.message.symbols == ("BTCUSDT",)
    assert [e.reason for e in parsed.errors] == ["unexpected_event"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "bad_json"),
        (b"{", "bad_json"),
        (json.dumps({"stream": "x", "data": [GOOD]}).encode()[:-7], "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b"42", "unknown_shape"),
        (b'"text"', "unknown_shape"),
        (b'{"stream": 5, "data": []}', "bad_envelope"),
        (b'{"e": "aggTrade"}', "unknown_event"),
        (b"[]", "unknown_event"),
        (b'[{"e": "depthUpdate"}]', "unknown_event"),
        (b'{"hello": 1}', "unknown_shape"),
        (b'{"e":"kline","E":1,"s":"X","k":[]}', "bad_kline"),
    ],
)
def test_a_malformed_frame_raises_a_frame_error_with_its_reason(raw, reason):
    with pytest.raises(FrameError) as info:
        parse_frame(raw, RECEIVED)
    assert info.value.reason == reason


def test_a_kline_whose_inner_symbol_differs_is_rejected():
    frame = {
        "e": "kline",
        "E": 2,
        "s": "BTCUSDT",
        "k": {
            "t": 1,
            "T": 2,
            "s": "ETHUSDT",
            "i": "1h",
            "o": "1",
            "c": "1",
            "h": "1",
            "l": "1",
            "v": "1",
            "q": "1",
            "n": 1,
            "x": False,
        },
    }
    with pytest.raises(FrameError, match="differs"):
        parse_frame(orjson.dumps(frame), RECEIVED)


# --- 24 h tickers and klines: every numeric field, every way it can be wrong ---------------

GOOD_TICKER = {
    "e": "24hrTicker",
    "E": 1653815205866,
    "s": "ETHUSDT",
    "p": "24.69",
    "P": "1.405",
    "w": "1782.01",
    "c": "1782.02",
    "Q": "0.003",
    "o": "1757.33",
    "h": "1809.33",
    "l": "1750.45",
    "v": "1678290.411",
    "q": "2990736920.72",
    "O": 1653728760000,
    "C": 1653815205856,
    "F": 1689354205,
    "L": 1691266554,
    "n": 1912297,
}

MISSING = object()
"""A marker: the field is removed instead of set."""

BAD_NUMBERS = [
    ("NaN", "bad_number"),
    ("nan", "bad_number"),
    ("inf", "bad_number"),
    ("-Infinity", "bad_number"),
    ("1e400", "bad_number"),
    ("abc", "bad_number"),
    ("", "bad_number"),
    ("1_000", "bad_number"),
    (None, "bad_number"),
    (True, "bad_number"),
    ([1], "bad_number"),
]
PRICE_CASES = [*BAD_NUMBERS, ("0", "bad_price"), ("0.000", "bad_price"), ("-1.5", "bad_price")]
VOLUME_CASES = [*BAD_NUMBERS, ("-0.001", "bad_volume"), (-3, "bad_volume")]


def _with(entry: dict, field: str, value) -> dict:
    changed = copy.deepcopy(entry)
    if value is MISSING:
        del changed[field]
    else:
        changed[field] = value
    return changed


TICKER_REJECTIONS = [
    *[("c", value, reason) for value, reason in PRICE_CASES],
    ("c", MISSING, "missing_field"),
    *[("o", value, reason) for value, reason in PRICE_CASES if value is not None],
    *[("q", value, reason) for value, reason in VOLUME_CASES],
    ("q", MISSING, "missing_field"),
    *[("v", value, reason) for value, reason in VOLUME_CASES if value is not None],
    *[("P", value, reason) for value, reason in BAD_NUMBERS if value is not None],
    ("n", "1912297", "bad_integer"),
    ("n", 1.5, "bad_integer"),
    ("E", MISSING, "missing_field"),
    ("E", 0, "bad_time"),
    ("E", "1653815205866", "bad_integer"),
    ("s", "", "bad_symbol"),
    ("s", MISSING, "bad_symbol"),
]


@pytest.mark.parametrize("envelope", [True, False], ids=["combined", "bare"])
@pytest.mark.parametrize(("field", "value", "reason"), TICKER_REJECTIONS)
def test_a_bad_ticker_entry_is_counted_with_its_typed_reason_and_the_rest_kept(
    field, value, reason, envelope
):
    entries = [
        GOOD_TICKER,
        _with({**GOOD_TICKER, "s": "BADUSDT"}, field, value),
        {**GOOD_TICKER, "s": "BTCUSDT"},
    ]
    frame = {"stream": "!ticker@arr", "data": entries} if envelope else entries
    parsed = parse_frame(orjson.dumps(frame), RECEIVED)
    assert isinstance(parsed.message, Tickers)
    assert [t.symbol for t in parsed.message.items] == ["ETHUSDT", "BTCUSDT"]
    assert parsed.message.rejected == 1
    assert [e.reason for e in parsed.errors] == [reason]
    assert isinstance(parsed.errors[0], FrameError)


@pytest.mark.parametrize(("field", "value", "reason"), TICKER_REJECTIONS)
def test_a_bad_single_ticker_event_raises_its_typed_reason(field, value, reason):
    raw = orjson.dumps({"stream": "ethusdt@ticker", "data": _with(GOOD_TICKER, field, value)})
    with pytest.raises(FrameError) as info:
        parse_frame(raw, RECEIVED)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("field", "value", "attribute", "expected"),
    [
        ("q", "0", "quote_volume", 0.0),  # a dead market trades nothing: a real zero
        ("v", "0.000", "base_volume", 0.0),
        ("P", "-4.5", "price_change_percent", -4.5),
        ("P", "0", "price_change_percent", 0.0),
        ("o", MISSING, "open_price", None),  # missing is unknown, not zero
        ("v", MISSING, "base_volume", None),
        ("P", MISSING, "price_change_percent", None),
        ("n", MISSING, "trade_count", None),
        ("c", 1782, "last_price", 1782.0),  # a JSON number where a string is usual
    ],
)
def test_ticker_values_that_are_unusual_but_valid_are_kept(field, value, attribute, expected):
    frame = {"stream": "!ticker@arr", "data": [_with(GOOD_TICKER, field, value)]}
    parsed = parse_frame(orjson.dumps(frame), RECEIVED)
    (item,) = parsed.message.items
    assert getattr(item, attribute) == expected
    assert parsed.message.rejected == 0


def test_a_bare_ticker_array_without_envelope_parses_by_event_type(fixtures_dir):
    raw = _lines(fixtures_dir, "ws_ticker_samples.jsonl")[1]
    entries = json.loads(raw)["data"]
    bare = orjson.dumps([*entries, {**GOOD_TICKER, "s": "ETHUSDT"}])
    parsed = parse_frame(bare, RECEIVED)
    assert isinstance(parsed.message, Tickers)
    assert [t.symbol for t in parsed.message.items] == ["IOTXUSDT", "ETHUSDT"]
    assert parsed.message.items[0] == Ticker24h(
        symbol="IOTXUSDT",
        event_time_ms=1653814800126,
        last_price=0.03529,
        quote_volume=12312309.61,
        base_volume=346584392.0,
        open_price=0.03476,
        price_change_percent=1.525,
        trade_count=60794,
    )
    assert parsed.message.received_ms == RECEIVED


GOOD_KLINE = {
    "e": "kline",
    "E": 1786173360960,
    "s": "BTCUSDT",
    "k": {
        "t": 1786173300000,
        "T": 1786173359999,
        "s": "BTCUSDT",
        "i": "1m",
        "f": 7960920076,
        "L": 7960920277,
        "o": "64970.80",
        "c": "64969.40",
        "h": "64970.90",
        "l": "64969.40",
        "v": "9.090",
        "n": 194,
        "x": True,
        "q": "590577.96880",
        "V": "3.460",
        "Q": "224795.09440",
        "B": "0",
    },
}


def _kline_with(field: str, value) -> dict:
    frame = copy.deepcopy(GOOD_KLINE)
    frame["k"] = _with(frame["k"], field, value)
    return frame


KLINE_REJECTIONS = [
    *[(field, value, reason) for field in "ohlc" for value, reason in PRICE_CASES],
    *[(field, MISSING, "missing_field") for field in "ohlcvq"],
    *[(field, value, reason) for field in "vq" for value, reason in VOLUME_CASES],
    *[("Q", value, reason) for value, reason in VOLUME_CASES if value is not None],
    ("n", "194", "bad_integer"),
    ("n", MISSING, "missing_field"),
    ("x", "true", "bad_kline"),
    ("x", MISSING, "missing_field"),
    ("i", "", "bad_kline"),
    ("t", 0, "bad_time"),
    ("T", 1, "bad_kline"),  # before the open time
    ("T", "1786173359999", "bad_integer"),
]


@pytest.mark.parametrize(("field", "value", "reason"), KLINE_REJECTIONS)
def test_a_bad_kline_field_raises_its_typed_reason(field, value, reason):
    raw = orjson.dumps({"stream": "btcusdt@kline_1m", "data": _kline_with(field, value)})
    with pytest.raises(FrameError) as info:
        parse_frame(raw, RECEIVED)
    assert info.value.reason == reason
    assert f"k.{field}" in info.value.detail or reason in ("missing_field", "bad_kline")


def test_kline_volumes_may_be_zero_and_taker_volume_may_be_missing():
    frame = _kline_with("v", "0")
    frame["k"]["q"] = "0.0"
    del frame["k"]["Q"]
    kline = parse_frame(orjson.dumps(frame), RECEIVED).message.kline
    assert (kline.base_volume, kline.quote_volume) == (0.0, 0.0)
    assert kline.taker_buy_quote_volume is None


# --- fuzzing -----------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["NaN", "inf", "-1", "0", "", "1e308", "1e999", "0.1", "markPriceUpdate"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)
mutated_entry = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(("e", "E", "s", "p", "i", "r", "T", "P", "c", "q"), json_scalars),
)


def _check_parsed(parsed):
    message = parsed.message
    if isinstance(message, MarkPrices):
        for entry in message:
            assert math.isfinite(entry.mark_price)
            assert entry.mark_price > 0
            assert entry.index_price is None or (
                math.isfinite(entry.index_price) and entry.index_price > 0
            )
            assert entry.funding_rate is None or math.isfinite(entry.funding_rate)
        assert message.rejected == len(parsed.errors)
    if isinstance(message, Tickers):
        for entry in message.items:
            assert _price_ok(entry.last_price)
            assert _volume_ok(entry.quote_volume)
            assert entry.base_volume is None or _volume_ok(entry.base_volume)
            assert entry.open_price is None or _price_ok(entry.open_price)
            assert entry.price_change_percent is None or math.isfinite(entry.price_change_percent)
            assert entry.event_time_ms > 0
        assert message.rejected == len(parsed.errors)
    if isinstance(message, KlineUpdate):
        kline = message.kline
        assert all(_price_ok(p) for p in (kline.open, kline.high, kline.low, kline.close))
        assert _volume_ok(kline.base_volume)
        assert _volume_ok(kline.quote_volume)
        assert kline.taker_buy_quote_volume is None or _volume_ok(kline.taker_buy_quote_volume)
        assert type(kline.trade_count) is int
        assert type(kline.closed) is bool
        assert 0 < kline.open_time_ms <= kline.close_time_ms
        assert message.event_time_ms > 0
        assert parsed.errors == ()


def _price_ok(value) -> bool:
    return type(value) is float and math.isfinite(value) and value > 0


def _volume_ok(value) -> bool:
    return type(value) is float and math.isfinite(value) and value >= 0


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_fuzzed_json_values_yield_a_message_or_a_frame_error_and_nothing_else(value):
    try:
        _check_parsed(parse_frame(orjson.dumps(value), RECEIVED))
    except FrameError:
        pass


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.builds(lambda d: {"e": "markPriceUpdate", **d}, mutated_entry), max_size=5),
    st.sampled_from(["!markPrice@arr@1s", "!ticker@arr", None]),
)
def test_fuzzed_entries_never_produce_a_bad_price(entries, stream):
    frame = {"stream": stream, "data": entries} if stream else entries
    try:
        _check_parsed(parse_frame(orjson.dumps(frame), RECEIVED))
    except FrameError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_fuzzed_bytes_never_crash_the_parser(raw):
    try:
        _check_parsed(parse_frame(raw, RECEIVED))
    except FrameError:
        pass


mutated_kline = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(
        ("t", "T", "s", "i", "o", "h", "l", "c", "v", "q", "n", "x", "Q"), json_scalars
    ),
)


@settings(max_examples=300, deadline=None)
@given(mutated_kline, st.sampled_from(["BTCUSDT", "", 5]), json_scalars)
def test_fuzzed_klines_never_produce_a_bad_candle(k, symbol, event_time):
    frame = {"e": "kline", "E": event_time, "s": symbol, "k": k}
    try:
        _check_parsed(parse_frame(orjson.dumps(frame), RECEIVED))
    except FrameError:
        pass


# --- real frames, one numeric field mutated ------------------------------------------------

NUMBER_TEXT = st.one_of(
    st.sampled_from(
        ["NaN", "-nan", "inf", "-inf", "1e400", "-1e400", "0", "-0", "0.0", "-1", "1_000"]
    ),
    st.sampled_from(["", " ", "abc", "1.2.3", "0x10", "1e5", "2.5", "-0.001", "1e-320"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
)
MUTATION = st.one_of(
    NUMBER_TEXT,
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.none(),
    st.booleans(),
    st.just(MISSING),
)
PRICE_FIELDS = {"c", "o", "k.o", "k.h", "k.l", "k.c"}
VOLUME_FIELDS = {"q", "v", "k.v", "k.q", "k.Q"}
OPTIONAL_FIELDS = {"o", "v", "P", "k.Q"}


def _expected(field: str, value) -> float | str | None:
    """What the parser must make of ``value`` in ``field``: the number, None, or "reject"."""
    if value is MISSING:
        return None if field in OPTIONAL_FIELDS else "reject"
    if value is None and field in OPTIONAL_FIELDS:
        return None
    if type(value) is str:
        if "_" in value:
            return "reject"
        try:
            number = float(value)
        except ValueError:
            return "reject"
    elif type(value) in (int, float):
        number = float(value)
    else:
        return "reject"
    if not math.isfinite(number):
        return "reject"
    if field in PRICE_FIELDS and number <= 0:
        return "reject"
    if field in VOLUME_FIELDS and number < 0:
        return "reject"
    return number


def _field_value(message, field: str):
    if isinstance(message, KlineUpdate):
        attribute = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "base_volume"}
        attribute |= {"q": "quote_volume", "Q": "taker_buy_quote_volume"}
        return getattr(message.kline, attribute[field.removeprefix("k.")])
    attribute = {"c": "last_price", "o": "open_price", "q": "quote_volume", "v": "base_volume"}
    attribute |= {"P": "price_change_percent"}
    (item,) = [t for t in message.items if t.symbol == "MUTATED"]
    return getattr(item, attribute[field])


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        (TICKER_FILES[0], ("c", "o", "q", "v", "P")),
        (KLINE_FILES[2], ("k.o", "k.h", "k.l", "k.c", "k.v", "k.q", "k.Q")),
        (KLINE_FILES[0], ("k.o", "k.h", "k.l", "k.c", "k.v", "k.q", "k.Q")),
    ],
)
def test_a_real_frame_with_one_field_mutated_is_parsed_exactly_or_rejected_with_a_count(
    fixtures_dir, name, fields
):
    frames = [json.loads(raw) for raw in _lines(fixtures_dir, name)]

    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from(frames), st.sampled_from(fields), MUTATION)
    def check(frame, field, value):
        frame = copy.deepcopy(frame)
        data = frame["data"]
        if isinstance(data, list):  # an array: mutate one entry, keep a good one beside it
            data.append({**data[0], "s": "MUTATED"})
            target = data[-1]
        else:
            data["s"] = "MUTATED"
            target = data
        if field.startswith("k."):
            target["k"]["s"] = "MUTATED"
            target = target["k"]
        key = field.removeprefix("k.")
        if value is MISSING:
            del target[key]
        else:
            target[key] = value
        expected = _expected(field, value)
        try:
            parsed = parse_frame(orjson.dumps(frame), RECEIVED)
        except FrameError:
            parsed = None
        if parsed is None:
            assert expected == "reject", (field, value)
            assert not isinstance(data, list)  # an array counts its bad entries instead
            return
        _check_parsed(parsed)
        if isinstance(parsed.message, Tickers) and isinstance(data, list):
            if expected == "reject":
                assert parsed.message.rejected == 1
                assert len(parsed.errors) == 1
                assert "MUTATED" not in {t.symbol for t in parsed.message.items}
                return
            assert parsed.message.rejected == 0
        assert expected != "reject", (field, value)
        assert _field_value(parsed.message, field) == expected

    check()


def test_every_recorded_websocket_file_is_covered_by_a_per_file_test(fixtures_dir):
    covered = {*MARK_PRICE_FILES, *TICKER_FILES, *KLINE_FILES, *OTHER_EVENT_FILES}
    present = {path.name for path in (fixtures_dir / "binance").glob("ws_*.jsonl")}
    assert present - covered == set(), "add the new recording to a per-file test above"
    assert covered - present == set(), "a per-file test names a recording that is gone"
