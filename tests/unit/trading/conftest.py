"""Fixtures of the trading tests (shared data is skipped with a reason when absent)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from trading_helpers import read_binance_klines, source_data_dir


@pytest.fixture(scope="session")
def btc_march() -> pd.DataFrame:
    path = source_data_dir() / "binance-spot-1m" / "BTCUSDT-1m-2026-03.zip"
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (set MMOPS_SOURCE_DATA)")
    return read_binance_klines(path)


@pytest.fixture(scope="session")
def ticks_dir() -> Path:
    path = source_data_dir() / "ticks"
    if not path.exists():
        pytest.skip(f"tick captures not found at {path} (set MMOPS_SOURCE_DATA)")
    return path
