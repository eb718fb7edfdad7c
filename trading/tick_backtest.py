"""Tick-event backtest entry point: a BBO + trade capture (and a per-bar signal) in, a
:class:`trading.backtest.BacktestResult` out. Converts at the edges (prices to ticks, sizes to
lots, the decision grid) and runs the compiled loop of :mod:`trading.tick_engine`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Any, cast

import numpy as np
import pandas as pd

from features.errors import DataError
from trading.backtest import (
    BacktestResult,
    Strategy,
    equity_frame,
    ewma_alpha,
    fill_records,
    signal_arrays,
    step_arrays,
    trade_arrays,
    trades_frame,
)
from trading.config import BacktestConfig, QuoteConfig, RiskConfig
from trading.fill_engine import StepArrays, TradeArrays
from trading.metrics import compute_metrics
from trading.quoting import QuoteParams, quote_params
from trading.risk import RiskParams, risk_params
from trading.tick_engine import MINUTE_NS, N_FIFO, TickArrays, TickParams, run_tick_kernel
from trading.ticks import TickData

logger = logging.getLogger(__name__)


def tick_arrays(
    data: TickData, *, backtest: BacktestConfig, signals: pd.DataFrame | None = None, bar_ns: int = MINUTE_NS
) -> TickArrays:
    """Convert a capture (and a per-bar signal frame) to kernel arrays in ticks and lots.

    Raises:
        DataError: the capture's tick is not a multiple of ``backtest.tick_size``, a crossed book,
            or a malformed signal frame.
    """
    ratio = data.tick_size / backtest.tick_size
    if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
        raise DataError(
            f"{data.symbol}: capture tick {data.tick_size:g} is not a multiple of backtest.tick_size "
            f"{backtest.tick_size:g}; set backtest.tick_size for this instrument"
        )

    def ticks(frame: pd.DataFrame, col: str) -> np.ndarray:
        return np.rint(frame[col].to_numpy(dtype=np.float64) / backtest.tick_size).astype(np.int64)

    bbo, tr = data.bbo, data.trades
    if bbo.empty:
        raise DataError(f"{data.symbol}: no BBO updates; the tick engine needs the mid from @bookTicker")
    bid, ask = ticks(bbo, "bid"), ticks(bbo, "ask")
    if np.any(ask <= bid):
        raise DataError(
            f"{data.symbol}: crossed or locked BBO at rows {np.flatnonzero(ask <= bid)[:5].tolist()}"
        )
    if signals is None:
        sig_ns = np.zeros(0, dtype=np.int64)
        sig = {c: np.zeros(0) for c in ("pred_return", "pred_vol", "prob_up")}
    else:
        if "timestamp" not in signals.columns:
            raise DataError("signals: need a 'timestamp' column of bar open times")
        opens = pd.DataFrame({"timestamp": pd.to_datetime(signals["timestamp"], utc=True)})
        opens = opens.drop_duplicates().sort_values("timestamp", ignore_index=True)
        sig = signal_arrays(opens, signals)
        sig_ns = opens["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64) + bar_ns
    lot = backtest.lot_size
    return TickArrays(
        bbo_ns=bbo["local_ns"].to_numpy(dtype=np.int64),
        bid=bid,
        ask=ask,
        bid_qty=bbo["bid_qty"].to_numpy(dtype=np.float64) / lot,
        ask_qty=bbo["ask_qty"].to_numpy(dtype=np.float64) / lot,
        trade_ns=tr["local_ns"].to_numpy(dtype=np.int64),
        trade_px=ticks(tr, "price"),
        trade_qty=tr["qty"].to_numpy(dtype=np.float64) / lot,
        trade_side=tr["side"].to_numpy(dtype=np.int64),
        sig_close_ns=sig_ns,
        pred_return=sig["pred_return"],
        pred_vol=sig["pred_vol"],
        prob_up=sig["prob_up"],
    )


def tick_params(
    arr: TickArrays,
    *,
    quote: QuoteConfig,
    risk: RiskConfig,
    backtest: BacktestConfig,
    decision_interval_ms: int,
    requote_on_bbo: bool,
    bar_ns: int,
    need_signal: bool,
    symbol: str,
) -> tuple[TickParams, int]:
    """The engine settings and the number of grid steps for a capture's kernel arrays.

    The grid starts at the first multiple of the interval at or after the first BBO and ends at
    the first grid point at or after the last event. The backtest and the worker's tick mode both
    build their settings here, so they decide on the same grid with the same weights.

    Raises:
        DataError: the capture is shorter than the warm-up bar plus one step.
    """
    step_ns = decision_interval_ms * 1_000_000
    start = -(-int(arr.bbo_ns[0]) // step_ns) * step_ns  # first grid point at or after the first BBO
    last = int(max(arr.bbo_ns[-1], arr.trade_ns[-1] if len(arr.trade_ns) else arr.bbo_ns[-1]))
    n = -(-(last - start) // step_ns) + 1  # the last grid point is at or after the last event
    spb = bar_ns / step_ns
    warmup = max(math.ceil(spb), 2)
    if n <= warmup:
        raise DataError(
            f"{symbol}: {n} decision steps of {decision_interval_ms} ms; need > {warmup} (warm-up)"
        )
    tp = TickParams(
        start_ns=start,
        step_ns=step_ns,
        bar_ns=bar_ns,
        steps_per_bar=spb,
        warmup_steps=warmup,
        latency_ns=backtest.latency_ms * 1_000_000,
        requote_on_bbo=requote_on_bbo,
        requote_on_fill=backtest.requote_on_fill,
        tick=backtest.tick_size,
        lot=backtest.lot_size,
        maker_fee=backtest.maker_fee_bps * 1e-4,
        taker_fee=backtest.taker_fee_bps * 1e-4,
        haircut_ticks=backtest.queue_haircut_ticks,
        participation=backtest.max_participation,
        initial_cash=backtest.initial_cash,
        max_position=risk.max_position_lots,
        vol_alpha=ewma_alpha(quote.vol_halflife_bars * spb),
        fast_alpha=ewma_alpha(risk.vol_short_halflife_bars * spb),
        slow_alpha=ewma_alpha(risk.vol_long_halflife_bars * spb),
        flatten_on_kill=risk.flatten_on_kill,
        need_signal=need_signal,
    )
    return tp, n


def fifo_capacity(arr: TickArrays, tp: TickParams, n_steps: int) -> int:
    """The most decisions that can be in flight at once: decisions within one latency, plus 2."""
    times = [tp.start_ns + tp.step_ns * np.arange(n_steps, dtype=np.int64)]
    if tp.requote_on_bbo:
        times.append(arr.bbo_ns)
    if tp.requote_on_fill:
        times.append(arr.trade_ns)
    t = np.sort(np.concatenate(times))
    return int(np.max(np.searchsorted(t, t + tp.latency_ns, side="right") - np.arange(len(t)))) + 2


def run_tick_backtest(
    data: TickData,
    *,
    quote: QuoteConfig,
    risk: RiskConfig,
    backtest: BacktestConfig,
    signals: pd.DataFrame | None = None,
    strategy: Strategy = "as",
    decision_interval_ms: int = 1000,
    requote_on_bbo: bool = False,
    bar_ns: int = MINUTE_NS,
) -> BacktestResult:
    """Backtest the quoter, risk engine and the tick fill rule over a BBO + trade capture.

    Args:
        data: one instrument's capture (:func:`trading.ticks.read_ticks`).
        quote: quoting parameters (their "bars" are ``bar_ns`` long).
        risk: risk limits.
        backtest: fees, latency, queue haircut, participation, tick and lot (``refresh_bars`` and
            ``markout_bars`` in bars: the grid is the refresh cadence; markouts are converted).
        signals: per-bar signal frame as in :mod:`trading.backtest` (bar open ``timestamp``);
            required for ``"model"``.
        strategy: ``"as"`` (signals ignored) or ``"model"``.
        decision_interval_ms: grid of decisions and state rows, ms.
        requote_on_bbo: also requote on every best bid/ask price change.
        bar_ns: the length of the config's "bar", ns (1 minute: the shipped 1m bars).

    Returns:
        Metrics (``bars`` = grid steps; Sharpe/Sortino annualised from step returns; markout keys
        in bars), one equity row per grid step (``mark`` = the mid) and the fills (``timestamp``
        = the trade that filled, ``step`` = the first state row that includes it).

    Raises:
        ValueError: bad strategy, missing signals, or a non-positive interval.
        DataError: the capture is shorter than the warm-up bar plus one step, or bad inputs.
    """
    if strategy not in ("as", "model"):
        raise ValueError(f"strategy must be 'as' or 'model', got {strategy!r}")
    if strategy == "model" and signals is None:
        raise ValueError("strategy='model' needs a signals frame (pred_return / pred_vol / prob_up)")
    if decision_interval_ms <= 0 or bar_ns <= 0:
        raise ValueError(
            f"decision_interval_ms and bar_ns must be positive, got {decision_interval_ms}, {bar_ns}"
        )
    arr = tick_arrays(
        data, backtest=backtest, signals=signals if strategy == "model" else None, bar_ns=bar_ns
    )
    tp, n = tick_params(
        arr,
        quote=quote,
        risk=risk,
        backtest=backtest,
        decision_interval_ms=decision_interval_ms,
        requote_on_bbo=requote_on_bbo,
        bar_ns=bar_ns,
        need_signal=strategy == "model",
        symbol=data.symbol,
    )
    start, step_ns, spb = tp.start_ns, tp.step_ns, tp.steps_per_bar
    steps, trades, fill_ns, mid, counters = _simulate(arr, quote_params(quote), risk_params(risk), tp, n)
    k, placed, lots_quoted = counters
    fills = fill_records(trades, k)
    horizons = {str(h): max(round(h * spb), 1) for h in backtest.markout_bars}
    metrics = compute_metrics(
        equity=steps.equity,
        inventory=steps.inventory,
        status=steps.status,
        close_ticks=cast(Any, mid),  # the mark is the (half-tick) mid; markouts read it as float
        fills=fills,
        bar_ns=step_ns,
        initial_cash=backtest.initial_cash,
        tick=backtest.tick_size,
        lot=backtest.lot_size,
        orders_placed=placed,
        lots_quoted=lots_quoted,
        markout_bars=tuple(horizons.values()),
    )
    by_step = metrics.markouts_bps
    parts = (
        metrics.decomposition.relabel({str(s): h for h, s in horizons.items()})
        if metrics.decomposition
        else None
    )
    metrics = replace(
        metrics, markouts_bps={h: by_step[str(s)] for h, s in horizons.items()}, decomposition=parts
    )
    logger.info("tick backtest %s: %d steps, %d fills, pnl %.2f", data.symbol, n, k, metrics.pnl)
    grid = start + step_ns * np.arange(n, dtype=np.int64)
    return BacktestResult(
        metrics=metrics,
        trades=trades_frame(fills, fill_ns[:k], backtest, index="step"),
        equity=equity_frame(steps, grid, mid, backtest),
    )


def _simulate(
    arr: TickArrays, qp: QuoteParams, rp: RiskParams, tp: TickParams, n: int
) -> tuple[StepArrays, TradeArrays, np.ndarray, np.ndarray, tuple[int, int, int]]:
    steps = step_arrays(n)
    m = len(arr.trade_ns) + n + 1
    trades = trade_arrays(m)
    fill_ns, mid = np.zeros(m, dtype=np.int64), np.zeros(n)
    fifo = np.full((fifo_capacity(arr, tp, n), N_FIFO), -1, dtype=np.int64)
    counters = run_tick_kernel(arr, qp, rp, tp, steps, mid, trades, fill_ns, fifo)
    return steps, trades, fill_ns, mid, (int(counters[0]), int(counters[1]), int(counters[2]))
