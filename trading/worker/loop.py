"""The quoting worker's loop (asyncio): per tick, for all symbols at once.

1. online features take the new bars;
2. one signal request for every symbol with a complete window, within the budget; a symbol
   whose signal is missing, late or invalid is quoted model-free (an alert says so);
3. while it is on its way, the venue matches the tick (a replay moves its clock; a live venue
   just lives), new fills are fetched and ambiguous orders settled, and the fills and those
   answers are journaled in a transaction of their own (none of it needs the signals; the
   fills are applied to the books in step 5's transaction);
4. :func:`trading.worker.strategy.step_books` decides risk, flatten and quotes for every book
   (the live one, and the challenger's shadow book in shadow mode);
5. one journal transaction holds the books' state after the tick's fills and the new orders,
   then the orders go to the venue; transport errors leave them in flight;
6. after the tick, the venues make the send phase final and its answers are journaled
   (:meth:`Worker._between_ticks`), outside tick-to-quote.

The operator's controls are journal rows taken inside that transaction, so none is missed and
the asker can be another process: the kill switch and its resume, and per-symbol stop/start
with that symbol's own limits (:mod:`trading.worker.controls`).

On start the worker quotes nothing until it has reconciled (:meth:`Worker.reconcile`): every
unfinished order resolved by client id, unknown orders with its prefix cancelled, positions
compared; a mismatch fails closed with the numbers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.config import FeaturesConfig
from features.progress import report
from trading.backtest import engine_params, ewma_alpha
from trading.config import BacktestConfig, QuoteConfig, RiskConfig, TradeConfig
from trading.fill_engine import EngineParams
from trading.quoting import quote_params
from trading.risk import (
    HALTED,
    LATCHED,
    PAUSES,
    RiskObservation,
    RiskStatus,
    explain,
    reason_names,
    risk_params,
)
from trading.worker import strategy as st
from trading.worker.controls import SymbolControls
from trading.worker.crash import crash_point
from trading.worker.feed import BarFeed
from trading.worker.journal import Journal
from trading.worker.online import OnlineFeatures
from trading.worker.orders import Book, LiveOrder, OrderFlow, ReconcileError, order_prefix
from trading.worker.paper import PaperVenue, Replay
from trading.worker.signals import MODEL_FREE, SignalIntake
from trading.worker.types import SignalSource, SourceInfo, Venue

__all__ = ["MODEL_FREE", "Book", "LiveOrder", "ReconcileError", "TickTimings", "Worker", "WorkerSettings"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    """Everything the loop reads from params.yaml, plus the run's speed."""

    quote: QuoteConfig
    risk: RiskConfig
    backtest: BacktestConfig
    trade: TradeConfig
    features: FeaturesConfig  # resolved for the interval
    speed: float | None = None  # x real time; None = as fast as possible


@dataclass(frozen=True)
class TickTimings:
    """Where one tick's time went, ns.

    ``model`` is the signal call from the request to the answer in hand, of which ``sending``
    is until the request had left (the windows gathered, the body built and written); ``venue``
    all the venue work, of which ``hidden`` ran while the request was in flight (inside
    ``model``'s span), so the tick's wall time is the parts less ``hidden``.
    """

    features: int
    model: int
    decide: int
    journal: int
    venue: int
    hidden: int = 0
    sending: int = 0

    @property
    def total(self) -> int:
        return self.features + self.model + self.decide + self.journal + self.venue - self.hidden


class Worker(SignalIntake, OrderFlow, SymbolControls):
    """The quoting worker over one venue (see the module docstring).

    Args:
        replay: the market data (the paper venue replays it; for a live venue, the bar feed).
        venue: where the live book's orders go.
        journal: the journal.
        settings: quote, risk, backtest, trade and features settings.
        source: the signal service, or None for model-free quoting.
        history: per symbol, bars before the first tick (feature warm-up; never traded).
        shadow_venue: a paper book for the challenger (shadow mode), or None.
        record_features: keep every online feature row (parity tests).
        clock: wall clock for pacing, seconds.
        open_ended: a live feed's run: ticks keep coming (:meth:`run_live`), so the end of the
            replay is not the end of the run (the spec has no last bar).
    """

    def __init__(
        self,
        *,
        replay: Replay,
        venue: Venue,
        journal: Journal,
        settings: WorkerSettings,
        source: SignalSource | None = None,
        history: Mapping[str, pd.DataFrame] | None = None,
        shadow_venue: PaperVenue | None = None,
        record_features: bool = False,
        clock: Callable[[], float] = time.monotonic,
        open_ended: bool = False,
    ) -> None:
        self.replay = replay
        self.open_ended = open_ended
        self.prefix = order_prefix(settings.trade, journal.run_tag() if open_ended else None)
        self.catching_up = False  # a live run back from downtime (see _catch_up)
        self.live_clock: Callable[[], float] | None = None  # a live venue's run: the exchange's time
        self.journal = journal
        self.s = settings
        self.source = source
        self.history = dict(history or {})
        self.symbols = replay.symbols
        self._row = {sym: i for i, sym in enumerate(self.symbols)}  # symbol -> row, O(1) per fill/order
        self.clock = clock
        bt = settings.backtest
        self.ep = worker_engine_params(settings, replay, open_ended=open_ended)
        self.qp = quote_params(settings.quote)
        self.rp = risk_params(settings.risk)
        n = len(self.symbols)
        self.qrows = st.param_rows(self.qp, n)  # one row per symbol: its overrides, else params.yaml's
        self.rrows = st.param_rows(self.rp, n)
        self.reject_alpha = ewma_alpha(settings.risk.reject_halflife_orders)
        self.books = [Book("live", "L", venue, st.Books.fresh(n, bt.initial_cash))]
        if shadow_venue is not None:
            self.books.append(Book("shadow", "S", shadow_venue, st.Books.fresh(n, bt.initial_cash)))
        self.info: SourceInfo | None = None
        self.features: OnlineFeatures | None = None
        self.next_tick = 0
        self.feature_log: list[tuple[int, int, np.ndarray]] | None = [] if record_features else None
        self.timings: deque[TickTimings] = deque(maxlen=100_000)
        self.kind = "forward_log_return"
        self._raw = _RawBars.of(replay)  # the bars online features read
        self.started = False
        self._watch: dict[str, tuple[Book, str, int]] = {}
        self._cancels: dict[str, tuple[Book, str]] = {}
        self._pending: list[tuple[str, str, str]] = []
        self._checkpoints = []

    # ---- start-up ------------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """What identifies the run: a resumed run must have the same."""
        return {
            "symbols": list(self.symbols),
            "interval": self.replay.interval,
            "first": pd.Timestamp(int(self.replay.timeline[0]), tz="UTC").isoformat(),
            "last": None
            if self.open_ended
            else pd.Timestamp(int(self.replay.timeline[-1]), tz="UTC").isoformat(),
            "books": [b.name for b in self.books],
            "quote": self.s.quote.model_dump(mode="json"),
            "risk": self.s.risk.model_dump(mode="json"),
            "backtest": self.s.backtest.model_dump(mode="json"),
            "trade": self.s.trade.model_dump(mode="json"),
            "model": self.source is not None,
        }

    async def start(self) -> dict[str, Any]:
        """Load or create the run, rebuild the features, reconcile; only then may it quote.

        Returns:
            What reconciliation found (orders resolved, resent, cancelled; fills pending).

        Raises:
            ReconcileError: positions or orders disagree (the worker stays HALTED).
            ConfigError: the journal belongs to another run.
        """
        if self.source is not None:
            self.info = await self.source.info()
            self.kind = self.info.kind
        resuming = self.journal.check_run(self.spec())
        for book in self.books:
            saved = self.journal.book(book.name)
            if saved is not None:
                tick, book.last_seq, fs, ist, extra = saved
                book.books = st.Books.from_bytes(fs, ist, len(self.symbols))
                book.fallback = {int(k): v for k, v in extra.get("fallback", {}).items()}
                self.next_tick = tick
        self._load_controls()
        self._rebuild_features()
        found = await self.reconcile()
        self.started = True
        self._defer_checkpoints()
        self.journal.set_control("phase", "active")
        found["resumed"] = resuming
        found["next_tick"] = self.next_tick
        return found

    def _rebuild_features(self) -> None:
        rows = self.info.window_rows if self.info else 1
        names = self.info.feature_names if self.info else None
        self.features = OnlineFeatures(self.s.features, len(self.symbols), rows=rows, names=names)
        for s, sym in enumerate(self.symbols):
            if sym in self.history and len(self.history[sym]):
                self.features.feed(s, self.history[sym])
            done = self.replay.row_of[: self.next_tick, s]
            done = done[done >= 0]
            if len(done):  # the same rows the uninterrupted run fed one by one: the same state
                self.features.feed(s, self.replay.frames[sym].iloc[: int(done[-1]) + 1])

    # ---- the loop ------------------------------------------------------------------------------
    async def run(self, *, max_ticks: int | None = None, stop: asyncio.Event | None = None) -> int:
        """Process ticks until the replay ends, ``max_ticks`` are done, or ``stop`` is set.

        Returns:
            The ticks processed by this call.
        """
        if not self.started:
            await self.start()
        done = 0
        bar_s = self.replay.bar_ns / 1e9
        total = len(self.replay)
        every = max(1, total // 10)
        while self.next_tick < total and (max_ticks is None or done < max_ticks):
            if stop is not None and stop.is_set():
                break
            began = self.clock()
            await self.tick()
            await self._between_ticks()
            done += 1
            if self.next_tick % every == 0 or self.next_tick == total:
                report("paper replay", done=self.next_tick, total=total, detail=self._progress_detail())
            if self.s.speed is not None:
                await asyncio.sleep(max(0.0, bar_s / self.s.speed - (self.clock() - began)))
            else:
                await asyncio.sleep(0)  # the control API shares this loop: it answers between ticks
        if self.next_tick >= total:
            await self._book_remaining()
        await self.finish()
        return done

    async def run_live(self, feed: BarFeed, *, stop: asyncio.Event, max_ticks: int | None = None) -> int:
        """Trade ticks as the feed makes them due, until ``stop`` is set or ``max_ticks`` are done.

        Returns:
            The ticks processed by this call.
        """
        if not self.started:
            await self.start()
        done = 0
        while not stop.is_set() and (max_ticks is None or done < max_ticks):
            while (
                self.next_tick < len(self.replay)
                and (max_ticks is None or done < max_ticks)
                and not stop.is_set()
            ):
                self._catch_up()
                await self.tick()
                await self._between_ticks()
                done += 1
                await asyncio.sleep(0)  # the control API shares this loop: it answers between ticks
            if stop.is_set() or (max_ticks is not None and done >= max_ticks):
                break
            waiting = asyncio.ensure_future(feed.next())
            stopped = asyncio.ensure_future(stop.wait())
            while not (waiting.done() or stopped.done()):  # between ticks: a kill acts at once
                await asyncio.wait(
                    {waiting, stopped}, timeout=CONTROL_POLL_S, return_when=asyncio.FIRST_COMPLETED
                )
                if self.live_clock is not None and self.journal.control("kill") is not None:
                    await self.pull_quotes(
                        "kill switch pressed between ticks (the flatten follows at the next tick)"
                    )
            if not waiting.done():
                waiting.cancel()
                break
            stopped.cancel()
            self.extend(waiting.result())
            for note in feed.take_notes():
                self.journal.add_event(
                    self.next_tick, note.ts_ns, note.symbol, "market_data", f"feed: {note.message}"
                )
        if self.live_clock is not None:  # quotes must not rest on the exchange while nobody watches them
            await self.pull_quotes("stopped: quotes pulled; position kept")
        await self.finish()
        return done

    def _catch_up(self) -> None:
        """A live venue's run that was down has ticks to catch up on: they are booked (fills,
        features, risk) but quote nothing, since orders priced on bars minutes old must not go
        out; the newest tick quotes afresh. A paper venue's run quotes them (it fills on those
        same bars, as the replay would)."""
        if self.live_clock is None:
            return
        j = self.next_tick
        closed_s = (int(self.replay.timeline[j]) + self.replay.bar_ns) / 1e9
        lag_s = self.live_clock() - closed_s
        behind = lag_s > self.s.risk.stale_after_ms / 1000
        if behind != self.catching_up:
            for book in self.books:
                book.books.ist[:, st.I_REFRESH] = 0  # decide at this tick: pull the quotes, or quote afresh
        if behind and not self.catching_up:
            missed = len(self.replay) - j
            self.journal.add_event(
                j,
                int(self.replay.timeline[j]),
                "*",
                "market_data",
                f"catching up {missed} tick(s) missed while down (the first closed {lag_s:.0f} s ago > "
                f"{self.s.risk.stale_after_ms / 1000:g} s): booked, not quoted",
            )
        self.catching_up = behind

    def _quote_rows(self) -> np.ndarray:
        """This tick's quote rows: each symbol's own, or none quoted while catching up."""
        if not self.catching_up:
            return self.qrows
        rows = self.qrows.copy()
        rows["order_lots"] = 0
        return rows

    def extend(self, replay: Replay) -> None:
        """Take a live feed's longer replay: the ticks seen so far must be exactly as before.

        Raises:
            ValueError: the new replay rewrites a tick the worker has already seen.
        """
        old = self.replay
        n = len(old)
        if (
            replay.symbols != old.symbols
            or len(replay) < n
            or not np.array_equal(replay.timeline[:n], old.timeline)
            or not np.array_equal(replay.row_of[:n], old.row_of)
        ):
            raise ValueError(f"live feed: the first {n} ticks changed; the feed must only append")
        self.replay = replay
        self._raw = _RawBars.of(replay)
        for book in self.books:
            if isinstance(book.venue, PaperVenue):  # paper trading on live bars
                book.venue.extend(replay)

    async def tick(self) -> None:
        """One tick (see the module docstring).

        The venue's part that does not depend on this tick's signals (matching the bar, reading
        the fills, settling ambiguous orders) runs while the signal request is on its way, so
        it is off the tick's critical path when the service is the slower of the two.
        """
        j = self.next_tick
        bars = self.replay.tick(j)
        t0 = time.perf_counter_ns()
        self._update_features(j, bars)
        t1 = time.perf_counter_ns()
        sent = asyncio.Event()
        request = asyncio.ensure_future(self._signals(bars, sent))
        await sent.wait()  # the request has left (or the answer is in: nothing in flight)
        t2 = time.perf_counter_ns()
        in_flight = not request.done()
        try:
            fills = await self._venue_work(j)
        except BaseException:
            request.cancel()
            raise
        t3 = time.perf_counter_ns()
        batch, why_none = await request
        t4 = time.perf_counter_ns()
        planned: list[tuple[Book, list[Any]]] = []
        decide = 0
        with self.journal.transaction():
            kill, resume = self.journal.take_controls()  # inside the write lock: none is missed
            stopped = self._take_requests(j)
            for book in self.books:
                self._apply_fills(book, fills[book.name])
                if resume:
                    self._resume(book, j)
                sig = self._tick_signals(book, bars, batch, why_none, j)
                ist = book.books.ist
                prev = ist[:, [st.I_STATUS, st.I_REASONS]].copy()
                age = np.where(
                    ist[:, st.I_BARS] > 0, bars.open_ns - ist[:, st.I_PREV_OPEN] - self.ep.bar_ns, 0
                )
                out = np.zeros((len(self.symbols), st.N_D), dtype=np.int64)
                td0 = time.perf_counter_ns()
                st.step_books(
                    bars, sig, kill, book.books.fs, ist, out, self._quote_rows(), self.rrows, self.ep
                )
                self._risk_events(book, bars, prev, age, j)
                decide += time.perf_counter_ns() - td0
                actions = self._plan(book, bars, out, batch, j)
                planned.append((book, stopped.get(book.name, []) + self._guard(book, bars, j) + actions))
                self._save_book(book, j + 1)
            now = int(self.replay.timeline[j])
            self.journal.add_mark(j, now, np.where(bars.has_bar, bars.close, 0).tobytes())
            self.journal.add_quotes(j, now, self._live_quotes())
        t5 = time.perf_counter_ns()
        self.next_tick = j + 1
        crash_point("after_journal", j)
        for book, actions in planned:
            await self._send(book, actions, j)
        t6 = time.perf_counter_ns()
        self.timings.append(
            TickTimings(
                features=t1 - t0,
                model=t4 - t1 if in_flight else (t2 - t1) + (t4 - t3),
                decide=decide,
                journal=t5 - t4 - decide,
                venue=(t3 - t2) + (t6 - t5),
                hidden=t3 - t2 if in_flight else 0,
                sending=t2 - t1,
            )
        )

    async def _venue_work(self, j: int) -> dict[str, list[Any]]:
        """What the venues say before this tick's decision, journaled in one transaction of its
        own: the paper venues match this tick (any venue first makes the last send phase final,
        should :meth:`_between_ticks` not have), every book's new fills are read and ambiguous
        orders settled; then the fills and the answers not journaled yet are (the venue had the
        requests before the journal says it answered them: see :meth:`_confirm`). Returns the
        fills by book, applied to the books in the tick's transaction (:meth:`_apply_fills`: by
        the venue's fill numbers, so a crash between the two transactions loses none and books
        none twice)."""
        for book in self.books:
            venue = book.venue
            if isinstance(venue, PaperVenue) and venue.clock <= j:
                venue.advance()  # the send phase made final in the matching's commit (once a row)
            else:
                await venue.flush()
        crash_point("after_advance", j)
        fills = {book.name: await self._poll_fills(book) for book in self.books}
        await self._settle()
        with self.journal.transaction():
            self._write_pending()
            for book in self.books:
                self.journal.add_fills(fills[book.name], book=book.name)
        crash_point("after_fills", j)
        return fills

    def _update_features(self, j: int, bars: st.TickBars) -> None:
        """Tick ``j``'s bars into the online features: every symbol with a bar, in one call."""
        assert self.features is not None
        rows = np.flatnonzero(bars.has_bar)
        now = int(self.replay.timeline[j])
        o, h, low, c, v, tbv = self._raw.values[:, self._raw.start[rows] + self.replay.row_of[j, rows]]
        out = self.features.feed_tick(rows, now, o, h, low, c, v, tbv)
        if self.feature_log is not None:
            self.feature_log.extend((int(s), now, row) for s, row in zip(rows, out, strict=True))

    def _resume(self, book: Book, j: int) -> None:
        """A person cleared the kill switch: drop the latched reasons, restart the peak here."""
        bt = self.s.backtest
        for s, sym in enumerate(self.symbols):
            ist, fs = book.books.ist, book.books.fs
            if ist[s, st.I_REASONS] & LATCHED:
                ist[s, st.I_REASONS] &= ~LATCHED
                fs[s, st.F_PEAK] = book.books.equity(s, tick=bt.tick_size, lot=bt.lot_size)
                self.journal.add_event(
                    j, int(self.replay.timeline[j]), sym, "resume", f"{book.name}: kill switch cleared"
                )

    def _save_book(self, book: Book, next_tick: int) -> None:
        self.journal.save_book(
            book.name,
            tick=next_tick,
            last_seq=book.last_seq,
            fs=book.books.fs.tobytes(),
            ist=book.books.ist.tobytes(),
            extra={"fallback": {str(k): v for k, v in book.fallback.items()}},
        )

    async def _book_remaining(self) -> None:
        """After the last tick: book what its orders filled since (a kill's flatten fills at once)."""
        for book in self.books:
            fills = await book.venue.fills_since(book.last_seq)
            if fills:
                with self.journal.transaction():
                    self._book_fills(book, fills)
                    self._save_book(book, self.next_tick)

    def _risk_events(self, book: Book, bars: st.TickBars, prev: np.ndarray, age: np.ndarray, j: int) -> None:
        """Journal each risk state change, and each new halting reason while halted, with its numbers."""
        ist, fs = book.books.ist, book.books.fs
        fresh = ist[:, st.I_REASONS] & ~prev[:, 1] & (LATCHED | PAUSES)
        for s in np.flatnonzero(bars.has_bar & ((ist[:, st.I_STATUS] != prev[:, 0]) | (fresh != 0))):
            s = int(s)
            bits = int(ist[s, st.I_REASONS])
            seen = RiskObservation.of_book(
                inventory_lots=int(ist[s, st.I_INV]),
                mark=bars.close[s] * self.ep.tick,
                lot=self.ep.lot,
                equity=fs[s, st.F_EQUITY],
                initial_equity=self.ep.initial_cash,
                peak_equity=fs[s, st.F_PEAK],
                var_ratio=fs[s, st.F_VAR_F] / fs[s, st.F_VAR_S],
                data_age_ns=int(age[s]),
                reject_rate=fs[s, st.F_REJECT],
            )
            status = RiskStatus(int(ist[s, st.I_STATUS])).name
            details = "; ".join(explain(bits, seen, self.s.risk)) or "limits clear"
            message = f"{book.name}: {RiskStatus(int(prev[s, 0])).name} -> {status}: {details}"
            self.journal.add_event(j, int(self.replay.timeline[j]), self.symbols[s], "risk", message)
            logger.info("%s %s", self.symbols[s], message)

    def _guard(self, book: Book, bars: st.TickBars, j: int) -> list[Any]:
        """No quotes on bad or stale market data: a bad bar, or none for longer than
        ``risk.stale_after_ms``, pulls that symbol's orders (and says why)."""
        actions: list[Any] = []
        now = int(self.replay.timeline[j])
        stale_ns = self.s.risk.stale_after_ms * 1_000_000
        for s in range(len(self.symbols)):
            why = self.replay.bad.get((j, s))
            last = int(book.books.ist[s, st.I_PREV_OPEN])
            age = now - last - self.ep.bar_ns  # since the last bar closed, as the risk engine counts it
            if why is None and not bars.has_bar[s] and last and age > stale_ns:
                why = f"stale market data: the last bar closed {age / 1e9:.0f} s ago > {stale_ns / 1e9:g} s"
            if why is None:  # the usual case: no scan of the live orders (O(symbols x orders))
                continue
            pulled = self._pull(book, s)
            if pulled:
                self.journal.add_event(
                    j, now, self.symbols[s], "market_data", f"{book.name}: no quotes: {why}"
                )
                actions += pulled
        return actions

    # ---- what it did ---------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Per book and symbol: inventory, equity, risk state and reasons, model-free or not."""
        bt = self.s.backtest
        out: dict[str, Any] = {"next_tick": self.next_tick, "ticks": len(self.replay), "books": {}}
        for book in self.books:
            rows = {}
            for s, sym in enumerate(self.symbols):
                ist = book.books.ist
                rows[sym] = {
                    "inventory_lots": int(ist[s, st.I_INV]),
                    "equity": book.books.equity(s, tick=bt.tick_size, lot=bt.lot_size),
                    "status": RiskStatus(int(ist[s, st.I_STATUS])).name,
                    "reasons": list(reason_names(int(ist[s, st.I_REASONS]))),
                    "model_free": book.fallback.get(s),
                    "quoting": self.quoting(s),
                }
            out["books"][book.name] = rows
        return out

    def _progress_detail(self) -> str:
        live = self.books[0]
        halted = int((live.books.ist[:, st.I_STATUS] == HALTED).sum())
        fallback = len(live.fallback)
        parts = [f"inventory {int(live.books.ist[:, st.I_INV].sum()):+d} lots"]
        if halted:
            parts.append(f"{halted} halted")
        if fallback:
            parts.append(f"{fallback} model-free")
        return ", ".join(parts)

    def halted_everywhere(self) -> bool:
        return bool((self.books[0].books.ist[:, st.I_STATUS] == HALTED).all())


CONTROL_POLL_S = 1.0  # between a live run's ticks, the kill switch is looked at this often
NEVER = np.iinfo(np.int64).max // 2  # kill_from ("the kill pressed at bar n") for a run with no last bar


def worker_engine_params(settings: WorkerSettings, replay: Replay, *, open_ended: bool) -> EngineParams:
    """The engine parameters of a worker's run and of its paper venues: the backtest's, with no
    kill pressed (``kill_from`` past the replay's end; never, on a live run's open clock)."""
    return engine_params(
        quote=settings.quote,
        risk=settings.risk,
        backtest=settings.backtest,
        bar_ns=replay.bar_ns,
        need_signal=False,
        kill_from=NEVER if open_ended else len(replay),
    )


@dataclass(frozen=True)
class _RawBars:
    """The bar columns online features read, every symbol's frame end to end, so that a tick's
    bars for all symbols are one gather: row ``k`` of symbol row ``s``'s frame is column
    ``start[s] + k`` of ``values``."""

    values: np.ndarray  # float64 (len(_RAW_COLUMNS), all frames' rows)
    start: np.ndarray  # int64 (symbols,): each symbol's first column

    @classmethod
    def of(cls, replay: Replay) -> _RawBars:
        frames = [replay.frames[sym] for sym in replay.symbols]
        values = np.array([np.concatenate([_column(f, c) for f in frames]) for c in _RAW_COLUMNS])
        lengths = [len(f) for f in frames]
        return cls(values=values, start=np.cumsum([0, *lengths[:-1]], dtype=np.int64))


_RAW_COLUMNS = ("open", "high", "low", "close", "volume", "taker_buy_volume")


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A bar column as float64 (NaN where absent; all NaN when the source has no such column)."""
    if name not in frame:
        return np.full(len(frame), np.nan)
    return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
