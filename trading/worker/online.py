"""Online features per symbol with the batch code (:class:`features.build.FeatureEngine`).

Each symbol's engine carries its state from bar to bar, so the rows equal
:func:`features.build.compute_features` over the same history bit for bit. The last
``rows`` rows of the model's features are kept per symbol as the window the service reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.build import FeatureEngine
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
        self.engines = [FeatureEngine(config) for _ in range(n_symbols)]
        self.names = self.engines[0].names if n_symbols else []
        wanted = list(names) if names is not None else list(self.names)
        missing = [n for n in wanted if n not in self.names]
        if missing:
            raise ConfigError(
                f"the model reads features this params.yaml does not compute: {missing[:5]}; "
                "trade with the features section the model was trained with"
            )
        self.columns = np.array([self.names.index(n) for n in wanted], dtype=np.int64)
        self.rows = rows
        self.window = np.full((n_symbols, rows, len(wanted)), np.nan)
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

    def feed_one(
        self, s: int, ts: int, o: float, h: float, low: float, c: float, v: float, tbv: float
    ) -> np.ndarray:
        """Feed one bar (the per-tick path: no DataFrame); returns its feature row."""
        one = np.array
        out = self.engines[s].update_arrays(
            one([ts], dtype=np.int64), one([o]), one([h]), one([low]), one([c]), one([v]), one([tbv])
        )
        self._keep(s, out)
        return out[0]

    def _keep(self, s: int, out: np.ndarray) -> None:
        n = len(out)
        if n == 0:
            return
        picked = out[-self.rows :, self.columns]
        k = len(picked)
        if k < self.rows:
            self.window[s, :-k] = self.window[s, k:]
        self.window[s, -k:] = picked
        self.seen[s] += n

    def ready(self) -> np.ndarray:
        """Symbols whose window is complete and finite (bool per symbol)."""
        full = self.seen >= self.rows
        return full & np.isfinite(self.window).all(axis=(1, 2))
