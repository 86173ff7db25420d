"""The typed fast paths (marks, tickers) agree with the reference parser where they accept."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from messages._binance_fast import mark_prices, tickers
from messages.binance import _mark_prices, _tickers, parse_frame

if TYPE_CHECKING:
    from collections.abc import Callable

    from messages import MarkPrices, Tickers

RECEIVED_MS = 1_700_000_000_123


def _reference(raw: bytes) -> tuple[MarkPrices, int]:
    """The reference parser alone (no fast path): the message and its error count."""
    obj = orjson.loads(raw)
    items = obj["data"] if isinstance(obj, dict) else obj
    parsed = _mark_prices(items, RECEIVED_MS)
    return parsed.message, len(parsed.errors)  # type: ignore[return-value]


def _reference_tickers(raw: bytes) -> tuple[Tickers, int]:
    parsed = _tickers(orjson.loads(raw)["data"], RECEIVED_MS)
    return parsed.message, len(parsed.errors)  # type: ignore[return-value]


def _perturbed(
    entries: list[dict[str, object]], field: str, value: object, *, drop: bool
) -> list[dict[str, object]]:
    """The middle entry with ``field`` removed or set to ``value``."""
    if drop:
        del entries[1][field]
    else:
        entries[1][field] = value
    return entries


def _assert_agrees(
    raw: bytes,
    fast: Callable[[bytes, int], object],
    reference: Callable[[bytes], tuple[object, int]],
) -> None:
    """The fast path accepts only what the reference takes whole, and then agrees with it;
    whichever path runs, ``parse_frame`` answers what the reference answers."""
    answer = fast(raw, RECEIVED_MS)
    expected, errors = reference(raw)
    if answer is not None:
        assert errors == 0
        assert answer == expected
    assert parse_frame(raw, RECEIVED_MS).message == expected


def _ticker(n: int, **overrides: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "e": "24hrTicker",
        "E": 1_653_814_800_126 + n,
        "s": f"SYM{n}USDT",
        "p": "-0.00053",
        "P": "1.525",
        "w": "0.03552",
        "c": f"{0.03 + n / 100:.5f}",
        "Q": "861",
        "o": "0.03476",
        "h": "0.03645",
        "l": "0.03465",
        "v": "346584392",
        "q": f"{12312309.61 + n:.2f}",
        "O": 1_653_728_400_000,
        "C": 1_653_814_800_117,
        "F": 94208734,
        "L": 94269527,
        "n": 61000 + n,
    }
    entry.update(overrides)
    return entry


def _entry(n: int, **overrides: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "e": "markPriceUpdate",
        "E": 1_786_171_884_000 + n,
        "s": f"SYM{n}USDT",
        "p": f"{1 + n / 7:.8f}",
        "ap": "1.0",
        "P": "1.0",
        "i": f"{1 + n / 9:.8f}",
        "r": "-0.00007044",
        "T": 1_786_176_000_000,
        "st": 1,
    }
    entry.update(overrides)
    return entry


def _combined(entries: list[dict[str, object]]) -> bytes:
    return orjson.dumps({"stream": "!markPrice@arr@1s", "data": entries})


def test_a_well_formed_combined_frame_takes_the_fast_path_and_matches_the_reference():
    raw = _combined([_entry(n) for n in range(50)])
    fast = mark_prices(raw, RECEIVED_MS)
    assert fast is not None
    assert fast == _reference(raw)[0]
    assert parse_frame(raw, RECEIVED_MS).message == fast


def test_a_bare_array_takes_the_fast_path_too():
    raw = orjson.dumps([_entry(n) for n in range(3)])
    fast = mark_prices(raw, RECEIVED_MS)
    assert fast is not None
    assert fast == _reference(raw)[0]


def test_the_recorded_frames_parse_the_same_with_and_without_the_fast_path(fixtures_dir):
    checked = 0
    for line in (fixtures_dir / "binance" / "ws_markPrice_samples.jsonl").read_text().splitlines():
        raw = line.strip().encode()
        fast = mark_prices(raw, RECEIVED_MS)
        if fast is not None:
            checked += 1
            assert fast == _reference(raw)[0]
            assert len(fast.symbols) > 1
    assert checked >= 1  # the recorded !markPrice@arr frame


@given(
    st.sampled_from(["p", "i", "r", "E", "T", "s", "e"]),
    st.one_of(
        st.sampled_from(["", "NaN", "nan", "inf", "-inf", "Infinity", "1e400", "0", "-1", "-0"]),
        st.sampled_from([" 1", "1_0", "+1", "0x10", "1e5", "abc", "1.5", "-0.0001"]),
        st.sampled_from(["1_000.5", "0.000_1", "\u0661\u0662", ".5", "1.", "00012"]),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.none(),
        st.just([1]),
    ),
    st.booleans(),
)
@settings(max_examples=600, deadline=None)
def test_an_unusual_field_never_passes_the_fast_path_unless_the_reference_agrees(
    field, value, drop
):
    raw = _combined(_perturbed([_entry(n) for n in range(3)], field, value, drop=drop))
    _assert_agrees(raw, mark_prices, _reference)


def test_a_well_formed_ticker_frame_takes_the_fast_path_and_matches_the_reference():
    raw = orjson.dumps({"stream": "!ticker@arr", "data": [_ticker(n) for n in range(40)]})
    fast = tickers(raw, RECEIVED_MS)
    assert fast is not None
    assert fast == _reference_tickers(raw)[0]
    assert parse_frame(raw, RECEIVED_MS).message == fast


@given(
    st.sampled_from(["c", "q", "v", "o", "P", "n", "E", "s", "e"]),
    st.one_of(
        st.sampled_from(["", "NaN", "inf", "1e400", "0", "-1", "-0", " 1", "1_0", "abc", "2.5"]),
        st.sampled_from(["1_000.5", "\u0661\u0662", ".5", "1.", "00012", "+3"]),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.none(),
    ),
    st.booleans(),
)
@settings(max_examples=400, deadline=None)
def test_an_unusual_ticker_field_never_passes_the_fast_path_unless_the_reference_agrees(
    field, value, drop
):
    entries = _perturbed([_ticker(n) for n in range(3)], field, value, drop=drop)
    _assert_agrees(
        orjson.dumps({"stream": "!ticker@arr", "data": entries}), tickers, _reference_tickers
    )


def test_an_underscored_number_is_refused_by_the_fast_path_and_the_reference_alike():
    # float("1_000") == 1000.0, msgspec refuses it: the reference must refuse it too.
    for field in ("p", "i", "r"):
        raw = _combined([_entry(0), _entry(1, **{field: "1_000"}), _entry(2)])
        assert mark_prices(raw, RECEIVED_MS) is None
        message, errors = _reference(raw)
        assert errors == 1
        assert message.symbols == ("SYM0USDT", "SYM2USDT")
        assert parse_frame(raw, RECEIVED_MS).message == message
    for field in ("c", "q", "v", "o", "P"):
        entries = [_ticker(0), _ticker(1, **{field: "2_5"})]
        raw = orjson.dumps({"stream": "!ticker@arr", "data": entries})
        assert tickers(raw, RECEIVED_MS) is None
        tickers_message, errors = _reference_tickers(raw)
        assert errors == 1
        assert [t.symbol for t in tickers_message.items] == ["SYM0USDT"]


def test_a_non_bytes_or_other_frame_is_left_to_the_reference():
    assert mark_prices('{"stream":"!markPrice@arr","data":[]}', RECEIVED_MS) is None
    assert mark_prices(b'{"stream":"!ticker@arr","data":[]}', RECEIVED_MS) is None
    assert mark_prices(b'{"stream":"!markPrice@arr","data":[', RECEIVED_MS) is None
    assert tickers(b'{"stream":"!markPrice@arr","data":[]}', RECEIVED_MS) is None
    assert tickers('{"stream":"!ticker@arr","data":[]}', RECEIVED_MS) is None
