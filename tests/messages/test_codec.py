from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import messages
from messages import FORMAT_VERSION, MESSAGE_TYPES, MarkPrice, MarkPrices, decode, encode
from messages.errors import CodecError

from .strategies import for_message

ALL_TYPES = sorted(MESSAGE_TYPES)


def test_every_message_class_is_frozen_slotted_and_keyword_only():
    for name, cls in MESSAGE_TYPES.items():
        params = cls.__dataclass_params__
        assert params.frozen, name
        assert "__slots__" in cls.__dict__, name
        fields = cls.__dataclass_fields__.values()
        assert all(f.kw_only for f in fields), name


@pytest.mark.parametrize("name", ALL_TYPES)
def test_codec_round_trips_every_message_type_exactly(name):
    cls = MESSAGE_TYPES[name]

    @settings(max_examples=60, deadline=None)
    @given(for_message(cls))
    def round_trip(msg):
        data = encode(msg)
        back = decode(data)
        assert back == msg
        assert type(back) is cls
        assert encode(back) == data

    round_trip()


def test_tuples_stay_tuples_and_ints_stay_ints_after_a_round_trip():
    msg = MarkPrices.from_items(
        [MarkPrice(symbol="BTCUSDT", event_time_ms=1, mark_price=2.0, next_funding_time_ms=3)],
        received_ms=4,
    )
    back = decode(encode(msg))
    assert isinstance(back.symbols, tuple)
    assert type(back.next_funding_times_ms[0]) is int
    assert type(back.mark_prices[0]) is float


def test_nan_and_infinity_survive_a_round_trip():
    msg = MarkPrice(symbol="X", event_time_ms=1, mark_price=math.inf, funding_rate=math.nan)
    back = decode(encode(msg))
    assert back.mark_price == math.inf
    assert math.isnan(back.funding_rate)


@given(st.binary(max_size=64))
@settings(max_examples=300)
def test_arbitrary_bytes_decode_to_a_message_or_a_codec_error(data):
    try:
        assert isinstance(decode(data), messages.Message)
    except CodecError:
        pass


def test_truncated_bytes_are_a_codec_error():
    data = encode(messages.Ping())
    with pytest.raises(CodecError, match="corrupt"):
        decode(data[:-1])


def test_another_format_version_is_refused_with_the_version_named():
    data = msgpack.packb((FORMAT_VERSION + 1, "Ping", {}))
    with pytest.raises(CodecError, match=f"format version {FORMAT_VERSION + 1}"):
        decode(data)


def test_an_unknown_message_type_is_refused_by_name():
    with pytest.raises(CodecError, match="unknown message type 'Nope'"):
        decode(msgpack.packb((FORMAT_VERSION, "Nope", {})))


def test_an_unknown_field_is_refused_by_name():
    with pytest.raises(CodecError, match="unknown field"):
        decode(msgpack.packb((FORMAT_VERSION, "Pong", {"name": "a", "extra": 1})))


def test_a_missing_required_field_is_refused():
    with pytest.raises(CodecError, match="Pong"):
        decode(msgpack.packb((FORMAT_VERSION, "Pong", {})))


def test_an_unknown_extension_type_is_refused():
    data = msgpack.packb((FORMAT_VERSION, "Pong", {"name": msgpack.ExtType(9, b"x")}))
    with pytest.raises(CodecError, match="extension type 9"):
        decode(data)


def test_encoding_a_non_message_or_a_list_field_is_a_codec_error():
    with pytest.raises(CodecError, match="not a registered message"):
        encode(object())  # type: ignore[arg-type]
    with pytest.raises(CodecError, match=r"Pong\.name: a list"):
        encode(messages.Pong(name=["not", "a", "tuple"]))  # type: ignore[arg-type]
    with pytest.raises(CodecError, match=r"Pong\.name: a dict"):
        encode(messages.Pong(name={1: 2}))  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="a set"):
        encode(messages.Pong(name=("ok", {3})))  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="cannot encode"):
        encode(messages.Pong(name=2**70))  # type: ignore[arg-type]


def test_non_bytes_input_is_a_codec_error():
    with pytest.raises(CodecError, match="expected bytes"):
        decode("text")  # type: ignore[arg-type]


def test_mark_prices_refuses_columns_of_different_lengths():
    with pytest.raises(ValueError, match="same length"):
        MarkPrices(
            symbols=("A",),
            event_times_ms=(),
            mark_prices=(),
            index_prices=(),
            funding_rates=(),
            next_funding_times_ms=(),
            received_ms=0,
        )
