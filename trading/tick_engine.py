"""The tick fill engine: the bar engine's quoting, risk and accounting driven by BBO and trade ticks.

Same units as :mod:`trading.fill_engine` (integer ticks and lots, integer-ns times) and the same
compiled pieces: :func:`trading.quoting.quote_core` prices every quote, :func:`trading.risk.risk_core`
decides the state, :func:`trading.fill_engine._book` books every fill. Only the event loop and
the fill rule differ. Events are ordered by the capture clock (``local_ns``), a BBO update
before a trade on a tie.

Timeline. Decisions happen on a grid of ``decision_interval_ms`` (one state row each, aligned to
multiples of the interval) and, optionally, on every BBO price change and after every fill.
At a grid point ``g`` (all events ``<= g`` applied): update the volatility estimates from the mid
change since the last grid point, run the risk engine (a latched kill flattens at the touch with
the taker fee), then quote. A quote decided at ``t`` goes live at ``t + latency_ms`` and replaces
the live one. A live bid fills when a trade with the seller as aggressor prints at or below
``bid - queue_haircut_ticks`` (the ask: a buyer at or above ``ask + haircut``), at the quote
price with the maker fee, sized by the remaining order and the inventory room and, when
``max_participation > 0``, by that share of the quantity traded through it (accumulated over the
trades through the same quote). No step reads an event after its own time.

Units. The config's "bars" keep their meaning: ``bar_ns`` (default 1 minute) is the bar that
``quote.horizon_bars``, the volatility half-lives and the signal rows refer to. The variance
of the mid change per grid step is scaled to per bar (``x bar_ns / step``, random-walk scaling)
before :func:`quote_core`, so the quotes match the bar engine's on the same volatility. The
first bar of the capture is a warm-up that seeds the variance (no quotes), as the bar engine
seeds it from its first bar's range.
"""

from __future__ import annotations

import logging
import math
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from trading.fill_engine import StepArrays, TradeArrays, _book, _ewma_update, must_flatten
from trading.quoting import QuoteParams, decide_quotes, depth_cap, horizon_tau, imbalance
from trading.risk import HALTED, RiskParams, risk_core

logger = logging.getLogger(__name__)

MINUTE_NS = 60_000_000_000
NO_EVENT = np.iinfo(np.int64).max

# integer state slots (si): inventory, live quote, fill/order counters, risk, fifo, book, pointers
INV, BID, ASK, BL, AL, K, PLACED, QUOTED, STATUS, REASONS, UNTIL = range(11)
HEAD, TAIL, BBO_BID, BBO_ASK, LAST_NS, SIG, VOL_PTR, READY = range(11, 19)
# float state slots (sf): money, variance estimates, mid, fill credits, touch sizes, trailing volume
CASH, PEAK, REF, VAR_Q, VAR_F, VAR_S, MID, CREDIT_B, CREDIT_A, BID_QTY, ASK_QTY, VOLUME = range(12)


class TickArrays(NamedTuple):
    """Kernel inputs: BBO and trades on the capture clock, the model signal per bar. Ticks, lots, ns."""

    bbo_ns: Any  # int64
    bid: Any  # int64 ticks
    ask: Any  # int64 ticks
    bid_qty: Any  # float64 lots at the best bid
    ask_qty: Any  # float64 lots
    trade_ns: Any  # int64
    trade_px: Any  # int64 ticks
    trade_qty: Any  # float64 lots
    trade_side: Any  # int64, +1 the aggressor bought (lifts asks), -1 it sold (hits bids)
    sig_close_ns: Any  # int64 close time of each signal bar, sorted
    pred_return: Any  # float64 per signal bar (NaN: none)
    pred_vol: Any  # float64 per-bar volatility of log returns
    prob_up: Any  # float64


class TickParams(NamedTuple):
    """Engine settings in kernel units (``tick``/``lot`` as in EngineParams, so ``_book`` takes it)."""

    start_ns: int  # first grid point
    step_ns: int  # decision interval
    bar_ns: int  # the config's "bar"
    steps_per_bar: float
    warmup_steps: int
    latency_ns: int
    requote_on_bbo: bool
    requote_on_fill: bool
    tick: float
    lot: float
    maker_fee: float
    taker_fee: float
    haircut_ticks: int
    participation: float
    initial_cash: float
    max_position: int
    vol_alpha: float  # EWMA weights per step
    fast_alpha: float
    slow_alpha: float
    flatten_on_kill: bool
    need_signal: bool


@njit(cache=True, error_model="numpy", inline="always")
def _arrive(now: int, fifo: Any, si: Any, sf: Any) -> None:
    """Orders whose latency has elapsed by ``now`` replace the live quotes (FIFO: constant latency)."""
    cap = fifo.shape[0]
    while si[HEAD] < si[TAIL] and fifo[si[HEAD] % cap, 0] <= now:
        row = si[HEAD] % cap
        si[BID], si[ASK], si[BL], si[AL] = fifo[row, 1], fifo[row, 2], fifo[row, 3], fifo[row, 4]
        sf[REF] = 0.5 * fifo[row, 5]
        sf[CREDIT_B] = sf[CREDIT_A] = 0.0
        si[HEAD] += 1


@njit(cache=True, error_model="numpy", inline="always")
def _signal(now: int, arr: TickArrays, tp: TickParams, si: Any) -> tuple[float, float, float]:
    """The signal row of the bar that closed last, if it closed within one bar of ``now``."""
    n = len(arr.sig_close_ns)
    while si[SIG] + 1 < n and arr.sig_close_ns[si[SIG] + 1] <= now:
        si[SIG] += 1
    p = si[SIG]
    if p < 0 or arr.sig_close_ns[p] > now or arr.sig_close_ns[p] <= now - tp.bar_ns:
        return math.nan, math.nan, math.nan
    return arr.pred_return[p], arr.pred_vol[p], arr.prob_up[p]


@njit(cache=True, error_model="numpy", inline="always")
def _decide(now: int, arr: TickArrays, qp: QuoteParams, tp: TickParams, fifo: Any, si: Any, sf: Any) -> None:
    """Quote from data up to ``now`` (HALTED: cancel) and send it; it arrives after the latency."""
    pred_return = pred_vol = prob_up = math.nan
    if si[STATUS] != HALTED:  # nothing to price (the decision returns zeros): skip the inputs
        while si[VOL_PTR] < len(arr.trade_ns) and arr.trade_ns[si[VOL_PTR]] <= now - tp.bar_ns:
            sf[VOLUME] -= arr.trade_qty[si[VOL_PTR]]
            si[VOL_PTR] += 1
        pred_return, pred_vol, prob_up = _signal(now, arr, tp, si)
    mid = sf[MID]
    bid, ask, bl, al, _r, _s = decide_quotes(
        mid,
        si[INV],
        sf[VAR_Q] * tp.steps_per_bar,
        horizon_tau(now // tp.bar_ns, qp),
        pred_return,
        (pred_vol * mid) ** 2,
        prob_up,
        imbalance(sf[BID_QTY], sf[ASK_QTY], qp),
        depth_cap(sf[VOLUME], qp),
        tp.max_position,
        si[STATUS],
        si[BBO_BID],
        si[BBO_ASK],
        qp,
    )
    si[PLACED] += (bl > 0) + (al > 0)
    si[QUOTED] += bl + al
    row = si[TAIL] % fifo.shape[0]
    fifo[row, 0], fifo[row, 1], fifo[row, 2] = now + tp.latency_ns, bid, ask
    fifo[row, 3], fifo[row, 4], fifo[row, 5] = bl, al, si[BBO_BID] + si[BBO_ASK]
    si[TAIL] += 1


@njit(cache=True, error_model="numpy", inline="always")
def _on_trade(
    j: int, step: int, arr: TickArrays, tp: TickParams, tr: TradeArrays, fill_ns: Any, si: Any, sf: Any
) -> bool:
    """Fill the live quote that trade ``j`` went through by the haircut; True if it filled."""
    side, px, qty = arr.trade_side[j], arr.trade_px[j], arr.trade_qty[j]
    sf[VOLUME] += qty
    if side < 0 and si[BL] > 0 and px <= si[BID] - tp.haircut_ticks:  # a seller hit our bid
        q, price, room = si[BL], si[BID], tp.max_position - si[INV]
        sf[CREDIT_B] += tp.participation * qty
        credit = sf[CREDIT_B]
    elif side > 0 and si[AL] > 0 and px >= si[ASK] + tp.haircut_ticks:  # a buyer lifted our ask
        q, price, room = si[AL], si[ASK], tp.max_position + si[INV]
        sf[CREDIT_A] += tp.participation * qty
        credit = sf[CREDIT_A]
    else:
        return False
    q = min(q, room)
    if tp.participation > 0.0:
        q = min(q, int(credit))
    if q <= 0:
        return False
    buy = 1 if side < 0 else -1
    dc, _fee = _book(tr, si[K], step, buy, price, q, tp.maker_fee, 1, sf[REF], tp)
    fill_ns[si[K]] = arr.trade_ns[j]
    sf[CASH] += dc
    si[INV] += buy * q
    si[K] += 1
    if tp.participation > 0.0:
        sf[CREDIT_B if buy > 0 else CREDIT_A] -= q
    if buy > 0:
        si[BL] -= q
    else:
        si[AL] -= q
    return True


@njit(cache=True, error_model="numpy", inline="always")
def _risk_and_flatten(
    step: int,
    now: int,
    arr: TickArrays,
    rp: RiskParams,
    tp: TickParams,
    tr: TradeArrays,
    fill_ns: Any,
    si: Any,
    sf: Any,
) -> None:
    """Run the risk engine at a grid point; a latched kill closes the inventory at the touch (taker)."""
    inv = si[INV]
    mark = sf[MID] * tp.tick
    equity = sf[CASH] + inv * tp.lot * mark
    sf[PEAK] = max(sf[PEAK], equity)
    pred_return, _vol, prob_up = _signal(now, arr, tp, si)
    sig_ok = not tp.need_signal or pred_return == pred_return or prob_up == prob_up
    si[STATUS], si[REASONS], si[UNTIL] = risk_core(
        si[REASONS],
        si[UNTIL],
        now,
        inv,
        abs(inv * tp.lot * mark),
        equity - tp.initial_cash,
        (sf[PEAK] - equity) / sf[PEAK],
        sf[VAR_F] / sf[VAR_S],
        now - si[LAST_NS],
        sig_ok,
        0.0,
        False,
        rp,
    )
    if must_flatten(si[STATUS], si[REASONS], tp.flatten_on_kill, inv):
        side = 1 if inv < 0 else -1
        price = si[BBO_ASK] if side > 0 else si[BBO_BID]
        dc, _fee = _book(tr, si[K], step, side, price, abs(inv), tp.taker_fee, 0, sf[MID], tp)
        fill_ns[si[K]] = now
        sf[CASH] += dc
        si[INV] = 0
        si[K] += 1


@njit(cache=True, error_model="numpy", inline="always")
def _grid_step(
    step: int,
    arr: TickArrays,
    qp: QuoteParams,
    rp: RiskParams,
    tp: TickParams,
    out: StepArrays,
    mid_out: Any,
    tr: TradeArrays,
    fill_ns: Any,
    fifo: Any,
    si: Any,
    sf: Any,
) -> None:
    """Grid point ``step``: volatility, risk, a new quote (after the warm-up), and the state row."""
    now = tp.start_ns + step * tp.step_ns
    _arrive(now, fifo, si, sf)
    d2 = (sf[MID] - mid_out[step - 1]) ** 2 if step > 0 else 0.0
    if step < tp.warmup_steps:  # seed the variance with the warm-up's mean squared step
        sf[VAR_Q] += d2 / max(tp.warmup_steps - 1, 1)
        sf[VAR_F] = sf[VAR_S] = sf[VAR_Q]
    else:
        sf[VAR_Q] = _ewma_update(sf[VAR_Q], d2, tp.vol_alpha)
        sf[VAR_F] = _ewma_update(sf[VAR_F], d2, tp.fast_alpha)
        sf[VAR_S] = _ewma_update(sf[VAR_S], d2, tp.slow_alpha)
        si[READY] = 1
        prev_status = si[STATUS]
        _risk_and_flatten(step, now, arr, rp, tp, tr, fill_ns, si, sf)
        if si[STATUS] != HALTED or prev_status != HALTED or si[BL] + si[AL] > 0:
            _decide(now, arr, qp, tp, fifo, si, sf)
            _arrive(now, fifo, si, sf)  # latency 0: the new quote is what the row shows as live
    mid_out[step] = sf[MID]
    out.cash[step] = sf[CASH]
    out.inventory[step] = si[INV]
    out.equity[step] = sf[CASH] + si[INV] * tp.lot * sf[MID] * tp.tick
    out.bid[step], out.ask[step], out.bid_lots[step], out.ask_lots[step] = si[BID], si[ASK], si[BL], si[AL]
    out.status[step] = si[STATUS]
    out.reasons[step] = si[REASONS]


@njit(cache=True, error_model="numpy")
def run_tick_kernel(
    arr: TickArrays,
    qp: QuoteParams,
    rp: RiskParams,
    tp: TickParams,
    out: StepArrays,
    mid_out: Any,
    tr: TradeArrays,
    fill_ns: Any,
    fifo: Any,
) -> tuple[int, int, int]:
    """Run the event loop over the merged BBO and trade events, writing the outputs in place.

    Args:
        arr: events and signals.
        qp: quote parameters.
        rp: risk thresholds.
        tp: engine settings.
        out: per-grid-step state, length ``n`` (the grid covers the first BBO to the last event).
        mid_out: float64 mid per grid step, ticks.
        tr: fill records, capacity ``n_trades + n + 1`` (one maker fill a trade, one flatten a step).
        fill_ns: int64 event time of each fill, same capacity.
        fifo: int64 ``(capacity, 6)`` orders in flight: arrival ns, bid, ask, bid lots, ask lots,
            2 x reference mid; capacity at least the most decisions within one latency.

    Returns:
        ``(n_fills, orders_placed, lots_quoted)``.
    """
    n = len(out.cash)
    si = np.zeros(19, dtype=np.int64)
    sf = np.zeros(12)
    sf[CASH] = sf[PEAK] = tp.initial_cash
    sf[VAR_Q] = sf[VAR_F] = sf[VAR_S] = 1.0  # ticks^2 per step, + the warm-up's mean squared step
    si[SIG] = -1
    nb, nt = len(arr.bbo_ns), len(arr.trade_ns)
    ib = it = step = 0
    while ib < nb or it < nt:
        tb = arr.bbo_ns[ib] if ib < nb else NO_EVENT
        tt = arr.trade_ns[it] if it < nt else NO_EVENT
        now = min(tb, tt)
        while step < n and tp.start_ns + step * tp.step_ns < now:
            _grid_step(step, arr, qp, rp, tp, out, mid_out, tr, fill_ns, fifo, si, sf)
            step += 1
        _arrive(now, fifo, si, sf)
        si[LAST_NS] = now
        if tb <= tt:
            moved = arr.bid[ib] != si[BBO_BID] or arr.ask[ib] != si[BBO_ASK]
            si[BBO_BID], si[BBO_ASK] = arr.bid[ib], arr.ask[ib]
            sf[BID_QTY], sf[ASK_QTY] = arr.bid_qty[ib], arr.ask_qty[ib]
            sf[MID] = 0.5 * (arr.bid[ib] + arr.ask[ib])
            ib += 1
            if moved and tp.requote_on_bbo and si[READY] == 1:
                _decide(now, arr, qp, tp, fifo, si, sf)
        else:
            filled = _on_trade(it, min(step, n - 1), arr, tp, tr, fill_ns, si, sf)
            it += 1
            if filled and tp.requote_on_fill:
                _decide(now, arr, qp, tp, fifo, si, sf)
    while step < n:
        _grid_step(step, arr, qp, rp, tp, out, mid_out, tr, fill_ns, fifo, si, sf)
        step += 1
    return si[K], si[PLACED], si[QUOTED]
