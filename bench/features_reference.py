"""The plain-pandas reference of bench/features.py: pandas rolling windows, nothing of mmops.

Run as a process by ``bench/features.py --command`` (``python bench/features_reference.py BARS
OUT``): read the bars from one Parquet file, compute 41 columns (the first 8 windowed features x
the 5 minute windows + the lag-1 return), write them with ``DataFrame.to_parquet`` defaults.
It imports only pandas and numpy, so its start-up is what a plain script pays.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

WINDOWS = (5, 15, 60, 240, 1440)  # the minute preset (features.config.WINDOW_PRESETS)
REFERENCE_PER_WINDOW = ("ret", "rv", "ad", "mfi", "bb_pctb", "bb_width", "kc_width", "kc_pos")


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
    out: dict[str, pd.Series | np.ndarray] = {}  # np.log of a Series is typed as an ndarray
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


def reference_features(bars: pd.DataFrame, windows: tuple[int, ...]) -> pd.DataFrame:
    """The reference's 41 columns (a subset of :func:`pandas_features`, computed the same way)."""
    keep = [f"{name}_{w}" for w in windows for name in REFERENCE_PER_WINDOW] + ["ret_lag_1"]
    return pandas_features(bars, windows)[keep]


def main(bars_file: str, out: str) -> None:
    """Read the bars, compute the 41 columns, write them (pandas defaults: float64, snappy)."""
    reference_features(pd.read_parquet(bars_file), WINDOWS).to_parquet(out)


if __name__ == "__main__":
    main(*sys.argv[1:3])
