"""Helpers of the control API tests: a real two-symbol paper run, the app over its journal, a server."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from features.config import FeaturesConfig
from features.sources.binance import read_dump
from serving.control.api import Tokens, create_app
from serving.control.server import serving
from serving.control.views import ControlContext
from trading.config import BacktestConfig, QuoteConfig, RiskConfig, TradeConfig
from trading.worker.loop import WorkerSettings
from trading.worker.run import PaperRun, TradeReport, run_paper

OPERATOR, VIEWER = "operator-token-for-tests", "viewer-token-for-tests"
TOKENS = Tokens(operator=OPERATOR, viewer=VIEWER)
AS_OPERATOR = {"Authorization": f"Bearer {OPERATOR}"}
AS_VIEWER = {"Authorization": f"Bearer {VIEWER}"}
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def two_symbols(zip_path: Path, ticks: int) -> dict[str, pd.DataFrame]:
    """Two symbols on one clock: BTCUSDT's first ``ticks`` minutes, and the next ones as ETHUSDT."""
    bars = read_dump(zip_path)
    a = bars.iloc[:ticks].reset_index(drop=True)
    b = bars.iloc[ticks : 2 * ticks].reset_index(drop=True).assign(symbol="ETHUSDT")
    b["timestamp"] = a["timestamp"].to_numpy()
    return {"BTCUSDT": a, "ETHUSDT": b}


def settings() -> WorkerSettings:
    return WorkerSettings(
        quote=QuoteConfig(),
        risk=RiskConfig(),
        backtest=BacktestConfig(),
        trade=TradeConfig(),
        features=FeaturesConfig().for_interval("1m"),
    )


def run(frames: dict[str, pd.DataFrame], journal: Path, *, max_ticks: int | None = None) -> TradeReport:
    """Run (or resume) the worker on ``frames`` to the end or ``max_ticks`` more ticks."""
    paper = PaperRun(frames=frames, interval="1m", settings=settings(), journal=journal, max_ticks=max_ticks)
    report, _worker = asyncio.run(run_paper(paper))
    return report


def context(frames: dict[str, pd.DataFrame], journal: Path) -> ControlContext:
    s = settings()
    return ControlContext(
        journal=journal,
        symbols=tuple(frames),
        quote=s.quote,
        risk=s.risk,
        backtest=s.backtest,
        ticks_total=len(next(iter(frames.values()))),
    )


def app(frames: dict[str, pd.DataFrame], journal: Path):  # type: ignore[no-untyped-def]
    return create_app(context(frames, journal), TOKENS)


def rows(journal: Path, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(journal) as db:
        return db.execute(sql, args).fetchall()


def quotes(journal: Path, s: int) -> np.ndarray:
    """(tick, bid, ask, bid lots, ask lots) of symbol row ``s`` after each tick, from the journal."""
    out = [
        (t, *np.frombuffer(b, dtype=np.int64).reshape(-1, 4)[s])
        for t, b in rows(journal, "select tick, quotes from quotes order by tick")
    ]
    return np.array(out, dtype=np.int64).reshape(-1, 5)


@contextmanager
def served(application: object) -> Iterator[str]:
    """``application`` on a real uvicorn server (its own thread and loop) on a free port; yields the URL."""
    ready: list[str] = []
    stop = threading.Event()

    async def main() -> None:
        async with serving(application, host="127.0.0.1", port=0) as url:  # type: ignore[arg-type]
            ready.append(url)
            while not stop.is_set():
                await asyncio.sleep(0.02)

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    while not ready and thread.is_alive():
        stop.wait(0.02)
    try:
        yield ready[0]
    finally:
        stop.set()
        thread.join(timeout=10)
