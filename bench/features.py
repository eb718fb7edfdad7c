"""Feature throughput: the compiled kernel vs a straightforward pandas rolling implementation.

Chains the shipped BTCUSDT 1m months end to end (each copy's prices rescaled to start at the
previous copy's last close, so every return is real) to >= 1M rows, then times both on the same
bars in the same run. Prints one JSON line.

    .venv/bin/python bench/features.py --rows 1000000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

# This file is named like the `features` package; run as a script, its own folder would shadow it.
sys.path[:] = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]

from features.build import FeatureEngine  # noqa: E402
from features.config import FeaturesConfig  # noqa: E402
from features.sources.binance import dump_files, read_dumps  # noqa: E402


def chained_bars(rows: int) -> pd.DataFrame:
    source = Path(
        os.environ.get("MMOPS_SOURCE_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    base = read_dumps(dump_files(source / "binance-spot-1m"))
    copies, scale = [], 1.0
    while sum(len(c) for c in copies) < rows:
        copy = base.copy()
        for column in ("open", "high", "low", "close"):
            copy[column] = copy[column] * scale
        copies.append(copy)
        scale = copy["close"].iloc[-1] / base["open"].iloc[0]
    bars = pd.concat(copies, ignore_index=True).iloc[:rows]
    bars["timestamp"] = pd.date_range("2020-01-01", periods=len(bars), freq="1min", tz="UTC")
    return bars


def pandas_features(bars: pd.DataFrame, windows: tuple[int, ...], k: float = 2.0) -> pd.DataFrame:
    """The same windowed set, written the obvious way with pandas rolling windows."""
    h, lo, c, v, tbv = (bars[x] for x in ("high", "low", "close", "volume", "taker_buy_volume"))
    tp = (h + lo + c) / 3
    r1 = np.log(c).diff()
    tr = pd.concat([h - lo, (h - c.shift()).abs(), (lo - c.shift()).abs()], axis=1).max(axis=1)
    clv = ((c - lo) - (h - c)) / (h - lo).replace(0, np.nan)
    up = (tp * v).where(tp > tp.shift(), 0.0)
    down = (tp * v).where(tp < tp.shift(), 0.0)
    lv = np.log1p(v)
    out = {}
    for w in windows:
        vol = v.rolling(w).sum()
        mean, sd = c.rolling(w).mean(), c.rolling(w).std(ddof=0)
        center, atr = tp.rolling(w).mean(), tr.rolling(w).mean()
        pos, neg = up.rolling(w).sum(), down.rolling(w).sum()
        out[f"ret_{w}"] = np.log(c / c.shift(w))
        out[f"rv_{w}"] = np.sqrt((r1**2).rolling(w).mean())
        out[f"ad_{w}"] = (clv.fillna(0) * v).rolling(w).sum() / vol
        out[f"mfi_{w}"] = 100 * pos / (pos + neg)
        out[f"bb_pctb_{w}"] = (c - (mean - k * sd)) / (2 * k * sd)
        out[f"bb_width_{w}"] = 2 * k * sd / mean
        out[f"kc_width_{w}"] = 2 * k * atr / center
        out[f"kc_pos_{w}"] = (c - (center - k * atr)) / (2 * k * atr)
        out[f"atr_{w}"] = atr / c
        out[f"ofi_{w}"] = (2 * tbv - v).rolling(w).sum() / vol
        out[f"vwap_dev_{w}"] = np.log(c / ((tp * v).rolling(w).sum() / vol))
        out[f"vol_z_{w}"] = (lv - lv.rolling(w).mean()) / lv.rolling(w).std(ddof=0)
    out["ret_lag_1"] = r1
    out["bar_range"] = np.log(h / lo)
    return pd.DataFrame(out)


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
    args = parser.parse_args()
    bars = chained_bars(args.rows)
    config = FeaturesConfig().for_interval("1m")
    FeatureEngine(config).update(bars.iloc[:5000])  # compile (or load the cache) outside the timing
    kernel_s = best_of(args.repeats, lambda: FeatureEngine(config).update(bars))
    pandas_s = best_of(args.repeats, lambda: pandas_features(bars, config.resolved_windows))
    result = {
        "rows": len(bars),
        "features": len(FeatureEngine(config).names),
        "rows_per_s": round(len(bars) / kernel_s),
        "pandas_rows_per_s": round(len(bars) / pandas_s),
        "speedup_vs_pandas": round(pandas_s / kernel_s, 2),
        "note": "pandas baseline omits PSAR and the time features (the kernel computes them too)",
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
