"""The paper venue: a replay of recorded bars that fills through the backtest's fill rule.

It behaves like an exchange the worker talks to: orders by client id (a repeated client id
returns the existing order), cancels, open orders, fills with trade ids, positions. Its state
is its own SQLite file (WAL): a worker killed with -9 finds the venue as it left it, as it would
find a real one. The replay clock only moves when the worker asks (:meth:`PaperVenue.advance`),
so a paper run stopped and restarted resumes where it stopped.

Fill rule: exactly :func:`trading.fill_engine.run_kernel`'s. A request sent after a symbol's
bar ``i`` closed takes effect at that symbol's bar ``i + 1 + latency_bars`` (place: live from then;
cancel: gone from then; latency counts the symbol's own bars, as the kernel's does); a live limit order fills when the bar trades through it by the haircut, sized by
:func:`trading.fill_engine.match_bar` (the order, the inventory room, the flow cap), bid before
ask, at the maker fee. A market order (the kill switch's flatten) fills at once at the last
close with the taker fee, as the kernel books it.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from features.errors import DataError
from trading.backtest import bar_arrays
from trading.config import BacktestConfig
from trading.fill_engine import EngineParams, match_bar
from trading.worker.journal import WalCheckpoints
from trading.worker.strategy import TickBars, fill_fee
from trading.worker.types import (
    TERMINAL,
    Fill,
    OrderRequest,
    OrderState,
    OrderStatus,
    VenueAmbiguous,
    VenueError,
    VenueRejected,
)


@dataclass(frozen=True)
class Replay:
    """Bars of several symbols on one timeline (ticks x symbols), in kernel units.

    Built with :func:`trading.backtest.bar_arrays`, the backtest's own conversion, so prices,
    flows and the unknown-aggressor split are the backtest's to the bit.
    """

    symbols: tuple[str, ...]
    interval: str
    bar_ns: int
    timeline: np.ndarray  # int64 (T,) bar open ns
    has: np.ndarray  # bool (T, S)
    open: np.ndarray  # int64 ticks (T, S)
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray  # float64 lots
    buy_flow: np.ndarray
    sell_flow: np.ndarray
    frames: dict[str, pd.DataFrame]  # the canonical bars per symbol (features read them)
    row_of: np.ndarray  # int64 (T, S): each tick's row in the symbol's frame (-1: no bar)
    bad: dict[tuple[int, int], str]  # (tick, symbol row) -> why that bar was not a bar

    @classmethod
    def from_frames(
        cls,
        frames: dict[str, pd.DataFrame],
        *,
        interval: str,
        backtest: BacktestConfig,
        grid: np.ndarray | None = None,
    ) -> Replay:
        """Align per-symbol canonical bars on the union of their open times.

        ``grid`` (int64 open ns) adds ticks where no symbol has a bar: a live feed's regular
        clock, so an exchange that sends nothing still makes ticks (and stale data pulls the
        quotes). Bars must then fall on it.

        A bar that is not a bar (NaN or non-positive prices, high below low, open or close
        outside the range, negative volume) is kept out of the arrays and listed in ``bad``: at
        its tick the worker quotes nothing for that symbol and says why.

        Raises:
            DataError: no symbols, or a symbol whose good bars the backtest would refuse.
        """
        if not frames:
            raise DataError("replay: no symbols")
        symbols = tuple(frames)
        arrays, good, bad_rows = {}, {}, {}
        for sym, bars in frames.items():
            bars = bars.sort_values("timestamp", kind="stable").reset_index(drop=True)
            why = bad_bar_reasons(bars)
            good[sym] = bars.loc[why.isna()].reset_index(drop=True)
            bad_rows[sym] = (bars.loc[why.notna(), "timestamp"], why[why.notna()])
            try:
                arrays[sym] = bar_arrays(good[sym], backtest=backtest, min_rows=2 if grid is None else 0)
            except DataError as exc:
                raise DataError(f"replay {sym}: {exc}") from exc
        stamps = [a.open_ns for a in arrays.values()]
        stamps += [t.to_numpy(dtype="datetime64[ns]").astype(np.int64) for t, _ in bad_rows.values()]
        if grid is not None:
            stamps.append(np.asarray(grid, dtype=np.int64))
        timeline = np.unique(np.concatenate(stamps))
        shape = (len(timeline), len(symbols))
        has = np.zeros(shape, dtype=bool)
        row_of = np.full(shape, -1, dtype=np.int64)
        ints = {k: np.zeros(shape, dtype=np.int64) for k in ("open", "high", "low", "close")}
        floats = {k: np.zeros(shape) for k in ("volume", "buy_flow", "sell_flow")}
        bad: dict[tuple[int, int], str] = {}
        for s, sym in enumerate(symbols):
            a = arrays[sym]
            rows = np.searchsorted(timeline, a.open_ns)
            has[rows, s] = True
            row_of[rows, s] = np.arange(len(rows))
            for k in ints:
                ints[k][rows, s] = getattr(a, k)
            for k in floats:
                floats[k][rows, s] = getattr(a, k)
            times, reasons = bad_rows[sym]
            at = np.searchsorted(timeline, times.to_numpy(dtype="datetime64[ns]").astype(np.int64))
            for j, reason, t in zip(at, reasons, times, strict=True):
                bad[(int(j), s)] = f"bad bar at {t}: {reason}"
        return cls(
            symbols=symbols,
            interval=interval,
            bar_ns=int(pd.Timedelta(interval).value),
            timeline=timeline,
            has=has,
            row_of=row_of,
            frames=good,
            bad=bad,
            **ints,
            **floats,
        )

    def __len__(self) -> int:
        return len(self.timeline)

    def tick(self, j: int) -> TickBars:
        """The bars of tick ``j`` for every symbol (``has_bar`` False where a symbol has none)."""
        return TickBars(
            has_bar=self.has[j],
            open_ns=np.where(self.has[j], self.timeline[j], 0),
            open=self.open[j],
            high=self.high[j],
            low=self.low[j],
            close=self.close[j],
            volume=self.volume[j],
            buy_flow=self.buy_flow[j],
            sell_flow=self.sell_flow[j],
        )


def bad_bar_reasons(bars: pd.DataFrame) -> pd.Series:
    """Why each bar cannot be traded on (None where it can): what the backtest refuses, per bar."""
    o, h, lo, c = (pd.to_numeric(bars[k], errors="coerce") for k in ("open", "high", "low", "close"))
    v = pd.to_numeric(bars["volume"], errors="coerce")
    why = pd.Series([None] * len(bars), index=bars.index, dtype=object)
    checks = (
        (v.isna() | (v < 0), "volume missing or negative"),
        (h < lo, "high below low (crossed)"),
        ((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0), "a non-positive price"),
        (o.isna() | h.isna() | lo.isna() | c.isna(), "a missing (NaN) price"),
    )
    for mask, reason in checks:  # the last match wins: the most basic reason is reported
        why[mask.fillna(False).to_numpy(dtype=bool)] = reason
    return why


@dataclass(frozen=True)
class PaperFaults:
    """Injected venue misbehaviour for the fault tests (shares of requests, seeded)."""

    reject: float = 0.0  # refused, nothing placed
    timeout_after_accept: float = 0.0  # placed, then the call times out
    drop_ack: float = 0.0  # placed, the acknowledgement is lost
    cancel_lost: float = 0.0  # a cancel times out before the venue acted on it
    seed: int = 0


@njit(cache=True, error_model="numpy")
def match_bars(
    rows: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    sell_flow: np.ndarray,
    buy_flow: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    bid_lots: np.ndarray,
    ask_lots: np.ndarray,
    position: np.ndarray,
    ep: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~trading.fill_engine.match_bar` for several symbols of one tick: the lots filled
    on each row's bid and ask (``bid``, ``ask``, their lots: per row, 0 where none; the bar
    columns and ``position`` per symbol, indexed by ``rows``)."""
    qb = np.zeros(len(rows), dtype=np.int64)
    qa = np.zeros(len(rows), dtype=np.int64)
    for i in range(len(rows)):
        s = rows[i]
        qb[i], qa[i] = match_bar(
            low[s],
            high[s],
            sell_flow[s],
            buy_flow[s],
            bid[i],
            ask[i],
            bid_lots[i],
            ask_lots[i],
            position[s],
            ep,
        )
    return qb, qa


@dataclass
class _Order:
    state: OrderState
    effective: int  # the symbol's bar from which it is live
    cancel_at: int  # the symbol's bar from which it is gone (-1: not cancelled)
    symbol_row: int
    placed: int  # placement order on this venue (the newest order of a side is the quote)


# The fills table both paper venues (bars, ticks) keep, and how a venue reads it back.
FILLS_SCHEMA = """
create table if not exists fills(
  seq integer primary key, trade_id text unique not null, client_id text not null, symbol text not null,
  side integer not null, price_ticks integer not null, lots integer not null, fee real not null,
  maker integer not null, ts_ns integer not null);
"""


def _restate(st: OrderState, *, status: OrderStatus, filled_lots: int | None = None) -> OrderState:
    """``st`` with a new status (and filled lots), built directly (``_replace`` goes through
    a dict of the changes; a tick's matching does this a few hundred times)."""
    filled = st.filled_lots if filled_lots is None else filled_lots
    return OrderState(st.client_id, st.symbol, st.side, st.price_ticks, st.lots, filled, status, st.kind)


def read_fills(db: sqlite3.Connection, venue: str, seq: int) -> list[Fill]:
    """A paper venue's fills after ``seq``, in order, as :class:`Fill` records."""
    rows = db.execute("select * from fills where seq > ? order by seq", (seq,)).fetchall()
    return [
        Fill(venue, trade_id, q, cid, sym, side, price, lots, fee, bool(maker), ts)
        for q, trade_id, cid, sym, side, price, lots, fee, maker, ts in rows
    ]


SCHEMA = (
    FILLS_SCHEMA
    + """
create table if not exists orders(
  client_id text primary key, symbol text not null, side integer not null, kind text not null,
  price_ticks integer not null, lots integer not null, filled_lots integer not null,
  status text not null, effective integer not null, cancel_at integer not null, placed integer not null);
create table if not exists clock(k text primary key, v integer not null);
"""
)


class PaperVenue:
    """A paper exchange over a :class:`Replay` (see the module docstring).

    Args:
        replay: the bars.
        ep: the engine settings the backtest would use (fees, haircut, flow cap, latency, the
            inventory room rule's ``max_position``).
        db: the venue's state file (None: in memory, gone with the process).
        name: the venue name fills carry (``paper``, ``shadow``).
        faults: injected misbehaviour (tests).
    """

    def __init__(
        self,
        replay: Replay,
        ep: EngineParams,
        *,
        db: Path | None,
        name: str = "paper",
        faults: PaperFaults | None = None,
    ) -> None:
        self.replay = replay
        self.ep = ep
        self.name = name
        self.faults = faults or PaperFaults()
        self._rng = random.Random(self.faults.seed)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(db) if db is not None else ":memory:", isolation_level=None)
        self._db.execute("pragma journal_mode=wal")
        # NORMAL in WAL mode is durable across process crashes (a kill -9); only a power loss can
        # roll back the last commits, and the worker's journal (FULL) is the record of truth
        self._db.execute("pragma synchronous=normal")
        self._db.executescript(SCHEMA)
        self._row = {s: i for i, s in enumerate(replay.symbols)}
        # In memory: the orders not finished (what a tick has to look at) and those finished since
        # the last tick (what the worker asks about next); older finished ones are read from the
        # file, so a long run's memory does not grow with every order it ever placed.
        self._active: dict[str, _Order] = {}
        self._finished: dict[str, _Order] = {}
        self._position = np.zeros(len(replay.symbols), dtype=np.int64)
        self._in_tx = False
        self._dirty: dict[str, _Order] = {}  # changed since the last commit
        self._new_fills: list[tuple[Any, ...]] = []  # fill rows not written yet
        self._load()

    # ---- state ---------------------------------------------------------------------------------
    def _load(self) -> None:
        clock = dict(self._db.execute("select k, v from clock").fetchall())
        self.clock = int(clock.get("ticks", 0))  # ticks matched so far
        (seq,) = self._db.execute("select coalesce(max(seq), 0) from fills").fetchone()
        self._seq = int(seq)  # the fills themselves say how far the trade ids went
        # bars each symbol has had matched: latency counts them
        self._bars = self.replay.has[: self.clock].sum(axis=0).astype(np.int64)
        done = tuple(sorted(TERMINAL))
        marks = ",".join("?" * len(done))
        for row in self._db.execute(
            f"select * from orders where status not in ({marks}) order by placed", done
        ):
            o = self._from_row(row)
            self._active[o.state.client_id] = o
        (placed,) = self._db.execute("select coalesce(max(placed), -1) from orders").fetchone()
        self._placed = int(placed) + 1  # the next order's placement number
        for sym, side, lots in self._db.execute("select symbol, side, lots from fills"):
            self._position[self._row[sym]] += side * lots

    def _from_row(self, row: tuple[Any, ...]) -> _Order:
        """An order from its row. A row stays ``pending`` when the order opens (a write a tick
        saved for every order placed): it is open once its symbol has had its effective bar
        matched, as :meth:`advance` opens it."""
        cid, sym, side, kind, price, lots, filled, status, effective, cancel_at, placed = row
        if status == "pending" and effective < self._bars[self._row[sym]]:
            status = "open"
        state = OrderState(cid, sym, side, price, lots, filled, status, kind)
        return _Order(state, effective, cancel_at, self._row[sym], placed)

    def _in_memory(self, client_id: str) -> _Order | None:
        return self._active.get(client_id) or self._finished.get(client_id)

    def _known(self, client_id: str) -> _Order | None:
        """The order with this client id: in memory when live or just finished, else from the file."""
        o = self._in_memory(client_id)
        if o is None:
            row = self._db.execute("select * from orders where client_id = ?", (client_id,)).fetchone()
            o = None if row is None else self._from_row(row)
        return o

    def _known_many(self, client_ids: Sequence[str]) -> dict[str, _Order]:
        """:meth:`_known` for many: those in memory, and the others from the file in one query
        per 500 (what an SQLite statement's parameters allow)."""
        out: dict[str, _Order] = {}
        missing: list[str] = []
        for cid in client_ids:
            o = self._in_memory(cid)
            if o is None:
                missing.append(cid)
            else:
                out[cid] = o
        for i in range(0, len(missing), 500):
            part = missing[i : i + 500]
            q = f"select * from orders where client_id in ({','.join('?' * len(part))})"
            out.update((o.state.client_id, o) for o in map(self._from_row, self._db.execute(q, part)))
        return out

    def _save_order(self, o: _Order) -> None:
        """Note an order's new state; it is written with the transaction's commit (one row per
        order however often it changed in between)."""
        st = o.state
        if st.status in TERMINAL:
            self._active.pop(st.client_id, None)
            self._finished[st.client_id] = o
        else:
            self._active[st.client_id] = o
        self._dirty[st.client_id] = o

    def _begin(self) -> None:
        """Open the write transaction the requests of one send phase share (see :meth:`flush`)."""
        if not self._in_tx:
            self._db.execute("begin")
            self._in_tx = True

    def _commit(self) -> None:
        if not self._in_tx:
            return
        self._write_fills()
        rows = [
            (
                o.state.client_id,
                o.state.symbol,
                o.state.side,
                o.state.kind,
                o.state.price_ticks,
                o.state.lots,
                o.state.filled_lots,
                o.state.status,
                o.effective,
                o.cancel_at,
                o.placed,
            )
            for o in self._dirty.values()
        ]
        self._db.executemany(  # an upsert changes a known order's row in place (replace deletes and re-adds it)
            "insert into orders values (?,?,?,?,?,?,?,?,?,?,?) on conflict(client_id) do update set"
            " filled_lots = excluded.filled_lots, status = excluded.status, cancel_at = excluded.cancel_at,"
            " price_ticks = excluded.price_ticks",
            rows,
        )
        self._dirty.clear()
        self._db.execute("commit")
        self._in_tx = False

    async def flush(self) -> None:
        """Make the requests received so far durable. The worker calls it after a send phase,
        before it journals the answers: a crash before it is a network failure (the venue never
        got those requests, and the journal still holds them as intents to resolve)."""
        self._commit()

    def defer_checkpoints(self) -> WalCheckpoints:
        """Checkpoint this venue's WAL only when the returned object says (between the worker's
        ticks, after :meth:`flush`; see :class:`~trading.worker.journal.WalCheckpoints`)."""
        return WalCheckpoints(self._db)

    def _set_clock(self) -> None:
        self._db.execute("insert or replace into clock values ('ticks', ?)", (self.clock,))

    def extend(self, replay: Replay) -> None:
        """Take a live feed's longer replay (the worker checked that it only appends)."""
        self.replay = replay

    def close(self) -> None:
        self._commit()
        self._db.close()

    # ---- the replay clock ----------------------------------------------------------------------
    def advance(self) -> int:
        """Match the next tick's bars against the live orders; returns the tick matched. The
        requests received since the last commit are made final in the same commit (as
        :meth:`flush` would).

        Raises:
            IndexError: the replay is over.
        """
        j = self.clock
        if j >= len(self.replay):
            raise IndexError("replay finished")
        bars = self.replay.tick(j)
        self._finished.clear()
        self._begin()
        has, done = bars.has_bar.tolist(), self._bars.tolist()  # plain values: read per order
        bids: dict[int, _Order] = {}  # symbol row -> its quote (the newest live order of a side)
        asks: dict[int, _Order] = {}
        for o in list(self._active.values()):
            st, s = o.state, o.symbol_row
            if st.status in TERMINAL or not has[s]:
                continue
            b = done[s]  # this bar's index in the symbol's own series
            if 0 <= o.cancel_at <= b:
                o.state = _restate(st, status="canceled")
                self._save_order(o)
                continue
            if o.effective > b:
                continue
            if st.status == "pending":  # not written: the file's row reads as open from now on (_from_row)
                o.state = _restate(st, status="open")
            if st.kind == "limit":  # the worker keeps one order a side; should two be live, the newest
                side = bids if st.side > 0 else asks
                if s not in side or side[s].placed < o.placed:
                    side[s] = o
        rows = sorted(bids.keys() | asks.keys())
        if rows:
            self._match(j, np.array(rows, dtype=np.int64), bars, bids, asks)
        self._bars += bars.has_bar
        self.clock = j + 1
        self._set_clock()
        self._commit()
        return j

    def _match(
        self, j: int, rows: np.ndarray, bars: TickBars, bids: dict[int, _Order], asks: dict[int, _Order]
    ) -> None:
        """Fill the quotes of these symbol rows by the bar rule (:func:`match_bar`), all in one call."""
        none = OrderState("", "", 0, 0, 0, 0, "open")
        bid = [bids[s].state if s in bids else none for s in rows.tolist()]
        ask = [asks[s].state if s in asks else none for s in rows.tolist()]
        qb, qa = match_bars(
            rows,
            bars.low,
            bars.high,
            bars.sell_flow,
            bars.buy_flow,
            np.array([o.price_ticks for o in bid], dtype=np.int64),
            np.array([o.price_ticks for o in ask], dtype=np.int64),
            np.array([o.remaining for o in bid], dtype=np.int64),
            np.array([o.remaining for o in ask], dtype=np.int64),
            self._position,
            self.ep,
        )
        ts = int(self.replay.timeline[j])
        for s, b, a in zip(rows.tolist(), qb.tolist(), qa.tolist(), strict=True):
            for quotes, q in ((bids, b), (asks, a)):
                if q > 0:
                    o = quotes[s]
                    self._book(o, q, o.state.price_ticks, self.ep.maker_fee, True, ts)

    def _book(self, o: _Order, lots: int, price: int, fee_rate: float, maker: bool, ts_ns: int) -> None:
        """A fill of ``o``: its row is written with the transaction's commit (:meth:`_write_fills`)."""
        st = o.state
        fee = fill_fee(price, lots, fee_rate, tick=self.ep.tick, lot=self.ep.lot)
        self._seq += 1
        self._new_fills.append(
            (
                self._seq,
                f"{self.name}-{self._seq}",
                st.client_id,
                st.symbol,
                st.side,
                price,
                lots,
                fee,
                int(maker),
                ts_ns,
            )
        )
        filled = st.filled_lots + lots
        o.state = _restate(st, status="filled" if filled >= st.lots else st.status, filled_lots=filled)
        self._save_order(o)
        self._position[o.symbol_row] += st.side * lots

    def _write_fills(self) -> None:
        if self._new_fills:
            self._db.executemany("insert into fills values (?,?,?,?,?,?,?,?,?,?)", self._new_fills)
            self._new_fills.clear()

    # ---- the venue interface -------------------------------------------------------------------
    def _fault(self, share: float) -> bool:
        return share > 0 and self._rng.random() < share

    async def place(self, order: OrderRequest) -> OrderState:
        return self._place(order, self._known(order.client_id))

    async def place_many(self, orders: Sequence[OrderRequest]) -> list[OrderState | VenueError]:
        """:meth:`place` for each, in one pass: the client ids are looked up in one query."""
        on_file = self._known_many([o.client_id for o in orders])
        answers: list[OrderState | VenueError] = []
        for order in orders:
            cid = order.client_id
            try:  # a client id twice in the batch: the second finds the first in memory
                answers.append(self._place(order, self._in_memory(cid) or on_file.get(cid)))
            except (VenueRejected, VenueAmbiguous) as exc:
                answers.append(exc)
        return answers

    def _place(self, order: OrderRequest, known: _Order | None) -> OrderState:
        if known is not None:  # idempotent: the same client id is the same order
            return known.state
        if order.symbol not in self._row:
            raise VenueRejected(f"{self.name}: unknown symbol {order.symbol}")
        if order.lots <= 0 or (order.kind == "limit" and order.price_ticks <= 0):
            raise VenueRejected(
                f"{self.name}: {order.client_id}: lots {order.lots}, price {order.price_ticks}"
            )
        if self._fault(self.faults.reject):
            raise VenueRejected(f"{self.name}: {order.client_id} rejected (injected)")
        s = self._row[order.symbol]
        last = self.clock - 1  # a market order fills at the symbol's last close
        while order.kind == "market" and last >= 0 and not self.replay.has[last, s]:
            last -= 1
        if order.kind == "market" and last < 0:
            raise VenueRejected(f"{self.name}: {order.symbol} has no price yet for a market order")
        state = OrderState(
            order.client_id, order.symbol, order.side, order.price_ticks, order.lots, 0, "pending", order.kind
        )
        o = _Order(state, int(self._bars[s]) + self.ep.latency_bars, -1, s, self._placed)
        self._placed += 1
        self._begin()
        self._save_order(o)
        if order.kind == "market":
            o.state = o.state._replace(price_ticks=int(self.replay.close[last, s]))
            self._book(
                o, order.lots, o.state.price_ticks, self.ep.taker_fee, False, int(self.replay.timeline[last])
            )
        if self._fault(self.faults.timeout_after_accept):
            raise VenueAmbiguous(
                f"{self.name}: {order.client_id}: timed out (injected, the order was accepted)"
            )
        if self._fault(self.faults.drop_ack):
            raise VenueAmbiguous(
                f"{self.name}: {order.client_id}: connection reset (injected, acknowledgement lost)"
            )
        return o.state

    async def cancel(self, symbol: str, client_id: str) -> OrderState | None:
        return self._cancel(client_id)

    async def cancel_many(self, cancels: Sequence[tuple[str, str]]) -> list[OrderState | VenueError | None]:
        answers: list[OrderState | VenueError | None] = []
        for _symbol, client_id in cancels:
            try:
                answers.append(self._cancel(client_id))
            except VenueAmbiguous as exc:
                answers.append(exc)
        return answers

    def _cancel(self, client_id: str) -> OrderState | None:
        o = self._known(client_id)
        if o is None:
            return None
        if o.state.status not in TERMINAL and o.cancel_at < 0:
            if self._fault(self.faults.cancel_lost):
                raise VenueAmbiguous(f"{self.name}: cancel {client_id}: timed out (injected, not acted on)")
            o.cancel_at = int(self._bars[o.symbol_row]) + self.ep.latency_bars
            self._begin()
            self._save_order(o)
        return o.state

    async def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        return [
            o.state
            for o in self._active.values()
            if o.state.status not in TERMINAL
            and o.cancel_at < 0
            and (symbol is None or o.state.symbol == symbol)
        ]

    async def fills_since(self, seq: int) -> list[Fill]:
        self._write_fills()  # a market order's fill not committed yet (a send phase's) is a fill
        return read_fills(self._db, self.name, seq)

    async def order(self, client_id: str) -> OrderState | None:
        o = self._known(client_id)
        return None if o is None else o.state

    async def positions(self) -> dict[str, int]:
        return {sym: int(self._position[i]) for i, sym in enumerate(self.replay.symbols)}

    def describe(self) -> dict[str, Any]:
        return {"venue": self.name, "ticks_matched": self.clock, "ticks": len(self.replay)}
