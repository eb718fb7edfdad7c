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

# integer state slots (si): inventory, live quote, fill/order counters, risk, fifo, book, pointers,
# the live orders' venue ids (-1 in the backtest, which has no orders)
INV, BID, ASK, BL, AL, K, PLACED, QUOTED, STATUS, REASONS, UNTIL = range(11)
HEAD, TAIL, BBO_BID, BBO_ASK, LAST_NS, SIG, VOL_PTR, READY, BID_ID, ASK_ID = range(11, 21)
N_SI = 21
# float state slots (sf): money, variance estimates, mid, fill credits, touch sizes, trailing volume
CASH, PEAK, REF, VAR_Q, VAR_F, VAR_S, MID, CREDIT_B, CREDIT_A, BID_QTY, ASK_QTY, VOLUME = range(12)
N_SF = 12
# fifo columns: arrival ns, bid, ask, bid lots, ask lots, 2 x reference mid, bid id, ask id;
# lots -1 keep that side's live order (a venue request for the other side only)
N_FIFO = 8
KEEP = -1


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
def next_event(arr: TickArrays, ib: int, it: int) -> tuple[int, bool]:
    """The next event after BBO row ``ib`` and trade row ``it``: ``(time, is_bbo)``, a BBO update
    before a trade on a tie; ``(NO_EVENT, False)`` when both streams are done."""
    tb = arr.bbo_ns[ib] if ib < len(arr.bbo_ns) else NO_EVENT
    tt = arr.trade_ns[it] if it < len(arr.trade_ns) else NO_EVENT
    if tb == NO_EVENT and tt == NO_EVENT:
        return NO_EVENT, False
    return min(tb, tt), tb <= tt


@njit(cache=True, error_model="numpy", inline="always")
def arrive(now: int, fifo: Any, si: Any, sf: Any) -> None:
    """Orders whose latency has elapsed by ``now`` replace the live quotes (FIFO: constant latency).

    A replaced side starts a new participation credit; a side with :data:`KEEP` lots is left as it
    is (the backtest always replaces both, a venue request may touch one).
    """
    cap = fifo.shape[0]
    while si[HEAD] < si[TAIL] and fifo[si[HEAD] % cap, 0] <= now:
        row = si[HEAD] % cap
        if fifo[row, 3] != KEEP:
            si[BID], si[BL], si[BID_ID] = fifo[row, 1], fifo[row, 3], fifo[row, 6]
            sf[CREDIT_B] = 0.0
        if fifo[row, 4] != KEEP:
            si[ASK], si[AL], si[ASK_ID] = fifo[row, 2], fifo[row, 4], fifo[row, 7]
            sf[CREDIT_A] = 0.0
        sf[REF] = 0.5 * fifo[row, 5]
        si[HEAD] += 1


@njit(cache=True, error_model="numpy", inline="always")
def observe_bbo(ib: int, arr: TickArrays, si: Any, sf: Any) -> bool:
    """Apply BBO row ``ib`` (touch, sizes, mid); True if the best bid or ask price moved."""
    moved = arr.bid[ib] != si[BBO_BID] or arr.ask[ib] != si[BBO_ASK]
    si[BBO_BID], si[BBO_ASK] = arr.bid[ib], arr.ask[ib]
    sf[BID_QTY], sf[ASK_QTY] = arr.bid_qty[ib], arr.ask_qty[ib]
    sf[MID] = 0.5 * (arr.bid[ib] + arr.ask[ib])
    return moved


@njit(cache=True, error_model="numpy", inline="always")
def observe_trade(j: int, arr: TickArrays, sf: Any) -> None:
    """Apply trade row ``j`` to the trailing volume (the depth cap's input), lots."""
    sf[VOLUME] += arr.trade_qty[j]


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
def quote_at(
    now: int, inv: int, arr: TickArrays, qp: QuoteParams, tp: TickParams, si: Any, sf: Any
) -> tuple[int, int, int, int]:
    """The quote from data up to ``now`` for inventory ``inv`` (HALTED: zeros, a cancel):
    ``(bid, ask, bid_lots, ask_lots)``; counts the orders and lots quoted."""
    pred_return = pred_vol = prob_up = math.nan
    if si[STATUS] != HALTED:  # nothing to price (the decision returns zeros): skip the inputs
        while si[VOL_PTR] < len(arr.trade_ns) and arr.trade_ns[si[VOL_PTR]] <= now - tp.bar_ns:
            sf[VOLUME] -= arr.trade_qty[si[VOL_PTR]]
            si[VOL_PTR] += 1
        pred_return, pred_vol, prob_up = _signal(now, arr, tp, si)
    mid = sf[MID]
    bid, ask, bl, al, _r, _s = decide_quotes(
        mid,
        inv,
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
    return bid, ask, bl, al


@njit(cache=True, error_model="numpy", inline="always")
def _decide(now: int, arr: TickArrays, qp: QuoteParams, tp: TickParams, fifo: Any, si: Any, sf: Any) -> None:
    """Quote from data up to ``now`` and send it; it arrives after the latency."""
    bid, ask, bl, al = quote_at(now, si[INV], arr, qp, tp, si, sf)
    row = si[TAIL] % fifo.shape[0]
    fifo[row, 0], fifo[row, 1], fifo[row, 2] = now + tp.latency_ns, bid, ask
    fifo[row, 3], fifo[row, 4], fifo[row, 5] = bl, al, si[BBO_BID] + si[BBO_ASK]
    fifo[row, 6] = fifo[row, 7] = -1
    si[TAIL] += 1


@njit(cache=True, error_model="numpy", inline="always")
def match_trade(
    side: int,
    px: int,
    qty: float,
    bid: int,
    ask: int,
    bl: int,
    al: int,
    inv: int,
    credit_b: float,
    credit_a: float,
    tp: TickParams,
) -> tuple[int, float, float]:
    """The tick fill rule: the lots one trade fills on the live quote, before it is booked.

    A seller-aggressor trade at or below ``bid - haircut`` fills the bid (a buyer at or above
    ``ask + haircut`` the ask), sized by the remaining lots, the inventory room left by ``inv``
    and, with ``participation > 0``, the credit of that share of the quantity traded through the
    same quote (what a fill uses up is taken from it). The kernel and the paper tick venue both
    fill with this.

    Returns:
        ``(lots, credit_b, credit_a)``: lots > 0 the bid filled (we buy), < 0 the ask, 0 none.
    """
    if side < 0 and bl > 0 and px <= bid - tp.haircut_ticks:  # a seller hit our bid
        q, room = bl, tp.max_position - inv
        credit_b += tp.participation * qty
        credit = credit_b
    elif side > 0 and al > 0 and px >= ask + tp.haircut_ticks:  # a buyer lifted our ask
        q, room = al, tp.max_position + inv
        credit_a += tp.participation * qty
        credit = credit_a
    else:
        return 0, credit_b, credit_a
    q = min(q, room)
    if tp.participation > 0.0:
        q = min(q, int(credit))
    if q <= 0:
        return 0, credit_b, credit_a
    if side < 0:
        if tp.participation > 0.0:
            credit_b -= q
        return q, credit_b, credit_a
    if tp.participation > 0.0:
        credit_a -= q
    return -q, credit_b, credit_a


@njit(cache=True, error_model="numpy", inline="always")
def fill_trade(
    j: int, step: int, arr: TickArrays, tp: TickParams, tr: TradeArrays, fill_ns: Any, si: Any, sf: Any
) -> int:
    """Fill the live quote that trade ``j`` went through (:func:`match_trade`) and book it at
    the quote price with the maker fee; returns the signed lots (0: no fill)."""
    filled, sf[CREDIT_B], sf[CREDIT_A] = match_trade(
        arr.trade_side[j],
        arr.trade_px[j],
        arr.trade_qty[j],
        si[BID],
        si[ASK],
        si[BL],
        si[AL],
        si[INV],
        sf[CREDIT_B],
        sf[CREDIT_A],
        tp,
    )
    if filled == 0:
        return 0
    buy = 1 if filled > 0 else -1
    q = abs(filled)
    price = si[BID] if buy > 0 else si[ASK]
    dc, _fee = _book(tr, si[K], step, buy, price, q, tp.maker_fee, 1, sf[REF], tp)
    fill_ns[si[K]] = arr.trade_ns[j]
    sf[CASH] += dc
    si[INV] += buy * q
    si[K] += 1
    if buy > 0:
        si[BL] -= q
    else:
        si[AL] -= q
    return filled


@njit(cache=True, error_model="numpy", inline="always")
def take_at_touch(
    step: int, now: int, side: int, lots: int, tp: TickParams, tr: TradeArrays, fill_ns: Any, si: Any, sf: Any
) -> None:
    """Book a taker order of ``side`` x ``lots`` at the touch (the ask to buy) with the taker fee."""
    price = si[BBO_ASK] if side > 0 else si[BBO_BID]
    dc, _fee = _book(tr, si[K], step, side, price, lots, tp.taker_fee, 0, sf[MID], tp)
    fill_ns[si[K]] = now
    sf[CASH] += dc
    si[INV] += side * lots
    si[K] += 1


@njit(cache=True, error_model="numpy", inline="always")
def grid_update(step: int, prev_mid: float, tp: TickParams, si: Any, sf: Any) -> bool:
    """The volatility estimates at grid point ``step`` from the mid change since the previous
    one (``prev_mid``, ticks); True once past the warm-up (risk and quotes run from then on)."""
    d2 = (sf[MID] - prev_mid) ** 2 if step > 0 else 0.0
    if step < tp.warmup_steps:  # seed the variance with the warm-up's mean squared step
        sf[VAR_Q] += d2 / max(tp.warmup_steps - 1, 1)
        sf[VAR_F] = sf[VAR_S] = sf[VAR_Q]
        return False
    sf[VAR_Q] = _ewma_update(sf[VAR_Q], d2, tp.vol_alpha)
    sf[VAR_F] = _ewma_update(sf[VAR_F], d2, tp.fast_alpha)
    sf[VAR_S] = _ewma_update(sf[VAR_S], d2, tp.slow_alpha)
    si[READY] = 1
    return True


@njit(cache=True, error_model="numpy", inline="always")
def risk_at(now: int, kill: bool, arr: TickArrays, rp: RiskParams, tp: TickParams, si: Any, sf: Any) -> int:
    """Run the risk engine at a grid point (``kill``: the manual kill switch is pressed).

    Returns:
        The signed lots to take at the touch to flatten (a latched kill), 0 for none.
    """
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
        kill,
        rp,
    )
    return -inv if must_flatten(si[STATUS], si[REASONS], tp.flatten_on_kill, inv) else 0


@njit(cache=True, error_model="numpy", inline="always")
def must_quote(status: int, prev_status: int, live_lots: int) -> bool:
    """Quote at a grid point unless HALTED twice in a row with nothing live to cancel."""
    return status != HALTED or prev_status != HALTED or live_lots > 0


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
    arrive(now, fifo, si, sf)
    if grid_update(step, mid_out[step - 1] if step > 0 else 0.0, tp, si, sf):
        prev_status = si[STATUS]
        take = risk_at(now, False, arr, rp, tp, si, sf)
        if take != 0:  # a latched kill closes the inventory at the touch (taker)
            take_at_touch(step, now, 1 if take > 0 else -1, abs(take), tp, tr, fill_ns, si, sf)
        if must_quote(si[STATUS], prev_status, si[BL] + si[AL]):
            _decide(now, arr, qp, tp, fifo, si, sf)
            arrive(now, fifo, si, sf)  # latency 0: the new quote is what the row shows as live
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
        fifo: int64 ``(capacity, N_FIFO)`` orders in flight (columns as :data:`N_FIFO` says);
            capacity at least the most decisions within one latency.

    Returns:
        ``(n_fills, orders_placed, lots_quoted)``.
    """
    n = len(out.cash)
    si = np.zeros(N_SI, dtype=np.int64)
    sf = np.zeros(N_SF)
    sf[CASH] = sf[PEAK] = tp.initial_cash
    sf[VAR_Q] = sf[VAR_F] = sf[VAR_S] = 1.0  # ticks^2 per step, + the warm-up's mean squared step
    si[SIG] = -1
    si[BID_ID] = si[ASK_ID] = -1
    ib = it = step = 0
    while True:
        now, is_bbo = next_event(arr, ib, it)
        if now == NO_EVENT:
            break
        while step < n and tp.start_ns + step * tp.step_ns < now:
            _grid_step(step, arr, qp, rp, tp, out, mid_out, tr, fill_ns, fifo, si, sf)
            step += 1
        arrive(now, fifo, si, sf)
        si[LAST_NS] = now
        if is_bbo:
            moved = observe_bbo(ib, arr, si, sf)
            ib += 1
            if moved and tp.requote_on_bbo and si[READY] == 1:
                _decide(now, arr, qp, tp, fifo, si, sf)
        else:
            observe_trade(it, arr, sf)
            filled = fill_trade(it, min(step, n - 1), arr, tp, tr, fill_ns, si, sf) != 0
            it += 1
            if filled and tp.requote_on_fill:
                _decide(now, arr, qp, tp, fifo, si, sf)
    while step < n:
        _grid_step(step, arr, qp, rp, tp, out, mid_out, tr, fill_ns, fifo, si, sf)
        step += 1
    return si[K], si[PLACED], si[QUOTED]
