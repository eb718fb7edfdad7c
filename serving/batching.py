"""Adaptive micro-batching of model calls across concurrent requests.

While a model call runs, the requests that arrive queue up; the next call takes all of them (up
to ``max_windows``) as one batch. An idle service therefore answers a lone request at once (no
batch window to wait out), and under load the batch size grows with the arrival rate. Batches
are formed per model, after each request was validated on its own, so one bad request never
fails another's batch. Small batches run on the event loop (a thread hop would cost more than
the model); large ones in a worker thread, since onnxruntime releases the GIL.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from serving.logic import LoadedModel

BatchObserver = Callable[[LoadedModel, int, float], None]


@dataclass(slots=True)
class _Lane:
    queue: deque[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = field(default_factory=deque)
    busy: bool = False
    task: asyncio.Task[None] | None = None  # the drain task (kept referenced until done)


class MicroBatcher:
    """Per-model queues drained by one task each; see the module docstring.

    Args:
        max_windows: most windows per model call (a single larger request still runs whole).
        inline_max: batches up to this many windows run on the event loop.
        observe: called after each model call with (model, windows, seconds).
    """

    def __init__(self, *, max_windows: int, inline_max: int, observe: BatchObserver | None = None) -> None:
        self.max_windows = max_windows
        self.inline_max = inline_max
        self.observe = observe
        self._lanes: dict[int, _Lane] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmops-model")

    async def predict(self, model: LoadedModel, windows: np.ndarray) -> np.ndarray:
        """The model's outputs for ``windows`` (n,), computed in a batch with whatever else is queued."""
        loop = asyncio.get_running_loop()
        key = id(model.predictor)
        lane = self._lanes.setdefault(key, _Lane())
        future: asyncio.Future[np.ndarray] = loop.create_future()
        lane.queue.append((windows, future))
        if not lane.busy:
            lane.busy = True
            lane.task = loop.create_task(self._drain(key, model, lane))
        return await future

    async def _drain(self, key: int, model: LoadedModel, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        try:
            while lane.queue:
                jobs = [lane.queue.popleft()]
                size = len(jobs[0][0])
                while lane.queue and size + len(lane.queue[0][0]) <= self.max_windows:
                    jobs.append(lane.queue.popleft())
                    size += len(jobs[-1][0])
                batch = jobs[0][0] if len(jobs) == 1 else np.concatenate([w for w, _ in jobs])
                start = time.perf_counter()
                try:
                    if size <= self.inline_max:
                        out = np.asarray(model.predictor.predict(batch))
                    else:
                        out = np.asarray(
                            await loop.run_in_executor(self._executor, model.predictor.predict, batch)
                        )
                except Exception as exc:  # the callers get the model's own error
                    for _, fut in jobs:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                if self.observe is not None:
                    self.observe(model, size, time.perf_counter() - start)
                offset = 0
                for windows, fut in jobs:
                    if not fut.done():
                        fut.set_result(out[offset : offset + len(windows)])
                    offset += len(windows)
        finally:
            lane.busy = False
            if not lane.queue and self._lanes.get(key) is lane:
                del self._lanes[key]

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
