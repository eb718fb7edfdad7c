"""What BentoML's access log and request tracing cost one 100-symbol ``/predict_batch``.

A throw-away registry with the LSTM champion of ``bench/worker.py`` (``build_registry`` from
``bench/worker_setup.py``, in a spawned child), then ``mmops serve`` started ``--rounds`` times with ``serve.access_log`` and
``serve.trace_requests`` on, then off, interleaved. Each start: 100 warm-up requests, then 10 s
of the worker's request alone (100 symbols x 32 rows x 67 features of random float32, raw body,
bearer token, through the worker's ``HttpSignalSource``, one at a time, 5 ms apart). Reports p50 / p99 ms per start, and the mean
p50 of "off" over "on".

    .venv/bin/python bench/request_logging.py [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

# bench/features.py and bench/serving.py are named like packages: this folder goes last on the path
sys.path[:] = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]
sys.path.append(str(Path(__file__).resolve().parent))
import worker_setup as bench_worker  # noqa: E402  (it puts the repository first on the path)


async def measure(base: str, token: str, n_features: int, seconds: float) -> dict[str, float]:
    """The worker's own request (:class:`serving.worker_source.HttpSignalSource`), one at a time."""
    from serving.worker_source import HttpSignalSource

    symbols = [f"S{i:04d}USDT" for i in range(100)]
    windows = np.random.default_rng(0).standard_normal((100, 32, n_features)).astype(np.float32)
    source = HttpSignalSource(base, token=token, timeout_s=5.0)
    try:
        for _ in range(100):
            await source.signals(symbols, windows)
        ms: list[float] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t = time.perf_counter()
            await source.signals(symbols, windows)
            ms.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(0.005)
    finally:
        await source.close()
    return {**bench_worker.pct(np.array(ms)), "n": len(ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="mmops-bench-rl-") as name:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            uri, _version, n_features = pool.submit(bench_worker.build_registry, name, 6000).result()
        for _ in range(args.rounds):
            for on in (True, False):
                token = secrets.token_urlsafe(16)
                proc, base = bench_worker.start_server(Path(name), uri, token, request_logging=on)
                try:
                    got = asyncio.run(measure(base, token, n_features, args.seconds))
                finally:
                    bench_worker.stop_server(proc)
                runs.append({"request_logging": on, **got})
    p50 = {on: np.mean([r["p50"] for r in runs if r["request_logging"] is on]) for on in (True, False)}
    report = {"bench": "request_logging", "runs": runs, "off_over_on_p50": float(p50[False] / p50[True])}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for r in runs:
        print(
            f"request logging {'on ' if r['request_logging'] else 'off'}: p50 {r['p50']:.2f} p99 {r['p99']:.2f} ms ({r['n']} requests)"
        )
    print(f"off / on, mean p50: x{report['off_over_on_p50']:.2f}")


if __name__ == "__main__":
    main()
