"""What the prediction log costs per prediction: one 512-window record's lines, and the digest alone.

The log thread formats every prediction's line (serving/prediction_log.py ``_lines``) and digests
the window the model saw (serving/logic.py ``inputs_digest``). This times both in-process on one
record of ``--symbols`` windows of ``--rows`` x ``--features`` float32 (the LSTM bench shape by
default), and the digest's alternatives on the same windows: XXH3-128 (what the log uses),
SHA-256 and BLAKE2b. Best of ``--repeats`` rounds, interleaved, so a noisy neighbour slows
every variant alike.

    .venv/bin/python bench/prediction_log.py [--symbols 512] [--rows 32] [--features 67] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xxhash

# bench/serving.py is named like the `serving` package; run as a script, this folder would shadow it.
sys.path[:] = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]

from serving.prediction_log import PredictionRecord, _lines  # noqa: E402


def best_us(fn: Callable[[], object], per: int, repeats: int, inner: int = 10) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - start) / inner)
    return 1e6 * best / per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=512)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--features", type=int, default=67)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    n = args.symbols
    windows = np.random.default_rng(0).standard_normal((n, args.rows, args.features)).astype(np.float32)
    record = PredictionRecord(
        at="2026-12-03T09:00:00.000000+00:00",
        request_id="bench",
        symbols=tuple(f"S{i:04d}USDT" for i in range(n)),
        model="mmops-BTCUSDT-1m",
        version="3",
        alias="champion",
        role="served",
        windows=windows,
        outputs=np.random.default_rng(1).standard_normal(n).astype(np.float32),
        latency_ms=12.345,
    )
    variants: dict[str, Callable[[], object]] = {
        "record_lines": lambda: _lines(record),
        "xxh3_128": lambda: [xxhash.xxh3_128_hexdigest(windows[i].data) for i in range(n)],
        "sha256": lambda: [hashlib.sha256(windows[i].data).hexdigest() for i in range(n)],
        "blake2b_96": lambda: [
            hashlib.blake2b(windows[i].data, digest_size=12).hexdigest() for i in range(n)
        ],
    }
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(args.repeats):  # interleaved rounds
        for name, fn in variants.items():
            best[name] = min(best[name], best_us(fn, n, repeats=1))
    report = {
        "bench": "prediction_log",
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "window_bytes": windows[0].nbytes,
        "symbols": n,
        "us_per_prediction": best,
        "sha256_over_xxh3": best["sha256"] / best["xxh3_128"],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{n} windows of {windows[0].nbytes:,} B: a record's lines {best['record_lines']:.2f} us a prediction "
        f"(digest included); digest alone: XXH3-128 {best['xxh3_128']:.2f} us, SHA-256 {best['sha256']:.2f} us "
        f"({report['sha256_over_xxh3']:.1f}x), BLAKE2b {best['blake2b_96']:.2f} us"
    )


if __name__ == "__main__":
    main()
