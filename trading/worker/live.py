"""One live run of the worker: bars from an exchange as they close, orders to a venue.

The venue is either the paper venue (paper trading on live bars: the backtest's fill rule on
the exchange's bars, nothing sent) or a live one (the ccxt venue). Either way the run is the
same worker, journal and reconciliation as a replay; only the clock differs: ticks come from
:class:`trading.worker.feed.BarFeed`, and the run goes on until it is stopped (SIGINT/SIGTERM,
``max_ticks``, or a stop event). A restarted live run reads its first tick from its journal and
rebuilds the same ticks from the exchange's history before it quotes again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from features.errors import TemporaryError
from trading.worker.ccxt_exchange import Exchange
from trading.worker.feed import BarFeed
from trading.worker.journal import Journal
from trading.worker.loop import Worker, WorkerSettings, worker_engine_params
from trading.worker.paper import PaperVenue
from trading.worker.replay import warmup_bars
from trading.worker.run import TradeReport, paper_paths, report
from trading.worker.types import SignalSource, Venue

logger = logging.getLogger(__name__)

START_ATTEMPTS = 6  # about a minute of backoff (1, 2, 4, 8, 16 s) before the error reaches the user


@dataclass(frozen=True)
class LiveRun:
    """What to trade live and how.

    Args:
        markets: worker symbol -> the exchange's market (``BTCUSDT`` -> ``BTC/USDT``).
        interval: the bar length the worker quotes on.
        settings: quote, risk, backtest, trade and features settings.
        journal: the journal file (a paper venue keeps its state beside it).
        max_ticks: stop after this many ticks (None: until stopped).
    """

    markets: Mapping[str, str]
    interval: str
    settings: WorkerSettings
    journal: Path
    max_ticks: int | None = None


async def run_live(
    run: LiveRun,
    *,
    exchange: Exchange,
    venue: Venue | None = None,
    source: SignalSource | None = None,
    stop: asyncio.Event | None = None,
    feed: BarFeed | None = None,
) -> tuple[TradeReport, Worker]:
    """Trade ``run`` on the exchange's bars until stopped; report what it did.

    Args:
        exchange: where the bars come from (a ccxt async exchange).
        venue: where orders go; None: the paper venue (paper trading on live bars).
        source: the signal service, or None for model-free quotes.
        stop: set it to stop after the current tick; SIGINT and SIGTERM set it too.
        feed: the bar feed (tests pass one on a fake clock); default: one on ``exchange``.

    Raises:
        ReconcileError: a restart found the venue and the journal in disagreement.
        ConfigError: the journal belongs to another run.
        SourceError: the exchange refused a market or answered something that is not bars.
    """
    s = run.settings
    stop = stop or asyncio.Event()
    _stop_on_signals(stop)
    journal = Journal(run.journal)
    spec = journal.run_spec()
    first_ns = None if spec is None else int(pd.Timestamp(spec["first"]).value)
    feed = feed or BarFeed(
        exchange,
        markets=run.markets,
        interval=run.interval,
        backtest=s.backtest,
        settle_s=s.trade.live_settle_ms / 1000,
    )
    paper: PaperVenue | None = None
    try:
        replay, history = await feed.start(first_ns=first_ns, warmup=warmup_bars(s.features, run.interval))
        if venue is None:
            ep = worker_engine_params(s, replay, open_ended=True)
            paper = venue = PaperVenue(replay, ep, db=paper_paths(run.journal)[0])
        worker = Worker(
            replay=replay,
            venue=venue,
            journal=journal,
            settings=s,
            source=source,
            history=history,
            open_ended=True,
        )
        if venue is not paper:
            worker.live_clock = feed.now  # orders go out: nothing priced on stale bars (Worker._catch_up)
        found = await _start(worker)
        done = await worker.run_live(feed, stop=stop, max_ticks=run.max_ticks)
        journal.set_control("phase", "stopped")
        model = "model-free" if worker.info is None else f"champion v{worker.info.champion}"
        return report(
            worker, journal, model=model, ticks_done=worker.next_tick, reconcile=found | {"this_call": done}
        ), worker
    finally:
        if paper is not None:
            paper.close()
        journal.close()


async def _start(worker: Worker) -> dict[str, Any]:
    """``worker.start()``, asked again while the venue cannot answer (a TemporaryError: nothing
    was decided): a live venue that blinks at start-up should not need a person to restart."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(TemporaryError),
        stop=stop_after_attempt(START_ATTEMPTS),
        wait=wait_exponential(multiplier=1, max=30),
        before_sleep=lambda state: logger.warning(
            "start %d/%d: %s; asking again",
            state.attempt_number,
            START_ATTEMPTS,
            state.outcome.exception() if state.outcome else "?",
        ),
        reraise=True,
    ):
        with attempt:
            return await worker.start()
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover


def run_tag(journal: Path) -> str:
    """The live run's tag from its journal (made on first use): its venue's client-id prefix."""
    j = Journal(journal)
    try:
        return j.run_tag()
    finally:
        j.close()


def _stop_on_signals(stop: asyncio.Event) -> None:
    """SIGINT/SIGTERM: finish the tick in hand, settle, stop; a second signal is the default's
    (the handler is removed once it fired), for a worker that does not stop."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)

    def first(sig: signal.Signals) -> None:
        logger.warning("%s: stopping after this tick (again to stop at once)", sig.name)
        stop.set()
        for s in signals:
            loop.remove_signal_handler(s)

    for sig in signals:
        try:
            loop.add_signal_handler(sig, first, sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            return
