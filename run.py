"""The daemon's entry point: ``python run.py`` (or the ``volspike-actors`` command).

Exit codes:

- ``0``: stopped cleanly (Ctrl-C, SIGTERM);
- ``1``: failed at start, or the root supervisor gave up (restart intensity exceeded);
- ``2``: bad command line or configuration (one line on standard error names the setting).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TYPE_CHECKING

import pykka.debug
from loguru import logger

from actors._store import DB_NAME
from messages.errors import ConfigError
from supervisors.app import Boards, build_tree
from supervisors.config import Config, load_config, render_config, strip_userinfo
from supervisors.logs import setup_logging
from supervisors.root import start_tree
from supervisors.runtime import tune_gc

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="run.py",
        description=(
            "volspike-actors: a supervised, WebSocket-first market-data daemon for Binance "
            "USD-M perpetuals. Settings come from environment variables, an optional TOML "
            "file and these flags (flags win)."
        ),
        epilog="Exit codes: 0 clean stop, 1 start failure or supervisor gave up, 2 bad config.",
    )
    parser.add_argument("--config", metavar="FILE", help="a TOML file of settings")
    parser.add_argument(
        "--set",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="override one setting (repeatable), e.g. --set funding_api_port=9000",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective configuration (secrets redacted) and exit",
    )
    parser.add_argument("--log-json", action="store_true", help="log JSON lines")
    parser.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument("--state-dir", metavar="DIR", help="where the SQLite state lives")
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="run against the built-in local Binance simulator (no internet needed) with a "
        "scripted volume spike after --simulate-delay seconds",
    )
    parser.add_argument(
        "--simulate-delay",
        metavar="SECONDS",
        type=float,
        default=20.0,
        help="when the simulated spike starts (default 20)",
    )
    return parser.parse_args(argv)


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--set {item}", "expected NAME=VALUE")
        overrides[name.strip()] = value
    if args.log_json:
        overrides["log_json"] = "true"
    if args.log_level:
        overrides["log_level"] = args.log_level
    if args.state_dir:
        overrides["state_dir"] = args.state_dir
    return overrides


class _SignalStop(threading.Event):
    """Set by SIGTERM / SIGINT; remembers which one, for the main loop to log."""

    signal_name: str | None = None


def _install_signal_handlers(stop: _SignalStop) -> None:
    """SIGTERM/SIGINT ask for a clean stop; SIGUSR1 dumps every thread's stack.

    The handlers never log: a handler runs in the main thread between two bytecodes, possibly
    while the main thread is inside a log call that holds loguru's (non re-entrant) lock, and
    the line would be lost with a "Logging error" on standard error. The stop is logged by the
    main loop; the stack dump runs in a thread of its own, which waits for the lock.
    """

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.signal_name = signal.Signals(signum).name
        stop.set()

    def dump_stacks(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(
            target=pykka.debug.log_thread_tracebacks, name="stack-dump", daemon=True
        ).start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGUSR1, dump_stacks)


def _banner(config: Config, *, simulated: bool = False) -> None:
    """Say what runs: the mode, the exchange endpoints, the HTTP API and every sink.

    Secrets never appear: the API keys and the Telegram token are not printed at all, and a
    password embedded in a URL (``http://user:pass@host/``) is stripped with the userinfo.
    """
    if simulated:
        mode = "simulation (the built-in local exchange, no internet needed)"
    elif (config.binance_rest_url, config.binance_ws_url) == _LIVE_BINANCE:
        mode = "live Binance"
    else:
        mode = "live, custom exchange endpoints"
    sinks = []
    if config.has_prod_backend:
        sinks.append(f"backend PROD {_show_url(config.volspike_api_url)}")
    if config.has_dev_backend:
        sinks.append(f"backend DEV {_show_url(config.volspike_api_url_dev)}")
    if config.has_telegram:
        sinks.append(f"telegram chat {config.chat_id} via {_show_url(config.telegram_api_url)}")
    local = f"local SQLite {config.state_dir / DB_NAME}"  # always on (build_tree)
    sinks.append(local if config.has_prod_backend else f"{local} (no backend configured)")
    logger.info("volspike-actors starting; mode: {}", mode)
    logger.info(
        "exchange: REST {} | WebSocket {}",
        _show_url(config.binance_rest_url),
        _show_url(config.binance_ws_url),
    )
    if config.funding_api_port:
        logger.info("HTTP API: http://{}:{}", config.funding_api_host, config.funding_api_port)
    else:  # the API actor logs "serving on …" with the port it bound
        logger.info("HTTP API: http://{}, on any free port", config.funding_api_host)
    logger.info("sinks: {}", "; ".join(sinks))


_LIVE_BINANCE = (Config().binance_rest_url, Config().binance_ws_url)
"""The exchange endpoints of "live Binance" mode (the built-in defaults)."""


def _show_url(url: str | None) -> str:
    return "(unset)" if url is None else strip_userinfo(url)


class _Simulation:
    """``--simulate``: the local simulator, a scripted volume spike and OI jump on timers.

    The "5 min" OI window is compressed to 40 s in simulation mode only, so an OI alert shows
    within about a minute instead of after five minutes of history.
    """

    SPIKE_SYMBOL = "ETHUSDT"
    OI_SYMBOL = "BTCUSDT"

    def __init__(self, delay_s: float) -> None:
        from simulator import Simulator, SimulatorConfig  # noqa: PLC0415 - the sim extra

        self._sim = Simulator(SimulatorConfig(symbols=60, kline_period=0.25, seed=7)).start()
        self._timers = [
            threading.Timer(delay_s, self._spike),
            threading.Timer(delay_s + 10.0, self._oi_jump),
        ]
        for timer in self._timers:
            timer.daemon = True
        self.delay_s = delay_s

    def configure(self, config: Config) -> Config:
        return config.replace(
            binance_ws_url=self._sim.ws_url + "/market",
            binance_rest_url=self._sim.rest_url,
            oi_lookback_window_5min=40.0,
            oi_alert_cooldown_5min=120.0,
        )

    def start(self) -> None:
        logger.info(
            "SIMULATION: local exchange at {} / {}; a volume spike on {} in {:g} s, then an OI "
            "jump (the 5 min OI window is compressed to 40 s)",
            self._sim.ws_url,
            self._sim.rest_url,
            self.SPIKE_SYMBOL,
            self.delay_s,
        )
        for timer in self._timers:
            timer.start()

    def _spike(self) -> None:
        spike = self._sim.scenarios.volume_spike(
            self.SPIKE_SYMBOL, ratio=6.0, by_minute=0.01, min_quote_volume=5e6
        )
        logger.info(
            "SIMULATION: {} volume spike scripted ({:.0f} USDT in the hour, {:g}x the previous)",
            spike.symbol,
            spike.target_quote_volume,
            spike.ratio,
        )

    def _oi_jump(self) -> None:
        self._sim.scenarios.oi_jump(self.OI_SYMBOL, pct=0.08, over_minutes=0.25)
        logger.info("SIMULATION: {} open interest +8 % over 15 s scripted", self.OI_SYMBOL)

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._sim.stop()


def run(config: Config, stop: threading.Event, simulation: _Simulation | None = None) -> int:
    """Run the supervision tree until ``stop`` is set or the tree ends; returns the exit code."""
    _banner(config, simulated=simulation is not None)
    if simulation is not None:
        simulation.start()
    boards = Boards()
    handle = start_tree(
        build_tree(config, boards), server_time=boards.server_time, wait_started_s=30.0
    )
    try:
        if handle.started:
            logger.info("running; Ctrl-C or SIGTERM stops")
        while True:
            code = handle.wait(timeout=0.5)
            if code is not None:
                logger.error("the supervision tree ended by itself (exit code {})", code)
                return code
            if stop.is_set():
                received = getattr(stop, "signal_name", None)
                logger.info("received {}, stopping", received or "a stop request")
                code = handle.shutdown("stop requested", exit_code=EXIT_OK, timeout=60.0)
                if code is None:
                    logger.error("the tree did not stop within 60 s; exiting anyway")
                    return EXIT_FAILED
                logger.info("stopped cleanly")
                return code
    finally:
        _stop_remaining()


def _stop_remaining() -> None:
    """Mopidy's last resort: stop whatever actor is still alive, and say so loudly."""
    left = pykka.ActorRegistry.get_all()
    if left:
        logger.error("{} actor(s) still running after shutdown (a bug): {}", len(left), left)
        pykka.ActorRegistry.stop_all(block=True, timeout=5)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load the configuration, run; returns the process exit code."""
    args = _parse_args(argv)
    try:
        config = load_config(
            toml_path=args.config,
            overrides=_overrides(args),
            warn=lambda text: print(f"volspike-actors: warning: {text}", file=sys.stderr),
        )
    except ConfigError as exc:
        print(f"volspike-actors: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.print_config:
        print(render_config(config))
        return EXIT_OK
    setup_logging(level=config.log_level, json=config.log_json, secrets=config.secrets)
    tune_gc(config.gc_young_threshold)
    stop = _SignalStop()
    _install_signal_handlers(stop)
    simulation = None
    try:
        if args.simulate:
            simulation = _Simulation(args.simulate_delay)
            config = simulation.configure(config)
        return run(config, stop, simulation)
    except Exception:
        logger.exception("failed")
        return EXIT_FAILED
    finally:
        if simulation is not None:
            simulation.stop()


if __name__ == "__main__":
    sys.exit(main())
