"""Progress of long work as log records, so that any front end can show it.

Library code reports ``report("tune lstm", done=3, total=8, detail="best -21.3")``; the record goes
to the ``mmops.progress`` logger with a :class:`Progress` attached. ``make demo`` renders it as a
line or a bar, and a Prefect worker forwards it to the run's logs in the UI
(``PREFECT_LOGGING_EXTRA_LOGGERS=mmops``). Nothing is shown unless a handler is attached.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

PROGRESS_LOGGER = "mmops.progress"


@dataclass(frozen=True, slots=True)
class Progress:
    """One step's state: ``done`` of ``total`` units (``total`` None: a step without units)."""

    step: str
    done: int = 1
    total: int | None = None
    detail: str = ""


def report(step: str, *, done: int = 1, total: int | None = None, detail: str = "") -> None:
    """Log a progress record for ``step`` (INFO on ``mmops.progress``)."""
    event = Progress(step=step, done=done, total=total, detail=detail)
    counted = f" {done}/{total}" if total else ""
    logger = logging.getLogger(PROGRESS_LOGGER)
    if logger.level == logging.NOTSET:
        # Progress is INFO wherever it is handled (a Prefect worker's extra loggers get handlers but
        # keep the root's WARNING level); consoles decide by their own handler level.
        logger.setLevel(logging.INFO)
    logger.info("%s%s %s", step, counted, detail, extra={"progress": event})
