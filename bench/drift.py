"""Time for one drift report on a day of 1m bars for 100 symbols (goal: under 30 s on 2 cores).

The universe: 100 symbols made from the three shipped 1m series (BTCUSDT 2026-03/04, BTC/USDT
and ETH/USDT 2025-05/08), each symbol a different 8-day stretch of one of them (symbol k: series
k % 3, starting k // 3 days after the series' start; stretches overlap in time but are
distinct windows, so no two symbols have identical data). Per symbol: the first 7 days are the
reference (a champion's training week, 10,080 rows), the 8th day the current window.

Timed, in the same run: features of the 100 x 8 days (context), scoring every watched feature of
every symbol (the verdicts, ``judge`` without reports), then one Evidently report (HTML + snapshot)
of the universe's most drifted (symbol, feature) columns; the baseline is Evidently's own
``DataDriftPreset`` on ONE symbol's watched features (the obvious way, which would be x100).

    PYTHONPATH=. .venv/bin/python bench/drift.py --symbols 100 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

sys.path[:] = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]

from features.build import compute_features  # noqa: E402
from features.config import FeaturesConfig  # noqa: E402
from features.sources.binance import dump_files, read_dumps  # noqa: E402
from features.sources.files import read_file  # noqa: E402
from flows.params import load_params  # noqa: E402
from training.monitor import judge  # noqa: E402
from training.monitor.drift import ColumnScore, WindowDrift, watched_features  # noqa: E402
from training.monitor.report import write_evidently  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DAY = 1440


def sources() -> list[pd.DataFrame]:
    root = Path(os.environ.get("MMOPS_SOURCE_DATA") or REPO.parent / "shared" / "data")
    out = [read_dumps(dump_files(root / "binance-spot-1m"))]
    for coin in ("BTC", "ETH"):
        path = root / "ohlcv" / f"binance_{coin}_USDT-1m_2025-05-20_2025-08-18.feather"
        out.append(read_file(path, preset="freqtrade", symbol=f"{coin}USDT", venue="binance", interval="1m"))
    return out


def universe(n: int) -> dict[str, pd.DataFrame]:
    """Features of ``n`` symbols' 8-day stretches (a day before each warms the windows up)."""
    series = sources()
    out = {}
    for k in range(n):
        bars = series[k % 3]
        start = (k // 3) * DAY
        part = bars.iloc[start : start + 9 * DAY].reset_index(drop=True)
        out[f"SYM{k:03d}"] = compute_features(part, FeaturesConfig()).iloc[DAY:].dropna(axis=1, how="all")
    return out


def run(n: int) -> dict[str, Any]:
    config = load_params(REPO / "params.yaml").monitor
    started = time.perf_counter()
    frames = universe(n)
    featurise_s = time.perf_counter() - started
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        verdicts = {
            s: judge(f.iloc[: 7 * DAY], f.iloc[7 * DAY :], series=s, config=config) for s, f in frames.items()
        }
        score_s = time.perf_counter() - t0
        # one report for the universe: its most drifted (symbol, feature) columns
        top = sorted(
            ((s, c) for s, v in verdicts.items() for c in v.latest.features),
            key=lambda p: (not p[1].drifted, -p[1].score),
        )[: config.report_max_features]
        ref = pd.DataFrame({f"{s}:{c.column}": _z(frames[s], c.column, slice(0, 7 * DAY)) for s, c in top})
        cur = pd.DataFrame(
            {f"{s}:{c.column}": _z(frames[s], c.column, slice(7 * DAY, 8 * DAY)) for s, c in top}
        )
        window = WindowDrift(
            start=frames["SYM000"].index[7 * DAY],
            end=frames["SYM000"].index[-1],
            rows=DAY,
            features=tuple(
                ColumnScore(f"{s}:{c.column}", c.score, c.drifted, c.method, c.threshold) for s, c in top
            ),
            drift_share=0.0,
            prediction=None,
            reasons=(),
        )
        with tempfile.TemporaryDirectory() as tmp:
            t1 = time.perf_counter()
            write_evidently(ref, cur, window, Path(tmp), config=config, title=f"drift universe of {n}")
            report_s = time.perf_counter() - t1
        baseline_s = _evidently_preset(frames["SYM000"], config)
    total = score_s + report_s
    return {
        "symbols": n,
        "columns_scored": sum(len(v.latest.features) for v in verdicts.values()),
        "alarms": sum(v.drift for v in verdicts.values()),
        "featurise_s": round(featurise_s, 2),
        "score_s": round(score_s, 2),
        "report_s": round(report_s, 2),
        "drift_report_s": round(total, 2),
        "baseline_evidently_preset_1_symbol_s": round(baseline_s, 2),
        "ratio_universe_over_baseline": round(total / baseline_s, 2),
        "load_avg_1m": os.getloadavg()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }


def _z(frame: pd.DataFrame, column: str, rows: slice) -> Any:
    ref = frame[column].iloc[: 7 * DAY]
    return ((frame[column].iloc[rows] - ref.mean()) / ref.std()).to_numpy()


def _evidently_preset(frame: pd.DataFrame, config: Any) -> float:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cols = watched_features(list(frame.columns), config)
    definition = DataDefinition(numerical_columns=cols)
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset(method=config.num_method, threshold=config.num_threshold)]).run(
        Dataset.from_pandas(frame[cols].iloc[7 * DAY :].reset_index(drop=True), data_definition=definition),
        Dataset.from_pandas(frame[cols].iloc[: 7 * DAY].reset_index(drop=True), data_definition=definition),
    )
    with tempfile.TemporaryDirectory() as tmp:
        snapshot.save_html(str(Path(tmp) / "r.html"))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.symbols)
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
