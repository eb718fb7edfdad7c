"""One paper run of the worker: build the venue and the journal, run, report.

The edge (``mmops trade``, the demo, the tests) reads the bars and makes the signal source;
this module does the rest, so every caller runs the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trading.worker.attribution import VersionPnl, attribute
from trading.worker.journal import Journal
from trading.worker.loop import Worker, WorkerSettings, worker_engine_params
from trading.worker.paper import PaperFaults, PaperVenue, Replay
from trading.worker.types import SignalSource


@dataclass(frozen=True)
class PaperRun:
    """What to replay and how.

    Args:
        frames: canonical bars per symbol, the ticks to trade.
        interval: their bar length (e.g. ``1m``).
        settings: quote, risk, backtest, trade and features settings.
        journal: the journal file; the paper venue keeps its state beside it
            (``<journal>.venue.db``, and ``.shadow.db`` for the shadow book).
        history: bars before the first tick per symbol (feature warm-up, never traded).
        max_ticks: stop after this many ticks (None: the whole replay).
        faults: injected venue misbehaviour (tests).
        record_features: keep the online feature rows (parity tests).
    """

    frames: Mapping[str, pd.DataFrame]
    interval: str
    settings: WorkerSettings
    journal: Path
    history: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    max_ticks: int | None = None
    faults: PaperFaults | None = None
    record_features: bool = False


@dataclass(frozen=True)
class TradeReport:
    """What a run did. Money in quote ccy; one sub-book of ``backtest.initial_cash`` per symbol."""

    journal: str
    symbols: tuple[str, ...]
    ticks_done: int
    ticks_total: int
    model: str
    fills: dict[str, int]
    final_equity: dict[str, float]
    pnl: dict[str, float]
    by_version: list[VersionPnl]
    risk_events: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    reconcile: dict[str, Any]
    tick_ms: dict[str, float]
    status: dict[str, Any]

    @property
    def finished(self) -> bool:
        return self.ticks_done >= self.ticks_total

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["finished"] = self.finished
        return d


def paper_paths(journal: Path) -> tuple[Path, Path]:
    """The paper venue's and the shadow book's state files beside ``journal``."""
    return journal.with_name(journal.name + ".venue.db"), journal.with_name(journal.name + ".shadow.db")


def build_worker(
    run: PaperRun, source: SignalSource | None, *, shadow: bool
) -> tuple[Worker, Journal, list[PaperVenue]]:
    """The worker, its journal and its paper venues for ``run`` (not started)."""
    s = run.settings
    replay = Replay.from_frames(dict(run.frames), interval=run.interval, backtest=s.backtest)
    ep = worker_engine_params(s, replay, open_ended=False)
    venue_db, shadow_db = paper_paths(run.journal)
    journal = Journal(run.journal)
    venue = PaperVenue(replay, ep, db=venue_db, faults=run.faults)
    venues = [venue]
    shadow_venue = None
    if shadow:
        shadow_venue = PaperVenue(replay, ep, db=shadow_db, name="shadow")
        venues.append(shadow_venue)
    worker = Worker(
        replay=replay,
        venue=venue,
        journal=journal,
        settings=s,
        source=source,
        history=run.history,
        shadow_venue=shadow_venue,
        record_features=run.record_features,
    )
    return worker, journal, venues


async def run_paper(run: PaperRun, source: SignalSource | None = None) -> tuple[TradeReport, Worker]:
    """Run (or resume) a paper replay to its end or ``run.max_ticks``; report what it did.

    Raises:
        ReconcileError: a restart found the venue and the journal in disagreement.
        ConfigError: the journal belongs to another run.
        DataError: bars the backtest would refuse.
    """
    shadow = False
    model = "model-free"
    if source is not None:
        info = await source.info()
        shadow = info.mode == "shadow" and info.challenger is not None and run.settings.trade.shadow_book
        model = f"champion v{info.champion}" + (
            f", {info.mode} challenger v{info.challenger}" if info.challenger else ""
        )
    worker, journal, venues = build_worker(run, source, shadow=shadow)
    try:
        reconcile = await worker.start()
        done = await worker.run(max_ticks=run.max_ticks)
        journal.set_control("phase", "finished" if worker.next_tick >= len(worker.replay) else "stopped")
        return report(
            worker,
            journal,
            model=model,
            ticks_done=worker.next_tick,
            reconcile=reconcile | {"this_call": done},
        ), worker
    finally:
        for v in venues:
            v.close()
        journal.close()


def report(
    worker: Worker, journal: Journal, *, model: str, ticks_done: int, reconcile: dict[str, Any]
) -> TradeReport:
    """The run's report from the worker's books and the journal."""
    bt = worker.s.backtest
    n = len(worker.symbols)
    equity = {
        b.name: float(sum(b.books.equity(s, tick=bt.tick_size, lot=bt.lot_size) for s in range(n)))
        for b in worker.books
    }
    fills = journal.fills()
    counts = {b.name: sum(1 for f in fills if f["book"] == b.name) for b in worker.books}
    totals = [t.total / 1e6 for t in worker.timings]
    tick_ms = (
        {"p50": float(np.percentile(totals, 50)), "p99": float(np.percentile(totals, 99))} if totals else {}
    )
    return TradeReport(
        journal=str(journal.path),
        symbols=worker.symbols,
        ticks_done=ticks_done,
        ticks_total=len(worker.replay),
        model=model,
        fills=counts,
        final_equity=equity,
        pnl={k: v - bt.initial_cash * n for k, v in equity.items()},
        by_version=attribute(
            journal, worker.symbols, tick=bt.tick_size, lot=bt.lot_size, markout_ticks=bt.markout_bars
        ),
        risk_events=journal.events(("risk", "fail_closed", "market_data", "resume", "reconcile")),
        alerts=journal.events(("alert", "recovered")),
        reconcile=reconcile,
        tick_ms=tick_ms,
        status=worker.status(),
    )
