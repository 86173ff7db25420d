from __future__ import annotations

import math

from actors._health import compute_health
from actors._price_board import PriceBoard
from actors._status import FeedStatus, StatusBoard, render_metrics
from messages import MarkPrice, MarkPrices
from messages.control import ChildHealth, FailureInfo, HealthReport


def _board(*ages_and_symbols, now=1000.0):
    board = PriceBoard()
    for symbol, age in ages_and_symbols:
        frame = MarkPrices.from_items(
            [MarkPrice(symbol=symbol, event_time_ms=1, mark_price=1.0)], received_ms=1
        )
        board.apply(frame, received_mono=now - age)
    return board


def _health(statuses, board, report=None, now=1000.0):
    return compute_health(
        statuses=statuses,
        board=board,
        feeds=("feed-market",),
        report=report,
        now_mono=now,
        stale_after_s=180,
        status_max_age_s=5,
        uptime_s=12.0,
    )


LIVE = FeedStatus(connected=True, data_age_s=0.4, stalled=None, streams=2, published_mono=999.5)


def test_live_feed_and_fresh_prices_are_healthy():
    ok, body = _health({"feed-market": LIVE}, _board(("A", 1.0), ("B", 2.0)))
    assert ok
    assert body["status"] == "healthy"
    assert body["reasons"] == []
    assert (body["symbolCount"], body["staleSymbols"]) == (2, 0)
    assert (body["newestDataAgeSeconds"], body["oldestDataAgeSeconds"]) == (1.0, 2.0)
    assert body["feeds"]["feed-market"] == {"connected": True, "streams": 2, "dataAgeSeconds": 0.4}


def test_one_old_symbol_does_not_make_the_daemon_unhealthy():
    ok, body = _health({"feed-market": LIVE}, _board(("A", 1.0), ("DELISTED", 5000.0)))
    assert ok
    assert body["staleSymbols"] == 1


def test_a_stalled_missing_or_silent_feed_is_named_in_the_reasons():
    board = _board(("A", 1.0))
    stalled = LIVE._replace(stalled="no data for 16.0 s")
    assert _health({"feed-market": stalled}, board)[1]["reasons"] == [
        "feed feed-market: no data for 16.0 s"
    ]
    assert _health({}, board)[1]["reasons"] == ["feed feed-market: not running"]
    silent = LIVE._replace(published_mono=990.0)
    assert "no status for 10.0 s" in _health({"feed-market": silent}, board)[1]["reasons"][0]
    fresh = LIVE._replace(data_age_s=None)
    assert _health({"feed-market": fresh}, board)[1]["reasons"] == [
        "feed feed-market: connected, no data yet"
    ]


def test_no_prices_or_only_stale_prices_are_unhealthy():
    assert _health({"feed-market": LIVE}, PriceBoard())[1]["reasons"] == ["no prices received yet"]
    ok, body = _health({"feed-market": LIVE}, _board(("A", 200.0)))
    assert not ok
    assert body["reasons"] == ["every price is older than 180 s"]


def test_an_actor_waiting_to_restart_is_unhealthy_and_its_failure_is_shown():
    failure = FailureInfo(error_type="ValueError", error_message="boom", at_ms=1)
    report = HealthReport(
        supervisor="root",
        children=(
            ChildHealth(
                name="price-cache", state="backoff", restarts=3, uptime_s=None, last_failure=failure
            ),
            ChildHealth(name="http-api", state="running", restarts=0, uptime_s=5.0),
        ),
    )
    ok, body = _health({"feed-market": LIVE}, _board(("A", 1.0)), report)
    assert not ok
    assert body["reasons"] == ["actor root/price-cache: backoff"]
    assert body["actors"][0] == {
        "name": "root/price-cache",
        "state": "backoff",
        "restarts": 3,
        "lastFailure": "ValueError: boom",
    }


def test_metrics_render_counters_and_gauges_and_skip_missing_values():
    board = StatusBoard()
    board.count("feed-market", {"feed_frames_total": 12, "feed_rejected_total": 1})
    board.count("price-cache", {"cache_symbols": 650})
    text = render_metrics(board.counters(), {"cache_size": 650, "data_age_seconds": math.nan})
    assert "# TYPE volspike_feed_frames_total counter" in text
    assert 'volspike_feed_frames_total{actor="feed-market"} 12' in text
    assert "# TYPE volspike_cache_symbols gauge" in text
    assert "volspike_cache_size 650" in text
    assert "data_age_seconds" not in text
