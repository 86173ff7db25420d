from __future__ import annotations

import pytest

from actors._weight_budget import (
    HEADER_GUARD_MS,
    MINUTE_MS,
    Decision,
    WeightBudget,
    header_counts,
    oi_poll_interval,
)

T0 = 1_773_900_000_000  # a whole minute


def test_requests_are_granted_up_to_the_target_then_refused_until_the_next_minute():
    budget = WeightBudget(limit=2400, target=10)
    assert all(budget.acquire(1, T0 + i, "oi").granted for i in range(10))
    refused = budget.acquire(1, T0 + 15_000, "oi")
    assert refused == Decision(granted=False, wait_s=45.0, reason="budget")
    assert budget.acquire(1, T0 + 60_000, "oi").granted
    assert budget.by_caller == {"oi": 11}


def test_a_control_plane_request_may_use_the_reserve_but_not_the_whole_limit():
    budget = WeightBudget(limit=2400, target=2000)
    assert budget.reserve_ceiling == 2200
    assert budget.acquire(2000, T0, "oi").granted
    assert not budget.acquire(1, T0 + 1, "oi").granted
    assert budget.acquire(1, T0 + 2, "universe", reserve=True).granted
    assert budget.acquire(199, T0 + 3, "universe", reserve=True).granted
    refused = budget.acquire(1, T0 + 4, "universe", reserve=True)
    assert (refused.granted, refused.reason) == (False, "budget")
    budget.rate_limited(5.0, T0 + 60_000)  # a 429 holds control-plane requests too
    assert budget.acquire(1, T0 + 61_000, "universe", reserve=True).reason == "rate-limited"


def test_the_window_is_the_calendar_minute_not_a_sliding_one():
    budget = WeightBudget(target=5)
    assert budget.acquire(5, T0 + 59_999).granted
    assert budget.acquire(5, T0 + 60_000).granted


def test_the_header_raises_the_count_when_another_client_spends_weight():
    budget = WeightBudget(target=2000)
    budget.acquire(10, T0)
    budget.observe_used_weight(1995, T0 + 1000)
    assert budget.headroom(T0 + 1000) == 5
    assert not budget.acquire(6, T0 + 1000).granted
    budget.observe_used_weight(3, T0 + 2000)  # a stale or lower reading never lowers the count
    assert budget.used == 1995


def test_a_header_from_a_new_minute_starts_that_minute():
    budget = WeightBudget(target=100)
    budget.acquire(100, T0)
    budget.observe_used_weight(7, T0 + 61_000)
    assert budget.used == 7


def test_a_429_pauses_everyone_until_retry_after():
    budget = WeightBudget()
    budget.rate_limited(retry_after_s=30, now_ms=T0)
    for caller in ("oi", "klines", "exchangeInfo"):
        decision = budget.acquire(1, T0 + 10_000, caller)
        assert (decision.granted, decision.reason, decision.wait_s) == (False, "rate-limited", 20.0)
    assert budget.headroom(T0 + 10_000) == 0
    assert budget.acquire(1, T0 + 30_000).granted


def test_a_418_freezes_everyone_until_the_ban_ends_and_a_later_429_cannot_shorten_it():
    budget = WeightBudget()
    budget.banned(until_ms=T0 + 120_000)
    budget.rate_limited(retry_after_s=1, now_ms=T0)
    decision = budget.acquire(1, T0 + 60_000)
    assert (decision.reason, decision.wait_s) == ("banned", 60.0)
    assert budget.acquire(1, T0 + 120_000).granted
    assert budget.refusals == {"banned": 1}


def test_the_limit_from_exchange_info_caps_the_target():
    budget = WeightBudget(limit=2400, target=2000)
    budget.set_limit(1200)
    assert (budget.limit, budget.target) == (1200, 1200)
    with pytest.raises(ValueError, match="target"):
        WeightBudget(limit=100, target=200)


@pytest.mark.parametrize(
    ("symbols", "rate", "expected"),
    [
        (100, 2000, 5.0),
        (200, 2000, 6.0),
        (340, 2000, 10.2),
        (355, 2000, 10.65),
        (534, 2000, 16.02),
        (700, 2000, 20.0),
        (0, 2000, 20.0),
    ],
)
def test_the_poll_interval_follows_the_formula_and_its_clamp(symbols, rate, expected):
    assert oi_poll_interval(symbols, rate, 5.0, 20.0) == pytest.approx(expected)


M = 29_925_000 * MINUTE_MS  # the start of some minute


@pytest.mark.parametrize(
    ("sent", "answered", "counts"),
    [
        (M + 5_000, M + 5_040, True),  # the common case
        (M + HEADER_GUARD_MS, M + HEADER_GUARD_MS + 30, True),
        (M + 3, M + 40, False),  # may have landed in the exchange's previous minute
        (M + HEADER_GUARD_MS - 1, M + HEADER_GUARD_MS + 30, False),
        (M - 20, M + 15, False),  # sent in one minute, answered in the next
        (M + 59_990, M + 60_010, False),
    ],
)
def test_a_used_weight_header_counts_only_well_inside_one_minute(sent, answered, counts):
    assert header_counts(sent, answered) is counts


def test_a_stale_header_from_the_previous_minute_cannot_stall_the_new_one():
    """The incident: 1,755 used in minute M; a request sent 3 ms into M+1 (our clock) is
    counted by the exchange in M and answers 1,755. Applied, it would leave 245 for M+1."""
    budget = WeightBudget(limit=2400, target=2000)
    for _ in range(1755):
        assert budget.acquire(1, M + 10_000, "oi").granted
    sent = M + MINUTE_MS + 3
    assert budget.acquire(1, sent, "oi").granted
    if header_counts(sent, sent + 30):
        budget.observe_used_weight(1755, sent + 30)
    assert budget.headroom(sent + 30) == 2000 - 1
