"""Online features: a tick's bars for all symbols in one call keep each symbol's model window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import FeatureEngine
from features.config import FeaturesConfig
from trading.worker.online import OnlineFeatures

CONFIG = FeaturesConfig().for_interval("1m")
COLUMNS = ("open", "high", "low", "close", "volume", "taker_buy_volume")


@pytest.mark.parametrize("rows", [1, 4])
def test_each_tick_moves_the_windows_of_the_symbols_with_a_bar_and_no_other(
    btc_march: pd.DataFrame, rows: int
) -> None:
    names = ["ret_15", "rv_60", "bar_range"]
    online = OnlineFeatures(CONFIG, 3, rows=rows, names=names)
    bars = [btc_march.iloc[5000 * s : 5000 * s + 100].reset_index(drop=True) for s in range(3)]
    fed = np.array([70, 1, 0])  # warm, short of any window, none
    for s in (0, 1):
        online.feed(s, bars[s].iloc[: fed[s]])
    for has in ([0, 1], [1], [], [0, 2], [0, 1, 2]):
        at = np.array(has, dtype=np.int64)
        tick = [bars[s].iloc[fed[s]] for s in at]
        ts = np.array([b["timestamp"].value for b in tick], dtype=np.int64)
        values = (np.array([b[c] for b in tick], dtype=np.float64) for c in COLUMNS)
        out = online.feed_tick(at, ts, *values)
        assert out.shape == (len(at), len(online.names))
        fed[at] += 1
    engine_names = FeatureEngine(CONFIG).names
    columns = [engine_names.index(n) for n in names]
    for s in range(3):
        want = np.full((rows, len(names)), np.nan)
        full = FeatureEngine(CONFIG).update(bars[s].iloc[: fed[s]]).to_numpy()[-rows:, columns]
        if len(full):
            want[-len(full) :] = full
        np.testing.assert_array_equal(online.windows(np.array([s]))[0], want)
    np.testing.assert_array_equal(online.seen, fed)
    assert online.ready().tolist() == [True, False, False]  # the others' windows are not warm
