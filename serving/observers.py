"""The service's metrics observers: told what the service did, never able to change it.

The engine, the micro-batcher and the stream store each take an optional observer (the BentoML
service passes Prometheus counters and histograms). An observer that raises (a bad label, a full
disk under prometheus_client's multiprocess files) is logged and skipped: a request answers as
it would without metrics, and no answer already made is lost. A failing observer is logged with
its traceback at most once a minute (with how many failures came in between), not once per
request: at a hundred requests a second a broken counter would bury the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVarTuple

if TYPE_CHECKING:
    from serving.logic import LoadedModel

logger = logging.getLogger(__name__)
Ts = TypeVarTuple("Ts")
LOG_EVERY_S = 60.0
_lock = threading.Lock()
_failures: dict[str, tuple[float, int]] = {}  # what -> (when last logged, failures not logged since)

PredictionObserver = Callable[["LoadedModel", str, int], None]
"""(model, role, symbols): one model call of one request ("served" or "shadow")."""
BatchObserver = Callable[["LoadedModel", int, float], None]
"""(model, windows, seconds): one batched model call, with the model's own time."""
StreamObserver = Callable[[str], None]
"""One ``/predict_stream`` event: ``conflict_<kind>`` (a 409) or ``dropped_<reason>``."""


def notify(observer: Callable[[*Ts], None] | None, *args: *Ts, what: str) -> None:
    """Call ``observer(*args)`` if there is one; if it raises, log the failure with ``what``."""
    if observer is None:
        return
    try:
        observer(*args)
    except Exception:
        now = time.monotonic()
        with _lock:
            last, unlogged = _failures.get(what, (-LOG_EVERY_S, 0))
            due = now - last >= LOG_EVERY_S
            _failures[what] = (now, 0) if due else (last, unlogged + 1)
        if due:
            logger.exception(
                "metrics: the %s observer failed (and %d more times unlogged since the last report); "
                "requests go on without it",
                what,
                unlogged,
            )
