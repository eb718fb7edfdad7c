"""The worker's decision on a tick capture: the tick kernel's grid step, fill and BBO requotes, compiled.

:func:`decide_tick` runs, at each point where :func:`trading.tick_engine.run_tick_kernel` decides
(a grid point, after a fill, on a best bid/ask move), the kernel's own compiled pieces
(:func:`~trading.tick_engine.grid_update`, :func:`~trading.tick_engine.risk_at`,
:func:`~trading.tick_engine.must_quote`, :func:`~trading.tick_engine.quote_at`) on a state
array in the kernel's layout, so a paper tick replay and the tick backtest decide the same.
What the kernel books itself (its fills, the flatten) the worker sends as orders and books from
the venue's fills. The state (two small arrays) is what the journal snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from trading.quoting import QuoteParams
from trading.risk import RiskParams
from trading.tick_engine import (
    ASK_ID,
    BID_ID,
    CASH,
    INV,
    LAST_NS,
    MID,
    N_SF,
    N_SI,
    PEAK,
    SIG,
    STATUS,
    VAR_F,
    VAR_Q,
    VAR_S,
    TickArrays,
    TickParams,
    grid_update,
    must_quote,
    observe_bbo,
    observe_trade,
    quote_at,
    risk_at,
)
from trading.worker.paper_ticks import WAKE_GRID
from trading.worker.strategy import Books, fill_cash

# the worker's integer slots after the kernel's: next grid step, market data cursors
W_STEP, W_IB, W_IT = N_SI, N_SI + 1, N_SI + 2
# float slot after the kernel's: the mid at the last grid point, ticks
W_PREV_MID = N_SF
# decision columns
D_QUOTE, D_BID, D_ASK, D_BID_LOTS, D_ASK_LOTS, D_TAKE = range(6)
N_D = 6


@njit(cache=True, error_model="numpy")
def observe_events(arr: TickArrays, bbo_end: int, trade_end: int, si: Any, sf: Any) -> None:
    """Apply the market data the venue replayed since the last call (rows up to the ends):
    the touch, the trailing volume (trade by trade, in order) and the data's age."""
    last = -1
    for ib in range(si[W_IB], bbo_end):
        observe_bbo(ib, arr, si, sf)
        last = max(last, arr.bbo_ns[ib])
    for it in range(si[W_IT], trade_end):
        observe_trade(it, arr, sf)
        last = max(last, arr.trade_ns[it])
    if last >= 0:
        si[LAST_NS] = last
    si[W_IB], si[W_IT] = bbo_end, trade_end


@njit(cache=True, error_model="numpy")
def decide_tick(
    reason: int,
    now: int,
    kill: bool,
    live_lots: int,
    arr: TickArrays,
    qp: QuoteParams,
    rp: RiskParams,
    tp: TickParams,
    si: Any,
    sf: Any,
    out: Any,
) -> None:
    """The decision at ``now``: a grid point (volatility, risk, a flatten, the quote) or a requote.

    Args:
        reason: why the venue stopped (:data:`~trading.worker.paper_ticks.WAKE_GRID`: the next
            grid point; otherwise a fill or a best bid/ask move, which requote).
        now: the venue time, ns.
        kill: the manual kill switch is pressed.
        live_lots: lots of the worker's orders still working (a HALTED book with none left
            has nothing to cancel).
        arr, qp, rp, tp: the capture's arrays and the settings (as the tick backtest builds them).
        si, sf: the state, updated in place; fills since the last call already booked.
        out: int64 ``(N_D,)`` decisions: quote or not, its prices and lots, the signed lots to take
            at the touch (a latched kill's flatten).
    """
    out[:] = 0
    inv = si[INV]
    if reason == WAKE_GRID:
        step = si[W_STEP]
        ready = grid_update(step, sf[W_PREV_MID], tp, si, sf)
        sf[W_PREV_MID] = sf[MID]
        si[W_STEP] = step + 1
        if not ready:
            return
        prev_status = si[STATUS]
        take = risk_at(now, kill, arr, rp, tp, si, sf)
        out[D_TAKE] = take
        inv += take  # the flatten is a taker order at the touch: it fills (the kernel books it here)
        if not must_quote(si[STATUS], prev_status, live_lots):
            return
    out[D_QUOTE] = 1
    out[D_BID], out[D_ASK], out[D_BID_LOTS], out[D_ASK_LOTS] = quote_at(now, inv, arr, qp, tp, si, sf)


@dataclass
class TickBooks(Books):
    """One book's state on a tick capture: the kernel's slots (one instrument), plus the worker's.

    A :class:`~trading.worker.strategy.Books` for the shared order and fill plumbing of
    :class:`trading.worker.loop.Worker` (booking fills, reconciling the inventory); ``fs`` and
    ``ist`` hold the tick kernel's layout (:mod:`trading.tick_engine` slots), not the bar one.
    """

    @classmethod
    def fresh_tick(cls, initial_cash: float) -> TickBooks:
        sf = np.zeros(N_SF + 1)
        sf[CASH] = sf[PEAK] = initial_cash
        sf[VAR_Q] = sf[VAR_F] = sf[VAR_S] = 1.0  # the kernel's seed (+ the warm-up's mean squared step)
        si = np.zeros(N_SI + 3, dtype=np.int64)
        si[SIG] = -1
        si[BID_ID] = si[ASK_ID] = -1
        return cls(fs=sf, ist=si)

    @classmethod
    def from_tick_bytes(cls, fs: bytes, ist: bytes) -> TickBooks:
        return cls(
            fs=np.frombuffer(fs, dtype=np.float64).copy(), ist=np.frombuffer(ist, dtype=np.int64).copy()
        )

    def apply_fill(
        self, s: int, side: int, price_ticks: int, lots: int, fee: float, *, tick: float, lot: float
    ) -> None:
        """Book one fill: cash and inventory, as the kernel's booking does (same operations)."""
        self.fs[CASH] += fill_cash(side, price_ticks, lots, fee, tick=tick, lot=lot)
        self.ist[INV] += side * lots

    def inventory(self, s: int) -> int:
        return int(self.ist[INV])

    def equity(self, s: int, *, tick: float, lot: float) -> float:
        """Cash plus the inventory at the mid, quote ccy (the kernel's equity row)."""
        return float(self.fs[CASH] + self.ist[INV] * lot * self.fs[MID] * tick)
