"""The features stage's files: float32 features that train exactly like freshly computed ones,
float64 labels, and a clear refusal of a file made from other bars, params or series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.build import compute_features
from features.config import FeaturesConfig
from features.errors import DataError
from features.feature_files import labels_path, read_features
from features.pipeline import build_features
from features.store import BarStore
from training.config import SplitConfig
from training.pipeline import series_dataset

SERIES = "binance:BTCUSDT:1m"


@pytest.fixture(scope="module")
def bars(btc_bars: pd.DataFrame) -> pd.DataFrame:
    return btc_bars.iloc[:6000].reset_index(drop=True)  # four days: every window warms up


def _written(bars: pd.DataFrame, root: Path, config: FeaturesConfig) -> Path:
    BarStore(root / "bars").merge(bars)
    result = build_features(
        root / "bars", features_root=root / "features", config=config, symbol="BTCUSDT", interval="1m"
    )
    return Path(result["features"])


def test_the_file_holds_the_computed_features_rounded_once_to_float32(
    bars: pd.DataFrame, tmp_path: Path
) -> None:
    config = FeaturesConfig()
    path = _written(bars, tmp_path, config)
    frame = read_features(path, config=config, series=SERIES)
    computed = compute_features(bars, config)
    assert frame.index.equals(computed.index)
    assert list(frame.columns) == list(computed.columns)
    assert set(frame.dtypes) == {np.dtype(np.float32)}
    # bit for bit, NaN warm-up rows included
    np.testing.assert_array_equal(frame.to_numpy(), computed.to_numpy(np.float32))
    labels = pq.read_table(labels_path(path)).schema
    assert str(labels.field("fwd_return").type) == "double"


@pytest.mark.parametrize("taker_volume", [True, False])
def test_a_dataset_from_the_file_is_bit_identical_to_one_from_the_bars(
    bars: pd.DataFrame, tmp_path: Path, taker_volume: bool
) -> None:
    if not taker_volume:  # a source without taker-buy volume: the ofi columns are dropped either way
        bars = bars.assign(taker_buy_volume=np.nan)
    config, split = FeaturesConfig(), SplitConfig()
    path = _written(bars, tmp_path, config)
    from_file = series_dataset(bars, features=config, split=split, features_file=path)
    fresh = series_dataset(bars, features=config, split=split)
    assert from_file.feature_names == fresh.feature_names
    assert any(n.startswith("ofi_") for n in fresh.feature_names) == taker_volume
    assert from_file.X.dtype == fresh.X.dtype == np.float32
    np.testing.assert_array_equal(from_file.X, fresh.X)
    np.testing.assert_array_equal(from_file.fwd_return, fresh.fwd_return)
    pd.testing.assert_frame_equal(from_file.bars, fresh.bars)


def test_a_file_from_other_params_series_or_bars_is_refused(bars: pd.DataFrame, tmp_path: Path) -> None:
    config = FeaturesConfig()
    path = _written(bars, tmp_path, config)
    with pytest.raises(DataError, match=r"other features params \(bollinger_k: file 2.0, params 2.5\)"):
        read_features(path, config=config.model_copy(update={"bollinger_k": 2.5}), series=SERIES)
    with pytest.raises(DataError, match="features of binance:BTCUSDT:1m, not of binance:ETHUSDT:1m"):
        read_features(path, config=config, series="binance:ETHUSDT:1m")
    more = pd.concat([bars, bars.tail(1).assign(timestamp=bars["timestamp"].iloc[-1] + pd.Timedelta("1min"))])
    with pytest.raises(DataError, match=r"6000 rows .* 6001 bars .*rerun `mmops features`"):
        series_dataset(more, features=config, split=SplitConfig(), features_file=path)
    with pytest.raises(DataError, match="cannot read the feature file"):
        read_features(tmp_path / "missing.parquet", config=config, series=SERIES)
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"x": [1.0]}).to_parquet(plain)
    with pytest.raises(DataError, match="not a feature file written by `mmops features`"):
        read_features(plain, config=config, series=SERIES)
