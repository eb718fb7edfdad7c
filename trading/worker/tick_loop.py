"""The quoting worker on a tick capture: one wake-up per decision the tick engine would make.

Per wake-up:

1. the paper tick venue replays the capture up to the next grid point, or up to the first fill
   of the worker's orders (``backtest.requote_on_fill``) or best bid/ask move (``requote_on_bbo``);
2. new fills are fetched and booked, the replayed BBO and trades update the worker's market state;
3. :func:`trading.worker.tick_strategy.decide_tick` decides (volatility, risk and a flatten at a
   grid point; the quote), through the tick kernel's compiled pieces;
4. one journal transaction holds the fills, the book's state and the new orders (each quote
   change cancels both working orders and places the new ones: the kernel's model replaces the
   pair and restarts its participation credits), then the orders go to the venue.

The order plumbing (client ids, journal before send, transport errors, reconciliation on start)
is :class:`trading.worker.loop.Worker`'s own: :class:`TickWorker` subclasses it and replaces the
bar parts (the market data, the decision, the loop).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from features.progress import report
from trading.quoting import quote_params
from trading.risk import HALTED, LATCHED, RiskObservation, RiskStatus, explain, reason_names, risk_params
from trading.tick_engine import INV, MID, PEAK, READY, REASONS, STATUS, VAR_F, VAR_S
from trading.ticks import TickData
from trading.worker.crash import crash_point
from trading.worker.journal import Journal
from trading.worker.loop import MODEL_FREE, Book, LiveOrder, TickTimings, Worker, WorkerSettings
from trading.worker.orders import order_prefix
from trading.worker.paper_ticks import PaperTickVenue, TickReplay
from trading.worker.tick_strategy import (
    D_ASK,
    D_ASK_LOTS,
    D_BID,
    D_BID_LOTS,
    D_QUOTE,
    D_TAKE,
    N_D,
    W_STEP,
    TickBooks,
    decide_tick,
    observe_events,
)

logger = logging.getLogger(__name__)


class TickWorker(Worker):
    """The quoting worker over a paper tick venue (see the module docstring).

    It keeps :class:`~trading.worker.loop.Worker`'s order plumbing (``reconcile``, ``_send*``,
    ``_settle``, ``_book_fills``, ``_intent``) and sets the attributes that plumbing reads; the
    bar parts (features, signals, ``step_books``) are not used, so the bar ``__init__`` is not run.

    Args:
        replay: the capture and the engine settings (shared with the venue).
        venue: the paper tick venue over the same replay.
        journal: the journal.
        settings: quote, risk, backtest and trade settings (``features`` unused: model-free).
    """

    def __init__(
        self, *, replay: TickReplay, venue: PaperTickVenue, journal: Journal, settings: WorkerSettings
    ) -> None:
        self.tick_replay = replay
        self.venue = venue
        self.journal = journal
        self.prefix = order_prefix(settings.trade, None)
        self.s = settings
        self.symbols = (replay.symbol,)
        self._row = {replay.symbol: 0}
        self.qp = quote_params(settings.quote)
        self.rp = risk_params(settings.risk)
        self.books = [Book("live", "L", venue, TickBooks.fresh_tick(settings.backtest.initial_cash))]
        self.next_tick = 0
        self.started = False
        self.source = None
        self.timings: deque[TickTimings] = deque(maxlen=100_000)
        self._watch: dict[str, tuple[Book, str, int]] = {}
        self._cancels: dict[str, tuple[Book, str]] = {}
        self._pending: list[tuple[str, str, str]] = []
        self._checkpoints = []

    @property
    def state(self) -> TickBooks:
        books = self.books[0].books
        assert isinstance(books, TickBooks)
        return books

    @property
    def finished(self) -> bool:
        return int(self.state.ist[W_STEP]) >= self.tick_replay.n_steps

    # ---- start-up ------------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """What identifies the run: a resumed run must have the same."""
        rp = self.tick_replay
        return {
            "mode": "ticks",
            "symbols": list(self.symbols),
            "files": list(rp.files),
            "first_ns": int(rp.arr.bbo_ns[0]),
            "grid": [rp.tp.start_ns, rp.tp.step_ns, rp.n_steps, rp.tp.bar_ns],
            "requote_on_bbo": rp.tp.requote_on_bbo,
            "books": [b.name for b in self.books],
            "quote": self.s.quote.model_dump(mode="json"),
            "risk": self.s.risk.model_dump(mode="json"),
            "backtest": self.s.backtest.model_dump(mode="json"),
            "trade": self.s.trade.model_dump(mode="json"),
            "model": False,
        }

    async def start(self) -> dict[str, Any]:
        """Load or create the run and reconcile; only then may it quote.

        Raises:
            ReconcileError: positions or orders disagree (the worker stays HALTED).
            ConfigError: the journal belongs to another run.
        """
        resuming = self.journal.check_run(self.spec())
        book = self.books[0]
        saved = self.journal.book(book.name)
        if saved is not None:
            self.next_tick, book.last_seq, fs, ist, _extra = saved
            book.books = TickBooks.from_tick_bytes(fs, ist)
        found = await self.reconcile()
        self.started = True
        self._defer_checkpoints()
        self.journal.set_control("phase", "active")
        return found | {"resumed": resuming, "next_tick": self.next_tick}

    # ---- the loop ------------------------------------------------------------------------------
    async def run(self, *, max_ticks: int | None = None, stop: asyncio.Event | None = None) -> int:
        """Wake up until the grid ends, ``max_ticks`` wake-ups are done, or ``stop`` is set.

        Returns:
            The wake-ups processed by this call.
        """
        if not self.started:
            await self.start()
        done = 0
        total = self.tick_replay.n_steps
        every = max(1, total // 10)
        while not self.finished and (max_ticks is None or done < max_ticks):
            if stop is not None and stop.is_set():
                break
            step = int(self.state.ist[W_STEP])
            await self.tick()
            await self._between_ticks()
            done += 1
            if int(self.state.ist[W_STEP]) > step and (step + 1) % every == 0:
                report("paper tick replay", done=step + 1, total=total, detail=self._progress_detail())
        if self.finished:
            await self._book_remaining()
        await self.finish()
        return done

    async def tick(self) -> None:
        """One wake-up (see the module docstring)."""
        j = self.next_tick
        book, rp, b = self.books[0], self.tick_replay, self.state
        t0 = time.perf_counter_ns()
        await self._confirm()  # the last wake-up's send phase
        stop = self.venue.advance(
            j,
            rp.grid_ns(int(b.ist[W_STEP])),
            wake_on_fill=rp.tp.requote_on_fill,
            wake_on_bbo=rp.tp.requote_on_bbo and b.ist[READY] == 1,
        )
        crash_point("after_advance", j)
        fills = await self.venue.fills_since(book.last_seq)
        await self._settle()
        t1 = time.perf_counter_ns()
        with self.journal.transaction():
            kill, resume = self.journal.take_controls()  # inside the write lock: none is missed
            self._write_pending()
            self._book_fills(book, fills)
            if resume:
                self._resume_tick(j, stop.now_ns)
            observe_events(rp.arr, stop.bbo_end, stop.trade_end, b.ist, b.fs)
            out = np.zeros(N_D, dtype=np.int64)
            live = sum(o.remaining for o in book.live.values())
            prev = int(b.ist[STATUS])
            decide_tick(
                stop.reason, stop.now_ns, kill, live, rp.arr, self.qp, self.rp, rp.tp, b.ist, b.fs, out
            )
            t2 = time.perf_counter_ns()
            self._risk_event(prev, j, stop.now_ns)
            actions = self._plan_tick(book, out, j)
            self._save(book, j + 1)
        t3 = time.perf_counter_ns()
        self.next_tick = j + 1
        crash_point("after_journal", j)
        await self._send(book, actions, j)
        t4 = time.perf_counter_ns()
        self.timings.append(
            TickTimings(features=0, model=0, decide=t2 - t1, journal=t3 - t2, venue=(t1 - t0) + (t4 - t3))
        )

    def _resume_tick(self, j: int, now_ns: int) -> None:
        """A person cleared the kill switch: drop the latched reasons, restart the peak here."""
        ist, fs = self.state.ist, self.state.fs
        if ist[REASONS] & LATCHED:
            ist[REASONS] &= ~LATCHED
            fs[PEAK] = self.equity()
            self.journal.add_event(j, now_ns, self.symbols[0], "resume", "live: kill switch cleared")

    def _plan_tick(self, book: Book, out: np.ndarray, j: int) -> list[Any]:
        """Journal this wake-up's orders (intents) and return what to send, in order."""
        actions: list[Any] = []
        mid = float(self.state.fs[MID])
        take = int(out[D_TAKE])
        if take != 0:
            side = 1 if take > 0 else -1
            o = self._intent(book, 0, j, "f", side, abs(take), 0, "market", MODEL_FREE, MODEL_FREE, mid)
            actions.append(("place", o))
        if not out[D_QUOTE]:
            return actions
        quotes = ((1, "b", out[D_BID], out[D_BID_LOTS]), (-1, "a", out[D_ASK], out[D_ASK_LOTS]))
        for side, letter, price, lots in quotes:
            cur = book.live.pop((0, side), None)
            if cur is not None:
                self.journal.request_cancel(cur.client_id)
                actions.append(("cancel", cur.client_id, self.symbols[0]))
            if lots > 0:
                o = self._intent(
                    book, 0, j, letter, side, int(lots), int(price), "limit", MODEL_FREE, MODEL_FREE, mid
                )
                book.live[(0, side)] = LiveOrder(o.client_id, o.price_ticks, o.lots, 0, j)
                actions.append(("place", o))
        return actions

    def _save(self, book: Book, next_tick: int) -> None:
        b = self.state
        self.journal.save_book(
            book.name,
            tick=next_tick,
            last_seq=book.last_seq,
            fs=b.fs.tobytes(),
            ist=b.ist.tobytes(),
            extra={},
        )

    async def _book_remaining(self) -> None:
        """After the last grid point: book what its orders filled (a flatten fills at once)."""
        book = self.books[0]
        fills = await self.venue.fills_since(book.last_seq)
        if fills:
            with self.journal.transaction():
                self._book_fills(book, fills)
                self._save(book, self.next_tick)

    def _risk_event(self, prev: int, j: int, now: int) -> None:
        status = int(self.state.ist[STATUS])
        if status != prev:
            ist, fs, bt = self.state.ist, self.state.fs, self.s.backtest
            equity = self.equity()
            seen = RiskObservation.of_book(
                inventory_lots=int(ist[INV]),
                mark=fs[MID] * bt.tick_size,
                lot=bt.lot_size,
                equity=equity,
                initial_equity=bt.initial_cash,
                peak_equity=fs[PEAK],
                var_ratio=fs[VAR_F] / fs[VAR_S],
            )
            reasons = "; ".join(explain(int(ist[REASONS]), seen, self.s.risk)) or "limits clear"
            message = f"live: {RiskStatus(prev).name} -> {RiskStatus(status).name}: {reasons}"
            self.journal.add_event(j, now, self.symbols[0], "risk", message)
            logger.info("%s %s", self.symbols[0], message)

    def _count_reject(self, book: Book, s: int, rejected: bool) -> None:
        """The tick engine's risk engine takes no reject rate (it observes 0): nothing to count."""

    # ---- what it did ---------------------------------------------------------------------------
    def equity(self) -> float:
        bt = self.s.backtest
        return self.state.equity(0, tick=bt.tick_size, lot=bt.lot_size)

    def status(self) -> dict[str, Any]:
        """Inventory, equity, risk state and reasons, the grid step reached."""
        ist = self.state.ist
        row = {
            "inventory_lots": self.state.inventory(0),
            "equity": self.equity(),
            "status": RiskStatus(int(ist[STATUS])).name,
            "reasons": list(reason_names(int(ist[REASONS]))),
            "model_free": MODEL_FREE,
        }
        return {
            "next_tick": self.next_tick,
            "grid_step": int(ist[W_STEP]),
            "grid_steps": self.tick_replay.n_steps,
            "books": {"live": {self.symbols[0]: row}},
        }

    def _progress_detail(self) -> str:
        return f"inventory {self.state.inventory(0):+d} lots, equity {self.equity():,.2f}"

    def halted_everywhere(self) -> bool:
        return int(self.state.ist[STATUS]) == HALTED


async def run_tick_paper(
    data: TickData,
    settings: WorkerSettings,
    *,
    journal: Path,
    decision_interval_ms: int = 1000,
    requote_on_bbo: bool = False,
    max_ticks: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) a paper replay of a tick capture; the paper venue's state lives beside
    the journal (``<journal>.ticks.db``). Returns what it did (fills, equity, PnL, state).

    Raises:
        ReconcileError: a restart found the venue and the journal in disagreement.
        ConfigError: the journal belongs to another run.
        DataError: a capture the tick backtest would refuse.
    """
    s = settings
    replay = TickReplay.from_capture(
        data,
        quote=s.quote,
        risk=s.risk,
        backtest=s.backtest,
        decision_interval_ms=decision_interval_ms,
        requote_on_bbo=requote_on_bbo,
    )
    venue = PaperTickVenue(replay, db=journal.with_name(journal.name + ".ticks.db"))
    j = Journal(journal)
    try:
        worker = TickWorker(replay=replay, venue=venue, journal=j, settings=s)
        found = await worker.start()
        done = await worker.run(max_ticks=max_ticks)
        j.set_control("phase", "finished" if worker.finished else "stopped")
        equity = worker.equity()
        return {
            "journal": str(journal),
            "capture": list(replay.files),
            "symbol": replay.symbol,
            "wakeups_this_call": done,
            "finished": worker.finished,
            "fills": len(j.fills()),
            "final_equity": equity,
            "pnl": equity - s.backtest.initial_cash,
            "reconcile": found,
            "status": worker.status(),
        }
    finally:
        venue.close()
        j.close()
