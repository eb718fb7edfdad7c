"""The supervised dataset of one series: feature matrix, labels and the bars they come from.

Features are computed by :mod:`features.build` (each row from data at or before its bar's close);
labels look ``label_horizon`` bars ahead and are used only as targets. Warm-up rows (any feature
undefined) are dropped; rows whose label is not known yet (the last ``label_horizon``) are kept,
since a backtest can still trade them, and are skipped wherever a label is needed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from features.build import compute_features, make_labels
from features.config import FeaturesConfig
from features.errors import DataError
from training.config import Task


class RowPredictor(Protocol):
    """What can predict rows in time order (a fitted SignalModel, or the ONNX Predictor)."""

    @property
    def lookback(self) -> int: ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Dataset:
    """Row-aligned bars, features (``X``: float32, n x f) and forward log returns of one series."""

    venue: str
    symbol: str
    interval: str
    label_horizon: int
    bars: pd.DataFrame = field(repr=False)
    X: np.ndarray = field(repr=False)
    fwd_return: np.ndarray = field(repr=False)
    feature_names: tuple[str, ...] = ()

    @property
    def index(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.bars["timestamp"])

    def __len__(self) -> int:
        return len(self.bars)

    def target(self, task: Task) -> np.ndarray:
        """Regressor: the forward log return; classifier: 1.0 when it is > 0 (NaN when unknown)."""
        if task == "regressor":
            return self.fwd_return
        return np.where(np.isnan(self.fwd_return), np.nan, (self.fwd_return > 0).astype(np.float64))

    def training_rows(self, rows: slice, task: Task) -> tuple[np.ndarray, np.ndarray]:
        """``X`` and target of ``rows`` with unlabelled rows removed."""
        y = self.target(task)[rows]
        keep = np.isfinite(y)
        return self.X[rows][keep], y[keep]

    def bars_hash(self) -> str:
        """Content hash of the exact bars used (lineage)."""
        digest = pd.util.hash_pandas_object(self.bars, index=False).to_numpy()
        return hashlib.sha256(digest.tobytes()).hexdigest()[:16]


def build_dataset(
    bars: pd.DataFrame,
    config: FeaturesConfig,
    *,
    label_horizon: int,
    features: pd.DataFrame | None = None,
) -> Dataset:
    """Features and labels of one series of canonical bars.

    Args:
        features: the series' feature frame as the features stage wrote it
            (:func:`features.feature_files.read_features`, one row per bar); None computes it
            from ``bars``. Either way ``X`` is the same float32 matrix, bit for bit.

    Raises:
        DataError: no bars, several series, no row with every feature defined, or a feature
            frame whose rows are not the bars' (the message says how to rebuild it).
    """
    if features is None:
        features = compute_features(bars, config)
    else:
        _check_rows(features, bars)
    if bars["taker_buy_volume"].isna().all():
        # the source has no taker-buy volume (e.g. Kraken's OHLCVT files), so the order-flow
        # imbalance is undefined on every bar: drop those columns rather than every row
        features = features.loc[:, ~features.columns.str.startswith("ofi_")]
    labels = make_labels(bars, horizon=label_horizon)
    usable = features.notna().all(axis=1).to_numpy()
    if not usable.any():
        raise DataError(
            f"{len(bars)} bars are not enough to warm up the feature windows "
            f"(longest: {max(config.for_interval(str(bars['interval'].iloc[0])).resolved_windows)} bars)"
        )
    first = int(np.argmax(usable))
    if not usable[first:].all():
        bad = features.index[first:][~usable[first:]][0]
        raise DataError(f"features undefined at {bad} after the warm-up; check the bars around it")
    kept = bars.iloc[first:].reset_index(drop=True)
    return Dataset(
        venue=str(bars["venue"].iloc[0]),
        symbol=str(bars["symbol"].iloc[0]),
        interval=str(bars["interval"].iloc[0]),
        label_horizon=label_horizon,
        bars=kept,
        X=features.to_numpy(np.float32)[first:],
        fwd_return=labels["fwd_return"].to_numpy(np.float64)[first:],
        feature_names=tuple(features.columns),
    )


def _check_rows(features: pd.DataFrame, bars: pd.DataFrame) -> None:
    stamps = pd.DatetimeIndex(bars["timestamp"])
    if len(features) != len(stamps) or not features.index.equals(stamps):
        have = (
            f"{len(features)} rows {features.index[0]} .. {features.index[-1]}" if len(features) else "0 rows"
        )
        want = f"{len(stamps)} bars {stamps[0]} .. {stamps[-1]}" if len(stamps) else "0 bars"
        raise DataError(
            f"the feature file has {have} but the stored series has {want}: it was built from other "
            "bars (or with --start/--end); rerun `mmops features` for this series"
        )


def predict_rows(model: RowPredictor, X: np.ndarray, rows: slice) -> np.ndarray:
    """One prediction per row of ``rows``, prepending the ``lookback - 1`` rows before the window
    as context (they precede it in time, so nothing leaks). Rows with too little history: NaN."""
    start = max(0, rows.start - model.lookback + 1)
    out = np.asarray(model.predict(X[start : rows.stop]), dtype=np.float64)
    return out[rows.start - start :]
