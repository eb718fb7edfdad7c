"""Named crash points for the kill -9 tests: ``MMOPS_CRASH_AT=<point>@<tick>`` kills this
process with SIGKILL when the loop reaches that point of that tick (no cleanup, no flush), so a
test can crash exactly between journaling and sending, or between a fill and its journal write.
Unset (always, outside those tests), a crash point costs one comparison.
"""

from __future__ import annotations

import functools
import os
import signal

POINTS = ("after_advance", "after_fills", "after_journal", "mid_send")


def _target() -> tuple[str, int] | None:
    spec = os.environ.get("MMOPS_CRASH_AT", "")
    if "@" not in spec:
        return None
    point, _, tick = spec.partition("@")
    return (point, int(tick)) if point in POINTS and tick.isdigit() else None


@functools.cache
def target() -> tuple[str, int] | None:
    """The configured crash point, read once, on the first call (nothing happens at import)."""
    return _target()


def crash_point(point: str, tick: int) -> None:
    """Die here (SIGKILL) if this is the configured point and tick."""
    if (point, tick) == target():
        os.kill(os.getpid(), signal.SIGKILL)
