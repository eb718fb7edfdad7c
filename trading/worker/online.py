"""Online features per symbol with the batch code (:class:`features.build.FeatureEngines`).

Each symbol's row of the engines carries its state from bar to bar, so the rows equal
:func:`features.build.compute_features` over the same history bit for bit. A symbol's history
is fed in one piece (:meth:`OnlineFeatures.feed`), then each tick's bars for all symbols in one
compiled call (:meth:`OnlineFeatures.feed_tick`). The last ``rows`` rows of the model's features
are kept per symbol as the window the service reads, in a ring: a new bar writes one row, and
:meth:`OnlineFeatures.windows` puts the rows in time order when they are read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.build import FeatureEngines
from features.config import FeaturesConfig
from features.errors import ConfigError


class OnlineFeatures:
    """Feature engines and model windows for the symbols of one run.

    Args:
        config: the features section, already resolved for the interval.
        n_symbols: symbols of the run (rows of the windows).
        rows: rows per window (the service's ``window_rows``; 1 when no model is used).
        names: the model's feature names in its order (None: all features).

    Raises:
        ConfigError: the model needs a feature this configuration does not compute.
    """

    def __init__(
        self, config: FeaturesConfig, n_symbols: int, *, rows: int, names: Sequence[str] | None
    ) -> None:
        self.engines = FeatureEngines(config, n_symbols)
        self.names = self.engines.names
        wanted = list(names) if names is not None else list(self.names)
        missing = [n for n in wanted if n not in self.names]
        if missing:
            raise ConfigError(
                f"the model reads features this params.yaml does not compute: {missing[:5]}; "
                "trade with the features section the model was trained with"
            )
        self.columns = np.array([self.names.index(n) for n in wanted], dtype=np.int64)
        self.rows = rows
        # symbol s's bar number b (from 0) is row b % rows: the next bar overwrites the oldest
        self._ring = np.full((n_symbols, rows, len(wanted)), np.nan)
        self.seen = np.zeros(n_symbols, dtype=np.int64)

    def feed(self, s: int, bars: pd.DataFrame) -> np.ndarray:
        """Feed bars of symbol row ``s`` (canonical frame); returns their full feature rows."""
        col = {c: bars[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")}
        out = self.engines[s].update_arrays(
            bars["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64),
            col["open"],
            col["high"],
            col["low"],
            col["close"],
            col["volume"],
            bars["taker_buy_volume"].to_numpy(dtype=np.float64, na_value=np.nan)
            if "taker_buy_volume" in bars
            else np.full(len(bars), np.nan),
        )
        self._keep(s, out)
        return out

    def feed_tick(
        self,
        at: np.ndarray,
        ts: int | np.ndarray,
        o: np.ndarray,
        h: np.ndarray,
        low: np.ndarray,
        c: np.ndarray,
        v: np.ndarray,
        tbv: np.ndarray,
    ) -> np.ndarray:
        """Feed one bar to each symbol row in ``at`` (the per-tick path: one compiled call).

        Args:
            at: the symbol rows with a bar, strictly increasing.
            ts: bar open time, int64 ns: one per row, or one for all.
            o, h, low, c, v, tbv: the bars' open, high, low, close, volume and taker-buy volume,
                float64, one per row.

        Returns:
            ``(len(at), len(self.names))`` feature rows, row ``i`` for symbol row ``at[i]``.

        Raises:
            DataError: a bar not after its symbol's last one (no symbol is updated then).
        """
        out = self.engines.update(at, ts, o, h, low, c, v, tbv)
        self._ring[at, self.seen[at] % self.rows] = out[:, self.columns]
        self.seen[at] += 1
        return out

    def _keep(self, s: int, out: np.ndarray) -> None:
        n = len(out)
        k = min(n, self.rows)  # only the last rows' bars stay
        self._ring[s, (self.seen[s] + np.arange(n - k, n)) % self.rows] = out[n - k :, self.columns]
        self.seen[s] += n

    def windows(self, at: np.ndarray) -> np.ndarray:
        """The model windows of symbol rows ``at``: ``(len(at), rows, features)``, oldest row
        first, the newest last (NaN rows first while a symbol has seen fewer bars than that)."""
        at = np.asarray(at, dtype=np.int64)
        oldest_first = (self.seen[at, None] + np.arange(self.rows)) % self.rows
        return self._ring[at[:, None], oldest_first]

    def ready(self) -> np.ndarray:
        """Symbols whose window is complete and finite (bool per symbol)."""
        full = self.seen >= self.rows
        return full & np.isfinite(self._ring).all(axis=(1, 2))
