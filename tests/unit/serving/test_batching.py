"""The micro-batcher: what it merges, and that the model thread is fed while the event loop is busy."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from fakes import FakeInfo

from serving.batching import MicroBatcher
from serving.logic import LoadedModel


@dataclass
class SlowPredictor:
    """Sleeps ``seconds`` a call (the GIL is released, as onnxruntime releases it) and records when."""

    seconds: float = 0.0
    calls: list[int] = field(default_factory=list)
    spans: list[tuple[float, float]] = field(default_factory=list)
    info: FakeInfo = field(default_factory=FakeInfo)

    def predict(self, windows: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        time.sleep(self.seconds)
        self.calls.append(len(windows))
        self.spans.append((start, time.perf_counter()))
        return windows[:, -1, 0].astype(np.float32)


def model(predictor: SlowPredictor) -> LoadedModel:
    return LoadedModel(name="m", version="1", alias="champion", predictor=predictor)


def windows(n: int, start: int = 0, features: int = 3) -> np.ndarray:
    w = np.zeros((n, 1, features), dtype=np.float32)
    w[:, 0, 0] = np.arange(start, start + n)
    return w


async def gather(batcher: MicroBatcher, m: LoadedModel, sizes: list[int]) -> list[np.ndarray]:
    starts = np.cumsum([0, *sizes[:-1]])
    return await asyncio.gather(
        *(batcher.predict(m, windows(n, int(s))) for n, s in zip(sizes, starts, strict=True))
    )


def test_requests_merge_up_to_both_bounds_and_each_gets_its_own_rows() -> None:
    predictor = SlowPredictor(seconds=0.01)
    # 3 features x 4 bytes: 12 bytes a window; 120 bytes = 10 windows
    batcher = MicroBatcher(max_windows=1000, inline_max=0, max_bytes=120)
    sizes = [1, 4, 4, 4, 30, 2]
    outs = asyncio.run(gather(batcher, model(predictor), sizes))
    # all six are queued before the first call: 1+4+4 (another 4 would be 13 windows, 156 bytes),
    # then 4 (with the 30 it would be over), 30 alone (over the bound by itself), then 2
    assert predictor.calls == [9, 4, 30, 2]
    expected = np.split(np.arange(sum(sizes), dtype=np.float32), np.cumsum(sizes)[:-1])
    assert all(np.array_equal(o, e) for o, e in zip(outs, expected, strict=True))


def test_without_a_byte_bound_requests_merge_up_to_max_windows() -> None:
    predictor = SlowPredictor(seconds=0.01)
    batcher = MicroBatcher(max_windows=10, inline_max=0)
    asyncio.run(gather(batcher, model(predictor), [1, 4, 4, 4, 30, 2]))
    assert predictor.calls == [9, 4, 30, 2]  # the same cuts, by count


def test_the_next_batch_runs_while_the_event_loop_is_blocked() -> None:
    """The model thread goes from one batch to the next without waiting for the loop.

    Each call takes 50 ms; 30 ms into the first, the loop is blocked for 300 ms (as a large body's
    parsing blocks it). The second call must start right after the first ends, not after the
    block: the 100 ms bound is twice the call time, far under the 300 ms a handover through the
    loop would wait, so scheduler noise does not fail it and a regression cannot pass it.
    """
    predictor = SlowPredictor(seconds=0.05)
    seen: list[float] = []
    batcher = MicroBatcher(max_windows=1, inline_max=0, observe=lambda _m, _n, seconds: seen.append(seconds))

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.03, time.sleep, 0.3)  # blocks the loop, not the model thread
        await gather(batcher, model(predictor), [1, 1, 1])

    asyncio.run(run())
    (_, end1), (start2, _), _ = predictor.spans
    assert start2 - end1 < 0.1
    # the reported call time is the model's own (50 ms), not the wait for the blocked loop
    assert len(seen) == 3 and max(seen) < 0.1


def test_a_failing_call_fails_only_its_own_batch() -> None:
    class Flaky(SlowPredictor):
        def predict(self, windows: np.ndarray) -> np.ndarray:
            if windows[0, -1, 0] == 0:
                raise RuntimeError("model error on the first batch")
            return super().predict(windows)

    predictor = Flaky(seconds=0.01)
    batcher = MicroBatcher(max_windows=1, inline_max=0)

    async def run() -> list[object]:
        m = model(predictor)
        return await asyncio.gather(
            *(batcher.predict(m, windows(1, i)) for i in range(3)), return_exceptions=True
        )

    first, second, third = asyncio.run(run())
    assert isinstance(first, RuntimeError) and "first batch" in str(first)
    assert np.array_equal(second, [1.0]) and np.array_equal(third, [2.0])


def test_small_batches_run_on_the_event_loop_thread() -> None:
    threads: list[str] = []

    class Where(SlowPredictor):
        def predict(self, windows: np.ndarray) -> np.ndarray:
            threads.append(threading.current_thread().name)
            return super().predict(windows)

    batcher = MicroBatcher(max_windows=100, inline_max=4)
    asyncio.run(gather(batcher, model(Where()), [2]))
    asyncio.run(gather(batcher, model(Where()), [5]))
    assert threads[0] == threading.main_thread().name and threads[1].startswith("mmops-model")


def test_an_observer_that_fails_changes_no_answer() -> None:
    """A metrics failure is the metrics' problem: every request still gets its rows, inline and
    from the model thread (it used to leave the batch cancelled and the queue behind it waiting)."""

    def broken(_m: LoadedModel, _n: int, _seconds: float) -> None:
        raise RuntimeError("metrics down")

    for inline_max in (0, 100):
        batcher = MicroBatcher(max_windows=2, inline_max=inline_max, observe=broken)
        sizes = [1, 1, 2, 1]
        outs = asyncio.run(asyncio.wait_for(gather(batcher, model(SlowPredictor(seconds=0.01)), sizes), 5))
        expected = np.split(np.arange(sum(sizes), dtype=np.float32), np.cumsum(sizes)[:-1])
        assert all(np.array_equal(o, e) for o, e in zip(outs, expected, strict=True))


def test_requests_fail_rather_than_wait_when_the_model_thread_is_gone() -> None:
    """After close() (the service stopping) the model thread takes no call: the batch being formed
    and every request queued behind it get that error, where they used to wait for ever."""
    batcher = MicroBatcher(max_windows=2, inline_max=0)
    batcher.close()

    async def run() -> list[object]:
        m = model(SlowPredictor())
        # three batches (two windows each, at most two a call): one forming, two queued behind it
        calls = (batcher.predict(m, windows(2, 2 * i)) for i in range(3))
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)

    outs = asyncio.run(run())
    assert len(outs) == 3 and all(isinstance(o, RuntimeError) and "shutdown" in str(o) for o in outs)
    assert batcher._lanes == {}  # nothing left queued


@dataclass
class ShortPredictor(SlowPredictor):
    """A broken model: one output fewer than the windows it was given."""

    def predict(self, windows: np.ndarray) -> np.ndarray:
        return super().predict(windows)[1:]


def test_a_model_that_gives_another_count_of_outputs_fails_its_batch_with_the_counts() -> None:
    """Each request's rows are its slice of the batch's outputs: a miscount would hand requests
    each other's (or short) rows, so the whole batch fails instead, inline and on the model thread."""
    for inline_max in (0, 100):
        batcher = MicroBatcher(max_windows=100, inline_max=inline_max)

        async def run(b: MicroBatcher = batcher) -> list[object]:
            m = model(ShortPredictor())
            calls = (b.predict(m, windows(n)) for n in (2, 3))
            return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)

        outs = asyncio.run(run())
        assert [str(o) for o in outs] == ["m v1: (4,) outputs for 5 windows"] * 2, inline_max


@dataclass
class GatedPredictor(SlowPredictor):
    """Says when a call has started in the model thread, and finishes it when let."""

    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def predict(self, windows: np.ndarray) -> np.ndarray:
        self.started.set()
        assert self.release.wait(5)
        return super().predict(windows)


def test_a_batch_that_close_drops_before_the_model_thread_runs_it_fails_with_a_reason() -> None:
    """close() while one batch runs and the next waits for the model thread: the running one is
    answered, the dropped one gets the shutdown as an error (it used to be a bare cancellation)."""
    batcher = MicroBatcher(max_windows=2, inline_max=0)
    predictor = GatedPredictor()

    async def run() -> list[object]:
        m = model(predictor)
        calls = asyncio.gather(
            *(batcher.predict(m, windows(2, 2 * i)) for i in range(2)), return_exceptions=True
        )
        assert await asyncio.to_thread(predictor.started.wait, 5)  # the first batch is in the model thread
        batcher.close()  # the second, handed over behind it, is dropped
        predictor.release.set()
        return await asyncio.wait_for(calls, 5)

    first, second = asyncio.run(run())
    assert isinstance(first, np.ndarray) and np.array_equal(first, np.arange(2, dtype=np.float32))
    assert isinstance(second, RuntimeError) and "shut down" in str(second), repr(second)
    assert predictor.calls == [2]
