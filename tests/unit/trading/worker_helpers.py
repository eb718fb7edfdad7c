"""Helpers of the worker tests: run a paper replay, compare its fills with a backtest's, fake sources."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.config import FeaturesConfig
from trading.config import BacktestConfig, QuoteConfig, RiskConfig, TradeConfig
from trading.worker.journal import Journal
from trading.worker.loop import Worker, WorkerSettings
from trading.worker.paper import PaperFaults
from trading.worker.run import PaperRun, TradeReport, run_paper
from trading.worker.types import SignalBatch, SourceInfo

FILL_COLUMNS = ["timestamp", "side", "price", "lots", "fee"]


def settings(
    *,
    quote: QuoteConfig | None = None,
    risk: RiskConfig | None = None,
    backtest: BacktestConfig | None = None,
    trade: TradeConfig | None = None,
) -> WorkerSettings:
    return WorkerSettings(
        quote=quote or QuoteConfig(),
        risk=risk or RiskConfig(),
        backtest=backtest or BacktestConfig(),
        trade=trade or TradeConfig(),
        features=FeaturesConfig().for_interval("1m"),
    )


def paper(
    frames: dict[str, pd.DataFrame],
    journal: Path,
    s: WorkerSettings,
    *,
    source: Any = None,
    history: dict[str, pd.DataFrame] | None = None,
    max_ticks: int | None = None,
    faults: PaperFaults | None = None,
    record_features: bool = False,
) -> tuple[TradeReport, Worker]:
    run = PaperRun(
        frames=frames,
        interval="1m",
        settings=s,
        journal=journal,
        history=history or {},
        max_ticks=max_ticks,
        faults=faults,
        record_features=record_features,
    )
    return asyncio.run(run_paper(run, source))


def journal_fills(
    path: Path, *, book: str = "live", tick: float = 0.01, symbol: str | None = None
) -> pd.DataFrame:
    """The journal's fills of one book in the backtest's ``trades`` columns."""
    j = Journal(path)
    rows = [f for f in j.fills(book) if symbol is None or f["symbol"] == symbol]
    j.close()
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime([f["ts_ns"] for f in rows], utc=True),
            "side": np.array(["buy" if f["side"] > 0 else "sell" for f in rows], dtype=object),
            "price": np.array([f["price_ticks"] for f in rows], dtype=np.int64) * tick,
            "lots": np.array([f["lots"] for f in rows], dtype=np.int64),
            "fee": np.array([f["fee"] for f in rows], dtype=np.float64),
        }
    )


def same_fills(worker_fills: pd.DataFrame, backtest_trades: pd.DataFrame) -> None:
    """Assert equal fills, value for value (prices, sizes and fees are computed by the same code)."""
    ref = backtest_trades[FILL_COLUMNS].reset_index(drop=True)
    got = worker_fills[FILL_COLUMNS].reset_index(drop=True)
    assert len(got) == len(ref), f"{len(got)} worker fills vs {len(ref)} backtest fills"
    diff = (got != ref).any(axis=1)
    assert not diff.any(), (
        f"first differing fill:\nworker\n{got[diff].head(3)}\nbacktest\n{ref[diff].head(3)}"
    )


@dataclass
class FakeSource:
    """A signal source with ccxt-free, service-free behaviour the tests script.

    The signal is a fixed function of the newest feature row (so it is reproducible); ``down``
    ticks raise, ``slow`` ticks sleep past any budget, ``bad`` symbols get NaN.
    """

    names: Sequence[str]
    rows: int = 3
    version: str = "7"
    kind: str = "forward_log_return"
    down: Callable[[int], bool] = lambda _call: False
    slow: Callable[[int], bool] = lambda _call: False
    bad: set[str] = field(default_factory=set)
    mode: str = "champion"
    kinds: dict[str, str] = field(default_factory=dict)  # symbol -> kind, where not ``kind`` (a canary)
    calls: int = 0

    async def info(self) -> SourceInfo:
        return SourceInfo(
            window_rows=self.rows,
            feature_names=tuple(self.names),
            kind=self.kind,  # type: ignore[arg-type]
            champion=self.version,
            challenger="8" if self.mode == "shadow" else None,
            mode=self.mode,
        )

    def value(self, window: np.ndarray) -> np.ndarray:
        x = window[:, -1, 0].astype(np.float64)
        return 2e-4 * np.tanh(x / (np.abs(x).mean() + 1e-12))

    async def signals(
        self,
        symbols: Sequence[str],
        windows: np.ndarray,
        *,
        seq: np.ndarray | None = None,
        sent: asyncio.Event | None = None,
    ) -> SignalBatch:
        self.calls += 1
        if sent is not None:  # as a request on its way: the worker does its venue work meanwhile
            sent.set()
            await asyncio.sleep(0)
        if self.down(self.calls):
            raise ConnectionError("connection refused (scripted)")
        if self.slow(self.calls):
            await asyncio.sleep(5)
        values = self.value(windows)
        values[[i for i, s in enumerate(symbols) if s in self.bad]] = np.nan
        kinds = [self.kinds.get(s, self.kind) for s in symbols]
        for i, k in enumerate(kinds):
            if k == "prob_up":
                values[i] = 0.5 + 1e3 * values[i]  # a probability near 0.5, as a classifier's
        shadow = -values if self.mode == "shadow" else None
        return SignalBatch(
            values=values,
            versions=[self.version] * len(symbols),
            aliases=["champion"] * len(symbols),
            kind=self.kind,  # type: ignore[arg-type]
            shadow_values=shadow,
            shadow_version="8" if self.mode == "shadow" else None,
            kinds=kinds,
        )

    async def close(self) -> None:
        return None


def signals_frame(path: Path, *, book: str = "live", symbol: str = "BTCUSDT") -> pd.DataFrame:
    """The signals a run's quotes used, as a backtest ``signals`` frame (bar open, pred_return)."""
    j = Journal(path)
    rows = [r for r in j.signals(book) if r[1] == symbol]
    j.close()
    return pd.DataFrame(
        {"timestamp": pd.to_datetime([r[0] for r in rows], utc=True), "pred_return": [r[2] for r in rows]}
    )
