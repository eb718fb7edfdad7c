"""The paper tick venue: a BBO + trade capture replayed as an exchange, filling by the tick engine's rule.

It speaks the worker's venue interface (place with a client id, cancel, open orders, fills since,
order by client id, positions) and keeps its state in its own SQLite file (WAL), as
:class:`trading.worker.paper.PaperVenue` does for bars, so a stopped or killed worker finds it
as it left it.

Fill model: exactly :func:`trading.tick_engine.run_tick_kernel`'s, through its compiled pieces
(:func:`~trading.tick_engine.next_event`, :func:`~trading.tick_engine.arrive`,
:func:`~trading.tick_engine.fill_trade`, :func:`~trading.tick_engine.take_at_touch`), on the
arrays :func:`trading.tick_backtest.tick_arrays` builds, so the units are the backtest's to the
bit. A request sent at venue time ``t`` takes effect at ``t + latency``; the requests sent at
one time form one change of the quotes (the kernel's decision). The venue keeps one live order
a side: an arriving order replaces the side's live one (which ends ``canceled``) and starts a
new participation credit; a cancel empties the side when it arrives. A market order (the kill
switch's flatten) fills at once at the touch with the taker fee.

The replay clock only moves when the worker asks (:meth:`PaperTickVenue.advance`): up to its
next grid point, or up to the first event it wants to react to (a fill of its orders, a best
bid/ask move), the replay analog of a venue's event stream.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from trading.backtest import trade_arrays
from trading.config import BacktestConfig, QuoteConfig, RiskConfig
from trading.fill_engine import TradeArrays
from trading.tick_backtest import fifo_capacity, tick_arrays, tick_params
from trading.tick_engine import (
    AL,
    ASK_ID,
    BBO_ASK,
    BBO_BID,
    BID_ID,
    BL,
    CASH,
    HEAD,
    INV,
    KEEP,
    MINUTE_NS,
    N_FIFO,
    N_SF,
    N_SI,
    TAIL,
    K,
    TickArrays,
    TickParams,
    arrive,
    fill_trade,
    next_event,
    observe_bbo,
    take_at_touch,
)
from trading.ticks import TickData
from trading.worker.paper import FILLS_SCHEMA, read_fills
from trading.worker.types import (
    TERMINAL,
    Fill,
    OrderRequest,
    OrderState,
    OrderStatus,
    VenueError,
    VenueRejected,
    cancels_one_by_one,
    places_one_by_one,
)

# why an advance stopped: the grid point it was asked for, a fill of ours, a best bid/ask move
WAKE_GRID, WAKE_FILL, WAKE_BBO = 0, 1, 2
# the venue's own integer slots after the kernel's: event cursors and the venue clock
V_IB, V_IT, V_NOW = N_SI, N_SI + 1, N_SI + 2


@dataclass(frozen=True)
class TickReplay:
    """One instrument's capture in kernel units with the engine settings and the decision grid.

    Built with :func:`trading.tick_backtest.tick_arrays` and :func:`~trading.tick_backtest.tick_params`,
    the tick backtest's own conversion, so the worker, the venue and the backtest read the
    same integers.
    """

    symbol: str
    files: tuple[str, ...]
    arr: TickArrays
    tp: TickParams
    n_steps: int
    decision_interval_ms: int

    @classmethod
    def from_capture(
        cls,
        data: TickData,
        *,
        quote: QuoteConfig,
        risk: RiskConfig,
        backtest: BacktestConfig,
        decision_interval_ms: int = 1000,
        requote_on_bbo: bool = False,
        bar_ns: int = MINUTE_NS,
    ) -> TickReplay:
        """The replay of ``data`` (model-free: no signal rows).

        Raises:
            DataError: what :func:`trading.tick_backtest.run_tick_backtest` refuses.
        """
        arr = tick_arrays(data, backtest=backtest, bar_ns=bar_ns)
        tp, n = tick_params(
            arr,
            quote=quote,
            risk=risk,
            backtest=backtest,
            decision_interval_ms=decision_interval_ms,
            requote_on_bbo=requote_on_bbo,
            bar_ns=bar_ns,
            need_signal=False,
            symbol=data.symbol,
        )
        return cls(data.symbol, data.files, arr, tp, n, decision_interval_ms)

    def grid_ns(self, step: int) -> int:
        """The time of grid point ``step``, ns."""
        return self.tp.start_ns + step * self.tp.step_ns


@dataclass(frozen=True)
class TickStop:
    """Where an advance stopped: the venue time, the event cursors (rows applied), and why."""

    now_ns: int
    bbo_end: int
    trade_end: int
    reason: int  # WAKE_GRID, WAKE_FILL or WAKE_BBO


@njit(cache=True, error_model="numpy")
def match_events(
    arr: TickArrays,
    tp: TickParams,
    until: int,
    wake_on_fill: bool,
    wake_on_bbo: bool,
    si: Any,
    sf: Any,
    fifo: Any,
    tr: TradeArrays,
    fill_ns: Any,
    owner: Any,
) -> int:
    """Replay the events at or before ``until`` against the live orders, as the kernel's loop does.

    Stops after the first fill when ``wake_on_fill``, after the first best bid/ask move when
    ``wake_on_bbo``; otherwise at ``until`` with the orders due by then arrived. Fills go to
    ``tr``/``fill_ns`` from row 0 (``si[K]`` of them), the venue id of the order in ``owner``.

    Returns:
        Why it stopped (``WAKE_GRID``, ``WAKE_FILL``, ``WAKE_BBO``).
    """
    si[K] = 0
    while True:
        now, is_bbo = next_event(arr, si[V_IB], si[V_IT])
        if now > until:  # NO_EVENT is later than any grid point
            break
        arrive(now, fifo, si, sf)
        si[V_NOW] = now
        if is_bbo:
            moved = observe_bbo(si[V_IB], arr, si, sf)
            si[V_IB] += 1
            if moved and wake_on_bbo:
                return WAKE_BBO
        else:
            filled = fill_trade(si[V_IT], 0, arr, tp, tr, fill_ns, si, sf)
            si[V_IT] += 1
            if filled != 0:
                owner[si[K] - 1] = si[BID_ID] if filled > 0 else si[ASK_ID]
                if wake_on_fill:
                    return WAKE_FILL
    si[V_NOW] = until
    arrive(until, fifo, si, sf)
    return WAKE_GRID


@dataclass
class _Order:
    state: OrderState
    oid: int  # the venue's id (row in its order list; the fifo carries it)
    row_seq: int  # the change of the quotes that carries it (-1: a market order)


SCHEMA = (
    FILLS_SCHEMA
    + """
create table if not exists orders(
  client_id text primary key, oid integer unique not null, symbol text not null, side integer not null,
  kind text not null, price_ticks integer not null, lots integer not null, filled_lots integer not null,
  status text not null, row_seq integer not null);
create table if not exists state(k text primary key, v blob not null);
"""
)


class PaperTickVenue:
    """A paper exchange over a :class:`TickReplay` (see the module docstring).

    Args:
        replay: the capture and the engine settings (fees, haircut, participation, latency,
            ``max_position`` for the inventory room).
        db: the venue's state file (None: in memory).
        name: the venue name its fills carry.
    """

    def __init__(self, replay: TickReplay, *, db: Path | None, name: str = "paper") -> None:
        self.replay = replay
        self.name = name
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(db) if db is not None else ":memory:", isolation_level=None)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=normal")  # durable across a kill -9 (see PaperVenue)
        self._db.executescript(SCHEMA)
        arr, tp = replay.arr, replay.tp
        self.si: np.ndarray = np.zeros(N_SI + 3, dtype=np.int64)
        self.si[BID_ID] = self.si[ASK_ID] = -1
        self.sf: np.ndarray = np.zeros(N_SF)
        self.sf[CASH] = tp.initial_cash  # the venue's view of the account
        self.fifo = np.full((fifo_capacity(arr, tp, replay.n_steps), N_FIFO), -1, dtype=np.int64)
        self.intended: np.ndarray = np.full(2, -1, dtype=np.int64)  # the order each side will hold (bid, ask)
        self.wakes = 0
        self.last_stop = TickStop(0, 0, 0, WAKE_GRID)
        self._tr = trade_arrays(len(arr.trade_ns) + 1)
        self._fill_ns = np.zeros(len(arr.trade_ns) + 1, dtype=np.int64)
        self._owner = np.full(len(arr.trade_ns) + 1, -1, dtype=np.int64)
        self._orders: dict[str, _Order] = {}
        self._by_oid: list[str] = []
        self._active: dict[str, _Order] = {}
        self._seq = 0
        self._load()

    # ---- state ---------------------------------------------------------------------------------
    def _load(self) -> None:
        state = dict(self._db.execute("select k, v from state").fetchall())
        if state:
            self.si = np.frombuffer(state["si"], dtype=np.int64).copy()
            self.sf = np.frombuffer(state["sf"], dtype=np.float64).copy()
            self.fifo = np.frombuffer(state["fifo"], dtype=np.int64).reshape(-1, N_FIFO).copy()
            self.intended = np.frombuffer(state["intended"], dtype=np.int64).copy()
            counters = np.frombuffer(state["counters"], dtype=np.int64)
            self.wakes, self._seq = int(counters[0]), int(counters[1])
            self.last_stop = TickStop(*(int(x) for x in counters[2:6]))
        rows = self._db.execute("select * from orders order by oid").fetchall()
        for cid, oid, sym, side, kind, price, lots, filled, status, row_seq in rows:
            o = _Order(OrderState(cid, sym, side, price, lots, filled, status, kind), oid, row_seq)
            self._orders[cid] = o
            self._by_oid.append(cid)
            if status not in TERMINAL:
                self._active[cid] = o

    def _save(self) -> None:
        """Write the arrays and counters (inside the caller's transaction)."""
        stop = self.last_stop
        counters = np.array(
            [self.wakes, self._seq, stop.now_ns, stop.bbo_end, stop.trade_end, stop.reason], dtype=np.int64
        )
        self._db.executemany(
            "insert or replace into state values (?, ?)",
            (
                ("si", self.si.tobytes()),
                ("sf", self.sf.tobytes()),
                ("fifo", self.fifo.tobytes()),
                ("intended", self.intended.tobytes()),
                ("counters", counters.tobytes()),
            ),
        )

    def _save_order(self, o: _Order) -> None:
        st = o.state
        if st.status in TERMINAL:
            self._active.pop(st.client_id, None)
        else:
            self._active[st.client_id] = o
        self._db.execute(
            "insert or replace into orders values (?,?,?,?,?,?,?,?,?,?)",
            (
                *(st.client_id, o.oid, st.symbol, st.side, st.kind, st.price_ticks, st.lots),
                *(st.filled_lots, st.status, o.row_seq),
            ),
        )

    def close(self) -> None:
        self._db.close()

    # ---- the replay clock ----------------------------------------------------------------------
    @property
    def now_ns(self) -> int:
        return int(self.si[V_NOW])

    def advance(self, wake: int, until_ns: int, *, wake_on_fill: bool, wake_on_bbo: bool) -> TickStop:
        """Replay up to ``until_ns`` or the first fill / best bid/ask move asked for.

        Args:
            wake: the caller's count of advances so far; asking again for the last one returns
                its stop (a worker that died before journaling it asks twice).
            until_ns: the caller's next grid point, ns.
            wake_on_fill, wake_on_bbo: stop early after a fill / a best bid or ask move.

        Raises:
            ValueError: ``wake`` is neither the next advance nor the last one.
        """
        if wake == self.wakes - 1:
            return self.last_stop
        if wake != self.wakes:
            raise ValueError(f"{self.name}: advance {wake} asked, the venue has done {self.wakes}")
        rp = self.replay
        args = (self.si, self.sf, self.fifo, self._tr, self._fill_ns, self._owner)
        reason = match_events(rp.arr, rp.tp, until_ns, wake_on_fill, wake_on_bbo, *args)
        self._db.execute("begin")
        for k in range(int(self.si[K])):
            o = self._orders[self._by_oid[int(self._owner[k])]]
            self._record_fill(o, k, maker=True)
        self.wakes += 1
        self.last_stop = TickStop(self.now_ns, int(self.si[V_IB]), int(self.si[V_IT]), reason)
        self._refresh_statuses()
        self._save()
        self._db.execute("commit")
        return self.last_stop

    def _record_fill(self, o: _Order, k: int, *, maker: bool) -> None:
        tr = self._tr
        st = o.state
        price, lots, fee = int(tr.price[k]), int(tr.lots[k]), float(tr.fee[k])
        self._seq += 1
        self._db.execute(
            "insert into fills values (?,?,?,?,?,?,?,?,?,?)",
            (
                *(self._seq, f"{self.name}-{self._seq}", st.client_id, st.symbol, int(tr.side[k])),
                *(price, lots, fee, int(maker), int(self._fill_ns[k])),
            ),
        )
        filled = st.filled_lots + lots
        o.state = st._replace(filled_lots=filled, status="filled" if filled >= st.lots else st.status)
        self._save_order(o)

    def _refresh_statuses(self) -> None:
        """pending until its change of the quotes arrived; then open while it holds its side."""
        for o in list(self._active.values()):
            st = o.state
            if st.kind != "limit" or st.status in TERMINAL or o.row_seq >= self.si[HEAD]:
                continue
            held = self.si[BID_ID] if st.side > 0 else self.si[ASK_ID]
            lots = self.si[BL] if st.side > 0 else self.si[AL]
            status: OrderStatus = "open" if held == o.oid and lots > 0 else "canceled"
            if status != st.status:
                o.state = st._replace(status=status)
                self._save_order(o)

    # ---- requests ------------------------------------------------------------------------------
    def _change_row(self) -> int:
        """The fifo row of the quote change sent now (one per send time), appended when new."""
        effective = self.now_ns + self.replay.tp.latency_ns
        si, cap = self.si, self.fifo.shape[0]
        if si[TAIL] > si[HEAD] and self.fifo[(si[TAIL] - 1) % cap, 0] == effective:
            return int((si[TAIL] - 1) % cap)
        if si[TAIL] - si[HEAD] >= cap:  # more changes in flight than the capacity: grow the ring
            grown = np.full((2 * cap, N_FIFO), -1, dtype=np.int64)
            for q in range(int(si[HEAD]), int(si[TAIL])):
                grown[q % (2 * cap)] = self.fifo[q % cap]
            self.fifo, cap = grown, 2 * cap
        row = int(si[TAIL] % cap)
        self.fifo[row] = (effective, 0, 0, KEEP, KEEP, 0, -1, -1)
        si[TAIL] += 1
        return row

    def _set_side(self, side: int, price: int, lots: int, oid: int) -> int:
        row = self._change_row()
        c = 0 if side > 0 else 1
        self.fifo[row, 1 + c], self.fifo[row, 3 + c], self.fifo[row, 6 + c] = price, lots, oid
        self.fifo[row, 5] = self.si[BBO_BID] + self.si[BBO_ASK]
        self.intended[c] = oid if lots > 0 else -1
        return int(self.si[TAIL] - 1)

    async def place(self, order: OrderRequest) -> OrderState:
        if order.client_id in self._orders:  # idempotent: the same client id is the same order
            return self._orders[order.client_id].state
        if order.symbol != self.replay.symbol:
            raise VenueRejected(f"{self.name}: unknown symbol {order.symbol}")
        if order.lots <= 0 or (order.kind == "limit" and order.price_ticks <= 0):
            raise VenueRejected(
                f"{self.name}: {order.client_id}: lots {order.lots}, price {order.price_ticks}"
            )
        if order.kind == "market" and self.si[BBO_BID] == 0:
            raise VenueRejected(f"{self.name}: {order.symbol} has no touch yet for a market order")
        oid = len(self._by_oid)
        state = OrderState(
            order.client_id, order.symbol, order.side, order.price_ticks, order.lots, 0, "pending", order.kind
        )
        o = _Order(state, oid, -1)
        self._orders[order.client_id] = o
        self._by_oid.append(order.client_id)
        self._db.execute("begin")
        if order.kind == "market":
            self.si[K] = 0
            tp = self.replay.tp
            take_at_touch(
                0, self.now_ns, order.side, order.lots, tp, self._tr, self._fill_ns, self.si, self.sf
            )
            o.state = o.state._replace(price_ticks=int(self._tr.price[0]))
            self._record_fill(o, 0, maker=False)
        else:
            o.row_seq = self._set_side(order.side, order.price_ticks, order.lots, oid)
            self._save_order(o)
        self._save()
        self._db.execute("commit")
        return o.state

    async def cancel(self, symbol: str, client_id: str) -> OrderState | None:
        o = self._orders.get(client_id)
        if o is None:
            return None
        st = o.state
        c = 0 if st.side > 0 else 1
        if st.status not in TERMINAL and st.kind == "limit" and self.intended[c] == o.oid:
            self._db.execute("begin")
            self._set_side(st.side, 0, 0, -1)  # the side empties when the cancel arrives
            self._save()
            self._db.execute("commit")
        return o.state  # an order a newer one displaces ends with the newer one's arrival

    async def place_many(self, orders: Sequence[OrderRequest]) -> list[OrderState | VenueError]:
        return await places_one_by_one(self, orders)

    async def cancel_many(self, cancels: Sequence[tuple[str, str]]) -> list[OrderState | VenueError | None]:
        return await cancels_one_by_one(self, cancels)

    async def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        return [
            o.state
            for o in self._active.values()
            if o.state.status not in TERMINAL and self.intended[0 if o.state.side > 0 else 1] == o.oid
        ]

    async def fills_since(self, seq: int) -> list[Fill]:
        return read_fills(self._db, self.name, seq)

    async def order(self, client_id: str) -> OrderState | None:
        o = self._orders.get(client_id)
        return None if o is None else o.state

    async def positions(self) -> dict[str, int]:
        return {self.replay.symbol: int(self.si[INV])}

    async def flush(self) -> None:
        """Each request is committed as it arrives here: nothing to do."""

    def describe(self) -> dict[str, Any]:
        return {"venue": self.name, "advances": self.wakes, "now_ns": self.now_ns}
