"""The bar fill engine: one compiled event loop for backtests, tuning, paper and shadow runs.

Everything in here is integer ticks and lots, integer-ns times, and plain arrays, so the loop
compiles with numba (``cache=True``) and runs with no Python per bar. The same source also runs
as plain Python (``NUMBA_DISABLE_JIT=1``), which is the baseline ``bench/backtest.py`` measures.

Timeline of bar ``i`` (open ``t_i``, close ``t_i + bar_ns``):

1. orders sent at an earlier close whose latency has elapsed arrive and replace the live ones;
2. the live quotes fill if the bar trades through them (``low <= bid - haircut`` for the bid,
   ``high >= ask + haircut`` for the ask), at the quote price, maker fee, sized by the order,
   the inventory limit and, optionally, a share of the bar's opposite aggressor flow;
3. at the close: mark to the close, update the volatility estimates, run the risk engine
   (a latched kill flattens at the close with the taker fee), then, on the refresh cadence, after
   a fill or on a risk state change, compute new quotes from data up to this close and signal
   row ``i``; they arrive at bar ``i + 1 + latency_bars``. No step reads a bar after ``i``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from numba import njit

from trading.quoting import QuoteParams, decide_quotes, depth_cap, horizon_tau, imbalance
from trading.risk import HALTED, LATCHED, RiskParams, risk_core


class BarArrays(NamedTuple):
    """Per-bar inputs, all the same length. Prices in ticks, flows in lots, NaN = unavailable."""

    open_ns: Any  # int64, bar open time, ns since epoch
    open: Any  # int64 ticks
    high: Any  # int64 ticks
    low: Any  # int64 ticks
    close: Any  # int64 ticks
    volume: Any  # float64 lots
    buy_flow: Any  # float64 lots bought by takers (lifts asks)
    sell_flow: Any  # float64 lots sold by takers (hits bids)
    pred_return: Any  # float64 log return (NaN: none)
    pred_sigma2: Any  # float64 ticks^2 per bar (NaN: none)
    prob_up: Any  # float64 probability (NaN: none)


class EngineParams(NamedTuple):
    """Venue, fee and fill-model settings in kernel units."""

    bar_ns: int
    tick: float  # quote ccy per tick
    lot: float  # base ccy per lot
    maker_fee: float  # fraction of notional, negative = rebate
    taker_fee: float  # fraction of notional
    latency_bars: int
    refresh_bars: int
    requote_on_fill: bool
    refresh_tol: float  # keep_quote's tolerance, fraction of the working quote's price
    haircut_ticks: int
    participation: float  # 0 = no partial-fill cap
    initial_cash: float
    max_position: int
    vol_alpha: float  # EWMA weights per bar
    fast_alpha: float
    slow_alpha: float
    flatten_on_kill: bool
    need_signal: bool
    kill_from: int  # bar index where the manual kill switch is pressed (n = never)


class Venue(Protocol):
    """What :func:`_book` reads from the engine settings (EngineParams, or the tick engine's TickParams)."""

    @property
    def tick(self) -> float: ...

    @property
    def lot(self) -> float: ...


class StepArrays(NamedTuple):
    """Per-bar outputs (state at the close of each bar; quotes = those live during the bar)."""

    cash: Any  # float64 quote ccy
    equity: Any  # float64 quote ccy
    inventory: Any  # int64 lots
    bid: Any  # int64 ticks (0 when no bid was live)
    ask: Any  # int64 ticks
    bid_lots: Any  # int64
    ask_lots: Any  # int64
    status: Any  # int64 RiskStatus
    reasons: Any  # int64 reason bits


class TradeArrays(NamedTuple):
    """Fill records. Capacity ``2n + latency_bars + 2``: at most two maker fills a bar, and a
    flatten needs inventory, which after a latched kill only fills arriving within the latency add."""

    bar: Any  # int64 bar index
    side: Any  # int64 +1 buy, -1 sell
    price: Any  # int64 ticks
    lots: Any  # int64
    fee: Any  # float64 quote ccy (negative = rebate)
    maker: Any  # int64 1 = maker fill, 0 = taker (flatten)
    ref_mid: Any  # float64 ticks, the mid when the order was decided


@njit(cache=True, error_model="numpy", inline="always")
def _book(
    tr: TradeArrays,
    k: int,
    i: int,
    side: int,
    price: int,
    lots: int,
    fee_rate: float,
    maker: int,
    ref: float,
    ep: Venue,
) -> tuple[float, float]:
    """Record a fill; return (cash change, fee) in quote ccy."""
    notional = price * ep.tick * lots * ep.lot
    fee = abs(notional) * fee_rate
    tr.bar[k] = i
    tr.side[k] = side
    tr.price[k] = price
    tr.lots[k] = lots
    tr.fee[k] = fee
    tr.maker[k] = maker
    tr.ref_mid[k] = ref
    return -side * notional - fee, fee


@njit(cache=True, error_model="numpy", inline="always")
def bar_crosses(low: int, high: int, bid: int, ask: int, haircut: int) -> tuple[bool, bool]:
    """The bar fill rule: did the bar trade through the bid / the ask by ``haircut`` ticks?

    The one definition the kernel and the tick calibration (:mod:`trading.calibration`) share.
    """
    return low <= bid - haircut, high >= ask + haircut


@njit(cache=True, error_model="numpy", inline="always")
def _fill_lots(crossed: bool, lots: int, room: int, flow: float, ep: EngineParams) -> int:
    """Lots filled on one side: the order, cut by the inventory room and the flow cap."""
    if not crossed or lots <= 0 or room <= 0:
        return 0
    q = min(lots, room)
    if ep.participation > 0.0:
        q = min(q, int(ep.participation * flow))
    return max(q, 0)


@njit(cache=True, error_model="numpy", inline="always")
def _ewma_update(var: float, x2: float, alpha: float) -> float:
    return var + alpha * (x2 - var)


@njit(cache=True, error_model="numpy", inline="always")
def bar_quotes(
    i: int, inv: int, status: int, var_q: float, bars: BarArrays, qp: QuoteParams, ep: EngineParams
) -> tuple[int, int, int, int]:
    """Quotes decided at the close of bar ``i`` from bar ``i``'s inputs; (bid, ask, bid_lots, ask_lots)."""
    return close_quotes(
        bars.close[i],
        i,
        inv,
        status,
        var_q,
        bars.pred_return[i],
        bars.pred_sigma2[i],
        bars.prob_up[i],
        bars.buy_flow[i],
        bars.sell_flow[i],
        bars.volume[i],
        ep.max_position,
        qp,
        ep,
    )


@njit(cache=True, error_model="numpy", inline="always")
def close_quotes(
    close: int,
    bar_index: int,
    inv: int,
    status: int,
    var_q: float,
    pred_return: float,
    pred_sigma2: float,
    prob_up: float,
    buy_flow: float,
    sell_flow: float,
    volume: float,
    max_position: int,
    qp: Any,
    ep: EngineParams,
) -> tuple[int, int, int, int]:
    """The quote decided at a bar's close from that bar (the kernel's and the worker's):
    :func:`trading.quoting.decide_quotes` with the bar's flows, volume and close as the touch.

    ``max_position`` (lots) and ``qp`` are the symbol's: the kernel's settings, or the worker's
    row for that symbol (a :class:`~trading.quoting.QuoteParams` record, per-symbol overrides in)."""
    bid, ask, bl, al, _r, _s = decide_quotes(
        float(close),
        inv,
        var_q,
        horizon_tau(bar_index, qp),
        pred_return,
        pred_sigma2,
        prob_up,
        imbalance(buy_flow, sell_flow, qp),
        depth_cap(volume, qp),
        max_position,
        status,
        close,
        close,
        qp,
    )
    return bid, ask, bl, al


@njit(cache=True, error_model="numpy", inline="always")
def match_bar(
    low: int,
    high: int,
    sell_flow: float,
    buy_flow: float,
    bid: int,
    ask: int,
    bl: int,
    al: int,
    inv: int,
    ep: Any,
) -> tuple[int, int]:
    """The bar fill rule: lots filled on the bid and the ask by one bar, before either is booked.

    A side fills when the bar trades through it by the haircut (:func:`bar_crosses`), sized by
    the order, the inventory room left by ``inv`` and, with ``participation``, that share of the
    bar's opposite aggressor flow. The kernel and the paper venue both fill with this.
    """
    hit_bid, hit_ask = bar_crosses(low, high, bid, ask, ep.haircut_ticks)
    qb = _fill_lots(hit_bid, bl, ep.max_position - inv, sell_flow, ep)
    qa = _fill_lots(hit_ask, al, ep.max_position + inv, buy_flow, ep)
    return qb, qa


@njit(cache=True, error_model="numpy", inline="always")
def close_bar(
    close: int,
    prev_close: float,
    close_ns: int,
    gap_ns: int,
    inv: int,
    cash: float,
    peak: float,
    var_q: float,
    var_f: float,
    var_s: float,
    reasons: int,
    until: int,
    sig_ok: bool,
    reject_rate: float,
    kill: bool,
    ep: EngineParams,
    rp: RiskParams,
) -> tuple[float, float, float, float, float, int, int, int]:
    """The close of a bar: volatility estimates, mark, peak and the risk decision.

    Args:
        close: the bar's close, ticks; ``prev_close`` the previous close (the first bar: its open).
        close_ns: the clock at the close; ``gap_ns`` how much older than one bar the previous
            bar is (missing bars age the data; the bar closing now is fresh).
        inv, cash: the position after this bar's fills, lots and quote ccy.
        peak, var_q, var_f, var_s, reasons, until: the carried state.
        sig_ok, reject_rate, kill: the observations the risk engine takes besides the book.

    Returns:
        ``(equity, peak, var_q, var_f, var_s, status, reasons, until)``.
    """
    d2 = float(close - prev_close) ** 2
    var_q = _ewma_update(var_q, d2, ep.vol_alpha)
    var_f = _ewma_update(var_f, d2, ep.fast_alpha)
    var_s = _ewma_update(var_s, d2, ep.slow_alpha)
    mark = close * ep.tick
    equity = cash + inv * ep.lot * mark
    peak = max(peak, equity)
    status, reasons, until = risk_core(
        reasons,
        until,
        close_ns,
        inv,
        abs(inv * ep.lot * mark),
        equity - ep.initial_cash,
        (peak - equity) / peak,
        var_f / var_s,
        gap_ns,
        sig_ok,
        reject_rate,
        kill,
        rp,
    )
    return equity, peak, var_q, var_f, var_s, status, reasons, until


@njit(cache=True, error_model="numpy", inline="always")
def must_flatten(status: int, reasons: int, flatten_on_kill: bool, inv: int) -> bool:
    """A latched kill (loss, drawdown, kill switch) closes the inventory at the taker fee."""
    return status == HALTED and reasons & LATCHED != 0 and flatten_on_kill and inv != 0


@njit(cache=True, error_model="numpy", inline="always")
def must_requote(status: int, prev_status: int, refresh: int, filled: bool, requote_on_fill: bool) -> bool:
    """Requote (or cancel) on the cadence, on a state change, after a fill, and every step HALTED."""
    return status == HALTED or refresh == 0 or status != prev_status or (requote_on_fill and filled)


@njit(cache=True, error_model="numpy", inline="always")
def keep_quote(live_price: int, live_lots: int, price: int, lots: int, tol: float) -> bool:
    """A new quote leaves the working one in place (no cancel, no re-send) when it has the same
    size and its price is within ``tol`` (a fraction) of the working one's; ``tol`` 0 keeps only
    an identical quote, which replacing would not change. The kernel and the worker both keep
    with this, and only with latency under one bar (where the working order's remaining size
    at the decision is the one the replacement would meet)."""
    return lots > 0 and live_lots == lots and abs(price - live_price) <= tol * live_price


@njit(cache=True, error_model="numpy", inline="always")
def first_variance(high: int, low: int) -> float:
    """The variance estimates' seed from the first bar's range (Parkinson), ticks^2 per bar."""
    return 0.36 * float(high - low) ** 2 + 1.0


@njit(cache=True, error_model="numpy", inline="always")
def _maker_fills(
    i: int,
    bid: int,
    ask: int,
    bl: int,
    al: int,
    inv: int,
    cash: float,
    k: int,
    ref: float,
    bars: BarArrays,
    tr: TradeArrays,
    ep: EngineParams,
) -> tuple[float, int, int, int, int]:
    """Fill the live quotes against bar ``i``; returns (cash, inventory, bid lots, ask lots, k)."""
    qb, qa = match_bar(
        bars.low[i], bars.high[i], bars.sell_flow[i], bars.buy_flow[i], bid, ask, bl, al, inv, ep
    )
    if qb > 0:
        dc, _f = _book(tr, k, i, 1, bid, qb, ep.maker_fee, 1, ref, ep)
        cash += dc
        inv += qb
        k += 1
    if qa > 0:
        dc, _f = _book(tr, k, i, -1, ask, qa, ep.maker_fee, 1, ref, ep)
        cash += dc
        inv -= qa
        k += 1
    return cash, inv, bl - qb, al - qa, k


@njit(cache=True, error_model="numpy")
def run_kernel(
    bars: BarArrays,
    qp: QuoteParams,
    rp: RiskParams,
    ep: EngineParams,
    out: StepArrays,
    tr: TradeArrays,
    ring: Any,
) -> tuple[int, int, int]:
    """Run the event loop over all bars, writing ``out`` and ``tr`` in place.

    Args:
        bars: per-bar inputs.
        qp: quote parameters.
        rp: risk thresholds.
        ep: engine settings.
        out: per-bar outputs, length n.
        tr: fill records, capacity ``2n + latency_bars + 2``.
        ring: int64 array (latency_bars + 2, 6) of orders in flight: arrival bar (-1 empty), bid,
            ask, bid lots, ask lots, reference mid.

    Returns:
        ``(n_trades, orders_placed, lots_quoted)``.
    """
    n = len(bars.close)
    slots = ring.shape[0]
    cash = ep.initial_cash
    peak = ep.initial_cash
    inv = bid = ask = bl = al = k = placed = lots_quoted = 0
    ref = 0.0
    var_q = var_f = var_s = first_variance(bars.high[0], bars.low[0])
    reasons = status = until = 0
    s = 0  # ring slot of bar i (i % slots, kept as a counter: integer division is slow)
    t = (1 + ep.latency_bars) % slots  # ring slot of bar i + 1 + latency
    refresh = 0  # i % refresh_bars
    for i in range(n):
        if ring[s, 0] == i:  # orders in flight arrive: cancel/replace the live ones
            bid, ask, bl, al, ref = ring[s, 1], ring[s, 2], ring[s, 3], ring[s, 4], float(ring[s, 5])
            ring[s, 0] = -1
        out.bid[i], out.ask[i], out.bid_lots[i], out.ask_lots[i] = bid, ask, bl, al
        k0 = k
        cash, inv, bl, al, k = _maker_fills(i, bid, ask, bl, al, inv, cash, k, ref, bars, tr, ep)
        close = bars.close[i]
        sig_ok = not ep.need_signal or bars.pred_return[i] == bars.pred_return[i]
        sig_ok = sig_ok or bars.prob_up[i] == bars.prob_up[i]
        prev_status = status
        _eq, peak, var_q, var_f, var_s, status, reasons, until = close_bar(
            close,
            float(bars.close[i - 1] if i > 0 else bars.open[0]),
            bars.open_ns[i] + ep.bar_ns,
            bars.open_ns[i] - bars.open_ns[i - 1] - ep.bar_ns if i > 0 else 0,
            inv,
            cash,
            peak,
            var_q,
            var_f,
            var_s,
            reasons,
            until,
            sig_ok,
            0.0,
            i >= ep.kill_from,
            ep,
            rp,
        )
        if must_flatten(status, reasons, ep.flatten_on_kill, inv):
            dc, _f = _book(tr, k, i, 1 if inv < 0 else -1, close, abs(inv), ep.taker_fee, 0, float(close), ep)
            cash += dc
            inv = 0
            k += 1
        if must_requote(status, prev_status, refresh, k > k0, ep.requote_on_fill):
            nb, na, nbl, nal = bar_quotes(i, inv, status, var_q, bars, qp, ep)
            if ep.latency_bars == 0:
                nb = bid if keep_quote(bid, bl, nb, nbl, ep.refresh_tol) else nb
                na = ask if keep_quote(ask, al, na, nal, ep.refresh_tol) else na
            placed += (nbl > 0) + (nal > 0)
            lots_quoted += nbl + nal
            ring[t, 0], ring[t, 1], ring[t, 2] = i + 1 + ep.latency_bars, nb, na
            ring[t, 3], ring[t, 4], ring[t, 5] = nbl, nal, close
        out.cash[i] = cash
        out.inventory[i] = inv
        out.equity[i] = cash + inv * ep.lot * (close * ep.tick)
        out.status[i] = status
        out.reasons[i] = reasons
        s = s + 1 if s + 1 < slots else 0
        t = t + 1 if t + 1 < slots else 0
        refresh = refresh + 1 if refresh + 1 < ep.refresh_bars else 0
    return k, placed, lots_quoted
