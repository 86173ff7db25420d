from __future__ import annotations

import json
import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messages import KlineUpdate, MarkPrices, StreamReply, Tickers
from messages.binance import parse_frame
from messages.errors import FrameError

RECEIVED = 1_786_171_885_000


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


@pytest.mark.parametrize(
    "name", ["ws_markPrice_samples.jsonl", "ws_markPrice_historical_tardis.jsonl"]
)
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


def test_every_recorded_ticker_frame_parses_and_p_is_never_taken_as_a_price(fixtures_dir):
    for raw in _lines(fixtures_dir, "ws_ticker_samples.jsonl"):
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


@pytest.mark.parametrize(
    "name",
    [
        "ws_kline_1m_combined_2021-07-22.jsonl",
        "ws_kline_1m_combined_2021-04-17.jsonl",
        "ws_kline_samples_misc.jsonl",
    ],
)
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


def test_events_we_do_not_subscribe_to_are_rejected_as_unknown(fixtures_dir):
    for raw in _lines(fixtures_dir, "ws_other_frames_2026-08-08.jsonl"):
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
            assert math.isfinite(entry.last_price)
            assert entry.last_price > 0
            assert entry.quote_volume >= 0


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
