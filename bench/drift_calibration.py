"""False-alarm and detection rates of the drift alarm (params.yaml ``monitor``) on the shipped BTC data.

* stationary: ``--pairs`` random calm triples (3 consecutive UTC days whose realised volatility
  stays within a factor ``--calm-ratio``, max/min), reference the first day, current the next two
  (two windows: the sustained rule applies), from the 2025 and 2026 1m data; and the halves of
  every calm 4-day stretch (two days against the next two). Reports the share that alarm.
* regime: the 2026 months against the 2025 months and back (reference: one dataset, capped;
  current: the other in two halves as the two windows: each half's reasons and regime z), and
  ``--pairs`` random weeks of one year against two consecutive days of the other (both ways): the
  share that alarm, and the share whose two days both differ from the week's realised volatility by
  over ``--calm-ratio`` (the pairs a volatility-based alarm can tell apart at all: the two years'
  daily volatilities overlap, so many random pairs are not different).

    PYTHONPATH=. .venv/bin/python bench/drift_calibration.py --pairs 50 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path[:] = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]

from features.build import compute_features  # noqa: E402
from features.config import FeaturesConfig  # noqa: E402
from features.sources.binance import dump_files, read_dumps  # noqa: E402
from features.sources.files import read_file  # noqa: E402
from flows.params import load_params  # noqa: E402
from training.monitor import MonitorConfig, judge  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FEATHER_2025 = "ohlcv/binance_BTC_USDT-1m_2025-05-20_2025-08-18.feather"


def real_features(source: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features of the 2025 (freqtrade feather: no taker volume, so no OFI) and 2026 BTCUSDT 1m bars."""
    b26 = read_dumps(dump_files(source / "binance-spot-1m"))
    b25 = read_file(
        source / FEATHER_2025, preset="freqtrade", symbol="BTCUSDT", venue="binance", interval="1m"
    )
    f25 = compute_features(b25, FeaturesConfig()).dropna(axis=1, how="all").dropna()
    return f25, compute_features(b26, FeaturesConfig()).dropna()


def days(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """Complete UTC days (1440 rows), in order."""
    key = pd.DatetimeIndex(frame.index).floor("D")
    return [frame[key == d] for d in np.unique(key) if (key == d).sum() == 1440]


def calm_runs(day_list: list[pd.DataFrame], length: int, ratio: float) -> list[int]:
    """Starts of ``length`` consecutive days whose daily realised volatility max/min <= ``ratio``."""
    vol = np.array([d["ret_lag_1"].std() for d in day_list])
    return [
        i
        for i in range(len(vol) - length + 1)
        if vol[i : i + length].max() / vol[i : i + length].min() <= ratio
    ]


def alarms(reference: pd.DataFrame, current: pd.DataFrame, config: MonitorConfig, **kw: Any) -> bool:
    return judge(reference, current, series="calibration", config=config, **kw).drift


def vol_apart(reference: pd.DataFrame, current_days: list[pd.DataFrame], ratio: float) -> bool:
    """Every current day's realised volatility differs from the reference's by over ``ratio``."""
    ref = reference["ret_lag_1"].std()
    return all(abs(np.log(d["ret_lag_1"].std() / ref)) > np.log(ratio) for d in current_days)


def run(pairs: int, calm_ratio: float, seed: int) -> dict[str, Any]:
    source = Path(os.environ.get("MMOPS_SOURCE_DATA") or REPO.parent / "shared" / "data")
    config = load_params(REPO / "params.yaml").monitor
    f25, f26 = real_features(source)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    triples, halves = [], []
    for frame in (f25, f26):
        d = days(frame)
        triples += [(d, i) for i in calm_runs(d, 3, calm_ratio)]
        halves += [(d, i) for i in calm_runs(d, 4, calm_ratio)]
    chosen = rng.choice(len(triples), size=min(pairs, len(triples)), replace=False)
    adjacent = [
        alarms(
            triples[k][0][triples[k][1]],
            pd.concat(triples[k][0][triples[k][1] + 1 : triples[k][1] + 3]),
            config,
        )
        for k in chosen
    ]
    half = [alarms(pd.concat(d[i : i + 2]), pd.concat(d[i + 2 : i + 4]), config) for d, i in halves]
    regime = {}
    for name, ref, cur in (("2026_vs_2025", f26, f25), ("2025_vs_2026", f25, f26)):
        size = len(cur) // 2
        verdict = judge(
            ref, cur, series="calibration", config=config.model_copy(update={"window_bars": size})
        )
        regime[name] = {
            "alarm": verdict.drift,
            "reasons": [list(w.reasons) for w in verdict.windows],
            "regime_z": [round(w.regime.z, 2) if w.regime else None for w in verdict.windows],
            "families": [{f.family: round(f.score, 3) for f in w.families} for w in verdict.windows],
            "drift_share": [round(w.drift_share, 3) for w in verdict.windows],
        }
    weekly, apart = [], []
    for ref_frame, cur_frame in ((f26, f25), (f25, f26)):
        cur_days = days(cur_frame)
        for _ in range(pairs // 2):
            start = int(rng.integers(0, len(ref_frame) - 10_080))
            j = int(rng.integers(0, len(cur_days) - 1))
            week = ref_frame.iloc[start : start + 10_080]
            weekly.append(alarms(week, pd.concat(cur_days[j : j + 2]), config))
            apart.append(vol_apart(week, cur_days[j : j + 2], calm_ratio))
    return {
        "monitor": config.model_dump(mode="json"),
        "calm_ratio": calm_ratio,
        "calm_adjacent_day_triples": {
            "n": len(adjacent),
            "available": len(triples),
            "false_alarm_rate": float(np.mean(adjacent)),
        },
        "calm_halves": {"n": len(half), "false_alarm_rate": float(np.mean(half)) if half else None},
        "regime_full_datasets": regime,
        "regime_week_vs_two_days": {
            "n": len(weekly),
            "alarm_rate": float(np.mean(weekly)),
            "vol_apart_share": float(np.mean(apart)),
            "alarm_rate_when_vol_apart": float(np.mean([a for a, b in zip(weekly, apart, strict=True) if b]))
            if any(apart)
            else None,
        },
        "seconds": round(time.perf_counter() - started, 1),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--calm-ratio", type=float, default=1.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.pairs, args.calm_ratio, args.seed)
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
