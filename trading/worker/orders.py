"""The worker's orders: what a tick's decision sends, how it is journaled first, how ambiguous
sends and restarts are resolved (by client id), and how fills are booked.

:class:`OrderFlow` is a part of :class:`trading.worker.loop.Worker` (and of the tick worker),
split out so each reads on its own; it uses the worker's journal, books and settings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from features.errors import OperationalError
from trading.fill_engine import keep_quote
from trading.risk import HALTED
from trading.worker import strategy as st
from trading.worker.crash import crash_point
from trading.worker.journal import Journal, JournalOrder, WalCheckpoints
from trading.worker.paper import PaperVenue
from trading.worker.types import (
    TERMINAL,
    Fill,
    OrderRequest,
    OrderState,
    SignalBatch,
    Venue,
    VenueAmbiguous,
    VenueError,
    VenueRejected,
)

if TYPE_CHECKING:
    from trading.config import TradeConfig
    from trading.fill_engine import EngineParams
    from trading.worker.loop import WorkerSettings
    from trading.worker.paper import Replay

logger = logging.getLogger(__name__)


class ReconcileError(OperationalError):
    """The venue and the journal disagree in a way the worker must not trade through."""


@dataclass
class LiveOrder:
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
class Book:
    """A book: its venue, its state, its live orders, where its fills were read up to."""

    name: str  # "live" | "shadow"
    letter: str
    venue: Venue
    books: st.Books
    last_seq: int = 0
    live: dict[tuple[int, int], LiveOrder] = field(default_factory=dict)  # (symbol row, side)
    fallback: dict[int, str] = field(default_factory=dict)  # symbol row -> why model-free


def _request(o: JournalOrder) -> OrderRequest:
    """The venue request of a journaled order."""
    return OrderRequest(
        o.client_id, o.symbol, o.side, o.lots, o.price_ticks, "market" if o.kind == "market" else "limit"
    )


def order_prefix(trade: TradeConfig, tag: str | None) -> str:
    """The start of every client order id of a run: ``trade.client_prefix`` and, on a live run,
    its journal's tag (:meth:`Journal.run_tag`), so a run's orders and trades on an account are
    told apart from another run's or another worker's with the same prefix (``mm.ab12cd-``)."""
    return f"{trade.client_prefix}{'.' + tag if tag else ''}-"


class OrderFlow:
    """Reconcile, plan, journal, send and settle the orders of the worker's books."""

    journal: Journal
    symbols: tuple[str, ...]
    _row: dict[str, int]  # symbol -> row
    s: WorkerSettings
    ep: EngineParams
    books: list[Book]
    prefix: str  # every client id of this run starts with it (order_prefix)
    replay: Replay
    live_clock: Callable[[], float] | None  # a live venue's run: the exchange's time, seconds
    next_tick: int
    reject_alpha: float
    _watch: dict[str, tuple[Book, str, int]]  # ambiguous sends: client id -> (book, symbol, side)
    _cancels: dict[str, tuple[Book, str]]  # cancels not confirmed yet: client id -> (book, symbol)
    _pending: list[tuple[str, str, str]]  # venue answers not journaled yet: (client id, status, note)
    _checkpoints: list[WalCheckpoints]  # when the journal's and paper venues' WALs are copied back

    def _tag(self, book: Book, s: int, batch: SignalBatch | None) -> tuple[str, str]:
        raise NotImplementedError  # the signal intake's (trading.worker.signals)

    async def reconcile(self) -> dict[str, Any]:
        """Before any quote: compare positions, then resolve every unfinished order by client id,
        then cancel the venue's orders with this worker's prefix that the journal does not hold
        as working. Nothing is sent before the positions of every book agree.

        Raises:
            ReconcileError: a position differs: every book is HALTED, the journal's events say
                which, with the numbers, and its phase is ``halted`` (see :meth:`_fail_closed`).
        """
        self.journal.set_control("phase", "reconciling")
        report = {"resolved": 0, "resent": 0, "cancelled_unknown": 0, "fills_pending": 0}
        killed = self.journal.control("kill") is not None
        differ: list[tuple[str, str]] = []
        for book in self.books:
            pending = await book.venue.fills_since(book.last_seq)
            report["fills_pending"] += len(pending)
            venue_pos = await book.venue.positions()
            for s, sym in enumerate(self.symbols):
                ours = book.books.inventory(s) + sum(f.side * f.lots for f in pending if f.symbol == sym)
                theirs = venue_pos.get(sym, 0)
                if ours != theirs:
                    differ.append(
                        (sym, f"{book.name} {sym}: journal position {ours:+d} lots, venue {theirs:+d} lots")
                    )
        if differ:
            self._fail_closed(differ)
        for book in self.books:
            updates: list[tuple[str, str, str]] = []
            for o in self.journal.open_orders(book.name):
                await self._resolve(book, o, report, updates, killed=killed)
            prefix = f"{self.prefix}{book.letter}"
            working = {o.client_id for o in self.journal.open_orders(book.name) if not o.cancel_requested}
            working -= {cid for cid, status, _ in updates if status in TERMINAL}
            strays = await self._cancel_strays(book, prefix, working, updates)
            report["cancelled_unknown"] += len(strays)
            await book.venue.flush()
            with self.journal.transaction():
                for cid in strays:  # said whatever the venue answered (a cancel may act later)
                    if self.journal.order(cid) is None:
                        self.journal.add_event(
                            self.next_tick, 0, "", "reconcile", f"cancelled unknown order {cid}"
                        )
                for cid, status, note in updates:
                    if self.journal.order(cid) is not None:
                        self.journal.set_status(cid, status, note)
            self._rebuild_live(book)
        return report

    async def _cancel_strays(
        self, book: Book, prefix: str, working: set[str], updates: list[tuple[str, str, str]]
    ) -> list[str]:
        """Cancel the venue's open orders with this book's prefix that the journal does not hold
        as working (never journaled, or their cancel requested); returns their client ids."""
        strays = [
            state
            for state in await book.venue.open_orders()
            if state.client_id.startswith(prefix) and state.client_id not in working
        ]
        for state in strays:
            await self._send_cancel(book, state.client_id, state.symbol, updates)
        return [state.client_id for state in strays]

    def _fail_closed(self, differ: list[tuple[str, str]]) -> NoReturn:
        """The venue and the journal disagree on a position: trade nothing. Every symbol of every
        book goes HALTED (what :meth:`status` shows), each difference is a ``fail_closed`` event
        with its numbers, and the error says them all; a later start reconciles afresh."""
        for book in self.books:
            book.books.ist[:, st.I_STATUS] = HALTED
        with self.journal.transaction():
            for sym, why in differ:
                self.journal.add_event(self.next_tick, 0, sym, "fail_closed", f"reconcile {why}: halted")
        self.journal.set_control("phase", "halted")
        whys = "; ".join(why for _sym, why in differ)
        raise ReconcileError(f"reconciliation failed, not trading: {whys}; every book halted")

    async def _resolve(
        self,
        book: Book,
        o: JournalOrder,
        report: dict[str, int],
        updates: list[tuple[str, str, str]],
        *,
        killed: bool,
    ) -> None:
        report["resolved"] += 1
        try:
            state = await book.venue.order(o.client_id)
        except VenueAmbiguous as exc:  # the venue cannot say yet: in flight, asked again each tick
            updates.append((o.client_id, "in_flight", f"unresolved at start: {exc}"[:300]))
            self._watch[o.client_id] = (book, o.symbol, o.side)
            if o.cancel_requested or killed:
                self._cancels[o.client_id] = (book, o.symbol)
            return
        if state is None:
            if o.status == "intent" and killed:  # a stale quote: the first tick decides afresh
                updates.append((o.client_id, "canceled", "not sent: the kill switch is on"))
            elif o.status == "intent" and (stale := self._stale_intent(o)):
                updates.append((o.client_id, "canceled", stale))
            elif o.status == "intent":  # journaled, never sent: send it now (the same client id)
                await self._send_place(book, o, updates)
                report["resent"] += 1
            else:
                updates.append((o.client_id, "rejected", "unknown to the venue after a restart"))
            return
        updates.append((o.client_id, state.status, "resolved by client id"))
        if (o.cancel_requested or killed) and state.status not in TERMINAL:
            await self._send_cancel(book, o.client_id, o.symbol, updates)
        elif o.status == "in_flight" and state.status not in TERMINAL:
            self._watch[o.client_id] = (book, o.symbol, o.side)

    def _pull(self, book: Book, s: int) -> list[Any]:
        """Cancel ``book``'s working orders of symbol row ``s``: each journaled as a requested
        cancel and returned as an action to send (bad data, a stop, a kill between ticks, a
        live run's clean stop all pull quotes this way)."""
        actions: list[Any] = []
        for side, o in [(side, o) for (row, side), o in book.live.items() if row == s]:
            self.journal.request_cancel(o.client_id)
            actions.append(("cancel", o.client_id, self.symbols[s]))
            del book.live[(s, side)]
        return actions

    async def pull_quotes(self, why: str) -> int:
        """Cancel every working quote of the live book now, between ticks, and say why; the
        position is kept. Returns how many were cancelled."""
        book = self.books[0]
        j = self.next_tick
        with self.journal.transaction():
            actions = [a for s in range(len(self.symbols)) for a in self._pull(book, s)]
            if actions:
                self.journal.add_event(
                    j, time.time_ns(), "*", "control", f"{why}: {len(actions)} working order(s) cancelled"
                )
        if actions:
            await self._send(book, actions, j)
            await self._confirm()
        return len(actions)

    def _stale_intent(self, o: JournalOrder) -> str | None:
        """Why a journaled, never sent order must not be sent now (a live venue's run back from
        downtime: priced on a bar older than ``risk.stale_after_ms``), or None."""
        if self.live_clock is None or o.tick >= len(self.replay):
            return None
        closed_s = (int(self.replay.timeline[o.tick]) + self.replay.bar_ns) / 1e9
        age_s, limit_s = self.live_clock() - closed_s, self.s.risk.stale_after_ms / 1000
        return (
            f"not sent: priced on the bar of tick {o.tick}, closed {age_s:.0f} s ago > {limit_s:g} s"
            if age_s > limit_s
            else None
        )

    def _rebuild_live(self, book: Book) -> None:
        book.live.clear()
        row = {sym: i for i, sym in enumerate(self.symbols)}
        for o in self.journal.open_orders(book.name):
            if o.kind == "limit" and not o.cancel_requested:
                book.live[(row[o.symbol], o.side)] = LiveOrder(
                    o.client_id, o.price_ticks, o.lots, o.filled_lots, o.tick
                )

    async def _poll_fills(self, book: Book) -> list[Fill]:
        """A book's new fills; none this tick when the venue cannot answer (fills are read by
        ``seq``, so the next poll brings them)."""
        try:
            return await book.venue.fills_since(book.last_seq)
        except VenueAmbiguous as exc:
            logger.warning("%s: fills not read this tick: %s", book.name, exc)
            return []

    def _book_fills(self, book: Book, fills: list[Fill]) -> None:
        """Journal a poll's fills and apply them to the book (:meth:`_apply_fills`)."""
        self.journal.add_fills(fills, book=book.name)
        self._apply_fills(book, fills)

    def _apply_fills(self, book: Book, fills: list[Fill]) -> None:
        """Apply to the book, in order, the fills past how far it has read (``seq`` after its
        ``last_seq``; the venue numbers its fills). Whether the journal already holds a fill
        does not matter: the bar worker journals them as soon as they are read, before the
        tick's transaction saves the book, so after a crash between the two the fills are in
        the journal and not yet in the book."""
        bt = self.s.backtest
        for f in fills:
            if f.seq <= book.last_seq:
                continue
            s = self._row[f.symbol]
            book.books.apply_fill(s, f.side, f.price_ticks, f.lots, f.fee, tick=bt.tick_size, lot=bt.lot_size)
            live = book.live.get((s, f.side))
            if live is not None and live.client_id == f.client_id:
                live.filled += f.lots
                if live.remaining <= 0:
                    del book.live[(s, f.side)]
            book.last_seq = f.seq

    def _cid(self, book: Book, j: int, side: str, s: int) -> str:
        """``mm-L123b-BTCUSDT`` (``mm.<tag>-L123b-BTCUSDT`` live): the run's prefix, book, tick, side, symbol."""
        return f"{self.prefix}{book.letter}{j}{side}-{self.symbols[s]}"

    def _plan(
        self, book: Book, bars: st.TickBars, out: np.ndarray, batch: SignalBatch | None, j: int
    ) -> list[Any]:
        """Journal this tick's orders (intents) and return what to send, in order."""
        actions: list[Any] = []
        # An order the new quote would not move (same remaining size, price within
        # backtest.refresh_tolerance_pct: keep_quote, as the kernel keeps it) is left working (no
        # cancel and re-send). Only when a quote is live within the next bar (latency under one
        # bar): with longer latency the kernel's new quote arrives later, full size, after the old
        # one may have filled more, so then every decision replaces.
        keep_unchanged = self.ep.latency_bars == 0
        tol = self.ep.refresh_tol
        intents: list[JournalOrder] = []
        cancels: list[str] = []
        ticked = np.flatnonzero(bars.has_bar)
        # plain Python values: numpy scalar reads cost more than the rest of a symbol's loop
        for s, d, mid in zip(ticked.tolist(), out[ticked].tolist(), bars.close[ticked].tolist(), strict=True):
            version, alias = self._tag(book, s, batch)
            if d[st.D_FLATTEN_LOTS] > 0:
                o = self._order_of(
                    book,
                    s,
                    j,
                    "f",
                    d[st.D_FLATTEN_SIDE],
                    d[st.D_FLATTEN_LOTS],
                    0,
                    "market",
                    version,
                    alias,
                    mid,
                )
                intents.append(o)
                actions.append(("place", o))
            if not d[st.D_REQUOTE]:
                continue
            quotes = ((1, "b", d[st.D_BID], d[st.D_BID_LOTS]), (-1, "a", d[st.D_ASK], d[st.D_ASK_LOTS]))
            for side, letter, price, lots in quotes:
                cur = book.live.get((s, side))
                if (
                    cur is not None
                    and keep_unchanged
                    and keep_quote(cur.price_ticks, cur.remaining, price, lots, tol)
                ):
                    continue
                if cur is not None:
                    cancels.append(cur.client_id)
                    actions.append(("cancel", cur.client_id, self.symbols[s]))
                    del book.live[(s, side)]
                if lots > 0:
                    o = self._order_of(book, s, j, letter, side, lots, price, "limit", version, alias, mid)
                    intents.append(o)
                    book.live[(s, side)] = LiveOrder(o.client_id, o.price_ticks, o.lots, 0, j)
                    actions.append(("place", o))
        self.journal.request_cancels(cancels)
        self.journal.add_orders(intents)  # every one journaled before any is sent
        return actions

    def _intent(self, book: Book, s: int, j: int, *args: Any) -> JournalOrder:
        """:meth:`_order_of`, journaled now (an intent, before it is sent)."""
        o = self._order_of(book, s, j, *args)
        self.journal.add_order(o)
        return o

    def _order_of(
        self,
        book: Book,
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
        """The order a decision makes, as an intent (not journaled yet)."""
        return JournalOrder(
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

    async def _send(self, book: Book, actions: list[Any], j: int) -> None:
        """Send a tick's actions as two batches: the cancels, then the orders (a quote leaves
        the book before its replacement arrives; orders keep their order)."""
        results: list[tuple[str, str, str]] = []
        cancels = [(a[2], a[1]) for a in actions if a[0] == "cancel"]  # (symbol, client id)
        places = [a[1] for a in actions if a[0] == "place"]
        if cancels:
            for symbol, cid in cancels:
                self._cancels[cid] = (book, symbol)
            for (_symbol, cid), answer in zip(cancels, await book.venue.cancel_many(cancels), strict=True):
                self._cancel_answer(book, cid, answer, results)
        crash_point("mid_send", j)
        if places:
            answers = await book.venue.place_many([_request(o) for o in places])
            for o, placed in zip(places, answers, strict=True):
                self._place_answer(book, o, placed, results)
        self._pending.extend(results)  # made final and journaled by the next _confirm

    async def _send_place(self, book: Book, o: JournalOrder, results: list[tuple[str, str, str]]) -> None:
        [answer] = await book.venue.place_many([_request(o)])  # the send phase's path, for one
        self._place_answer(book, o, answer, results)

    def _place_answer(
        self,
        book: Book,
        o: JournalOrder,
        answer: OrderState | VenueError,
        results: list[tuple[str, str, str]],
    ) -> None:
        s = self._row[o.symbol]
        if isinstance(answer, VenueRejected):
            results.append((o.client_id, "rejected", str(answer)[:300]))
            book.live.pop((s, o.side), None)
            self._count_reject(book, s, True)
        elif isinstance(answer, VenueAmbiguous):
            results.append((o.client_id, "in_flight", str(answer)[:300]))
            self._watch[o.client_id] = (book, o.symbol, o.side)
        else:
            results.append((o.client_id, answer.status, ""))
            self._count_reject(book, s, answer.status == "rejected")

    async def _send_cancel(
        self, book: Book, client_id: str, symbol: str, results: list[tuple[str, str, str]]
    ) -> None:
        """Ask the venue to cancel; until it confirms, the cancel is re-sent every tick (a lost
        cancel would leave a working order nobody wants)."""
        self._cancels[client_id] = (book, symbol)
        [answer] = await book.venue.cancel_many([(symbol, client_id)])
        self._cancel_answer(book, client_id, answer, results)

    def _cancel_answer(
        self,
        book: Book,
        client_id: str,
        answer: OrderState | VenueError | None,
        results: list[tuple[str, str, str]],
    ) -> None:
        if isinstance(answer, (VenueAmbiguous, VenueRejected)):  # still ours: re-sent by _settle
            logger.warning("%s: cancel %s: %s (will retry)", book.name, client_id, answer)
            return
        if answer is not None and answer.status in TERMINAL:  # what it ended as (filled or cancelled)
            results.append((client_id, answer.status, "cancel sent"))
        if answer is None or answer.status in TERMINAL:
            self._cancels.pop(client_id, None)
        # A cancel the venue took but has not carried out yet changes nothing the journal holds
        # (it has cancel_requested since before the send, and _settle writes the end): no row.

    def _count_reject(self, book: Book, s: int, rejected: bool) -> None:
        fs = book.books.fs
        fs[s, st.F_REJECT] += self.reject_alpha * ((1.0 if rejected else 0.0) - fs[s, st.F_REJECT])

    async def _settle(self) -> None:
        """Ask the venue, by client id, about orders whose send was ambiguous, and re-send the
        cancels it has not confirmed; each leaves its list once the venue says it is finished."""
        if not self._watch and not self._cancels:
            return
        updates: list[tuple[str, str, str]] = []
        for cid, (book, symbol, side) in list(self._watch.items()):
            try:
                state = await book.venue.order(cid)
            except VenueAmbiguous as exc:  # no answer yet is no answer: still in flight
                logger.info("%s: %s still unresolved: %s", book.name, cid, exc)
                continue
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
        for cid, (book, symbol) in list(self._cancels.items()):
            try:
                state = await book.venue.order(cid)
            except VenueAmbiguous as exc:
                logger.info("%s: cancel of %s unconfirmed: %s", book.name, cid, exc)
                continue
            if state is None or state.status in TERMINAL:
                del self._cancels[cid]
                if state is not None:
                    updates.append((cid, state.status, ""))
                continue
            await self._send_cancel(book, cid, symbol, updates)
        for book in self.books:
            await book.venue.flush()
        self._pending.extend(updates)

    def _defer_checkpoints(self) -> None:
        """From here on, the journal's and the paper venues' WAL checkpoints run between ticks
        (:meth:`_between_ticks`), never inside a tick's commit."""
        self._checkpoints = [self.journal.defer_checkpoints()] + [
            book.venue.defer_checkpoints() for book in self.books if isinstance(book.venue, PaperVenue)
        ]

    async def _between_ticks(self) -> None:
        """After a tick's send phase, what need not lengthen a tick: the send phase confirmed
        (:meth:`_confirm`) and the WALs checkpointed when due. Should it not run (a crash, or a
        caller of ``tick`` alone), the next tick's venue work makes the venues final and
        journals the answers before anything else."""
        await self._confirm()
        for checkpoints in self._checkpoints:
            checkpoints.maybe()

    async def _confirm(self) -> None:
        """Make the last send phase final on every venue, then journal the venues' answers to it
        in a transaction of their own.

        In that order: a venue has the requests before the journal says it answered them. A
        crash before the flush is a network failure (the venue never got them; every intent was
        journaled before it was sent, and reconciliation resends or resolves it by client id);
        a crash after it loses only answers, which reconciliation asks the venue for again by
        client id.
        """
        for book in self.books:
            await book.venue.flush()
        if self._pending:
            with self.journal.transaction():
                self._write_pending()

    def _write_pending(self) -> None:
        """Journal the venue answers not journaled yet (those of :meth:`_settle` with the tick's
        fills; those of a send phase, by :meth:`_confirm`)."""
        if self._pending:
            self.journal.set_statuses(self._pending)
            self._pending.clear()

    async def finish(self) -> None:
        """Confirm the last send phase (the end of a run, or of a call with ``max_ticks``)."""
        await self._confirm()
