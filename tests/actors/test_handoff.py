"""The producer's side of the alert handoff: what waits for the poster's receipt, and when it
is handed over again (pure), and the courier that tells and logs it for both producers (with a
registry double and a log sink; the actor-level tests are in test_poster.py,
test_volume_scanner.py and test_oi_poller.py)."""

from __future__ import annotations

import base64
import math
from typing import Any

import orjson
import pytest
from loguru import logger

from actors._handoff import AlertCourier, Unconfirmed, alert_key
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


# --- the courier: telling and logging -------------------------------------------------------------


class Registry:
    """Stands in for the name registry: writes down every ``tell``; refuses while told to."""

    def __init__(self) -> None:
        self.told: list[tuple[str, Any]] = []
        self.accepting = True

    def tell(self, name: str, message: Any) -> bool:
        if not self.accepting:
            return False
        self.told.append((name, message))
        return True

    def handoffs(self) -> list[AlertHandoff]:
        assert all(name == "poster" for name, _ in self.told)
        return [m for _, m in self.told]


@pytest.fixture
def lines():
    """``(level, message)`` of what the couriers of a test logged."""
    records: list[tuple[str, str]] = []

    def sink(message: Any) -> None:
        records.append((message.record["level"].name, message.record["message"]))

    sink_id = logger.add(
        sink, level="DEBUG", filter=lambda record: record["extra"].get("courier_test") is True
    )
    yield records
    logger.remove(sink_id)


def courier(registry: Registry, **options: Any) -> AlertCourier:
    return AlertCourier(
        owner=ActorName("volume-scanner"),
        poster="poster",
        registry=registry,
        log=logger.bind(courier_test=True),
        **options,
    )


def test_kept_alerts_are_handed_over_in_one_handoff_naming_their_owner(lines):
    registry = Registry()
    mine = courier(registry)
    alerts = (volume_alert(1), volume_alert(2))
    mine.keep(alerts, 100.0)
    mine.hand_over(alerts)
    assert registry.handoffs() == [
        AlertHandoff(reply_to=ActorName("volume-scanner"), alerts=alerts)
    ]
    assert (mine.handed, mine.refused) == (2, 0)
    assert mine.pending.keys() == tuple(alert_key(a) for a in alerts)  # until the receipt
    assert lines == []


def test_a_handoff_nobody_takes_is_counted_logged_once_and_kept_for_later(lines):
    registry = Registry()
    registry.accepting = False  # the poster is restarting
    mine = courier(registry, what="OI alert(s)", resend_after_s=7.5)
    alerts = (oi_alert(1), oi_alert(2))
    mine.keep(alerts, 100.0)
    mine.hand_over(alerts)
    assert (mine.handed, mine.refused) == (0, 2)
    assert lines == [
        (
            "WARNING",
            "no poster to take 2 OI alert(s) (e.g. C1USDT); kept, handed over again in 7.5 s",
        )
    ]
    assert len(mine.pending) == 2
    # the poster is back: the next resend after the period hands them over
    registry.accepting = True
    assert mine.resend(107.4) is False
    assert mine.resend(107.5) is True
    assert registry.handoffs()[0].alerts == alerts
    assert (mine.handed, mine.refused) == (2, 2)


def test_resends_are_loud_on_the_first_round_then_quiet_then_loud_every_twentieth(lines):
    registry = Registry()
    mine = courier(registry, resend_after_s=10.0)
    alert = volume_alert(1)
    mine.keep([alert], 0.0)
    mine.hand_over((alert,))
    assert mine.resend(9.9) is False  # not yet waited long enough: nothing told, nothing logged
    assert (len(registry.told), lines) == (1, [])
    for k in range(1, 22):  # 21 rounds of waiting in vain
        assert mine.resend(10.0 * k) is True
    assert len(registry.told) == 22
    assert all(h.alerts == (alert,) for h in registry.handoffs())
    levels = [level for level, _ in lines]
    assert levels == ["WARNING"] + ["DEBUG"] * 18 + ["WARNING", "DEBUG"]
    assert {m for _, m in lines} == {"1 alert(s) not yet confirmed by poster; resending"}
    assert mine.counters("volume_alerts") == {
        "volume_alerts_resent_total": 21,
        "volume_alerts_confirmed_total": 0,
        "volume_alerts_unconfirmed": 1,
    }


def test_alerts_saved_before_a_restart_are_resent_at_once_and_said_at_info(lines):
    saved = Unconfirmed()
    alerts = (volume_alert(1), oi_alert(2))
    for alert in alerts:
        saved.add(alert, 50.0)
    registry = Registry()
    mine = courier(registry, resend_after_s=10.0)
    mine.load(orjson.loads(orjson.dumps(saved.export())))  # as the store keeps them
    assert mine.resend(0.0) is True  # whatever the new clock says
    assert registry.handoffs() == [
        AlertHandoff(reply_to=ActorName("volume-scanner"), alerts=alerts)
    ]
    assert lines == [
        ("INFO", "loaded 2 alert(s) the poster had not confirmed"),
        ("INFO", "2 alert(s) saved unconfirmed before a restart; resending"),
    ]
    # then they wait like any other: the first round of waiting in vain is the loud one
    assert mine.resend(9.0) is False
    assert mine.resend(10.0) is True
    assert lines[2:] == [("WARNING", "2 alert(s) not yet confirmed by poster; resending")]


def test_unreadable_saved_alerts_are_logged_as_errors_and_never_raise(lines):
    good = Unconfirmed()
    good.add(volume_alert(1), 0.0)
    mine = courier(Registry())
    mine.load({"not": "a list"})
    mine.load([*good.export(), "not base64!"])
    mine.load(None)  # nothing was saved: nothing said
    assert [level for level, _ in lines] == ["ERROR", "ERROR", "INFO"]
    assert "saved unconfirmed alert(s) unreadable" in lines[0][1]
    assert "none resent" in lines[0][1]
    assert lines[1][1] == "1 saved unconfirmed alert(s) unreadable; dropped"
    assert lines[2][1] == "loaded 1 alert(s) the poster had not confirmed"
    assert mine.pending.keys() == good.keys()


def test_a_receipt_counts_only_when_it_confirms_something_waiting(lines):
    registry = Registry()
    mine = courier(registry, resend_after_s=10.0)
    a, b = volume_alert(1), volume_alert(2)
    assert mine.committed(()) is False
    assert mine.committed((alert_key(a),)) is False  # nothing waiting: nothing to save
    mine.keep([a, b], 0.0)
    mine.hand_over((a, b))
    assert mine.committed((alert_key(a), "volume:NOPE:2025-12-05T14:00:00Z:SPIKE")) is True
    assert mine.committed((alert_key(a),)) is False  # the repeat's second receipt
    assert lines == []  # confirmed without anyone waiting in vain: nothing to say
    assert mine.resend(10.0) is True  # b waited in vain: a round
    assert mine.committed((alert_key(b),)) is True
    assert lines[1:] == [("INFO", "poster confirmed all the resent alert(s)")]
    assert mine.counters("p") == {"p_resent_total": 1, "p_confirmed_total": 2, "p_unconfirmed": 0}


def test_confirmed_every_is_said_only_once_everything_waiting_was_confirmed(lines):
    mine = courier(Registry(), what="OI alert(s)", resend_after_s=10.0)
    a, b = oi_alert(1), oi_alert(2)
    mine.keep([a, b], 0.0)
    assert mine.resend(10.0) is True
    assert mine.committed((alert_key(a),)) is True
    assert [m for _, m in lines if "confirmed all" in m] == []  # b still waits
    assert mine.committed((alert_key(b),)) is True
    assert lines[-1] == ("INFO", "poster confirmed all the resent OI alert(s)")
    mine.keep([oi_alert(3)], 20.0)  # a new alert confirmed at once: no round, nothing said
    assert mine.committed((alert_key(oi_alert(3)),)) is True
    assert len([m for _, m in lines if "confirmed all" in m]) == 1
