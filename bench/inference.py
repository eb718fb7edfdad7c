"""Single-window inference latency: each family's framework path vs its ONNX Runtime fast path.

Fits every family x task on synthetic rows (default sizes: RF 200 trees, LSTM lookback 32 /
32 units, one epoch), saves the artifact, then times one-window predictions through
``SignalModel.predict_windows`` (scikit-learn ``predict_proba``/``predict``, Keras
``model.predict``) and through ``training.artifact.Predictor.predict`` (one intra-op thread),
and checks both agree within the artifact's tolerance. Prints one JSON document.

    .venv/bin/python bench/inference.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

# Run as a script, this folder comes first on sys.path and bench/features.py would shadow `features`.
sys.path[:] = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]

from training.artifact import load_predictor, sliding_windows  # noqa: E402
from training.models import FAMILIES, make_model  # noqa: E402

PARAMS: dict[str, dict[str, Any]] = {"rf": {}, "sgd": {}, "lstm": {"epochs": 1}}


def latency_ms(fn: Callable[[], object], *, repeats: int) -> dict[str, float]:
    """Median and 99th percentile wall time of ``fn`` in milliseconds (after 5 warm-up calls)."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(times), "p99_ms": float(np.percentile(times, 99))}


def bench(rows: int, features: int, repeats: int, folder: Path) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, features))
    returns = 1e-3 * (0.3 * x[:, 0] + rng.standard_normal(rows))
    results = []
    for family in FAMILIES:
        for task in ("classifier", "regressor"):
            y = (returns > 0).astype(float) if task == "classifier" else returns
            model = make_model(family, task, random_state=0, **PARAMS[family])
            started = time.perf_counter()
            model.fit(x, y)
            fit_s = time.perf_counter() - started
            predictor = load_predictor(model.save(folder / f"{family}-{task}"))
            window = sliding_windows(x[-model.lookback :].astype(np.float32), model.lookback)[:1]
            framework = latency_ms(partial(model.predict_windows, window), repeats=repeats)
            fast = latency_ms(partial(predictor.predict, window), repeats=repeats * 10)
            check = sliding_windows(x[-2000:].astype(np.float32), model.lookback)
            max_diff = float(np.max(np.abs(model.predict_windows(check) - predictor.predict(check))))
            results.append(
                {
                    "family": family,
                    "task": task,
                    "lookback": model.lookback,
                    "fit_s": round(fit_s, 2),
                    "framework": framework,
                    "onnxruntime": fast,
                    "speedup_median": framework["median_ms"] / fast["median_ms"],
                    "max_abs_diff": max_diff,
                    "tolerance": predictor.info.tolerance,
                    "within_tolerance": max_diff <= predictor.info.tolerance,
                }
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="one JSON document (default: indented)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = bench(args.rows, args.features, args.repeats, Path(tmp))
    doc = {
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "rows": args.rows,
        "features": args.features,
        "results": results,
    }
    print(json.dumps(doc, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
