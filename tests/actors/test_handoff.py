"""The producer's side of the alert handoff: what waits for the poster's receipt, and when it
is handed over again (pure; the actor-level tests are in test_poster.py, test_volume_scanner.py
and test_oi_poller.py)."""

from __future__ import annotations

import base64
import math

import orjson
import pytest

from actors._handoff import Unconfirmed, alert_key
from actors._payloads import outbox_entries
from messages import ActorName, OiAlert, Symbol, TimestampMs, VolumeAlert, decode, encode
from messages.delivery import AlertHandoff, AlertsCommitted

HOUR = 1_764_943_200_000  # 2025-12-05T14:00:00Z


def volume_alert(i: int = 0, **changes: object) -> VolumeAlert:
    fields: dict[str, object] = {
        "symbol": Symbol(f"C{i}USDT"),
        "asset": f"C{i}",
        "current_volume": 5_200_000.0,
        "previous_volume": 1_500_000.0,
        "volume_ratio": 3.4666666666666663,
        "message": f"C{i} hourly volume 5.20M (3.47x prev) — VOLUME SPIKE!",
        "timestamp_ms": TimestampMs(HOUR + 600_000),
        "detection_time_ms": TimestampMs(HOUR + 600_123),
        "hour_timestamp_ms": TimestampMs(HOUR),
        "price": 1.25,
        "funding_rate": -0.0000413,
    }
    return VolumeAlert(**(fields | changes))  # type: ignore[arg-type]


def oi_alert(i: int = 0) -> OiAlert:
    return OiAlert(
        symbol=Symbol(f"C{i}USDT"),
        direction="DOWN",
        baseline=1_000_000.0,
        current=960_000.0,
        pct_change=-0.04,
        abs_change=-40_000.0,
        timestamp_ms=TimestampMs(HOUR + 10_000 + i),
        timeframe="15 min",
    )


def test_the_key_is_the_outbox_key_the_poster_derives():
    for alert in (volume_alert(1), volume_alert(1, alert_type="HALF_UPDATE"), oi_alert(2)):
        assert alert_key(alert) == outbox_entries(alert)[0].idempotency_key
    assert alert_key(volume_alert(1)) == "volume:C1USDT:2025-12-05T14:00:00Z:SPIKE"
    assert alert_key(oi_alert(2)) == f"oi-alert:C2USDT:15min:DOWN:{HOUR + 10_002}"


def test_an_alert_waits_until_its_key_is_confirmed_and_unknown_keys_are_ignored():
    waiting = Unconfirmed(resend_after_s=10.0)
    keys = [waiting.add(volume_alert(i), 100.0) for i in range(3)]
    waiting.add(oi_alert(0), 100.0)
    assert len(waiting) == 4
    assert waiting.keys()[:3] == tuple(keys)
    assert waiting.confirm([keys[1], "volume:NOPE:2025-12-05T14:00:00Z:SPIKE"]) == 1
    assert keys[1] not in waiting
    assert waiting.confirm([keys[1]]) == 0  # a second receipt for a repeat
    assert [a.symbol for a in waiting.alerts()] == ["C0USDT", "C2USDT", "C0USDT"]
    assert waiting.counts == {"added": 4, "confirmed": 1}


def test_an_alert_with_a_key_already_waiting_keeps_the_first_like_the_outbox():
    waiting = Unconfirmed()
    first = volume_alert(1)
    key = waiting.add(first, 1.0)
    revision = waiting.revision
    assert waiting.add(volume_alert(1, current_volume=9e6), 2.0) == key
    assert waiting.alerts() == (first,)
    assert waiting.revision == revision  # nothing new to persist


def test_what_is_unconfirmed_after_the_resend_period_is_due_again_once_per_period():
    waiting = Unconfirmed(resend_after_s=10.0)
    a, b = volume_alert(1), volume_alert(2)
    waiting.add(a, 100.0)
    waiting.add(b, 105.0)
    assert waiting.take_due(109.9) == ()
    assert waiting.rounds == 0
    assert waiting.take_due(110.0) == (a,)
    assert waiting.rounds == 1
    assert waiting.take_due(114.0) == ()  # a was handed over again at 110
    assert waiting.take_due(115.0) == (b,)
    assert waiting.take_due(120.0) == (a,)
    assert waiting.rounds == 3
    assert waiting.counts["resent"] == 3
    waiting.confirm([alert_key(a)])
    assert waiting.rounds == 3  # b still waits
    waiting.confirm([alert_key(b)])
    assert waiting.rounds == 0
    assert waiting.take_due(1000.0) == ()


def test_the_exported_alerts_load_exactly_and_are_due_at_once_without_counting_a_round():
    waiting = Unconfirmed(resend_after_s=10.0)
    alerts = (
        volume_alert(1, price=None, oi_change=math.nan, candle_direction="bearish"),
        oi_alert(2),
    )
    for alert in alerts:
        waiting.add(alert, 50.0)
    rows = orjson.loads(orjson.dumps(waiting.export()))  # as the store keeps them: JSON

    restored = Unconfirmed(resend_after_s=10.0)
    assert restored.load(rows) == (2, 0)
    assert restored.keys() == waiting.keys()
    due = restored.take_due(0.0)  # a restart: handed over at once, whatever the clock says
    assert [encode(a) for a in due] == [encode(a) for a in alerts]  # bit for bit, NaN included
    assert math.isnan(due[0].oi_change or 0.0)
    assert restored.rounds == 0  # nobody waited in vain yet
    assert restored.counts["resent"] == 2
    assert restored.take_due(5.0) == ()
    assert [alert_key(a) for a in restored.take_due(10.0)] == [alert_key(a) for a in alerts]
    assert restored.rounds == 1


def test_unreadable_rows_are_skipped_and_counted_and_the_rest_loads():
    good = Unconfirmed()
    good.add(volume_alert(1), 0.0)
    [row] = good.export()
    truncated = base64.b64encode(base64.b64decode(row)[:-5]).decode("ascii")
    not_an_alert = base64.b64encode(encode(AlertsCommitted(keys=()))).decode("ascii")
    rows = [row, "not base64!", 42, truncated, not_an_alert]
    restored = Unconfirmed()
    assert restored.load(rows) == (1, 4)
    assert restored.keys() == good.keys()
    assert restored.load(None) == (0, 0)  # nothing was saved
    with pytest.raises(TypeError):
        restored.load({"not": "a list"})


def test_the_handoff_messages_round_trip_through_the_codec():
    alerts = (volume_alert(1), oi_alert(2))
    handoff = AlertHandoff(reply_to=ActorName("volume-scanner"), alerts=alerts)
    assert decode(encode(handoff)) == handoff
    receipt = AlertsCommitted(keys=tuple(alert_key(a) for a in handoff.alerts))
    assert decode(encode(receipt)) == receipt


def test_the_resend_period_must_be_positive():
    with pytest.raises(ValueError, match="resend_after_s"):
        Unconfirmed(resend_after_s=0.0)
