"""Long-lived helper processes driven over a pipe: the simulator, the daemon, the baseline.

Each runs in its own process (``spawn``), so the exchange double, the daemon under test and the
load generators never share a GIL, and the daemon's RSS is its own. A host is an object built in
the child from ``"module:Class"`` and keyword arguments; the parent calls its methods by name::

    sim = Host("bench._sim:SimHost", log_path=..., symbols=650, mark_period_s=0.25)
    sim.call("drop")
    sim.close()

Every wait is bounded: a call has a timeout, a child whose parent died exits within a second, and
no child lives longer than :data:`MAX_LIFETIME_S`.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing as mp
import os
import time
import traceback
from pathlib import Path
from typing import Any

from loguru import logger

from bench._cpu import pin
from supervisors.logs import setup_logging

__all__ = ["MAX_LIFETIME_S", "Host", "HostError", "spawn_context"]

MAX_LIFETIME_S = 900.0
"""A helper process ends by itself after this long, whatever happens to the parent."""


def spawn_context() -> Any:
    """The multiprocessing context of every helper process (``spawn``: no inherited threads)."""
    return mp.get_context("spawn")


class HostError(RuntimeError):
    """A helper process failed to start, to answer, or raised in a call."""


def _setup_child_logging(log_path: str | None) -> None:
    if log_path is None:
        logger.remove()
        return
    stream = Path(log_path).open("a", encoding="utf-8", buffering=1)  # noqa: SIM115 - process-long
    setup_logging(level="WARNING", stream=stream)


def _serve(  # noqa: PLR0917 - multiprocessing passes the arguments positionally
    conn: Any,
    target: str,
    kwargs: dict[str, Any],
    log_path: str | None,
    cpus: tuple[int, ...] | None = None,
    nice: int = 0,
) -> None:
    """The child's main loop: build the host, then answer calls until told to stop."""
    pin(cpus, nice)  # before any thread of the host exists: they all follow
    _setup_child_logging(log_path)
    module_name, _, class_name = target.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), class_name)(**kwargs)
        info = obj.info() if hasattr(obj, "info") else None
    except Exception:
        conn.send(("err", traceback.format_exc()))
        return
    conn.send(("ready", info))
    parent = os.getppid()
    deadline = time.monotonic() + MAX_LIFETIME_S
    try:
        while time.monotonic() < deadline:
            if not conn.poll(1.0):
                if os.getppid() != parent:
                    break
                continue
            try:
                method, args, kw = conn.recv()
            except EOFError:
                break
            if method == "__stop__":
                break
            try:
                result = getattr(obj, method)(*args, **kw)
            except Exception:
                conn.send(("err", traceback.format_exc()))
            else:
                conn.send(("ok", result))
    finally:
        error = None
        try:
            obj.close()
        except Exception:
            error = traceback.format_exc()
        with contextlib.suppress(Exception):
            conn.send(("closed", error))


class Host:
    """The parent's handle on one helper process.

    Args:
        target: ``"module:Class"`` built in the child with ``kwargs``.
        log_path: where the child's WARNING+ log lines go (``None``: nowhere).
        start_timeout_s: how long the child may take to build its object.
        cpus: the CPUs the child runs on (``None``: any; see :mod:`bench._cpu`).
        nice: how much lower the child's CPU priority is (``0``: unchanged).
    """

    def __init__(
        self,
        target: str,
        *,
        log_path: str | None = None,
        start_timeout_s: float = 60.0,
        cpus: tuple[int, ...] | None = None,
        nice: int = 0,
        **kwargs: Any,
    ) -> None:
        self.target = target
        self.cpus = cpus
        ctx = spawn_context()
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve,
            args=(child, target, kwargs, log_path, cpus, nice),
            name=f"bench-{target.rsplit(':', 1)[-1]}",
            daemon=True,
        )
        self._proc.start()
        child.close()
        self.pid = self._proc.pid
        try:
            status, info = self._recv(start_timeout_s, "start")
        except HostError:
            self._kill()
            raise
        if status != "ready":
            self._kill()
            raise HostError(f"{target} failed to start:\n{info}")
        self.info: Any = info

    def _recv(self, timeout: float, what: str) -> tuple[str, Any]:
        try:
            if not self._conn.poll(timeout):
                raise HostError(f"{self.target}: no answer to {what} within {timeout:g} s")
            status, payload = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise HostError(f"{self.target} (pid {self.pid}) died during {what}: {exc!r}") from None
        return status, payload

    def call(self, method: str, *args: Any, timeout: float = 60.0, **kwargs: Any) -> Any:
        """Call ``method`` on the child's object and return its result."""
        try:
            self._conn.send((method, args, kwargs))
        except (OSError, ValueError) as exc:
            raise HostError(f"{self.target} (pid {self.pid}) is gone: {exc!r}") from None
        status, result = self._recv(timeout, method)
        if status == "err":
            raise HostError(f"{self.target}.{method} failed in pid {self.pid}:\n{result}")
        return result

    @property
    def alive(self) -> bool:
        """Whether the child process is running."""
        return bool(self._proc.is_alive())

    def close(self, timeout: float = 40.0) -> str | None:
        """Stop the child (its object's ``close()`` runs there); returns its error, if any."""
        error: str | None = None
        if self._proc.is_alive():
            try:
                self._conn.send(("__stop__", (), {}))
                status, payload = self._recv(timeout, "close")
                if status == "closed":
                    error = payload
            except (HostError, OSError, ValueError) as exc:
                error = f"{self.target} did not close cleanly: {exc}"
        self._proc.join(10.0)
        if self._proc.is_alive():
            error = (error or "") + f" {self.target} (pid {self.pid}) had to be terminated"
        self._kill()
        with contextlib.suppress(OSError):
            self._conn.close()
        return error

    def _kill(self) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5.0)
