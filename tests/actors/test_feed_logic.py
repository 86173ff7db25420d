from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors._feed_logic import MARKET_STREAMS, StallWatch, kline_stream, reshard, stream_url


def test_the_market_feed_url_uses_the_routed_market_path():
    url = stream_url("wss://fstream.binance.com/market", MARKET_STREAMS)
    assert url == "wss://fstream.binance.com/market/stream?streams=!markPrice@arr@1s/!ticker@arr"


def test_kline_streams_are_lower_case_and_non_ascii_names_are_percent_encoded():
    assert kline_stream("BTCUSDT") == "btcusdt@kline_1h"
    url = stream_url("ws://127.0.0.1:9/market/", [kline_stream("龙虾USDT")])
    assert url == "ws://127.0.0.1:9/market/stream?streams=%E9%BE%99%E8%99%BEusdt@kline_1h"


def test_a_feed_needs_streams():
    with pytest.raises(ValueError, match="at least one"):
        stream_url("wss://x/market", [])


def test_first_sharding_fills_connections_up_to_the_cap_in_symbol_order():
    shards = reshard((), [f"S{i:03}" for i in range(450)], 200)
    assert [len(s) for s in shards] == [200, 200, 50]
    assert shards[0][0] == "S000"


def test_a_listing_joins_the_emptiest_shard_and_no_other_shard_changes():
    shards = reshard((), [f"S{i:03}" for i in range(450)], 200)
    after = reshard(shards, [*shards[0], *shards[1], *shards[2], "NEWUSDT"], 200)
    assert after[:2] == shards[:2]
    assert after[2] == (*shards[2], "NEWUSDT")


def test_a_delisting_touches_only_its_own_shard_and_empty_shards_vanish():
    shards = (("A", "B"), ("C",), ("D", "E"))
    assert reshard(shards, ["A", "B", "D", "E"], 2) == (("A", "B"), ("D", "E"))
    assert reshard(shards, ["A", "B", "D"], 2) == (("A", "B"), ("D",))


def test_lowering_the_cap_spills_into_new_shards():
    assert reshard((("A", "B", "C"),), ["A", "B", "C"], 2) == (("A", "B"), ("C",))


@settings(max_examples=200)
@given(
    st.lists(st.sampled_from([f"S{i}" for i in range(40)]), unique=True, max_size=40),
    st.lists(st.sampled_from([f"S{i}" for i in range(40)]), unique=True, max_size=40),
    st.integers(min_value=1, max_value=9),
)
def test_resharding_covers_every_symbol_once_and_respects_the_cap(first, second, cap):
    shards = reshard(reshard((), first, cap), second, cap)
    flat = [s for shard in shards for s in shard]
    assert sorted(flat) == sorted(second)
    assert all(0 < len(shard) <= cap for shard in shards)


def test_silence_after_connecting_is_a_stall():
    watch = StallWatch(silence_s=10, started_mono=100.0)
    assert watch.stalled(109.0) is None
    assert watch.stalled(110.5) == "no data for 10.5 s since connecting"


def test_frames_that_keep_coming_keep_the_feed_healthy():
    watch = StallWatch(silence_s=10, started_mono=0.0)
    for second in range(1, 60):
        watch.frame(float(second), 1_000 * second)
        assert watch.stalled(second + 0.9) is None
    assert watch.data_age(59.5) == 0.5


def test_a_silent_connection_is_a_stall():
    watch = StallWatch(silence_s=10, started_mono=0.0)
    watch.frame(1.0, 5)
    assert watch.stalled(11.5) == "no data for 10.5 s"


def test_frames_whose_event_time_does_not_advance_are_a_stall():
    watch = StallWatch(silence_s=10, started_mono=0.0)
    for second in range(1, 13):
        watch.frame(float(second), 777)  # the same E again and again
    assert watch.stalled(12.0) == "event time stuck at 777 for 11.0 s"


def test_replies_without_event_time_do_not_count_as_fresh_data():
    watch = StallWatch(silence_s=10, started_mono=0.0)
    watch.frame(1.0, 10)
    for second in range(2, 14):
        watch.frame(float(second), None)
    assert watch.stalled(13.0) == "event time stuck at 10 for 12.0 s"
