"""Feature throughput: the compiled kernel vs a straightforward pandas rolling implementation,
and the whole ``mmops features`` command (store read, compute, write) vs a plain-pandas script.

Chains the shipped BTCUSDT 1m months end to end (each copy's prices rescaled to start at the
previous copy's last close, so every return is real, and re-stamped one minute apart) to >= 1M
rows, then times everything on the same bars in the same run. Prints one JSON line.

    .venv/bin/python bench/features.py --rows 1000000 --json            # kernel vs pandas
    .venv/bin/python bench/features.py --rows 1000000 --command --json  # + the command and phases
    .venv/bin/python bench/features.py --command-only --json            # the command part alone

``--command``: the bars go into a bar store under a temporary MMOPS_HOME; then, alternating, the
``mmops features`` process and the reference process (bench/features_reference.py: only pandas
and numpy; reads the bars from one Parquet file, computes 41 columns with pandas rolling windows,
writes them with ``DataFrame.to_parquet`` defaults) are timed wall to wall, best of ``--repeats``;
the command's phases are timed in this process on the same store.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

# This file is named like the `features` package; run as a script, its own folder would shadow it.
sys.path[:] = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]

from features.build import FeatureEngine, compute_features, make_labels  # noqa: E402
from features.config import FeaturesConfig  # noqa: E402
from features.feature_files import labels_path, write_features, write_labels  # noqa: E402
from features.sources.binance import dump_files, read_dumps  # noqa: E402
from features.store import BarStore  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(__file__).with_name("features_reference.py")
_spec = importlib.util.spec_from_file_location("features_reference", REFERENCE)
assert _spec is not None
assert _spec.loader is not None
_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_reference)
pandas_features = _reference.pandas_features


def chained_bars(rows: int) -> pd.DataFrame:
    source = Path(
        os.environ.get("MMOPS_SOURCE_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    base = read_dumps(dump_files(source / "binance-spot-1m"))
    copies: list[pd.DataFrame] = []
    scale = 1.0
    while sum(len(c) for c in copies) < rows:
        copy = base.copy()
        for column in ("open", "high", "low", "close"):
            copy[column] = copy[column] * scale
        copies.append(copy)
        scale = copy["close"].iloc[-1] / base["open"].iloc[0]
    bars = pd.concat(copies, ignore_index=True).iloc[:rows]
    bars["timestamp"] = pd.date_range("2020-01-01", periods=len(bars), freq="1min", tz="UTC")
    return bars


def wall(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, all its threads) of one process run."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command)
    return elapsed, usage.ru_utime + usage.ru_stime


def command_vs_reference(bars: pd.DataFrame, repeats: int) -> dict[str, object]:
    """``mmops features`` (whole process, and its phases in this process) vs the reference process."""
    config = FeaturesConfig()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        store = BarStore(home / "data" / "bars")
        store.merge(bars)
        bars_file = home / "bars.parquet"
        bars.to_parquet(bars_file)
        env = {**os.environ, "MMOPS_HOME": str(home), "MMOPS_PARAMS": str(REPO / "params.yaml")}
        mmops = [
            str(Path(sys.executable).with_name("mmops")),
            "features",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1m",
        ]
        reference = [sys.executable, str(REFERENCE), str(bars_file), str(home / "reference.parquet")]
        wall(mmops, env)  # numba's cache and the OS file cache warm, outside the timing
        command_runs, reference_runs = [], []
        for _ in range(repeats):  # alternating, so both see the same load on the machine
            command_runs.append(wall(mmops, env))
            reference_runs.append(wall(reference, env))
        target = home / "phases.parquet"
        phases = {
            "read_store_s": best_of(repeats, lambda: store.read("binance", "BTCUSDT", "1m")),
            "compute_s": best_of(repeats, lambda: compute_features(bars, config)),
            "labels_s": best_of(repeats, lambda: make_labels(bars, horizon=config.label_horizon)),
        }
        frame = compute_features(bars, config)
        labels = make_labels(bars, horizon=config.label_horizon)
        phases["write_features_s"] = best_of(
            repeats, lambda: write_features(frame, target, config=config, series="binance:BTCUSDT:1m")
        )
        phases["write_labels_s"] = best_of(repeats, lambda: write_labels(labels, labels_path(target)))
        phases["write_float64_pandas_default_s"] = best_of(
            repeats, lambda: frame.to_parquet(home / "f64.parquet")
        )
        sizes = {
            "features_mb": round(target.stat().st_size / 1e6, 1),
            "float64_pandas_default_mb": round((home / "f64.parquet").stat().st_size / 1e6, 1),
            "reference_mb": round((home / "reference.parquet").stat().st_size / 1e6, 1),
        }
        reference_columns = pd.read_parquet(home / "reference.parquet").shape[1]
    command_s, reference_s = (min(w for w, _ in runs) for runs in (command_runs, reference_runs))
    command_cpu, reference_cpu = (min(c for _, c in runs) for runs in (command_runs, reference_runs))
    return {
        "command_s": round(command_s, 2),
        "reference_s": round(reference_s, 2),
        "command_over_reference": round(command_s / reference_s, 3),
        # CPU seconds hold on a busy machine, where wall time mostly measures the neighbours
        "command_cpu_s": round(command_cpu, 2),
        "reference_cpu_s": round(reference_cpu, 2),
        "command_over_reference_cpu": round(command_cpu / reference_cpu, 3),
        "reference_columns": reference_columns,
        "command_columns": frame.shape[1],
        "command_runs_wall_cpu_s": [(round(w, 2), round(c, 2)) for w, c in command_runs],
        "reference_runs_wall_cpu_s": [(round(w, 2), round(c, 2)) for w, c in reference_runs],
        "phases_in_process": {k: round(v, 3) for k, v in phases.items()},
        "sizes": sizes,
    }


def best_of(repeats: int, func: object) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--command", action="store_true", help="also time `mmops features` vs the reference")
    parser.add_argument(
        "--command-only", action="store_true", help="--command without the kernel-vs-pandas part"
    )
    args = parser.parse_args()
    bars = chained_bars(args.rows)
    result: dict[str, object] = {
        "rows": len(bars),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    if not args.command_only:
        config = FeaturesConfig().for_interval("1m")
        FeatureEngine(config).update(bars.iloc[:5000])  # compile (or load the cache) outside the timing
        kernel_s = best_of(args.repeats, lambda: FeatureEngine(config).update(bars))
        pandas_s = best_of(args.repeats, lambda: pandas_features(bars, config.resolved_windows))
        result |= {
            "features": len(FeatureEngine(config).names),
            "rows_per_s": round(len(bars) / kernel_s),
            "pandas_rows_per_s": round(len(bars) / pandas_s),
            "speedup_vs_pandas": round(pandas_s / kernel_s, 2),
            "note": "pandas baseline omits PSAR and the time features (the kernel computes them too)",
        }
    if args.command or args.command_only:
        result["command"] = command_vs_reference(bars, args.repeats)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
