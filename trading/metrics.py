"""Backtest metrics: returns, risk, fills, inventory, fees, turnover and markouts.

Annualisation basis: crypto trades every day, so a year is 365 days of bars
(``365 * 86400e9 / bar_ns`` bars); Sharpe and Sortino are computed on per-bar simple returns
of equity with a zero risk-free rate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from trading.pnl import PnlDecomposition, decompose_pnl
from trading.risk import ACTIVE, HALTED, REDUCING

NS_PER_YEAR = 365 * 86_400 * 1_000_000_000
ANNUALISATION_BASIS = "365 days per year, per-bar simple equity returns, risk-free rate 0"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class BacktestMetrics:
    """Summary of one backtest. Money in quote ccy, inventory in lots, spreads/markouts in bps.

    ``sharpe``/``sortino`` are None when undefined (flat equity, or no downside returns);
    ``fill_ratio`` is filled lots / quoted lots; ``spread_capture_bps`` is the lot-weighted mean of
    ``side * (decision mid - fill price) / fill price`` over maker fills; ``markouts_bps[h]`` is the
    lot-weighted mean of ``side * (close h bars after the fill - price) / price`` (negative means
    adverse selection); ``turnover`` is traded notional / initial cash; ``decomposition`` splits
    ``pnl`` into spread capture, adverse selection at each markout horizon, inventory and fees
    (quote ccy, see :mod:`trading.pnl`).
    """

    bars: int
    initial_equity: float
    final_equity: float
    pnl: float
    pnl_pct: float
    sharpe: float | None
    sortino: float | None
    max_drawdown_pct: float
    n_trades: int
    maker_fills: int
    taker_fills: int
    orders_placed: int
    fill_ratio: float | None
    spread_capture_bps: float | None
    fees: float
    turnover: float
    inventory_mean: float
    inventory_std: float
    inventory_max_abs: int
    final_inventory: int
    time_active: float
    time_reducing: float
    time_halted: float
    markouts_bps: dict[str, float | None] = field(default_factory=dict)
    annualisation: str = ANNUALISATION_BASIS
    decomposition: PnlDecomposition | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (None for undefined ratios)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FillRecords:
    """Fill records as arrays (see :class:`trading.fill_engine.TradeArrays`)."""

    bar: IntArray
    side: IntArray
    price_ticks: IntArray
    lots: IntArray
    fee: FloatArray
    maker: IntArray
    ref_mid_ticks: FloatArray


def annualised_ratios(equity: FloatArray, *, bar_ns: int) -> tuple[float | None, float | None]:
    """Annualised Sharpe and Sortino of per-bar equity returns (365-day basis).

    Args:
        equity: equity per bar, quote ccy, at least 2 values, all positive.
        bar_ns: bar length, ns.

    Returns:
        ``(sharpe, sortino)``; None where the denominator is zero.

    Raises:
        ValueError: fewer than 2 equity values or a non-positive equity.
    """
    if len(equity) < 2:
        raise ValueError(f"need at least 2 equity values for returns, got {len(equity)}")
    if np.any(equity <= 0):
        raise ValueError("equity must stay positive to compute returns")
    rets = np.diff(equity) / equity[:-1]
    scale = math.sqrt(NS_PER_YEAR / bar_ns)
    mean = float(rets.mean())
    std = float(rets.std(ddof=1)) if len(rets) > 1 else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2)))
    sharpe = mean / std * scale if std > 0 else None
    sortino = mean / downside * scale if downside > 0 else None
    return sharpe, sortino


def max_drawdown_pct(equity: FloatArray) -> float:
    """Largest fall from a running equity peak, percent of that peak (0 if equity never falls)."""
    peak = np.maximum.accumulate(equity)
    return float(np.max((peak - equity) / peak) * 100.0)


def markouts_bps(
    fills: FillRecords, close_ticks: IntArray, horizons: tuple[int, ...]
) -> dict[str, float | None]:
    """Lot-weighted maker-fill markouts at each horizon, bps (None where no fill has the horizon)."""
    out: dict[str, float | None] = {}
    maker = fills.maker == 1
    for h in horizons:
        idx = fills.bar[maker] + h
        ok = idx < len(close_ticks)
        price = fills.price_ticks[maker][ok].astype(np.float64)
        if len(price) == 0:
            out[str(h)] = None
            continue
        later = close_ticks[idx[ok]].astype(np.float64)
        edge = fills.side[maker][ok] * (later - price) / price * 1e4
        out[str(h)] = float(np.average(edge, weights=fills.lots[maker][ok]))
    return out


def compute_metrics(
    *,
    equity: FloatArray,
    inventory: IntArray,
    status: IntArray,
    close_ticks: IntArray,
    fills: FillRecords,
    bar_ns: int,
    initial_cash: float,
    tick: float,
    lot: float,
    orders_placed: int,
    lots_quoted: int,
    markout_bars: tuple[int, ...],
) -> BacktestMetrics:
    """Summarise a fill-engine run.

    Raises:
        ValueError: fewer than 2 bars.
    """
    start = np.concatenate([[initial_cash], equity])
    sharpe, sortino = annualised_ratios(start, bar_ns=bar_ns)
    maker = fills.maker == 1
    notional = fills.price_ticks * tick * fills.lots * lot
    capture = None
    if maker.any():
        px = fills.price_ticks[maker].astype(np.float64)
        edge = fills.side[maker] * (fills.ref_mid_ticks[maker] - px) / px * 1e4
        capture = float(np.average(edge, weights=fills.lots[maker]))
    return BacktestMetrics(
        bars=len(equity),
        initial_equity=initial_cash,
        final_equity=float(equity[-1]),
        pnl=float(equity[-1] - initial_cash),
        pnl_pct=float((equity[-1] - initial_cash) / initial_cash * 100.0),
        sharpe=sharpe,
        sortino=sortino,
        max_drawdown_pct=max_drawdown_pct(start),
        n_trades=len(fills.bar),
        maker_fills=int(maker.sum()),
        taker_fills=int((~maker).sum()),
        orders_placed=orders_placed,
        fill_ratio=float(fills.lots[maker].sum() / lots_quoted) if lots_quoted > 0 else None,
        spread_capture_bps=capture,
        fees=float(fills.fee.sum()),
        turnover=float(notional.sum() / initial_cash),
        inventory_mean=float(inventory.mean()),
        inventory_std=float(inventory.std()),
        inventory_max_abs=int(np.abs(inventory).max()),
        final_inventory=int(inventory[-1]),
        time_active=float(np.mean(status == ACTIVE)),
        time_reducing=float(np.mean(status == REDUCING)),
        time_halted=float(np.mean(status == HALTED)),
        markouts_bps=markouts_bps(fills, close_ticks, markout_bars),
        decomposition=decompose_pnl(
            step=fills.bar,
            side=fills.side,
            price_ticks=fills.price_ticks,
            lots=fills.lots,
            fee=fills.fee,
            ref_mid_ticks=fills.ref_mid_ticks,
            marks_ticks=close_ticks,
            tick=tick,
            lot=lot,
            horizons=markout_bars,
            net=float(equity[-1] - initial_cash),
        ),
    )
