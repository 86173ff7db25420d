from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from simulator import Simulator, SimulatorConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "embed_market_data.py"

pytestmark = pytest.mark.usefixtures("_stop_all")


def test_the_embedding_example_runs_against_the_simulator(fixtures_dir, tmp_path):
    spec = importlib.util.spec_from_file_location("embed_market_data", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = SimulatorConfig(symbols=25, mark_price_fast_period=0.1, kline_period=0.1, seed=3)
    with Simulator(config) as sim:

        def spike():
            sim.scenarios.volume_spike("ETHUSDT", ratio=8.0, by_minute=0.01, min_quote_volume=5e6)
            return "ETHUSDT"

        result = module.main(
            sim.ws_url + "/market",
            sim.rest_url,
            str(tmp_path),
            timeout=15,
            on_started=spike,
        )
    assert result["symbols"] == 25
    assert result["btc_mark_price"] > 0
    assert result["frames_seen_by_watcher"] >= 1
    symbol, rate = result["lowest_funding"]
    assert isinstance(symbol, str)
    assert rate < 1
    assert result["http_port"] > 0
    assert ("ETHUSDT", "SPIKE") in result["alerts_seen_by_my_sink"]
