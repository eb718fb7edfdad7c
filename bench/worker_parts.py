"""Where the quoting worker's tick goes, without a service: N symbols, an in-process source.

``bench/worker.py`` measures tick-to-quote through a real ``mmops serve`` at 1 Hz; its model
call hides part of the venue's work and its figures move with the service and the machine's
load. This bench takes the service out, to see the worker's own work: the same replayed data
(``bench/worker.py``'s symbols, history and settings from ``params.yaml``), the worker built as
``mmops trade`` builds it (:func:`trading.worker.run.build_worker`) on a paper venue, and a
source in this process whose answer is ready as soon as it is asked (a fixed function of each
window's newest row, the one the unit tests use). So ``model`` is the venue work the worker does
while a request would be out, ``total`` the tick's wall time and ``cpu`` the worker thread's CPU
per tick, ``run_queue`` its time runnable but waiting for a CPU, and ``machine_probe`` a fixed
piece of pure-Python work timed after each tick (``bench/machine_noise.py``: how slow the machine
was). ``--parts`` also sums the time inside the worker's steps, the journal's writes, its
commits and the paper venue's calls (mean ms per tick; wrapping them costs a little).

``--speed`` paces the replay as ``mmops trade --speed`` does (``max``, the default: the next
tick starts as soon as one ends; ``60`` on 1m bars: one tick a second, as ``bench/worker.py``).
The same tick costs more CPU when the worker sleeps between ticks on a shared machine (see
BENCHMARKS.md, issue 11's ninth round), so compare runs at the same speed.

``TREE`` (environment) runs another checkout's code with this file (an A/B in one session:
``git worktree add /tmp/base <rev>``, then ``TREE=/tmp/base python bench/worker_parts.py``);
steps a tree does not have are left out of ``--parts``.

Usage::

    .venv/bin/python bench/worker_parts.py --symbols 100 --ticks 300 [--speed max|N] [--parts] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import inspect
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TREE = Path(os.environ.get("TREE", REPO))
sys.path.insert(0, str(TREE))
sys.path.insert(1, str(REPO / "bench"))
sys.path.append(str(REPO))  # bench/worker_setup.py puts its repo first unless it is on the path already

STEPS: tuple[str, ...] = (
    "_update_features",
    "_write_pending",
    "_book_fills",
    "_apply_fills",
    "_tick_signals",
    "_plan",
    "_send",
)
STEPS += ("_settle", "_poll_fills", "_confirm", "_between_ticks")
JOURNAL = (
    "add_orders",
    "request_cancels",
    "set_statuses",
    "add_fill",
    "add_fills",
    "add_signals",
    "save_book",
)
VENUE = ("place", "cancel", "place_many", "cancel_many", "flush", "advance", "fills_since", "order")
PARTS = ("features", "model", "decide", "journal", "venue", "total")


class InstantSource:
    """A signal source in this process: the answer is ready when asked (see the module docstring)."""

    def __init__(self, names: Sequence[str], rows: int) -> None:
        self.names, self.rows = tuple(names), rows

    async def info(self) -> Any:
        from trading.worker.types import SourceInfo

        return SourceInfo(self.rows, self.names, "forward_log_return", "7", None, "champion")

    async def signals(
        self, symbols: Sequence[str], windows: np.ndarray, *, seq: Any = None, sent: Any = None
    ) -> Any:
        from trading.worker.types import SignalBatch

        if sent is not None:  # as a request on its way: the worker does its venue work meanwhile
            sent.set()
            await asyncio.sleep(0)
        x = windows[:, -1, 0].astype(np.float64)
        values = 2e-4 * np.tanh(x / (np.abs(x).mean() + 1e-12))
        n = len(symbols)
        return SignalBatch(values, ["7"] * n, ["champion"] * n, "forward_log_return")

    async def close(self) -> None:
        return None


class Sums:
    """Time inside wrapped methods, ns, by name."""

    def __init__(self) -> None:
        self.ns: dict[str, int] = collections.defaultdict(int)
        self.commits: list[int] = []

    def wrap(self, obj: Any, name: str, label: str) -> None:
        f = getattr(obj, name, None)
        if f is None:
            return
        if inspect.iscoroutinefunction(f):

            async def timed_async(*a: Any, **k: Any) -> Any:
                t = time.perf_counter_ns()
                try:
                    return await f(*a, **k)
                finally:
                    self.ns[label] += time.perf_counter_ns() - t

            setattr(obj, name, timed_async)
        else:

            def timed(*a: Any, **k: Any) -> Any:
                t = time.perf_counter_ns()
                try:
                    return f(*a, **k)
                finally:
                    self.ns[label] += time.perf_counter_ns() - t

            setattr(obj, name, timed)

    def wrap_commits(self, journal: Any) -> None:
        """Time the journal's commits (the end of each ``transaction``)."""
        inner = journal.transaction

        @contextlib.contextmanager
        def transaction() -> Iterator[None]:
            with inner():
                yield
                t = time.perf_counter_ns()
            self.commits.append(time.perf_counter_ns() - t)

        journal.transaction = transaction


def run(symbols: int, ticks: int, warmup_ticks: int, parts: bool, speed: float | None) -> dict[str, Any]:
    import worker_setup as bench_worker  # bench/worker.py's data and percentiles
    from machine_noise import probe_ms, run_queue_wait_ns

    pct = bench_worker.pct

    from features.build import feature_names
    from flows.params import load_params
    from trading.worker.loop import WorkerSettings
    from trading.worker.run import PaperRun, build_worker

    params = load_params(TREE / "params.yaml")
    fc = params.features.for_interval("1m")
    history_bars = max(fc.resolved_windows) + 1 + 512  # as `mmops trade` warms up
    frames, history = bench_worker.symbol_frames(
        bench_worker.load_base(), symbols, warmup=history_bars, ticks=ticks + warmup_ticks + 1
    )
    settings = WorkerSettings(
        quote=params.quote,
        risk=params.risk,
        backtest=params.backtest,
        trade=params.trade,
        features=fc,
        speed=speed,
    )
    with tempfile.TemporaryDirectory(prefix="mmops-bench-parts-") as tmp:
        paper = PaperRun(
            frames=frames, interval="1m", settings=settings, journal=Path(tmp) / "j.db", history=history
        )
        worker, journal, venues = build_worker(paper, InstantSource(feature_names(fc), 32), shadow=False)
        cpu: list[int] = []
        queued: list[int] = []
        probes: list[float] = []
        tick = worker.tick

        async def timed_tick() -> None:
            c, q = time.thread_time_ns(), run_queue_wait_ns()
            await tick()
            cpu.append(time.thread_time_ns() - c)
            queued.append(run_queue_wait_ns() - q)
            probes.append(probe_ms())  # after the tick, so that it warms nothing the tick uses

        worker.tick = timed_tick  # type: ignore[method-assign]
        sums = Sums()

        async def go() -> None:
            await worker.start()
            await worker.run(max_ticks=warmup_ticks)
            if parts:  # after the warm-up (numba's first calls)
                for name in STEPS:
                    sums.wrap(worker, name, name)
                for name in JOURNAL:
                    sums.wrap(journal, name, f"journal.{name}")
                for name in VENUE:
                    sums.wrap(venues[0], name, f"paper.{name}")
                sums.wrap_commits(journal)
            await worker.run(max_ticks=ticks)

        asyncio.run(go())
        fills = len(journal.fills())
        for v in venues:
            v.close()
        journal.close()
    kept = list(worker.timings)[warmup_ticks:]
    out: dict[str, Any] = {
        "tree": str(TREE),
        "symbols": symbols,
        "speed": "max" if speed is None else speed,
        "ticks": len(kept),
        "fills": fills,
        "tick_ms": {p: pct(np.array([getattr(t, p) for t in kept]) / 1e6) for p in PARTS},
        "cpu_ms": pct(np.array(cpu[warmup_ticks:]) / 1e6),
        "run_queue_ms": pct(np.array(queued[warmup_ticks:]) / 1e6),
        "machine_probe_ms": pct(np.array(probes[warmup_ticks:])),
        "load_avg_1m": os.getloadavg()[0],
    }
    if parts:
        out["mean_ms_per_tick"] = {
            k: v / len(kept) / 1e6 for k, v in sorted(sums.ns.items(), key=lambda kv: -kv[1])
        }
        c = np.array(sums.commits) / 1e6
        out["commits"] = {"n": len(c), **pct(c), "max": float(c.max()), "over_5ms": int((c > 5).sum())}
    return out


def speed_arg(text: str) -> float | None:
    """``max`` or a positive number, as ``mmops trade --speed`` reads it (``flows.cli_worker._speed``;
    not imported: with ``TREE`` the flows package is another checkout's, which may not have it)."""
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: 'max' or a number such as 60 (x real time)") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be > 0")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--warmup-ticks", type=int, default=10)
    parser.add_argument("--speed", type=speed_arg, default=None, help="max (default) or N x real time")
    parser.add_argument("--parts", action="store_true", help="also sum the time inside steps and calls")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    r = run(args.symbols, args.ticks, args.warmup_ticks, args.parts, args.speed)
    if args.json:
        print(json.dumps(r, indent=2))
        return
    ms = r["tick_ms"]
    print(
        f"{r['symbols']} symbols, {r['ticks']} ticks at speed {r['speed']}, {r['fills']} fills ({r['tree']});"
        " ms p50 / p99:"
    )
    for p in PARTS:
        print(f"  {p:9s} {ms[p]['p50']:7.2f} / {ms[p]['p99']:7.2f}")
    print(f"  {'cpu':9s} {r['cpu_ms']['p50']:7.2f} / {r['cpu_ms']['p99']:7.2f}")
    print(f"  {'run queue':9s} {r['run_queue_ms']['p50']:7.2f} / {r['run_queue_ms']['p99']:7.2f}")
    print(f"  machine probe p50 {r['machine_probe_ms']['p50']:.3f} ms (bench/machine_noise.py)")
    for k, v in r.get("mean_ms_per_tick", {}).items():
        print(f"    {k:26s} {v:6.2f} ms a tick")
    if "commits" in r:
        c = r["commits"]
        print(f"  journal commits: {c['n']}, p50 {c['p50']:.2f} p99 {c['p99']:.2f} max {c['max']:.2f} ms")


if __name__ == "__main__":
    main()
