"""The quoting worker's loop (asyncio): per tick, for all symbols at once.

1. the venue matches the tick (a replay moves its clock; a live venue just lives);
2. new fills are fetched and booked; online features take the new bars;
3. one signal request for every symbol with a complete window, within the budget; a symbol
   whose signal is missing, late or invalid is quoted model-free (an alert says so);
4. :func:`trading.worker.strategy.step_books` decides risk, flatten and quotes for every book
   (the live one, and the challenger's shadow book in shadow mode);
5. one journal transaction holds the tick's fills, the books' state and the new orders, then
   the orders go to the venue; transport errors leave them in flight.

On start the worker quotes nothing until it has reconciled (:meth:`Worker.reconcile`): every
unfinished order resolved by client id, unknown orders with its prefix cancelled, positions
compared; a mismatch fails closed with the numbers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.config import FeaturesConfig
from features.errors import OperationalError
from features.progress import report
from trading.backtest import engine_params, ewma_alpha
from trading.config import BacktestConfig, QuoteConfig, RiskConfig, TradeConfig
from trading.quoting import quote_params
from trading.risk import HALTED, LATCHED, RiskObservation, RiskStatus, explain, reason_names, risk_params
from trading.worker import strategy as st
from trading.worker.crash import crash_point
from trading.worker.journal import Journal, JournalOrder
from trading.worker.online import OnlineFeatures
from trading.worker.paper import PaperVenue, Replay
from trading.worker.types import (
    TERMINAL,
    Fill,
    OrderRequest,
    OrderState,
    SignalBatch,
    SignalSource,
    SourceInfo,
    Venue,
    VenueAmbiguous,
    VenueRejected,
)

logger = logging.getLogger(__name__)

MODEL_FREE = "model-free"


class ReconcileError(OperationalError):
    """The venue and the journal disagree in a way the worker must not trade through."""


@dataclass(frozen=True)
class WorkerSettings:
    """Everything the loop reads from params.yaml, plus the run's speed."""

    quote: QuoteConfig
    risk: RiskConfig
    backtest: BacktestConfig
    trade: TradeConfig
    features: FeaturesConfig  # resolved for the interval
    speed: float | None = None  # x real time; None = as fast as possible


@dataclass
class _Live:
    """One of the worker's orders it believes is on the venue."""

    client_id: str
    price_ticks: int
    lots: int
    filled: int
    tick: int

    @property
    def remaining(self) -> int:
        return self.lots - self.filled


@dataclass
class _Book:
    """A book: its venue, its state, its live orders, where its fills were read up to."""

    name: str  # "live" | "shadow"
    letter: str
    venue: Venue
    books: st.Books
    last_seq: int = 0
    live: dict[tuple[int, int], _Live] = field(default_factory=dict)  # (symbol row, side)
    fallback: dict[int, str] = field(default_factory=dict)  # symbol row -> why model-free


@dataclass(frozen=True)
class TickTimings:
    """Where one tick's time went, ns."""

    features: int
    model: int
    decide: int
    journal: int
    venue: int

    @property
    def total(self) -> int:
        return self.features + self.model + self.decide + self.journal + self.venue


class Worker:
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
    ) -> None:
        self.replay = replay
        self.journal = journal
        self.s = settings
        self.source = source
        self.history = dict(history or {})
        self.symbols = replay.symbols
        self._row = {sym: i for i, sym in enumerate(self.symbols)}  # symbol -> row, O(1) per fill/order
        self.clock = clock
        bt = settings.backtest
        self.ep = engine_params(
            quote=settings.quote,
            risk=settings.risk,
            backtest=bt,
            bar_ns=replay.bar_ns,
            need_signal=False,
            kill_from=len(replay),
        )
        self.qp = quote_params(settings.quote)
        self.rp = risk_params(settings.risk)
        self.reject_alpha = ewma_alpha(settings.risk.reject_halflife_orders)
        n = len(self.symbols)
        self.books = [_Book("live", "L", venue, st.Books.fresh(n, bt.initial_cash))]
        if shadow_venue is not None:
            self.books.append(_Book("shadow", "S", shadow_venue, st.Books.fresh(n, bt.initial_cash)))
        self.info: SourceInfo | None = None
        self.features: OnlineFeatures | None = None
        self.next_tick = 0
        self.feature_log: list[tuple[int, int, np.ndarray]] | None = [] if record_features else None
        self.timings: deque[TickTimings] = deque(maxlen=100_000)
        self.kind = "forward_log_return"
        self._raw = {
            sym: {
                c: (
                    frame[c].to_numpy(dtype=np.float64, na_value=np.nan)
                    if c in frame
                    else np.full(len(frame), np.nan)
                )
                for c in ("open", "high", "low", "close", "volume", "taker_buy_volume")
            }
            for sym, frame in replay.frames.items()
        }
        self.started = False
        self._watch: dict[str, tuple[_Book, str, int]] = {}  # client id -> (book, symbol, side)

    # ---- start-up ------------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """What identifies the run: a resumed run must have the same."""
        return {
            "symbols": list(self.symbols),
            "interval": self.replay.interval,
            "first": pd.Timestamp(int(self.replay.timeline[0]), tz="UTC").isoformat(),
            "last": pd.Timestamp(int(self.replay.timeline[-1]), tz="UTC").isoformat(),
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
        self._rebuild_features()
        found = await self.reconcile()
        self.started = True
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

    async def reconcile(self) -> dict[str, Any]:
        """Resolve every unfinished order by client id, cancel unknown ones, compare positions."""
        self.journal.set_control("phase", "reconciling")
        report = {"resolved": 0, "resent": 0, "cancelled_unknown": 0, "fills_pending": 0}
        for book in self.books:
            mine = {o.client_id: o for o in self.journal.open_orders(book.name)}
            with self.journal.transaction():
                for o in mine.values():
                    await self._resolve(book, o, report)
            prefix = f"{self.s.trade.client_prefix}-{book.letter}"
            for o_state in await book.venue.open_orders():
                if o_state.client_id.startswith(prefix) and self.journal.order(o_state.client_id) is None:
                    await book.venue.cancel(o_state.symbol, o_state.client_id)
                    report["cancelled_unknown"] += 1
                    with self.journal.transaction():
                        self.journal.add_event(
                            self.next_tick,
                            0,
                            o_state.symbol,
                            "reconcile",
                            f"cancelled unknown order {o_state.client_id}",
                        )
            self._rebuild_live(book)
            pending = await book.venue.fills_since(book.last_seq)
            report["fills_pending"] += len(pending)
            venue_pos = await book.venue.positions()
            for s, sym in enumerate(self.symbols):
                ours = int(book.books.ist[s, st.I_INV]) + sum(
                    f.side * f.lots for f in pending if f.symbol == sym
                )
                theirs = venue_pos.get(sym, 0)
                if ours != theirs:
                    why = f"{book.name} {sym}: journal position {ours:+d} lots, venue {theirs:+d} lots"
                    with self.journal.transaction():
                        self.journal.add_event(self.next_tick, 0, sym, "fail_closed", why)
                    self.journal.set_control("phase", "halted")
                    raise ReconcileError(f"reconciliation failed, not trading: {why}")
        return report

    async def _resolve(self, book: _Book, o: JournalOrder, report: dict[str, int]) -> None:
        state = await book.venue.order(o.client_id)
        report["resolved"] += 1
        if state is None:
            if o.status == "intent":  # journaled, never sent: send it now (the same client id)
                await self._send_place(book, o)
                report["resent"] += 1
            else:
                self.journal.set_status(o.client_id, "rejected", "unknown to the venue after a restart")
            return
        self.journal.set_status(o.client_id, state.status)
        if o.cancel_requested and state.status not in TERMINAL:
            await self._send_cancel(book, o.client_id, o.symbol)
        elif o.status == "in_flight" and state.status not in TERMINAL:
            self._watch[o.client_id] = (book, o.symbol, o.side)

    def _rebuild_live(self, book: _Book) -> None:
        book.live.clear()
        row = {sym: i for i, sym in enumerate(self.symbols)}
        for o in self.journal.open_orders(book.name):
            if o.kind == "limit" and not o.cancel_requested:
                book.live[(row[o.symbol], o.side)] = _Live(
                    o.client_id, o.price_ticks, o.lots, o.filled_lots, o.tick
                )

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
            done += 1
            if self.next_tick % every == 0 or self.next_tick == total:
                report("paper replay", done=self.next_tick, total=total, detail=self._progress_detail())
            if self.s.speed is not None:
                await asyncio.sleep(max(0.0, bar_s / self.s.speed - (self.clock() - began)))
        return done

    async def tick(self) -> None:
        """One tick (see the module docstring)."""
        j = self.next_tick
        bars = self.replay.tick(j)
        t0 = time.perf_counter_ns()
        for book in self.books:
            venue = book.venue
            if isinstance(venue, PaperVenue) and venue.clock <= j:
                venue.advance()
        crash_point("after_advance", j)
        fills = {book.name: await book.venue.fills_since(book.last_seq) for book in self.books}
        await self._settle()
        t1 = time.perf_counter_ns()
        self._update_features(j, bars)
        t2 = time.perf_counter_ns()
        batch, why_none = await self._signals(bars)
        t3 = time.perf_counter_ns()
        kill = self.journal.control("kill") is not None
        resume = self.journal.control("resume") is not None
        planned: list[tuple[_Book, list[Any]]] = []
        decide = 0
        with self.journal.transaction():
            for book in self.books:
                for f in fills[book.name]:
                    self._book_fill(book, f)
                if resume:
                    self._resume(book, j)
                sig = self._tick_signals(book, bars, batch, why_none, j)
                prev = book.books.ist[:, st.I_STATUS].copy()
                out = np.zeros((len(self.symbols), st.N_D), dtype=np.int64)
                td0 = time.perf_counter_ns()
                st.step_books(bars, sig, kill, book.books.fs, book.books.ist, out, self.qp, self.rp, self.ep)
                self._risk_events(book, bars, prev, j)
                decide += time.perf_counter_ns() - td0
                actions = self._plan(book, bars, out, batch, j)
                planned.append((book, self._guard(book, bars, j) + actions))
                self.journal.save_book(
                    book.name,
                    tick=j + 1,
                    last_seq=book.last_seq,
                    fs=book.books.fs.tobytes(),
                    ist=book.books.ist.tobytes(),
                    extra={"fallback": {str(k): v for k, v in book.fallback.items()}},
                )
            if resume:
                self.journal._db.execute("delete from control where key in ('resume', 'kill')")
            self.journal.add_mark(
                j, int(self.replay.timeline[j]), np.where(bars.has_bar, bars.close, 0).tobytes()
            )
        t4 = time.perf_counter_ns()
        self.next_tick = j + 1
        crash_point("after_journal", j)
        for book, actions in planned:
            await self._send(book, actions, j)
        t5 = time.perf_counter_ns()
        self.timings.append(
            TickTimings(
                features=t2 - t1,
                model=t3 - t2,
                decide=decide,
                journal=t4 - t3 - decide,
                venue=(t1 - t0) + (t5 - t4),
            )
        )

    def _update_features(self, j: int, bars: st.TickBars) -> None:
        assert self.features is not None
        for s in np.flatnonzero(bars.has_bar):
            sym = self.symbols[s]
            k = int(self.replay.row_of[j, s])
            raw = self._raw[sym]
            row = self.features.feed_one(
                int(s),
                int(self.replay.timeline[j]),
                raw["open"][k],
                raw["high"][k],
                raw["low"][k],
                raw["close"][k],
                raw["volume"][k],
                raw["taker_buy_volume"][k],
            )
            if self.feature_log is not None:
                self.feature_log.append((int(s), int(self.replay.timeline[j]), row))

    async def _signals(self, bars: st.TickBars) -> tuple[SignalBatch | None, dict[int, str]]:
        """One request for every symbol with a bar and a complete window, within the budget."""
        if self.source is None or self.features is None:
            return None, {}
        ready = self.features.ready() & bars.has_bar
        why = {
            int(s): "warming up: the feature window is not complete"
            for s in np.flatnonzero(bars.has_bar & ~ready)
        }
        rows = np.flatnonzero(ready)
        if len(rows) == 0:
            return None, why
        budget = self.s.trade.signal_budget_ms / 1000
        try:
            batch = await asyncio.wait_for(
                self.source.signals(
                    [self.symbols[s] for s in rows], self.features.window[rows].astype(np.float32)
                ),
                timeout=budget,
            )
        except TimeoutError:
            return None, why | {int(s): f"signal late: no answer within {budget * 1000:.0f} ms" for s in rows}
        except Exception as exc:  # any failure of the source: model-free quotes, and say why
            text = f"signal service unavailable: {type(exc).__name__}: {exc}"[:300]
            return None, why | {int(s): text for s in rows}
        full = np.full(len(self.symbols), np.nan)
        full[rows] = batch.values
        versions = [""] * len(self.symbols)
        aliases = [""] * len(self.symbols)
        for i, s in enumerate(rows):
            versions[s] = batch.versions[i]
            aliases[s] = batch.aliases[i]
        shadow = None
        if batch.shadow_values is not None:
            shadow = np.full(len(self.symbols), np.nan)
            shadow[rows] = batch.shadow_values
        return (
            SignalBatch(full, versions, aliases, batch.kind, shadow, batch.shadow_version),
            why,
        )

    def _valid(self, value: float, kind: str) -> bool:
        if not math.isfinite(value):
            return False
        return 0.0 <= value <= 1.0 if kind == "prob_up" else abs(value) < 1.0

    def _tick_signals(
        self, book: _Book, bars: st.TickBars, batch: SignalBatch | None, why_none: dict[int, str], j: int
    ) -> st.TickSignals:
        n = len(self.symbols)
        pred = np.full(n, np.nan)
        prob = np.full(n, np.nan)
        need = np.zeros(n, dtype=bool)
        if self.source is None:
            return st.TickSignals(pred, np.full(n, np.nan), prob, need)
        need[:] = self.s.trade.on_missing_signal == "reduce"
        values = None
        if batch is not None:
            values = batch.values if book.name == "live" else batch.shadow_values
        for s in np.flatnonzero(bars.has_bar):
            s = int(s)
            reason = why_none.get(s)
            if reason is None and values is None:
                reason = "no shadow signal: the service is not in shadow mode"
            if reason is None and values is not None and not self._valid(float(values[s]), self.kind):
                reason = f"invalid signal {float(values[s])!r} for {self.kind}"
            if reason is None and values is not None:
                (prob if self.kind == "prob_up" else pred)[s] = values[s]
            self._note_fallback(book, s, reason, j)
        return st.TickSignals(pred, np.full(n, np.nan), prob, need)

    def _note_fallback(self, book: _Book, s: int, reason: str | None, j: int) -> None:
        before = book.fallback.get(s)
        sym = self.symbols[s]
        ts = int(self.replay.timeline[j])
        if reason is not None and before is None:
            book.fallback[s] = reason
            self.journal.add_event(j, ts, sym, "alert", f"{book.name}: model-free quotes: {reason}")
            logger.warning("%s %s: model-free quotes: %s", book.name, sym, reason)
        elif reason is None and before is not None:
            del book.fallback[s]
            self.journal.add_event(
                j, ts, sym, "recovered", f"{book.name}: model quotes again (was: {before})"
            )
            logger.info("%s %s: model quotes again", book.name, sym)
        elif reason is not None:
            book.fallback[s] = reason

    def _book_fill(self, book: _Book, f: Fill) -> None:
        if self.journal.add_fill(f, book=book.name):
            s = self._row[f.symbol]
            bt = self.s.backtest
            book.books.apply_fill(s, f.side, f.price_ticks, f.lots, f.fee, tick=bt.tick_size, lot=bt.lot_size)
            live = book.live.get((s, f.side))
            if live is not None and live.client_id == f.client_id:
                live.filled += f.lots
                if live.remaining <= 0:
                    del book.live[(s, f.side)]
        book.last_seq = max(book.last_seq, f.seq)

    def _resume(self, book: _Book, j: int) -> None:
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

    def _risk_events(self, book: _Book, bars: st.TickBars, prev: np.ndarray, j: int) -> None:
        ist, fs = book.books.ist, book.books.fs
        for s in np.flatnonzero(bars.has_bar & (ist[:, st.I_STATUS] != prev)):
            s = int(s)
            bits = int(ist[s, st.I_REASONS])
            seen = RiskObservation(
                inventory_lots=int(ist[s, st.I_INV]),
                notional=abs(ist[s, st.I_INV] * self.ep.lot * bars.close[s] * self.ep.tick),
                pnl=float(fs[s, st.F_EQUITY] - self.ep.initial_cash),
                drawdown=float((fs[s, st.F_PEAK] - fs[s, st.F_EQUITY]) / fs[s, st.F_PEAK]),
                var_ratio=float(fs[s, st.F_VAR_F] / fs[s, st.F_VAR_S]),
                data_age_ns=0,
                reject_rate=float(fs[s, st.F_REJECT]),
            )
            status = RiskStatus(int(ist[s, st.I_STATUS])).name
            details = "; ".join(explain(bits, seen, self.s.risk)) or "limits clear"
            message = f"{book.name}: {RiskStatus(int(prev[s])).name} -> {status}: {details}"
            self.journal.add_event(j, int(self.replay.timeline[j]), self.symbols[s], "risk", message)
            logger.info("%s %s", self.symbols[s], message)

    def _cid(self, book: _Book, j: int, side: str, s: int) -> str:
        return f"{self.s.trade.client_prefix}-{book.letter}{j}{side}-{self.symbols[s]}"

    def _plan(
        self, book: _Book, bars: st.TickBars, out: np.ndarray, batch: SignalBatch | None, j: int
    ) -> list[Any]:
        """Journal this tick's orders (intents) and return what to send, in order."""
        actions: list[Any] = []
        keep_unchanged = self.ep.latency_bars == 0  # see the note on replacement in the docs
        for s in np.flatnonzero(bars.has_bar):
            s = int(s)
            version, alias = self._tag(book, s, batch)
            mid = float(bars.close[s])
            if out[s, st.D_FLATTEN_LOTS] > 0:
                side = int(out[s, st.D_FLATTEN_SIDE])
                o = self._intent(
                    book, s, j, "f", side, int(out[s, st.D_FLATTEN_LOTS]), 0, "market", version, alias, mid
                )
                actions.append(("place", o))
            if not out[s, st.D_REQUOTE]:
                continue
            quotes = (
                (1, "b", out[s, st.D_BID], out[s, st.D_BID_LOTS]),
                (-1, "a", out[s, st.D_ASK], out[s, st.D_ASK_LOTS]),
            )
            for side, letter, price, lots in quotes:
                cur = book.live.get((s, side))
                if (
                    cur is not None
                    and keep_unchanged
                    and lots > 0
                    and cur.price_ticks == price
                    and cur.remaining == lots
                ):
                    continue
                if cur is not None:
                    self.journal.request_cancel(cur.client_id)
                    actions.append(("cancel", cur.client_id, self.symbols[s]))
                    del book.live[(s, side)]
                if lots > 0:
                    o = self._intent(
                        book, s, j, letter, side, int(lots), int(price), "limit", version, alias, mid
                    )
                    book.live[(s, side)] = _Live(o.client_id, o.price_ticks, o.lots, 0, j)
                    actions.append(("place", o))
        return actions

    def _guard(self, book: _Book, bars: st.TickBars, j: int) -> list[Any]:
        """No quotes on bad or stale market data: a bad bar, or none for longer than
        ``risk.stale_after_ms``, pulls that symbol's orders (and says why)."""
        actions: list[Any] = []
        now = int(self.replay.timeline[j])
        stale_ns = self.s.risk.stale_after_ms * 1_000_000
        for s in range(len(self.symbols)):
            why = self.replay.bad.get((j, s))
            last = int(book.books.ist[s, st.I_PREV_OPEN])
            if why is None and not bars.has_bar[s] and last and now - last - self.ep.bar_ns > stale_ns:
                why = f"stale market data: no bar for {(now - last) / 1e9:.0f} s > {stale_ns / 1e9:g} s"
            if why is None:  # the usual case: no scan of the live orders (O(symbols x orders))
                continue
            mine = [(side, o) for (row, side), o in book.live.items() if row == s]
            if not mine:
                continue
            self.journal.add_event(j, now, self.symbols[s], "market_data", f"{book.name}: no quotes: {why}")
            for side, o in mine:
                self.journal.request_cancel(o.client_id)
                actions.append(("cancel", o.client_id, self.symbols[s]))
                del book.live[(s, side)]
        return actions

    def _tag(self, book: _Book, s: int, batch: SignalBatch | None) -> tuple[str, str]:
        """The model version (and alias) whose signal priced this symbol's quotes."""
        if batch is None or s in book.fallback:
            return MODEL_FREE, MODEL_FREE
        if book.name == "shadow":
            return batch.shadow_version or MODEL_FREE, "challenger"
        return batch.versions[s] or MODEL_FREE, batch.aliases[s] or MODEL_FREE

    def _intent(
        self,
        book: _Book,
        s: int,
        j: int,
        letter: str,
        side: int,
        lots: int,
        price: int,
        kind: str,
        version: str,
        alias: str,
        mid: float,
    ) -> JournalOrder:
        o = JournalOrder(
            client_id=self._cid(book, j, letter, s),
            book=book.name,
            symbol=self.symbols[s],
            side=side,
            kind=kind,
            price_ticks=price,
            lots=lots,
            tick=j,
            version=version,
            alias=alias,
            ref_mid_ticks=mid,
            status="intent",
            filled_lots=0,
            cancel_requested=False,
        )
        self.journal.add_order(o)
        return o

    async def _send(self, book: _Book, actions: list[Any], j: int) -> None:
        results: list[tuple[str, str, str]] = []
        for i, action in enumerate(actions):
            if i == 1:
                crash_point("mid_send", j)
            if action[0] == "cancel":
                await self._send_cancel(book, action[1], action[2], results)
            else:
                await self._send_place(book, action[1], results)
        if results:
            with self.journal.transaction():
                self.journal.set_statuses(results)

    async def _send_place(
        self, book: _Book, o: JournalOrder, results: list[tuple[str, str, str]] | None = None
    ) -> None:
        req = OrderRequest(
            o.client_id, o.symbol, o.side, o.lots, o.price_ticks, "market" if o.kind == "market" else "limit"
        )
        s = self._row[o.symbol]
        try:
            state: OrderState | None = await book.venue.place(req)
            outcome = (o.client_id, state.status if state else "in_flight", "")
            self._count_reject(book, s, False)
        except VenueRejected as exc:
            outcome = (o.client_id, "rejected", str(exc)[:300])
            book.live.pop((s, o.side), None)
            self._count_reject(book, s, True)
        except VenueAmbiguous as exc:
            outcome = (o.client_id, "in_flight", str(exc)[:300])
            self._watch[o.client_id] = (book, o.symbol, o.side)
        if results is None:
            self.journal.set_status(*outcome)
        else:
            results.append(outcome)

    async def _send_cancel(
        self, book: _Book, client_id: str, symbol: str, results: list[tuple[str, str, str]] | None = None
    ) -> None:
        try:
            state = await book.venue.cancel(symbol, client_id)
        except (VenueAmbiguous, VenueRejected) as exc:  # still ours to resolve: it stays open
            logger.warning("%s: cancel %s: %s", book.name, client_id, exc)
            return
        if state is not None and state.status not in TERMINAL:
            self._watch[client_id] = (book, symbol, state.side)
        if state is not None and results is not None:
            results.append((client_id, state.status, "cancel sent"))

    def _count_reject(self, book: _Book, s: int, rejected: bool) -> None:
        fs = book.books.fs
        fs[s, st.F_REJECT] += self.reject_alpha * ((1.0 if rejected else 0.0) - fs[s, st.F_REJECT])

    async def _settle(self) -> None:
        """Ask the venue, by client id, about orders whose send was ambiguous or whose cancel is
        on its way; they leave the watch list once finished."""
        if not self._watch:
            return
        updates: list[tuple[str, str, str]] = []
        for cid, (book, symbol, side) in list(self._watch.items()):
            state = await book.venue.order(cid)
            if state is None:
                updates.append((cid, "rejected", "never reached the venue"))
                s = self._row[symbol]
                live = book.live.get((s, side))
                if live is not None and live.client_id == cid:
                    del book.live[(s, side)]
                del self._watch[cid]
                continue
            updates.append((cid, state.status, ""))
            if state.status in TERMINAL:
                del self._watch[cid]
        with self.journal.transaction():
            self.journal.set_statuses(updates)

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
