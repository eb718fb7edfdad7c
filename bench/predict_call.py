"""The predictor's call size: in-process LSTM windows/s by input bytes per ONNX call (info).

What ``training.artifact.CALL_BYTES`` is chosen from. Fits the service bench's LSTM (67 features,
lookback 32, 32 units), opens it with :func:`training.artifact.load_predictor` as the service does,
and measures, one thread, back to back:

* ``by_call_size``: one call per batch, batches of 0.5 to 32 MiB of float32 windows;
* ``bulk_request``: a 512-window request (4.4 MB, what ``bench/serving.py`` sends) through
  ``Predictor.predict`` at several ``CALL_BYTES``, alone and with a second Python thread that
  holds the GIL 1 ms of every 2.5 (the service's event loop under bulk load is 0.36-0.54 of a
  core, mostly Python). Every ONNX call returns to the GIL, so each extra call can wait there.

Ratios are against the first size in the same run (machines here are shared).

    .venv/bin/python bench/predict_call.py --json
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

sys.path[:] = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]

FEATURES, LOOKBACK = 67, 32
WINDOW_BYTES = 4 * LOOKBACK * FEATURES


def open_lstm(home: Path) -> Any:
    from training.artifact import load_predictor
    from training.models import make_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, FEATURES))
    y = 1e-3 * x[:, 0] + 1e-3 * rng.normal(size=len(x))
    model = make_model("lstm", "regressor", lookback=LOOKBACK, units=32, epochs=1, batch_size=256)
    model.fit(x, y, feature_names=[f"feature_{i}" for i in range(FEATURES)])
    return load_predictor(model.save(home / "lstm"))


@functools.cache
def _bench_serving() -> ModuleType:
    """bench/serving.py, loaded by its path (its name is the ``serving`` package's)."""
    spec = importlib.util.spec_from_file_location("bench_serving", Path(__file__).with_name("serving.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def windows_per_s(predictor: Any, windows: np.ndarray, seconds: float) -> float:
    """``bench/serving.py``'s in-process baseline loop (the same measure as its ratios' denominator)."""
    return float(_bench_serving().onnx_throughput(predictor, windows, seconds)["windows_per_s"])


@contextmanager
def gil_holder(hold_s: float, rest_s: float) -> Iterator[None]:
    """A thread running Python for ``hold_s``, then sleeping ``rest_s``, until the block ends."""
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            until = time.perf_counter() + hold_s
            while time.perf_counter() < until:
                pass
            time.sleep(rest_s)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--sizes-mib", default="0.5,1,2,4,8,16,32", help="one call per batch of these MiB")
    parser.add_argument("--call-mib", default="1,2,4", help="CALL_BYTES values for the 512-window request")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import training.artifact as artifact

    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="mmops-bench-call-") as tmp:
        predictor = open_lstm(Path(tmp))
        saved = artifact.CALL_BYTES
        by_size: dict[str, dict[str, float]] = {}
        bulk: dict[str, dict[str, float]] = {}
        try:
            for mib in [float(m) for m in args.sizes_mib.split(",")]:
                n = max(1, int(mib * 2**20 / WINDOW_BYTES))
                artifact.CALL_BYTES = n * WINDOW_BYTES  # the whole batch in one call
                batch = rng.normal(size=(n, LOOKBACK, FEATURES)).astype(np.float32)
                by_size[f"{mib:g}"] = {
                    "windows": n,
                    "windows_per_s": windows_per_s(predictor, batch, args.seconds),
                }
            request = rng.normal(size=(512, LOOKBACK, FEATURES)).astype(np.float32)
            for mib in [float(m) for m in args.call_mib.split(",")]:
                artifact.CALL_BYTES = int(mib * 2**20)
                alone = windows_per_s(predictor, request, args.seconds)
                with gil_holder(1e-3, 1.5e-3):
                    shared = windows_per_s(predictor, request, args.seconds)
                per_call = max(1, artifact.CALL_BYTES // WINDOW_BYTES)
                bulk[f"{mib:g}"] = {
                    "calls": len(list(artifact.iter_even_chunks(len(request), per_call))),
                    "alone_per_s": alone,
                    "with_gil_holder_per_s": shared,
                    "kept_with_gil_holder": shared / alone,
                }
        finally:
            artifact.CALL_BYTES = saved
        first = next(iter(by_size.values()))["windows_per_s"]
        for row in by_size.values():
            row["ratio"] = row["windows_per_s"] / first
        base = next(iter(bulk.values()))["alone_per_s"]
        for row in bulk.values():
            row["alone_ratio"] = row["alone_per_s"] / base
            row["with_gil_holder_ratio"] = row["with_gil_holder_per_s"] / base
    report = {
        "bench": "predict_call",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_1m": os.getloadavg()[0],
        },
        "call_bytes": saved,
        "by_call_size_mib": by_size,
        "bulk_request_512_by_call_mib": bulk,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print("one call per batch (MiB: windows/s, ratio to the first):")
    for label, row in by_size.items():
        print(
            f"  {label:>4} MiB ({row['windows']:5.0f} windows): {row['windows_per_s']:9,.0f}/s  {row['ratio']:.2f}x"
        )
    print("a 512-window request by CALL_BYTES (alone | with a thread holding the GIL 1 ms of 2.5):")
    for label, row in bulk.items():
        print(
            f"  {label:>4} MiB ({row['calls']:.0f} calls): {row['alone_per_s']:9,.0f}/s {row['alone_ratio']:.2f}x | "
            f"{row['with_gil_holder_per_s']:9,.0f}/s {row['with_gil_holder_ratio']:.2f}x"
        )


if __name__ == "__main__":
    main()
