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


_NO_BAR = np.iinfo(np.int64).min  # last_ts of a series that has seen no bar yet
_ORDER = "features need bars in strictly increasing time order, each bar once"


class FeatureEngines:
    """The feature state of ``n`` bar series, stacked row by row, so that one compiled call
    advances every series that has a new bar: the live worker's tick, one bar for each of many
    symbols, without a Python round trip per symbol.

    Row ``s`` holds exactly the state a :class:`FeatureEngine` carries; ``engines[s]`` is a
    :class:`FeatureEngine` on that row (to feed a series many bars at once, e.g. its warm-up
    history), and :meth:`update` feeds one bar to each of several rows. Either way every bar goes
    through the same kernel step, so the rows equal :func:`compute_features` bit for bit.

    Args:
        config: the features section, resolved for the interval.
        n: series (rows).
    """

    def __init__(self, config: FeaturesConfig, n: int) -> None:
        self.config = config
        self.names = feature_names(config)
        self.windows = np.asarray(config.resolved_windows, dtype=np.int64)
        self.lags = np.asarray(config.return_lags, dtype=np.int64)
        self.params = np.array([config.bollinger_k, config.keltner_k, config.psar_step, config.psar_max])
        capacity = int(max(self.windows.max(), self.lags.max())) + 1
        self.buf = np.zeros((n, capacity, kernels.N_QUANTITIES))
        self.sums = np.zeros((n, len(self.windows), kernels.N_QUANTITIES))
        self.istate = np.zeros((n, kernels.N_ISTATE), dtype=np.int64)
        self.fstate = np.zeros((n, kernels.N_FSTATE))
        self.last_ts = np.full(n, _NO_BAR, dtype=np.int64)  # each series' last bar open, ns

    def __len__(self) -> int:
        return len(self.last_ts)

    def __getitem__(self, s: int) -> FeatureEngine:
        """Series ``s`` as a one-series engine: feeding it updates row ``s`` in place."""
        if not 0 <= s < len(self):
            raise IndexError(f"series row {s}: there are {len(self)}")
        return FeatureEngine(self.config, stack=self, row=s)

    def update(
        self,
        rows: np.ndarray,
        ts: int | np.ndarray,
        open_: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
        taker_buy_volume: np.ndarray,
    ) -> np.ndarray:
        """One new bar for each series in ``rows``, in one compiled call.

        Args:
            rows: the series rows, strictly increasing (each series at most once).
            ts: bar open times, int64 ns since the epoch: one per row, or one for all.
            open_, high, low, close, volume, taker_buy_volume: float64, one per row (NaN taker
                volume: unknown).

        Returns:
            ``(len(rows), len(self.names))`` float64 feature rows, row ``i`` for series ``rows[i]``.

        Raises:
            DataError: a bar not after its series' last bar (nothing is updated then).
            ValueError: rows out of range or not strictly increasing, or arrays of other lengths.
        """
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        n = len(rows)
        ts = np.ascontiguousarray(np.broadcast_to(np.asarray(ts, dtype=np.int64), (n,)))
        bars = [
            np.ascontiguousarray(a, dtype=np.float64)
            for a in (open_, high, low, close, volume, taker_buy_volume)
        ]
        if n and (rows[0] < 0 or rows[-1] >= len(self) or bool(np.any(np.diff(rows) <= 0))):
            raise ValueError(f"series rows must be strictly increasing, in 0..{len(self) - 1}: {rows}")
        if any(a.shape != (n,) for a in bars):
            raise ValueError(f"one bar per series row: {n} rows, bar arrays of {[a.shape for a in bars]}")
        late = np.flatnonzero(ts <= self.last_ts[rows])
        if len(late):
            i = int(late[0])
            got, last = (pd.Timestamp(int(t), tz="UTC") for t in (ts[i], self.last_ts[rows[i]]))
            raise DataError(
                f"{_ORDER}: series row {rows[i]} got a bar opening {got}, not after its last one "
                f"({last}); {len(late)} such series in this call, none updated"
            )
        out = np.empty((n, len(self.names)))
        run: Callable[..., None] = kernels.run_kernel_rows  # numba's dispatcher is untyped
        run(
            rows,
            ts,
            *bars,
            self.windows,
            self.lags,
            self.params,
            self.buf,
            self.sums,
            self.istate,
            self.fstate,
            out,
        )
        self.last_ts[rows] = ts
        return out


class FeatureEngine:
    """Computes features for one bar series, carrying state so it can be fed incrementally.

    ``update(bars)`` accepts any number of new bars (all history at once, or one bar as it
    closes) and returns their feature rows; results are identical either way. Bars must come in
    strictly increasing time order and never repeat.

    Args:
        config: the features section, resolved for the interval.
        stack: whose row ``row`` holds this series' state (see :class:`FeatureEngines`); None:
            a state of its own.
        row: the series' row in ``stack``.
    """

    def __init__(self, config: FeaturesConfig, *, stack: FeatureEngines | None = None, row: int = 0) -> None:
        self.config = config
        self._stack = stack if stack is not None else FeatureEngines(config, 1)
        self._row = row
        self.names = self._stack.names

    @property
    def bars_seen(self) -> int:
        return int(self._stack.istate[self._row, kernels.I_COUNT])

    @property
    def warmup_bars(self) -> int:
        """Bars before every feature is defined (the length of the state's ring buffer)."""
        return int(self._stack.buf.shape[1])

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
        """:meth:`update` on plain arrays (no DataFrame).

        Args:
            ts: bar open times, int64 ns since the epoch; the rest float64 per bar (NaN taker
                volume: unknown).

        Returns:
            ``(len(ts), len(self.names))`` float64 feature rows.

        Raises:
            DataError: bars out of time order, or not after this series' last bar.
        """
        ts = np.ascontiguousarray(ts, dtype=np.int64)
        stack, r = self._stack, self._row
        # one bar has no order to check within itself: skip np.diff
        unordered = len(ts) > 1 and bool(np.any(np.diff(ts) <= 0))
        if len(ts) and (unordered or ts[0] <= stack.last_ts[r]):
            raise DataError(_ORDER)
        out = np.empty((len(ts), len(self.names)))
        run: Callable[..., None] = kernels.run_kernel  # numba's dispatcher is untyped
        run(
            ts,
            *(
                np.ascontiguousarray(a, dtype=np.float64)
                for a in (open_, high, low, close, volume, taker_buy_volume)
            ),
            stack.windows,
            stack.lags,
            stack.params,
            stack.buf[r],
            stack.sums[r],
            stack.istate[r],
            stack.fstate[r],
            out,
        )
        if len(ts):
            stack.last_ts[r] = ts[-1]
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
