"""Process-wide runtime settings the daemon applies to itself (``run.py``), not the actors.

Python's cyclic garbage collector runs a young-generation pass every 700 net allocations of
container objects, in whichever thread happens to allocate the 700th. Applying one
650-symbol mark-price frame allocates more than that (the decoded entries and the new board
records), so nearly every frame paid for a young pass in the feed's thread — about 0.5 ms of
the ~2 ms between the frame's arrival and the value being readable, measured in the daemon
under the full simulated load — and every tenth for a middle one, and the HTTP thread paid
the same tax every few hundred requests. Almost everything the daemon allocates is freed by
reference counting anyway (the young passes find nothing), so passing less often costs a
little memory for short-lived cycles and gives the time back to the hot paths.

An application that embeds the actors owns its process: it calls :func:`tune_gc` itself if
it wants the same trade-off.
"""

from __future__ import annotations

import gc

from loguru import logger

__all__ = ["tune_gc"]


def tune_gc(young_threshold: int) -> tuple[int, int, int] | None:
    """Set the collector's young-generation threshold; returns the thresholds it replaced.

    ``0`` leaves the collector alone (returns ``None``). The older generations keep their
    own thresholds (a middle pass every 10 young ones, a full one every 10 middle ones).
    """
    if young_threshold < 0:
        raise ValueError(f"young_threshold must be >= 0, not {young_threshold}")
    if young_threshold == 0:
        logger.debug("garbage collector left at Python's settings {}", gc.get_threshold())
        return None
    before = gc.get_threshold()
    gc.set_threshold(young_threshold, *before[1:])
    logger.info(
        "garbage collector: a young pass every {} allocations (was {})",
        young_threshold,
        before[0],
    )
    return before
