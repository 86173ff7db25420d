"""Run the simulator standalone: ``python -m simulator --symbols 650 --speed 60``.

Prints the URLs, then serves until Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from loguru import logger

from simulator.backend import BackendDouble
from simulator.config import DEFAULT_FIXTURES_DIR, FIXTURES_ENV_VAR, SimulatorConfig
from simulator.simulator import Simulator
from simulator.telegram import TelegramDouble


def _time_ms(text: str) -> int:
    if text.isdigit():
        return int(text)
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m simulator",
        description="A local Binance USD-M exchange (WebSocket + REST) with optional "
        "VolSpike backend and Telegram doubles.",
    )
    p.add_argument(
        "--symbols", type=int, default=None, help="universe size (default: the 543 real ones)"
    )
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    p.add_argument(
        "--mode",
        choices=("live", "replay"),
        default="live",
        help="live: real history from seeded phases; replay: the real week hour by hour",
    )
    p.add_argument(
        "--start", type=_time_ms, default=None, help="simulated start (epoch ms or ISO time)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port-ws", type=int, default=0, help="WebSocket port (0: random)")
    p.add_argument("--port-rest", type=int, default=0, help="REST port (0: random)")
    p.add_argument(
        "--fixtures",
        type=Path,
        default=None,
        help=f"fixtures root (default: ${FIXTURES_ENV_VAR} or {DEFAULT_FIXTURES_DIR})",
    )
    p.add_argument(
        "--scenario", type=Path, action="append", default=[], help="JSON scenario file (repeatable)"
    )
    p.add_argument(
        "--kline-period", type=float, default=0.25, help="real seconds between kline updates"
    )
    p.add_argument("--weight-limit", type=int, default=2400, help="REQUEST_WEIGHT per minute")
    p.add_argument(
        "--lifetime", type=float, default=86_400.0, help="WebSocket connection lifetime (s)"
    )
    p.add_argument("--backend", action="store_true", help="also run the VolSpike backend double")
    p.add_argument("--backend-port", type=int, default=0)
    p.add_argument("--api-key", default="test-ingest-key", help="backend ingest key (X-API-Key)")
    p.add_argument("--telegram", action="store_true", help="also run the Telegram double")
    p.add_argument("--telegram-port", type=int, default=0)
    p.add_argument("--token", default="123456:TEST-token", help="Telegram bot token")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level=args.log_level.upper())
    config = SimulatorConfig(
        host=args.host,
        ws_port=args.port_ws,
        rest_port=args.port_rest,
        fixtures_dir=args.fixtures,
        symbols=args.symbols,
        seed=args.seed,
        mode=args.mode,
        speed=args.speed,
        start_ms=args.start,
        kline_period=args.kline_period,
        weight_limit=args.weight_limit,
        connection_lifetime=args.lifetime,
    )
    services: list[Any] = []
    stop = threading.Event()
    # Both signals set the event explicitly: a process started in the background by a
    # non-interactive shell inherits SIGINT as *ignored*, and then Python never raises
    # KeyboardInterrupt, so Ctrl-C (or a supervisor's SIGINT) would be lost.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        sim = Simulator(config).start()
        services.append(sim)
        for path in args.scenario:
            sim.scenarios.load_file(path)
        print(
            f"Binance WS    {sim.ws_url}  (try {sim.ws_url}/market/stream?streams=!markPrice@arr)"
        )
        print(f"Binance REST  {sim.rest_url}  (try {sim.rest_url}/fapi/v1/exchangeInfo)")
        count, source = len(sim.market.listed()), sim.history.source
        print(f"symbols       {count} ({source}), mode {args.mode}, speed {args.speed}")
        if args.backend:
            backend = BackendDouble(args.api_key, host=args.host, port=args.backend_port).start()
            services.append(backend)
            print(f"backend       {backend.url}  (X-API-Key from --api-key)")
        if args.telegram:
            telegram = TelegramDouble(args.token, host=args.host, port=args.telegram_port).start()
            services.append(telegram)
            print(f"telegram      {telegram.url}/bot<token>/sendMessage")
        print("Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for service in reversed(services):
            service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
