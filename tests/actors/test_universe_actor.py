"""The universe actor against the simulator: the liquid universe forms from the real
``!ticker@arr`` volumes with the hysteresis (a saved member in the 2-4 M band stays, a saved
member below 2 M leaves, a non-member in the band does not enter), is told to the OI poller and
posted to the backend, survives a restart, and is never sent empty."""

from __future__ import annotations

from typing import Any

import pytest

from actors._store import StateStore
from messages.open_interest import LiquidUniverse, TradingUniverse
from simulator.backend import UNIVERSE_UPDATE
from supervisors.actor import SupervisedActor
from supervisors.spec import ChildSpec

from .test_oi_poller import build_oi_tree, wait_until

pytestmark = pytest.mark.usefixtures("_stop_all")

# With seed 11 and 30 symbols the simulator's 24 h quote volumes are stable over a test:
# THETAUSDT ~3.3 M and NEOUSDT ~2.5 M (between exit 2 M and enter 4 M), KNCUSDT ~1.4 M.
BAND_MEMBER = "THETAUSDT"
BAND_OUTSIDER = "NEOUSDT"
LOW_MEMBER = "KNCUSDT"


class PollerProbe(SupervisedActor):
    """Stands in for the OI poller: remembers every universe (liquid, TRADING) it is told."""

    def __init__(self, *, context=None) -> None:
        super().__init__(context=context)
        self.seen: list[LiquidUniverse] = []
        self.trading: list[TradingUniverse] = []

    def on_receive(self, message: Any) -> Any:
        match message:
            case LiquidUniverse():
                self.seen.append(message)
            case TradingUniverse():
                self.trading.append(message)
            case "seen":
                return list(self.seen)
            case "trading-seen":
                return list(self.trading)
            case _:
                return super().on_receive(message)
        return None


PROBE = ChildSpec(name="oi-poller", actor_class=PollerProbe)


@pytest.fixture
def sim(fixtures_dir):
    from simulator import Simulator, SimulatorConfig

    simulator = Simulator(SimulatorConfig(symbols=30, seed=11, ticker_period=0.5)).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def backend():
    from simulator import BackendDouble

    double = BackendDouble(api_key="ingest-key").start()
    yield double
    double.stop()


def fresh(tree) -> bool:
    """The universe actor evaluated real tickers (not a held set) at least once."""
    counters = tree.counters("universe")
    return counters.get("universe_held") == 0 and counters.get("universe_members", 0) > 0


def seed_state(state_dir, members: list[tuple[str, int]]) -> None:
    with StateStore(state_dir) as store:
        store.kv_put("universe", "tracker", {"members": members, "seen": []}, 0)


def test_the_universe_forms_from_real_tickers_with_the_hysteresis_and_survives_a_restart(
    sim, backend, tmp_path
):
    entered_ms = sim.clock.time_ms() - 3_600_000
    seed_state(tmp_path, [(BAND_MEMBER, entered_ms), (LOW_MEMBER, entered_ms)])
    tree = build_oi_tree(
        sim,
        backend,
        tmp_path,
        with_poller=False,
        extra=(PROBE,),
        universe={"post_to_backend": True},
    )
    try:
        assert wait_until(lambda: fresh(tree))
        universe = tree.ask("universe", "universe")
        by_symbol = {m.symbol: m for m in universe.members}
        assert BAND_MEMBER in by_symbol  # a member stays while >= exit (2 M)
        assert by_symbol[BAND_MEMBER].entered_ms == entered_ms  # and keeps its entry time
        assert 2e6 <= by_symbol[BAND_MEMBER].quote_volume_24h < 4e6
        assert LOW_MEMBER not in by_symbol  # leaves below exit
        assert BAND_OUTSIDER not in by_symbol  # does not enter below enter (4 M)
        assert "BTCUSDT" in by_symbol and "ETHUSDT" in by_symbol
        assert "USDCUSDT" not in by_symbol
        for symbol, member in by_symbol.items():
            if symbol != BAND_MEMBER:
                assert member.quote_volume_24h >= 4e6, member
        trading = tree.ask("universe", "trading")
        assert set(by_symbol) <= trading

        # told to the poller, and posted to the backend (never empty, enteredAt kept)
        told = tree.ask("oi-poller", "seen")
        assert all(u.members for u in told)
        # with the TRADING list for the five-minute snapshot (excluded symbols left out), one
        # message object per list, told at every evaluation
        lists = tree.ask("oi-poller", "trading-seen")
        assert len(lists) >= len(told)
        assert lists[-1].symbols == tuple(sorted(trading - {"USDCUSDT"}))
        assert len({id(m) for m in lists}) == 1
        assert wait_until(lambda: backend.received(UNIVERSE_UPDATE), timeout=10)
        body = backend.received(UNIVERSE_UPDATE)[0].body
        posted = {row["symbol"]: row for row in body["symbols"]}
        assert set(posted) == set(by_symbol)
        assert "enteredAt" in posted[BAND_MEMBER]
        assert None not in [v for row in body["symbols"] for v in row.values()]

        # a restart keeps the hysteresis: the band member is still a member with its entry time
        tree.restart("universe")
        before = tree.counters("universe").get("universe_evaluations_total", 0)
        assert wait_until(
            lambda: (
                tree.counters("universe").get("universe_evaluations_total", 0) > before
                and fresh(tree)
            )
        )
        again = {m.symbol: m for m in tree.ask("universe", "universe").members}
        assert again[BAND_MEMBER].entered_ms == entered_ms
        assert BAND_OUTSIDER not in again
    finally:
        tree.stop()


def test_no_tickers_means_no_universe_is_sent_to_anybody(sim, backend, tmp_path):
    tree = build_oi_tree(
        sim,
        backend,
        tmp_path,
        with_poller=False,
        with_feed=False,
        extra=(PROBE,),
        universe={"post_to_backend": True},
    )
    try:
        assert wait_until(lambda: tree.ask("universe", "trading"))
        assert wait_until(
            lambda: tree.counters("universe").get("universe_evaluations_total", 0) >= 4
        )
        assert tree.counters("universe")["universe_held"] == 1
        assert tree.ask("oi-poller", "seen") == []
        assert backend.received(UNIVERSE_UPDATE) == []
        # the TRADING list needs no tickers: the snapshot covers every listed symbol anyway
        lists = tree.ask("oi-poller", "trading-seen")
        assert lists
        assert lists[-1].symbols == tuple(sorted(tree.ask("universe", "trading")))
    finally:
        tree.stop()
