"""Shows :mod:`features.progress` records to a person: bars on a terminal, lines elsewhere.

A step without units (``ingest + validate``, ``features``, ``register``, ``gate``) prints one
line when it is done. A counted step (``tune lstm``, 3 of 8 trials) is a bar on a terminal and a
line per unit in a log file, so a CI log still shows how far a run got.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from features.progress import PROGRESS_LOGGER
from features.progress import Progress as Event


class _ProgressHandler(logging.Handler):
    def __init__(self, console: Console) -> None:
        super().__init__(logging.INFO)
        self.console = console
        self.started = time.monotonic()
        self.bars: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        if console.is_terminal:
            self.bars = Progress(
                TextColumn("{task.fields[step]:<18}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=console,
            )
            self.bars.start()

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "progress", None)
        if not isinstance(event, Event):
            return
        if self.bars is not None and event.total:
            self._bar(self.bars, event)
            return
        counted = f" {event.done}/{event.total}" if event.total else ""
        line = f"[{time.monotonic() - self.started:5.0f} s] {event.step + counted:<22} {event.detail}"
        (self.bars.console if self.bars is not None else self.console).print(line, highlight=False)

    def _bar(self, bars: Progress, event: Event) -> None:
        task = self.tasks.get(event.step)
        if task is None:
            task = bars.add_task("", total=event.total, step=event.step, detail="")
            self.tasks[event.step] = task
        bars.update(task, completed=event.done, total=event.total, detail=event.detail)

    def close(self) -> None:
        if self.bars is not None:
            self.bars.stop()
        super().close()


@contextmanager
def show_progress(console: Console) -> Iterator[None]:
    """Render progress records on ``console`` while the block runs."""
    logger = logging.getLogger(PROGRESS_LOGGER)
    handler = _ProgressHandler(console)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # shown here, not again by a console handler above
    try:
        yield
    finally:
        logger.propagate = True
        logger.removeHandler(handler)
        handler.close()
