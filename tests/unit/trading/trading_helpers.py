"""Test helpers for the trading tests: where the shared data lives, and small bar frames."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[3]


def source_data_dir() -> Path:
    """``$MMOPS_SOURCE_DATA`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("MMOPS_SOURCE_DATA", REPO.parent / "shared" / "data"))


def read_binance_klines(path: Path) -> pd.DataFrame:
    """A Binance 1m kline zip (no header, 12 columns, us or ms open times) as canonical bars."""
    raw = pd.read_csv(path, header=None)
    ts = raw[0].astype("int64")
    unit = "us" if ts.iloc[0] > 10**14 else "ms"
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(ts, unit=unit, utc=True).astype("datetime64[ns, UTC]"),
            "symbol": "BTCUSDT",
            "venue": "binance",
            "interval": "1m",
            "open": raw[1].astype(float),
            "high": raw[2].astype(float),
            "low": raw[3].astype(float),
            "close": raw[4].astype(float),
            "volume": raw[5].astype(float),
            "quote_volume": raw[7].astype(float),
            "trades": raw[8].astype("Int64"),
            "taker_buy_volume": raw[9].astype(float),
        }
    )


def make_bars(
    *,
    close: list[float],
    low: list[float] | None = None,
    high: list[float] | None = None,
    volume: float = 1.0,
    taker_buy: float | None = None,
) -> pd.DataFrame:
    """Hand-made 1m bars: open = previous close (first: its own close)."""
    n = len(close)
    c = np.asarray(close, dtype=float)
    o = np.concatenate([[c[0]], c[:-1]])
    lo = np.minimum(np.asarray(low if low is not None else c, dtype=float), np.minimum(o, c))
    hi = np.maximum(np.asarray(high if high is not None else c, dtype=float), np.maximum(o, c))
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2026-03-01", periods=n, freq="1min", tz="UTC"),
            "symbol": "BTCUSDT",
            "venue": "binance",
            "interval": "1m",
            "open": o,
            "high": hi,
            "low": lo,
            "close": c,
            "volume": volume,
            "quote_volume": volume * c,
            "trades": pd.array([10] * n, dtype="Int64"),
            "taker_buy_volume": np.nan if taker_buy is None else taker_buy,
        }
    )
