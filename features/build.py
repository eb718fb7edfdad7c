"""Rolling-window features and labels, batch or one bar at a time.

Feature names are ``<feature>_<window>`` for the windowed set (windows counted in bars), plus
``ret_lag_<n>`` and the per-bar ``bar_range``, ``psar_dist`` and cyclical time features. Units:

- ``ret_w``: ln(close_t / close_t-w); ``ret_lag_n`` likewise.
- ``rv_w``: realized volatility, sqrt(mean of squared 1-bar log returns), per bar (not annualised).
- ``ad_w``: Accumulation/Distribution over the window, normalised by volume (Chaikin money
  flow): sum(CLV * volume) / sum(volume), in [-1, 1]. The classic A/D line is a cumulative sum
  from the first bar, so its level depends on where the data starts; the windowed form does not.
- ``mfi_w``: Money Flow Index, 0..100. ``bb_pctb_w``, ``bb_width_w``: Bollinger %b and
  bandwidth (population std, ``bollinger_k`` deviations). ``kc_width_w``, ``kc_pos_w``: Keltner
  channel around the typical-price mean, ``keltner_k`` ATRs each side: width over the center and
  the close's position in the channel (0 lower band, 1 upper). ``atr_w``: average true range over
  the close. ``ofi_w``: order-flow imbalance (taker buy - taker sell) / volume in [-1, 1]; NaN
  when the source has no taker-buy volume. ``vwap_dev_w``: ln(close / VWAP of typical price).
  ``vol_z_w``: z-score of ln(1 + volume) in its window.
- ``bar_range``: ln(high / low). ``psar_dist``: (close - SAR) / close.
- ``tod_*``/``dow_*``: time of day and of week on the unit circle (UTC).

Labels live in a separate frame (:func:`make_labels`) and never among the features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import kernels
from features.config import FeaturesConfig
from features.errors import DataError
from features.schema import TIMESTAMP


def feature_names(config: FeaturesConfig) -> list[str]:
    names = [f"{name}_{w}" for w in config.resolved_windows for name in kernels.WINDOW_FEATURES]
    names += [f"ret_lag_{n}" for n in config.return_lags]
    return names + list(kernels.BAR_FEATURES)


@dataclass
class FeatureEngine:
    """Computes features for one bar series, carrying state so it can be fed incrementally.

    ``update(bars)`` accepts any number of new bars (all history at once, or one bar as it
    closes) and returns their feature rows; results are identical either way. Bars must come in
    strictly increasing time order and never repeat.
    """

    config: FeaturesConfig

    def __post_init__(self) -> None:
        self._windows = np.asarray(self.config.resolved_windows, dtype=np.int64)
        self._lags = np.asarray(self.config.return_lags, dtype=np.int64)
        capacity = int(max(self._windows.max(), self._lags.max())) + 1
        self._params = np.array(
            [self.config.bollinger_k, self.config.keltner_k, self.config.psar_step, self.config.psar_max]
        )
        self._buf = np.zeros((capacity, kernels.N_QUANTITIES))
        self._sums = np.zeros((len(self._windows), kernels.N_QUANTITIES))
        self._istate = np.zeros(kernels.N_ISTATE, dtype=np.int64)
        self._fstate = np.zeros(kernels.N_FSTATE)
        self._last_ts: int | None = None
        self.names = feature_names(self.config)

    @property
    def bars_seen(self) -> int:
        return int(self._istate[kernels.I_COUNT])

    @property
    def warmup_bars(self) -> int:
        """Bars before every feature is defined."""
        return int(max(self._windows.max(), self._lags.max())) + 1

    def update(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Feature rows for ``bars`` (canonical schema), indexed by timestamp."""
        col = {c: bars[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")}
        out = self.update_arrays(
            bars[TIMESTAMP].to_numpy(dtype="datetime64[ns]").astype(np.int64),
            col["open"],
            col["high"],
            col["low"],
            col["close"],
            col["volume"],
            bars["taker_buy_volume"].to_numpy(dtype=np.float64, na_value=np.nan),
        )
        index = pd.DatetimeIndex(bars[TIMESTAMP], name=TIMESTAMP)
        return pd.DataFrame(out, index=index, columns=self.names)

    def update_arrays(
        self,
        ts: np.ndarray,
        open_: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
        taker_buy_volume: np.ndarray,
    ) -> np.ndarray:
        """:meth:`update` on plain arrays (the worker's path: no DataFrame per bar).

        Args:
            ts: bar open times, int64 ns since the epoch; the rest float64 per bar (NaN taker
                volume: unknown).

        Returns:
            ``(len(ts), len(self.names))`` float64 feature rows.
        """
        ts = np.ascontiguousarray(ts, dtype=np.int64)
        # one bar (the worker's per-tick call) has no order to check within itself: skip np.diff
        unordered = len(ts) > 1 and bool(np.any(np.diff(ts) <= 0))
        if len(ts) and (unordered or (self._last_ts is not None and ts[0] <= self._last_ts)):
            raise DataError("features need bars in strictly increasing time order, each bar once")
        out = np.empty((len(ts), len(self.names)))
        run: Callable[..., None] = kernels.run_kernel  # numba's dispatcher is untyped
        run(
            ts,
            *(
                np.ascontiguousarray(a, dtype=np.float64)
                for a in (open_, high, low, close, volume, taker_buy_volume)
            ),
            self._windows,
            self._lags,
            self._params,
            self._buf,
            self._sums,
            self._istate,
            self._fstate,
            out,
        )
        if len(ts):
            self._last_ts = int(ts[-1])
        return out


def compute_features(
    bars: pd.DataFrame,
    config: FeaturesConfig,
    *,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Features of one series. Bars after ``end`` are never read; ``start`` only trims the output
    (history before it still warms the windows up).

    Raises:
        DataError: empty input, several series, or bars out of order.
    """
    if bars.empty:
        raise DataError("no bars to compute features from")
    if bars[["venue", "symbol", "interval"]].drop_duplicates().shape[0] != 1:
        raise DataError("compute_features takes one series (venue, symbol, interval) at a time")
    if end is not None:
        bars = bars.loc[bars[TIMESTAMP] <= end]
    frame = FeatureEngine(config.for_interval(str(bars["interval"].iloc[0]))).update(bars)
    return frame.loc[frame.index >= start] if start is not None else frame


def make_labels(bars: pd.DataFrame, *, horizon: int) -> pd.DataFrame:
    """Forward labels: ``fwd_return`` = ln(close_t+h / close_t) and ``direction`` = 1 if it is > 0.

    The last ``horizon`` rows have no label (NaN). These look into the future by definition:
    they are targets, kept apart from the features.
    """
    close = bars["close"].to_numpy(dtype=np.float64)
    fwd = np.full(len(close), np.nan)
    if len(close) > horizon:
        fwd[:-horizon] = np.log(close[horizon:] / close[:-horizon])
    direction = np.where(np.isnan(fwd), np.nan, (fwd > 0).astype(np.float64))
    index = pd.DatetimeIndex(bars[TIMESTAMP], name=TIMESTAMP)
    return pd.DataFrame({"fwd_return": fwd, "direction": direction}, index=index)
