"""Out-of-sample evaluation of one model's predictions on one window: statistics and trading.

Pure functions over arrays and bars; no MLflow. Every window is scored four ways on the same
bars: the model-skewed quoter and the model-free Avellaneda-Stoikov quoter (both on the fill
engine, net of fees), buy-and-hold, and the seed's directional long/flat strategy. The Sharpe
difference (model quoter minus A-S quoter) gets a paired moving-block bootstrap 95% interval.
Ratios are annualised on a 365-day basis (crypto trades every day).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

from trading.backtest import BacktestResult, bar_interval_ns, run_backtest
from trading.config import BacktestConfig, QuoteConfig, RiskConfig
from trading.metrics import annualised_ratios, max_drawdown_pct
from training.config import EvaluateConfig, Task

NS_PER_YEAR = 365 * 86_400 * 1_000_000_000
SIGNAL_COLUMN: dict[str, str] = {"regressor": "pred_return", "classifier": "prob_up"}


@dataclass(frozen=True)
class WindowReport:
    """Metrics of one window (flat ``name -> value``, NaN when undefined) and the equity curves."""

    metrics: dict[str, float]
    equity: pd.DataFrame = field(repr=False)  # columns: model, as, buy_hold, long_flat (start = 1.0)
    inventory: pd.DataFrame | None = field(default=None, repr=False)  # columns: model, as (lots)


def signal_frame(timestamps: pd.Index | pd.Series, predictions: np.ndarray, task: Task) -> pd.DataFrame:
    """The fill engine's signal frame: regressors give ``pred_return``, classifiers ``prob_up``."""
    return pd.DataFrame(
        {"timestamp": np.asarray(timestamps), SIGNAL_COLUMN[task]: np.asarray(predictions, float)}
    )


def statistical_metrics(predictions: np.ndarray, fwd_return: np.ndarray, task: Task) -> dict[str, float]:
    """MAE/RMSE (regressor: against the forward log return; classifier: probability against the
    0/1 direction, i.e. the Brier-style error), directional accuracy, and for classifiers AUC and
    log-loss. Rows without a label (the last ``horizon`` of the data) are left out.

    Raises:
        ValueError: no row has both a prediction and a label.
    """
    mask = np.isfinite(predictions) & np.isfinite(fwd_return)
    if not mask.any():
        raise ValueError("no rows with both a prediction and a label to score")
    pred, ret = predictions[mask], fwd_return[mask]
    direction = (ret > 0).astype(float)
    target = ret if task == "regressor" else direction
    err = pred - target
    out = {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "accuracy": float(np.mean((pred > (0.0 if task == "regressor" else 0.5)) == (direction > 0))),
        "labelled_rows": float(mask.sum()),
    }
    if task == "classifier":
        both = len(np.unique(direction)) == 2
        out["auc"] = float(roc_auc_score(direction, pred)) if both else math.nan
        out["log_loss"] = float(log_loss(direction, np.clip(pred, 1e-7, 1 - 1e-7), labels=[0.0, 1.0]))
    return out


def buy_and_hold(bars: pd.DataFrame) -> np.ndarray:
    """Equity of holding one unit from the first close, relative (starts at 1)."""
    close = bars["close"].to_numpy(float)
    return close / close[0]


def long_flat(bars: pd.DataFrame, predictions: np.ndarray, task: Task, *, fee_bps: float) -> np.ndarray:
    """The seed's directional strategy: long one unit of equity when the model says up, else flat.

    The decision at the close of bar ``t`` earns the return from close ``t`` to close ``t+1``;
    each change of position pays ``fee_bps`` (taker). Equity is relative (starts at 1).
    """
    close = bars["close"].to_numpy(float)
    threshold = 0.0 if task == "regressor" else 0.5
    position = np.where(np.isfinite(predictions) & (predictions > threshold), 1.0, 0.0)
    rets = np.zeros(len(close))
    rets[1:] = position[:-1] * (close[1:] / close[:-1] - 1.0)
    changes = np.abs(np.diff(np.concatenate([[0.0], position])))
    rets -= changes * fee_bps * 1e-4
    return np.cumprod(1.0 + rets)


def curve_stats(equity: np.ndarray, *, bar_ns: int) -> dict[str, float]:
    """PnL %, annualised Sharpe (365 d), max drawdown % of a relative equity curve."""
    sharpe, _ = annualised_ratios(np.asarray(equity, float), bar_ns=bar_ns)
    return {
        "pnl_pct": float((equity[-1] / equity[0] - 1.0) * 100.0),
        "sharpe": _num(sharpe),
        "max_drawdown_pct": max_drawdown_pct(np.asarray(equity, float)),
    }


def sharpe_difference_ci(
    equity_a: np.ndarray, equity_b: np.ndarray, *, bar_ns: int, config: EvaluateConfig
) -> tuple[float, float, float]:
    """Annualised Sharpe of ``a`` minus that of ``b`` with a paired moving-block bootstrap 95% CI.

    Blocks of consecutive per-bar returns (length ``config.block_bars``, default n^(1/3)) are
    drawn with replacement from both curves at the same positions, keeping the cross-correlation
    and short-range autocorrelation. Returns ``(difference, low, high)``; NaN where undefined.
    """
    ra = np.diff(equity_a) / equity_a[:-1]
    rb = np.diff(equity_b) / equity_b[:-1]
    n = len(ra)
    if n < 3:
        return math.nan, math.nan, math.nan
    scale = math.sqrt(NS_PER_YEAR / bar_ns)
    point = (_sharpe(ra) - _sharpe(rb)) * scale
    block = config.block_bars or max(1, round(n ** (1 / 3)))
    rng = np.random.default_rng(config.seed)
    n_blocks = math.ceil(n / block)
    starts = rng.integers(0, n - block + 1, size=(config.bootstrap_samples, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(config.bootstrap_samples, -1)[:, :n]
    diffs = (_sharpe_rows(ra[idx]) - _sharpe_rows(rb[idx])) * scale
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) == 0 or not np.isfinite(point):
        return point, math.nan, math.nan
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(point), float(lo), float(hi)


def evaluate_window(
    bars: pd.DataFrame,
    predictions: np.ndarray,
    fwd_return: np.ndarray,
    *,
    task: Task,
    quote: QuoteConfig,
    risk: RiskConfig,
    backtest: BacktestConfig,
    config: EvaluateConfig,
) -> WindowReport:
    """Score one window. ``bars``, ``predictions`` and ``fwd_return`` are row-aligned.

    Returns:
        Flat metrics: the model quoter's ``sharpe``, ``sortino``, ``pnl_pct``, ``max_drawdown_pct``,
        ``fill_ratio``, ``n_trades``, ``fees``, ``inventory_mean``/``_std``/``_max_abs``; the same
        for the model-free quoter prefixed ``as_``; ``bh_`` (buy-and-hold) and ``lf_`` (long/flat)
        pnl/sharpe/drawdown; ``sharpe_diff`` with ``sharpe_diff_lo``/``_hi``; and the statistics.
    """
    if not (len(bars) == len(predictions) == len(fwd_return)):
        raise ValueError("evaluate_window: bars, predictions and labels must have the same length")
    bar_ns = bar_interval_ns(bars)
    signals = signal_frame(bars["timestamp"], predictions, task)
    model = run_backtest(bars, quote=quote, risk=risk, backtest=backtest, signals=signals, strategy="model")
    free = run_backtest(bars, quote=quote, risk=risk, backtest=backtest, strategy="as")
    bh = buy_and_hold(bars)
    lf = long_flat(bars, predictions, task, fee_bps=backtest.taker_fee_bps)
    metrics: dict[str, float] = {**_quoter(model, ""), **_quoter(free, "as_")}
    metrics.update({**pnl_decomposition_metrics(model, ""), **pnl_decomposition_metrics(free, "as_")})
    metrics.update({f"bh_{k}": v for k, v in curve_stats(bh, bar_ns=bar_ns).items()})
    metrics.update({f"lf_{k}": v for k, v in curve_stats(lf, bar_ns=bar_ns).items()})
    eq_model = model.equity["equity"].to_numpy(float)
    eq_free = free.equity["equity"].to_numpy(float)
    diff, lo, hi = sharpe_difference_ci(eq_model, eq_free, bar_ns=bar_ns, config=config)
    metrics.update({"sharpe_diff": diff, "sharpe_diff_lo": lo, "sharpe_diff_hi": hi})
    metrics.update(statistical_metrics(predictions, fwd_return, task))
    equity = pd.DataFrame(
        {"model": eq_model / eq_model[0], "as": eq_free / eq_free[0], "buy_hold": bh, "long_flat": lf},
        index=pd.DatetimeIndex(bars["timestamp"], name="timestamp"),
    )
    inventory = pd.DataFrame(
        {"model": model.equity["inventory"].to_numpy(), "as": free.equity["inventory"].to_numpy()},
        index=equity.index,
    )
    return WindowReport(metrics=metrics, equity=equity, inventory=inventory)


def score_for_objective(result: BacktestResult) -> float:
    """The tuning objective's per-fold value: annualised Sharpe net of fees; a flat equity
    (no trade, no variance) scores 0, i.e. no edge."""
    return result.metrics.sharpe if result.metrics.sharpe is not None else 0.0


def pnl_decomposition_metrics(result: BacktestResult, prefix: str) -> dict[str, float]:
    """Where the quoter's PnL came from, quote ccy (USDT on BTCUSDT): ``pnl_net``, ``pnl_spread``,
    ``pnl_adverse_<h>`` per markout horizon (bars), ``pnl_inventory``, ``pnl_fees`` (minus the fees
    paid) and ``pnl_residual``; ``pnl_spread + pnl_adverse_<shortest h> + pnl_inventory + pnl_fees
    + pnl_residual == pnl_net`` (see :mod:`trading.pnl`)."""
    parts = result.metrics.decomposition
    return parts.flat(prefix) if parts is not None else {}


def markout_horizons(metrics: Mapping[str, float], prefix: str = "") -> list[int]:
    """The markout horizons (bars) of the ``<prefix>pnl_adverse_<h>`` keys, ascending."""
    pattern = re.compile(rf"^{re.escape(prefix)}pnl_adverse_(\d+)$")
    return sorted(int(m.group(1)) for k in metrics if (m := pattern.match(k)))


def pnl_decomposition_table(metrics: Mapping[str, float], *, windows: Sequence[str]) -> list[str]:
    """A markdown table of the logged decomposition (``<window>_pnl_*``, ``<window>_as_pnl_*``):
    one row per window and quoter, the parts in quote ccy, for the gate report."""
    quoters = (("", "model"), ("as_", "A-S"))
    horizons = sorted({h for w in windows for p, _ in quoters for h in markout_horizons(metrics, f"{w}_{p}")})
    parts = ["spread", *(f"adverse_{h}" for h in horizons), "inventory", "fees", "residual", "net"]
    lines = [
        f"| window | quoter | {' | '.join(parts)} |",
        "|" + "---|" * (len(parts) + 2),
    ]
    for window in windows:
        for prefix, quoter in quoters:
            values = [metrics.get(f"{window}_{prefix}pnl_{p}", math.nan) for p in parts]
            cells = " | ".join(f"{v:,.2f}" if math.isfinite(v) else "–" for v in values)
            lines.append(f"| {window} | {quoter} | {cells} |")
    return lines


def _quoter(result: BacktestResult, prefix: str) -> dict[str, float]:
    m = result.metrics
    values: dict[str, Any] = {
        "sharpe": m.sharpe,
        "sortino": m.sortino,
        "pnl_pct": m.pnl_pct,
        "max_drawdown_pct": m.max_drawdown_pct,
        "fill_ratio": m.fill_ratio,
        "n_trades": m.n_trades,
        "fees": m.fees,
        "inventory_mean": m.inventory_mean,
        "inventory_std": m.inventory_std,
        "inventory_max_abs": m.inventory_max_abs,
        "turnover": m.turnover,
    }
    return {f"{prefix}{k}": _num(v) for k, v in values.items()}


def _num(value: float | int | None) -> float:
    return math.nan if value is None else float(value)


def _sharpe(returns: np.ndarray) -> float:
    std = returns.std(ddof=1)
    return float(returns.mean() / std) if std > 0 else math.nan


def _sharpe_rows(returns: np.ndarray) -> np.ndarray:
    std = returns.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 0, returns.mean(axis=1) / std, np.nan)
