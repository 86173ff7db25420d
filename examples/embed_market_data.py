"""Embed volspike-actors in your own application.

Starts the whole tree with one extra actor of your own that receives every mark-price frame
and one sink of your own (a callback) that receives every alert the daemon delivers, reads
the cache in-process, and stops cleanly.

    python examples/embed_market_data.py            # against Binance
    python examples/embed_market_data.py ws://127.0.0.1:P/market http://127.0.0.1:Q  # simulator
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from actors._sinks import CallbackSink
from messages import MarkPrices, VolumeAlert
from supervisors.actor import SupervisedActor
from supervisors.app import Boards, build_tree
from supervisors.config import Config
from supervisors.root import start_tree
from supervisors.spec import ChildSpec


class FundingWatcher(SupervisedActor):
    """Your own actor: counts frames and remembers the most negative funding rate seen."""

    def __init__(self, *, context=None, seen: threading.Event) -> None:
        super().__init__(context=context)
        self.frames = 0
        self.lowest: tuple[str, float] | None = None
        self._seen = seen

    def on_receive(self, message: Any) -> Any:
        match message:
            case MarkPrices():
                self.frames += 1
                for symbol, rate in zip(message.symbols, message.funding_rates, strict=True):
                    if rate is not None and (self.lowest is None or rate < self.lowest[1]):
                        self.lowest = (symbol, rate)
                self._seen.set()
            case "report":
                return self.frames, self.lowest
            case _:
                return super().on_receive(message)
        return None


def main(
    ws_base_url: str | None = None,
    rest_base_url: str | None = None,
    state_dir: str = "state",
    timeout: float = 30.0,
    on_started: Any = None,
) -> dict[str, Any]:
    """Run the tree until the first frames arrive; return what was read.

    ``on_started`` (e.g. a test scripting a spike) is called once data flows; if it returns a
    symbol, wait until an alert for that symbol arrives (the live market may raise others).
    """
    config = Config().replace(funding_api_port=0, health_log_interval_s=0.0, state_dir=state_dir)
    alerts: list[VolumeAlert] = []
    alerted = threading.Event()
    expected: list[str] = []

    def on_message(message: Any) -> None:  # runs in the sink's own thread
        if isinstance(message, VolumeAlert):
            alerts.append(message)
            if message.symbol in expected:
                alerted.set()

    boards = Boards()  # keep a reference: the cache is readable in-process, lock-free
    seen = threading.Event()
    watcher = ChildSpec(name="funding-watcher", actor_class=FundingWatcher, kwargs={"seen": seen})
    handle = start_tree(
        build_tree(
            config,
            boards,
            ws_base_url=ws_base_url,
            rest_base_url=rest_base_url,
            extra_children=[watcher],
            extra_routes={"MarkPrices": ("funding-watcher",)},
            extra_sinks=[CallbackSink(name="my-app", callback=on_message)],
        )
    )
    try:
        if not (seen.wait(timeout) and boards.prices.wait_for_update(0, timeout)):
            raise TimeoutError(f"no market data within {timeout} s")
        if on_started is not None:
            symbol = on_started()
            if symbol is not None:
                expected.append(symbol)
                if any(a.symbol == symbol for a in alerts):  # it came before we looked
                    alerted.set()
                alerted.wait(timeout)
        frames, lowest = handle.registry.ask("funding-watcher", "report", timeout=5)
        btc = boards.prices.get("BTCUSDT")
        return {
            "symbols": len(boards.prices),
            "btc_mark_price": None if btc is None else btc.mark_price,
            "frames_seen_by_watcher": frames,
            "lowest_funding": lowest,
            "http_port": handle.registry.ask("http-api", "port", timeout=5),
            "alerts_seen_by_my_sink": [(a.symbol, a.alert_type) for a in alerts],
        }
    finally:
        handle.shutdown("example finished", timeout=30)


if __name__ == "__main__":
    print(main(*sys.argv[1:3]))
