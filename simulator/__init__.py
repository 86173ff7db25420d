"""A protocol-faithful local Binance USD-M exchange, plus VolSpike backend and Telegram doubles.

Public API::

    from simulator import BackendDouble, Simulator, SimulatorConfig, TelegramDouble

    sim = Simulator(SimulatorConfig(symbols=650, speed=60)).start()
    sim.ws_url        # ws://127.0.0.1:PORT  (+ "/market/stream?streams=!markPrice@arr")
    sim.rest_url      # http://127.0.0.1:PORT (+ "/fapi/v1/exchangeInfo")
    sim.scenarios.volume_spike("BTCUSDT", ratio=4.0, by_minute=10)
    sim.faults.drop_connections()
    sim.stop()

Pytest fixtures live in :mod:`simulator.testing`; ``python -m simulator --help`` runs it
standalone.
"""

from simulator.backend import BackendDouble, Received
from simulator.clock import AcceleratedClock, SimClock
from simulator.config import DEFAULT_FIXTURES_DIR, SimulatorConfig, resolve_fixtures_dir
from simulator.faulthandle import FaultHandle
from simulator.faults import SimulatorFaults
from simulator.history import History, load_history
from simulator.market import Market
from simulator.rest_server import RequestRecord
from simulator.scenarios import Delisting, Listing, OiJump, Scenarios, VolumeSpike
from simulator.simulator import Simulator
from simulator.telegram import SentMessage, TelegramDouble
from simulator.ws_server import ClosedConnection

__all__ = [
    "DEFAULT_FIXTURES_DIR",
    "AcceleratedClock",
    "BackendDouble",
    "ClosedConnection",
    "Delisting",
    "FaultHandle",
    "History",
    "Listing",
    "Market",
    "OiJump",
    "Received",
    "RequestRecord",
    "Scenarios",
    "SentMessage",
    "SimClock",
    "Simulator",
    "SimulatorConfig",
    "SimulatorFaults",
    "TelegramDouble",
    "VolumeSpike",
    "load_history",
    "resolve_fixtures_dir",
]
