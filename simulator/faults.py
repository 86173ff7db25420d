"""The simulator's fault-injection API (``sim.faults``), callable from tests on any thread.

WebSocket faults:

- :meth:`SimulatorFaults.drop_connections`: abort every TCP connection (or close with 1001);
- :meth:`SimulatorFaults.stall`: connections stay open, no frame (data or reply) is sent;
- :meth:`SimulatorFaults.stop_pings`: the server stops sending pings and/or stops answering
  the client's pings (no pong);
- :meth:`SimulatorFaults.send_malformed` (once) / :meth:`SimulatorFaults.malformed_frames`
  (every data frame while active): truncated JSON, non-JSON text, binary, empty frames, and
  protocol-level breakage (a truncated WebSocket frame, invalid UTF-8 in a text frame);
- :meth:`SimulatorFaults.refuse_handshakes`: HTTP 429 (or 418) instead of the upgrade;
- :meth:`SimulatorFaults.slow_handshakes`: delay the upgrade.

REST faults (``rest_errors``, ``rest_slow``, ``rest_resets``, ``rest_timeouts``) and
:meth:`SimulatorFaults.jump_clock` complete the set. Every method that starts a lasting fault
returns a :class:`~simulator.faulthandle.FaultHandle` (a context manager, or ``.end()``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from loguru import logger

from simulator.faulthandle import FaultHandle

if TYPE_CHECKING:
    from simulator.clock import SimClock
    from simulator.rest_server import BinanceRest
    from simulator.ws_faults import WsFaultState
    from simulator.ws_server import WsServer

__all__ = ["MalformedKind", "SimulatorFaults"]

MalformedKind = Literal[
    "truncated_json", "invalid_json", "binary", "empty", "truncated_frame", "invalid_utf8"
]
_IN_BAND = ("truncated_json", "invalid_json", "binary", "empty")


class SimulatorFaults:
    """Fault injection for one :class:`~simulator.simulator.Simulator`."""

    def __init__(
        self, ws: WsServer, state: WsFaultState, rest: BinanceRest, clock: SimClock
    ) -> None:
        self._ws = ws
        self._state = state
        self._rest = rest
        self._clock = clock
        self._handles: list[FaultHandle] = []

    def _track(self, handle: FaultHandle) -> FaultHandle:
        self._handles = [h for h in self._handles if h.active]
        self._handles.append(handle)
        logger.info("simulator fault on: {}", handle.name)
        return handle

    # -- WebSocket ----------------------------------------------------------------------

    def drop_connections(self, *, graceful: bool = False) -> int:
        """Drop every WebSocket connection now.

        Args:
            graceful: send a 1001 close frame instead of aborting the TCP connection.

        Returns:
            How many connections were dropped.
        """
        count = self._ws.drop_all(graceful=graceful)
        logger.info("simulator fault: dropped {} connection(s)", count)
        return count

    def stall(self, *, seconds: float | None = None) -> FaultHandle:
        """Keep connections open but send nothing (pings continue unless stopped too)."""
        self._state.stall = FaultHandle("ws: stall", seconds=seconds)
        return self._track(self._state.stall)

    def stop_pings(
        self, *, send: bool = True, answer: bool = True, seconds: float | None = None
    ) -> FaultHandle:
        """Stop sending server pings (``send``) and/or answering client pings (``answer``)."""
        handle = FaultHandle(f"ws: no pings (send={send}, answer={answer})", seconds=seconds)
        if send:
            self._state.no_server_pings = handle
        if answer:
            self._state.no_pong_replies = handle
        return self._track(handle)

    def send_malformed(self, kind: MalformedKind = "truncated_json") -> int:
        """Send one broken frame to every connection now.

        ``truncated_frame`` writes half a WebSocket frame and closes the TCP connection;
        ``invalid_utf8`` sends a text frame that is not UTF-8 (clients must fail with 1007).

        Returns:
            How many connections received it.
        """
        return self._ws.send_raw(kind)

    def malformed_frames(
        self,
        kind: Literal["truncated_json", "invalid_json", "binary", "empty"] = "truncated_json",
        *,
        count: int | None = None,
        seconds: float | None = None,
    ) -> FaultHandle:
        """Replace outgoing data frames by broken ones (``count`` frames, or for a period)."""
        if kind not in _IN_BAND:
            raise ValueError(f"malformed_frames supports {_IN_BAND}, not {kind!r}")
        self._state.malformed_kind = kind
        self._state.malformed = FaultHandle(f"ws: malformed {kind}", count=count, seconds=seconds)
        return self._track(self._state.malformed)

    def refuse_handshakes(
        self, status: int = 429, *, count: int | None = None, seconds: float | None = None
    ) -> FaultHandle:
        """Answer WebSocket upgrades with HTTP ``status`` (429 or 418) and a Retry-After.

        A 418 says ``IP(<ip>) banned until <ms>`` (simulator clock): a 2-minute ban
        (``ban_base_seconds``) from the first refusal, with Retry-After counting down to its end.
        """
        self._state.refuse_status = status
        self._state.ban_until_ms = None
        self._state.refuse = FaultHandle(f"ws: refuse {status}", count=count, seconds=seconds)
        return self._track(self._state.refuse)

    def slow_handshakes(
        self, delay: float, *, count: int | None = None, seconds: float | None = None
    ) -> FaultHandle:
        """Delay WebSocket upgrades by ``delay`` real seconds."""
        self._state.handshake_delay = delay
        self._state.slow_handshake = FaultHandle(
            f"ws: slow handshake {delay}s", count=count, seconds=seconds
        )
        return self._track(self._state.slow_handshake)

    # -- REST ---------------------------------------------------------------------------

    def rest_errors(
        self,
        status: int = 503,
        *,
        count: int | None = None,
        seconds: float | None = None,
        path: str | None = None,
    ) -> FaultHandle:
        """Answer REST requests (to ``path`` prefix, if given) with ``status`` (Binance bodies)."""
        return self._track(
            self._rest.faults.errors(status, count=count, seconds=seconds, path=path)
        )

    def rest_slow(
        self,
        delay: float,
        *,
        count: int | None = None,
        seconds: float | None = None,
        path: str | None = None,
    ) -> FaultHandle:
        """Delay REST answers by ``delay`` real seconds."""
        return self._track(self._rest.faults.slow(delay, count=count, seconds=seconds, path=path))

    def rest_resets(
        self, *, count: int | None = None, seconds: float | None = None, path: str | None = None
    ) -> FaultHandle:
        """Reset REST connections (TCP RST) instead of answering."""
        return self._track(self._rest.faults.resets(count=count, seconds=seconds, path=path))

    def rest_timeouts(
        self,
        *,
        count: int | None = None,
        seconds: float | None = None,
        path: str | None = None,
        hold: float | None = None,
    ) -> FaultHandle:
        """Never answer REST requests; drop each after ``hold`` real seconds."""
        handle = self._rest.faults.timeouts(count=count, seconds=seconds, path=path, hold=hold)
        return self._track(handle)

    # -- clock --------------------------------------------------------------------------

    def jump_clock(self, seconds: float) -> None:
        """Step the simulator's wall clock by ``seconds`` (``serverTime``, ``E``, candles...)."""
        self._clock.jump(seconds)
        logger.info("simulator fault: clock jumped by {} s", seconds)

    def clear(self) -> None:
        """End every fault started through this object."""
        for handle in self._handles:
            handle.end()
        self._handles = []
        self._rest.faults.clear()
