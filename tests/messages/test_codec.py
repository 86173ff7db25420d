from __future__ import annotations

import math
import types
import typing

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


def test_a_boolean_is_not_a_format_version():
    with pytest.raises(CodecError, match="format version True"):
        decode(msgpack.packb((True, "Ping", {})))


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


# --- field types -------------------------------------------------------------------------

_ALERT = {
    "symbol": "BTCUSDT",
    "asset": "BTC",
    "current_volume": 9e6,
    "previous_volume": 3e6,
    "volume_ratio": 3.0,
    "message": "BTC 3x",
    "timestamp_ms": 1_786_171_884_000,
    "detection_time_ms": 1_786_171_884_000,
    "hour_timestamp_ms": 1_786_168_800_000,
}


def _packed(tag, fields):
    return msgpack.packb((FORMAT_VERSION, tag, fields), use_bin_type=True)


@pytest.mark.parametrize(
    ("tag", "fields", "message"),
    [
        ("Pong", {"name": 5}, "Pong.name: expected str, got int 5"),
        ("Pong", {"name": b"x"}, "Pong.name: expected str, got bytes"),
        ("Pong", {"name": "a", "generation": True}, "Pong.generation: expected int, got bool"),
        ("Pong", {"name": "a", "generation": 1.0}, "Pong.generation: expected int, got float"),
        ("Pong", {"name": None}, "Pong.name: expected str, got NoneType"),
        ("Pong", {"name": {"a": 1}}, "Pong.name: expected str, got dict"),
        ("Pong", {"name": ("a",)}, "Pong.name: expected str, got tuple"),
        ("VolumeAlert", {**_ALERT, "symbol": 7}, "VolumeAlert.symbol: expected Symbol, got int"),
        ("VolumeAlert", {**_ALERT, "current_volume": "9e6"}, "current_volume: expected float"),
        ("VolumeAlert", {**_ALERT, "current_volume": False}, "current_volume: expected float"),
        ("VolumeAlert", {**_ALERT, "timestamp_ms": 1.5}, "timestamp_ms: expected TimestampMs"),
        ("VolumeAlert", {**_ALERT, "alert_type": "NOPE"}, "alert_type: expected 'SPIKE' |"),
        ("VolumeAlert", {**_ALERT, "alert_type": 1}, "VolumeAlert.alert_type: expected"),
        ("VolumeAlert", {**_ALERT, "price": "1"}, "VolumeAlert.price: expected float | None"),
        ("VolumeAlert", {**_ALERT, "candle_direction": "up"}, "candle_direction: expected"),
        (
            "MarkPrices",
            {
                "symbols": ("A", 2),
                "event_times_ms": (1, 2),
                "mark_prices": (1.0, 2.0),
                "index_prices": (None, 1.0),
                "funding_rates": (None, None),
                "next_funding_times_ms": (None, 3),
                "received_ms": 0,
            },
            "MarkPrices.symbols: expected tuple[Symbol, ...], got tuple ('A', 2)",
        ),
        (
            "MarkPrices",
            {
                "symbols": ("A",),
                "event_times_ms": (1,),
                "mark_prices": ("1.0",),
                "index_prices": (None,),
                "funding_rates": (None,),
                "next_funding_times_ms": (None,),
                "received_ms": 0,
            },
            "MarkPrices.mark_prices: expected tuple[float, ...]",
        ),
        (
            "ChildFailed",
            {
                "child": "c",
                "generation": 1,
                "failure": msgpack.ExtType(1, msgpack.packb(("Pong", {"name": "x"}))),
            },
            "ChildFailed.failure: expected FailureInfo | None, got Pong",
        ),
    ],
)
def test_a_field_whose_value_does_not_match_its_type_is_refused_naming_type_and_field(
    tag, fields, message
):
    with pytest.raises(CodecError) as info:
        decode(_packed(tag, fields))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_nested_message_with_a_wrong_field_is_refused_too():
    good = encode(messages.ChildFailed(child="c", generation=1))
    assert decode(good) == messages.ChildFailed(child="c", generation=1)
    inner = msgpack.packb(("FailureInfo", {"error_type": "E", "error_message": 3, "at_ms": 1}))
    data = _packed(
        "ChildFailed", {"child": "c", "generation": 1, "failure": msgpack.ExtType(1, inner)}
    )
    with pytest.raises(CodecError, match=r"FailureInfo\.error_message: expected str, got int 3"):
        decode(data)


def test_a_float_field_takes_an_int_as_the_numeric_tower_does():
    back = decode(_packed("VolumeAlert", {**_ALERT, "current_volume": 9_000_000}))
    assert back.current_volume == 9_000_000
    assert decode(encode(MarkPrice(symbol="X", event_time_ms=1, mark_price=2))).mark_price == 2


def test_columns_of_different_lengths_are_a_codec_error_not_a_value_error():
    fields = {
        "symbols": ("A",),
        "event_times_ms": (),
        "mark_prices": (),
        "index_prices": (),
        "funding_rates": (),
        "next_funding_times_ms": (),
        "received_ms": 0,
    }
    with pytest.raises(CodecError, match="same length"):
        decode(_packed("MarkPrices", fields))


def _conforms(value, hint) -> bool:
    """An independent statement of the field rules, to judge what the decoder let through."""
    supertype = getattr(hint, "__supertype__", None)
    if supertype is not None:
        return _conforms(value, supertype)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is float:
        return type(value) in (float, int)
    if origin is typing.Literal:
        return isinstance(value, str) and value in args
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if origin is tuple:
        return type(value) is tuple and all(_conforms(x, args[0]) for x in value)
    return type(value) is hint


_ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=6),
    st.binary(max_size=4),
    st.sampled_from(["SPIKE", "bullish", "HALF_UPDATE", "bearish"]),
    st.lists(
        st.one_of(st.none(), st.integers(-5, 5), st.floats(), st.text(max_size=3)), max_size=3
    ),
)


@pytest.mark.parametrize("name", ["VolumeAlert", "Pong", "MarkPrice", "OiAlert"])
def test_fuzzed_field_values_decode_only_when_every_field_matches_its_type(name):
    cls = MESSAGE_TYPES[name]
    hints = typing.get_type_hints(cls)

    @settings(max_examples=150, deadline=None)
    @given(st.fixed_dictionaries({}, optional=dict.fromkeys(hints, _ANY_VALUE)))
    def check(fields):
        try:
            msg = decode(_packed(name, fields))
        except CodecError:
            wrong_type = not all(_conforms(v, hints[k]) for k, v in fields.items())
            missing = set(messages._base.field_names(cls)) - set(fields)
            assert wrong_type or missing
            return
        for field_name in messages._base.field_names(cls):
            assert _conforms(getattr(msg, field_name), hints[field_name]), field_name

    check()
