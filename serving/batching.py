"""Adaptive micro-batching of model calls across concurrent requests.

While a model call runs, the requests that arrive queue up; the next call takes all of them (up
to ``max_windows``) as one batch. An idle service therefore answers a lone request at once (no
batch window to wait out), and under load the batch size grows with the arrival rate. Batches
are formed per model, after each request was validated on its own, so one bad request never
fails another's batch. Small batches run on the event loop (a thread hop would cost more than
the model); large ones in a worker thread, since onnxruntime releases the GIL.

On the CPU, requests are merged only up to one model call's worth of input (``max_bytes``:
:data:`training.artifact.CALL_BYTES`, past which the predictor splits a batch into calls anyway),
so merging saves calls for small requests and costs no copy and no wait for large ones.

The model thread is kept fed: while one batch runs, the next is already formed and queued behind
it (at most ``PIPELINE_DEPTH`` batches handed over at once), so the thread goes from one to the
next without waiting for the event loop, which is busy reading the next requests' bodies and
answering the last ones (BENCHMARKS.md, issue 11's sixth round: under LSTM bulk load the model
thread was busy 0.76-0.78 of the wall with two requests merged per call, 0.97 with merging bounded by the call size).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from serving.logic import LoadedModel
from serving.observers import BatchObserver, notify

_Job = tuple[np.ndarray, "asyncio.Future[np.ndarray]"]
logger = logging.getLogger(__name__)
PIPELINE_DEPTH = 2  # batches handed to the model thread at once: the one running and the next


def _timed(predict: Callable[[np.ndarray], np.ndarray], parts: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """The model's outputs for the requests' windows in order, and the model's own time.

    The parts are joined here, in the model thread (numpy copies without the GIL), not on the
    event loop; the time is the model call's alone (what the model-call metric reports).
    """
    batch = parts[0] if len(parts) == 1 else np.concatenate(parts)
    start = time.perf_counter()
    out = np.asarray(predict(batch))
    return out, time.perf_counter() - start


def _fail(jobs: list[_Job], exc: BaseException) -> None:
    for _, fut in jobs:
        if not fut.done():
            fut.set_exception(exc)


def _cancelling() -> bool:
    """Whether this task has been asked to cancel (not merely an awaited future cancelled)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


@dataclass(slots=True)
class _Lane:
    queue: deque[_Job] = field(default_factory=deque)
    busy: bool = False
    task: asyncio.Task[None] | None = None  # the drain task (kept referenced until done)


class MicroBatcher:
    """Per-model queues drained by one task each; see the module docstring.

    Args:
        max_windows: most windows per model call (a single larger request still runs whole).
        max_bytes: most bytes of windows merged into one call (a single larger request still runs
            whole); None: no byte bound.
        inline_max: batches up to this many windows run on the event loop.
        observe: called after each model call with (model, windows, the call's own seconds).
    """

    def __init__(
        self,
        *,
        max_windows: int,
        inline_max: int,
        max_bytes: int | None = None,
        observe: BatchObserver | None = None,
    ) -> None:
        self.max_windows = max_windows
        self.max_bytes = max_bytes
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
        handed: deque[tuple[list[_Job], asyncio.Future[tuple[np.ndarray, float]]]] = deque()
        forming: list[_Job] = []  # taken from the queue, neither handed over nor answered yet
        try:
            while lane.queue or handed:
                while lane.queue and len(handed) < PIPELINE_DEPTH:
                    forming, size = self._next_batch(lane.queue)
                    parts = [windows for windows, _ in forming]
                    if not handed and size <= self.inline_max:
                        self._run_inline(model, forming, parts)
                    else:
                        call = loop.run_in_executor(self._executor, _timed, model.predictor.predict, parts)
                        handed.append((forming, call))
                    forming = []
                if handed:
                    jobs, call = handed[0]  # left in place while awaited: a cancel fails it below
                    await self._finish(model, jobs, call)
                    handed.popleft()
        except Exception as exc:  # not a model's error (each caller gets its own above): the model
            # thread shut down under a request, or a bug here. Every request of this lane gets it,
            # so that none waits for an answer that no task will give.
            waiting = forming + [job for jobs, _ in handed for job in jobs] + list(lane.queue)
            lane.queue.clear()
            handed.clear()
            logger.error(
                "micro-batcher: %s v%s failed %d waiting requests: %r",
                model.name,
                model.version,
                len(waiting),
                exc,
            )
            _fail(waiting, exc)
        finally:
            for jobs, call in handed:  # cancelled (the loop is closing) with calls handed over
                call.cancel()
                for _, fut in jobs:
                    fut.cancel()
            lane.busy = False
            if not lane.queue and self._lanes.get(key) is lane:
                del self._lanes[key]

    def _next_batch(self, queue: deque[_Job]) -> tuple[list[_Job], int]:
        """The queue's head and what follows it within both bounds (a larger head goes alone), and their windows."""
        jobs = [queue.popleft()]
        size, nbytes = len(jobs[0][0]), jobs[0][0].nbytes
        max_bytes = self.max_bytes if self.max_bytes is not None else float("inf")
        while (
            queue and size + len(queue[0][0]) <= self.max_windows and nbytes + queue[0][0].nbytes <= max_bytes
        ):
            jobs.append(queue.popleft())
            size, nbytes = size + len(jobs[-1][0]), nbytes + jobs[-1][0].nbytes
        return jobs, size

    async def _finish(
        self, model: LoadedModel, jobs: list[_Job], call: asyncio.Future[tuple[np.ndarray, float]]
    ) -> None:
        """Answer a batch handed to the model thread once its call is done."""
        try:
            out, seconds = await call
        except asyncio.CancelledError:
            if not call.cancelled() or _cancelling():
                raise
            # close() dropped the call before the model thread took it (not this task's cancel)
            _fail(jobs, RuntimeError(f"{model.name} v{model.version}: the model thread shut down"))
        except Exception as exc:  # the callers get the model's own error
            _fail(jobs, exc)
        else:
            self._answer(model, jobs, out, seconds)

    def _run_inline(self, model: LoadedModel, jobs: list[_Job], parts: list[np.ndarray]) -> None:
        try:
            out, seconds = _timed(model.predictor.predict, parts)
        except Exception as exc:  # the callers get the model's own error
            _fail(jobs, exc)
        else:
            self._answer(model, jobs, out, seconds)

    def _answer(self, model: LoadedModel, jobs: list[_Job], out: np.ndarray, seconds: float) -> None:
        """Hand each job its slice of the batch's outputs (all fail if the model gave another count)."""
        expected = sum(len(windows) for windows, _ in jobs)
        if out.shape != (expected,):
            _fail(
                jobs,
                RuntimeError(f"{model.name} v{model.version}: {out.shape} outputs for {expected} windows"),
            )
            return
        notify(self.observe, model, expected, seconds, what="model call")
        offset = 0
        for windows, fut in jobs:
            if not fut.done():
                fut.set_result(out[offset : offset + len(windows)])
            offset += len(windows)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
