"""Out-of-sample evaluation of one model's predictions on one window: statistics and trading.

Pure functions over arrays and bars; no MLflow. Every window is scored four ways on the same
bars: the model-skewed quoter and the model-free Avellaneda-Stoikov quoter (both on the fill
engine, net of fees), buy-and-hold, and a directional long/flat strategy that holds each call for
the label horizon. The strategies are ranked by :func:`objective_score` (the mean-variance
utility of daily PnL, bps of capital per day; docs/training.md "The objective"); the differences
model quoter minus A-S quoter (utility, PnL per day, Sharpe) get paired moving-block bootstrap
95% intervals from one function, :func:`difference_ci`. The forecasts are scored against the
no-information forecast (zero return, P(up) = 0.5) and the majority class. Sharpe ratios are
annualised on a 365-day basis (crypto trades every day).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score
from statsmodels.stats.proportion import proportion_confint

from trading.backtest import BacktestResult, bar_interval_ns, run_backtest
from trading.config import BacktestConfig, QuoteConfig, RiskConfig
from trading.metrics import annualised_ratios, max_drawdown_pct
from training.config import EvaluateConfig, Task
from training.quote_tuning import Quoting

NS_PER_YEAR = 365 * 86_400 * 1_000_000_000
NS_PER_DAY = 86_400 * 1_000_000_000
BPS = 1e4
SIGNAL_COLUMN: dict[str, str] = {"regressor": "pred_return", "classifier": "prob_up"}
TUNED_QUOTER = "tas_"  # metrics of the model-free quoter at its tuned settings (as_: at params.yaml's)


@dataclass(frozen=True)
class WindowReport:
    """Metrics of one window (flat ``name -> value``, NaN when undefined) and the equity curves."""

    metrics: dict[str, float]
    # columns: model, as, buy_hold, long_flat; relative to the capital before the first bar (1.0)
    equity: pd.DataFrame = field(repr=False)
    inventory: pd.DataFrame | None = field(default=None, repr=False)  # columns: model, as (lots)


def signal_frame(timestamps: pd.Index | pd.Series, predictions: np.ndarray, task: Task) -> pd.DataFrame:
    """The fill engine's signal frame: regressors give ``pred_return``, classifiers ``prob_up``."""
    return pd.DataFrame(
        {"timestamp": np.asarray(timestamps), SIGNAL_COLUMN[task]: np.asarray(predictions, float)}
    )


# The no-information forecast each task must beat: a zero return, or P(up) = 0.5.
NO_INFORMATION: dict[str, float] = {"regressor": 0.0, "classifier": 0.5}


def statistical_metrics(predictions: np.ndarray, fwd_return: np.ndarray, task: Task) -> dict[str, float]:
    """Forecast errors and their baselines. Rows without a label (the last ``horizon``) are left out.

    Returns:
        ``mae``/``rmse`` (regressor: against the forward log return; classifier: P(up) against
        the 0/1 direction, i.e. the Brier-style error) and the same for the no-information
        forecast (``mae_zero``/``rmse_zero``: a zero return, or P(up) = 0.5); their ratios
        ``mae_ratio``/``rmse_ratio`` (model / no-information, < 1 beats it); ``skill`` =
        1 - rmse_ratio^2, the MSE skill score (regressor: out-of-sample R^2 against a zero
        forecast; classifier: the Brier skill score against 0.5; > 0 beats it); directional
        ``accuracy`` with its Wilson 95% interval ``accuracy_lo``/``_hi``; ``majority_accuracy``,
        the share of the window's more frequent direction (what always calling it would score,
        known only in hindsight, so a generous baseline); ``labelled_rows``; for classifiers AUC
        and log-loss.

    Raises:
        ValueError: no row has both a prediction and a label.
    """
    mask = np.isfinite(predictions) & np.isfinite(fwd_return)
    if not mask.any():
        raise ValueError("no rows with both a prediction and a label to score")
    pred, ret = predictions[mask], fwd_return[mask]
    direction = (ret > 0).astype(float)
    target = ret if task == "regressor" else direction
    baseline = NO_INFORMATION[task]
    err, err_zero = pred - target, baseline - target
    mae, rmse = float(np.mean(np.abs(err))), float(np.sqrt(np.mean(err**2)))
    mae_zero, rmse_zero = float(np.mean(np.abs(err_zero))), float(np.sqrt(np.mean(err_zero**2)))
    hits = int(np.sum((pred > baseline) == (direction > 0)))
    n = int(mask.sum())
    acc_lo, acc_hi = proportion_confint(hits, n, alpha=0.05, method="wilson")
    up = float(direction.mean())
    out = {
        "mae": mae,
        "rmse": rmse,
        "mae_zero": mae_zero,
        "rmse_zero": rmse_zero,
        "mae_ratio": mae / mae_zero if mae_zero > 0 else math.nan,
        "rmse_ratio": rmse / rmse_zero if rmse_zero > 0 else math.nan,
        "skill": 1.0 - (rmse / rmse_zero) ** 2 if rmse_zero > 0 else math.nan,
        "accuracy": hits / n,
        "accuracy_lo": float(acc_lo),
        "accuracy_hi": float(acc_hi),
        "majority_accuracy": max(up, 1.0 - up),
        "labelled_rows": float(n),
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


def long_flat(
    bars: pd.DataFrame, predictions: np.ndarray, task: Task, *, fee_bps: float, hold_bars: int = 1
) -> np.ndarray:
    """A directional strategy: long one unit of equity when the model says up, else flat, each
    call held for ``hold_bars`` (the label horizon the model forecasts; 1 = the seed's every-bar
    version, which on minute bars pays a taker fee almost every minute).

    The decision at the close of bar ``t`` (``t`` = 0, h, 2h, ...) is held to the close of bar
    ``t + h``; each change of position pays ``fee_bps`` (taker). Equity is relative (starts at 1).

    Raises:
        ValueError: ``hold_bars`` < 1.
    """
    if hold_bars < 1:
        raise ValueError(f"long_flat: hold_bars must be >= 1, got {hold_bars}")
    close = bars["close"].to_numpy(float)
    threshold = NO_INFORMATION[task]
    calls = np.where(np.isfinite(predictions) & (predictions > threshold), 1.0, 0.0)
    position = calls[(np.arange(len(calls)) // hold_bars) * hold_bars]
    rets = np.zeros(len(close))
    rets[1:] = position[:-1] * (close[1:] / close[:-1] - 1.0)
    changes = np.abs(np.diff(np.concatenate([[0.0], position])))
    rets -= changes * fee_bps * 1e-4
    return np.cumprod(1.0 + rets)


Measure = Literal["utility", "pnl", "sharpe"]


def equity_curve(result: BacktestResult) -> np.ndarray:
    """A backtest's equity, quote ccy, from the initial cash (before the first bar) to the last close."""
    return np.concatenate([[result.metrics.initial_equity], result.equity["equity"].to_numpy(float)])


def objective_score(
    run: BacktestResult | np.ndarray,
    *,
    objective: Measure,
    risk_aversion: float,
    bar_ns: int | None = None,
) -> float:
    """How a market maker ranks one strategy's run (higher is better); the tuning objective, the
    gate's measure and the protocol's column are all this function.

    - ``utility``: mean-variance utility of daily PnL, ``m - risk_aversion / 2 * s^2`` with ``m``
      and ``s`` the mean and standard deviation of PnL per day as fractions of the initial
      equity, reported in bps of capital per day. Per-bar PnL is scaled to a day by the bars in a
      day (the variance too: inventory PnL is a martingale difference, so bar variances add).
    - ``pnl``: the mean net PnL per day, bps of capital (the utility with ``risk_aversion`` 0).
    - ``sharpe``: the annualised Sharpe (365 d) of per-bar returns; a flat equity scores 0.
      It rewards variance when the mean is negative; kept for comparison.

    Args:
        run: a backtest (its equity from the initial cash) or an equity curve (quote ccy or
            relative; its first value is the capital).
        objective: which measure.
        risk_aversion: relative risk aversion of the utility (dimensionless, >= 0).
        bar_ns: bar length, ns; read from the backtest's timestamps when None.

    Raises:
        ValueError: fewer than 2 equity values, a non-positive capital, or no bar length.
    """
    if isinstance(run, BacktestResult):
        equity = equity_curve(run)
        bar_ns = bar_ns or bar_interval_ns(run.equity)
    else:
        equity = np.asarray(run, float)
    if bar_ns is None:
        raise ValueError("objective_score: give bar_ns with an equity array")
    if len(equity) < 2:
        raise ValueError(f"objective_score: need at least 2 equity values, got {len(equity)}")
    spec = measure(objective, bar_ns=bar_ns, risk_aversion=risk_aversion)
    value = float(spec.of_rows(spec.per_bar(equity)[None, :])[0])
    return 0.0 if objective == "sharpe" and not math.isfinite(value) else value


@dataclass(frozen=True)
class MeasureSpec:
    """A measure as two steps, so the bootstrap can resample the per-bar series in between:
    ``per_bar`` turns an equity curve into a per-bar series, ``of_rows`` a ``(k, n)`` array of
    such series into ``k`` values."""

    name: Measure
    per_bar: Callable[[np.ndarray], np.ndarray]
    of_rows: Callable[[np.ndarray], np.ndarray]


def measure(name: Measure, *, bar_ns: int, risk_aversion: float) -> MeasureSpec:
    """The per-bar series and statistic of ``name`` (see :func:`objective_score` for units).

    Raises:
        ValueError: an unknown measure or a non-positive bar length.
    """
    if bar_ns <= 0:
        raise ValueError(f"bar_ns must be positive, got {bar_ns}")
    bars_per_day = NS_PER_DAY / bar_ns
    if name == "sharpe":
        scale = math.sqrt(NS_PER_YEAR / bar_ns)
        return MeasureSpec(name, _returns, lambda rows: _sharpe_rows(rows) * scale)
    if name not in ("utility", "pnl"):
        raise ValueError(f"unknown measure {name!r}; expected utility, pnl or sharpe")
    aversion = risk_aversion if name == "utility" else 0.0

    def of_rows(pnl_bps: np.ndarray) -> np.ndarray:
        mean_day = pnl_bps.mean(axis=1) * bars_per_day
        var_day = pnl_bps.var(axis=1, ddof=1) * bars_per_day if pnl_bps.shape[1] > 1 else 0.0
        return np.asarray(mean_day - aversion / 2 * var_day / BPS)

    return MeasureSpec(name, _pnl_bps, of_rows)


def curve_stats(equity: np.ndarray, *, bar_ns: int, risk_aversion: float) -> dict[str, float]:
    """PnL %, PnL per day and utility (bps of capital per day), annualised Sharpe (365 d) and max
    drawdown % of an equity curve (its first value is the capital)."""
    equity = np.asarray(equity, float)
    sharpe, _ = annualised_ratios(equity, bar_ns=bar_ns)
    return {
        "pnl_pct": float((equity[-1] / equity[0] - 1.0) * 100.0),
        "pnl_bps_day": objective_score(equity, objective="pnl", risk_aversion=0.0, bar_ns=bar_ns),
        "utility": objective_score(equity, objective="utility", risk_aversion=risk_aversion, bar_ns=bar_ns),
        "sharpe": _num(sharpe),
        "max_drawdown_pct": max_drawdown_pct(equity),
    }


def difference_ci(
    equity_a: np.ndarray, equity_b: np.ndarray, *, spec: MeasureSpec, config: EvaluateConfig
) -> tuple[float, float, float]:
    """``spec`` of ``a`` minus that of ``b`` with a paired moving-block bootstrap 95% CI.

    Blocks of consecutive per-bar values (length ``config.block_bars``, default n^(1/3)) are
    drawn with replacement from both curves at the same positions, keeping the cross-correlation
    and short-range autocorrelation. Returns ``(difference, low, high)``; NaN where undefined.
    """
    ra, rb = spec.per_bar(np.asarray(equity_a, float)), spec.per_bar(np.asarray(equity_b, float))
    n = len(ra)
    if n < 3 or len(rb) != n:
        return math.nan, math.nan, math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        point = float(spec.of_rows(ra[None, :])[0] - spec.of_rows(rb[None, :])[0])
    block = config.block_bars or max(1, round(n ** (1 / 3)))
    rng = np.random.default_rng(config.seed)
    n_blocks = math.ceil(n / block)
    starts = rng.integers(0, n - block + 1, size=(config.bootstrap_samples, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(config.bootstrap_samples, -1)[:, :n]
    with np.errstate(divide="ignore", invalid="ignore"):
        diffs = spec.of_rows(ra[idx]) - spec.of_rows(rb[idx])
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) == 0 or not np.isfinite(point):
        return point, math.nan, math.nan
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return point, float(lo), float(hi)


def sharpe_difference_ci(
    equity_a: np.ndarray, equity_b: np.ndarray, *, bar_ns: int, config: EvaluateConfig
) -> tuple[float, float, float]:
    """Annualised Sharpe of ``a`` minus that of ``b`` with its bootstrap 95% CI (:func:`difference_ci`)."""
    spec = measure("sharpe", bar_ns=bar_ns, risk_aversion=config.risk_aversion)
    return difference_ci(equity_a, equity_b, spec=spec, config=config)


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
    hold_bars: int = 1,
    model_quoting: Quoting | None = None,
    tuned_quoter: Quoting | None = None,
) -> WindowReport:
    """Score one window. ``bars``, ``predictions`` and ``fwd_return`` are row-aligned;
    ``hold_bars`` is the label horizon, how long the long/flat baseline holds each call.

    ``quote``/``backtest`` are params.yaml's: the model-free quoter ``as_`` runs with them, and so
    does the model unless ``model_quoting`` (the quote settings it was tuned with) is given.
    ``tuned_quoter`` is the model-free quoter at its own study's best settings: ``tas_`` (and a
    ``tuned_as`` equity column).

    Returns:
        Flat metrics: the model quoter's ``utility`` and ``pnl_bps_day`` (bps of capital per
        day), ``sharpe``, ``sortino``, ``pnl_pct``, ``max_drawdown_pct``, ``fill_ratio``,
        ``n_trades``, ``fees``, ``inventory_mean``/``_std``/``_max_abs``; the same for the
        model-free quoter prefixed ``as_``; ``bh_`` (buy-and-hold) and ``lf_`` (long/flat)
        utility/pnl/sharpe/drawdown; the differences model minus A-S quoter ``utility_diff``,
        ``pnl_diff`` (bps/day) and ``sharpe_diff``, each with ``_lo``/``_hi``; the statistics.
        With ``tuned_quoter``: its quoter metrics prefixed ``tas_`` and the differences model
        minus tuned A-S ``tas_utility_diff``, ``tas_pnl_diff``, ``tas_sharpe_diff`` (each with
        ``_lo``/``_hi``) and ``tas_pnl_diff_pct`` (points of PnL %).
    """
    if not (len(bars) == len(predictions) == len(fwd_return)):
        raise ValueError("evaluate_window: bars, predictions and labels must have the same length")
    bar_ns = bar_interval_ns(bars)
    signals = signal_frame(bars["timestamp"], predictions, task)
    own = model_quoting or Quoting(quote=quote, backtest=backtest)
    model = run_backtest(
        bars, quote=own.quote, risk=risk, backtest=own.backtest, signals=signals, strategy="model"
    )
    free = run_backtest(bars, quote=quote, risk=risk, backtest=backtest, strategy="as")
    bh = buy_and_hold(bars)
    lf = long_flat(bars, predictions, task, fee_bps=backtest.taker_fee_bps, hold_bars=hold_bars)
    eq_model, eq_free = equity_curve(model), equity_curve(free)
    metrics: dict[str, float] = {**_quoter(model, ""), **_quoter(free, "as_")}
    metrics.update({**pnl_decomposition_metrics(model, ""), **pnl_decomposition_metrics(free, "as_")})
    for prefix, curve in (("", eq_model), ("as_", eq_free), ("bh_", bh), ("lf_", lf)):
        stats = curve_stats(curve, bar_ns=bar_ns, risk_aversion=config.risk_aversion)
        keys = ("utility", "pnl_bps_day") if prefix in ("", "as_") else tuple(stats)
        metrics.update({f"{prefix}{k}": stats[k] for k in keys})
    metrics.update(_differences(eq_model, eq_free, prefix="", bar_ns=bar_ns, config=config))
    metrics.update(statistical_metrics(predictions, fwd_return, task))
    curves = {
        "model": eq_model[1:] / eq_model[0],
        "as": eq_free[1:] / eq_free[0],
        "buy_hold": bh,
        "long_flat": lf,
    }
    if tuned_quoter is not None:
        tuned = run_backtest(
            bars, quote=tuned_quoter.quote, risk=risk, backtest=tuned_quoter.backtest, strategy="as"
        )
        eq_tuned = equity_curve(tuned)
        metrics.update(_quoter(tuned, TUNED_QUOTER))
        metrics.update(pnl_decomposition_metrics(tuned, TUNED_QUOTER))
        stats = curve_stats(eq_tuned, bar_ns=bar_ns, risk_aversion=config.risk_aversion)
        metrics.update({f"{TUNED_QUOTER}{k}": stats[k] for k in ("utility", "pnl_bps_day")})
        metrics.update(_differences(eq_model, eq_tuned, prefix=TUNED_QUOTER, bar_ns=bar_ns, config=config))
        metrics["tas_pnl_diff_pct"] = metrics["pnl_pct"] - metrics["tas_pnl_pct"]
        curves["tuned_as"] = eq_tuned[1:] / eq_tuned[0]
    equity = pd.DataFrame(curves, index=pd.DatetimeIndex(bars["timestamp"], name="timestamp"))
    inventory = pd.DataFrame(
        {"model": model.equity["inventory"].to_numpy(), "as": free.equity["inventory"].to_numpy()},
        index=equity.index,
    )
    return WindowReport(metrics=metrics, equity=equity, inventory=inventory)


def _differences(
    eq_a: np.ndarray, eq_b: np.ndarray, *, prefix: str, bar_ns: int, config: EvaluateConfig
) -> dict[str, float]:
    """``a`` minus ``b`` in utility, PnL (bps/day) and Sharpe, each with its paired bootstrap CI."""
    out: dict[str, float] = {}
    for name in ("utility", "pnl", "sharpe"):
        spec = measure(name, bar_ns=bar_ns, risk_aversion=config.risk_aversion)
        diff, lo, hi = difference_ci(eq_a, eq_b, spec=spec, config=config)
        out.update(
            {f"{prefix}{name}_diff": diff, f"{prefix}{name}_diff_lo": lo, f"{prefix}{name}_diff_hi": hi}
        )
    return out


def evaluate_quoters(
    bars: pd.DataFrame,
    *,
    quote: QuoteConfig,
    risk: RiskConfig,
    backtest: BacktestConfig,
    tuned: Quoting,
    config: EvaluateConfig,
) -> WindowReport:
    """The model-free quoter at params.yaml's settings (``as_``) and at its tuned ones (``tas_``) on
    one window, with the differences tuned minus default ``tas_over_as_{utility,pnl,sharpe}_diff``
    (paired bootstrap 95% CI ``_lo``/``_hi``) and ``tas_over_as_pnl_diff_pct`` (points of PnL %)."""
    bar_ns = bar_interval_ns(bars)
    free = run_backtest(bars, quote=quote, risk=risk, backtest=backtest, strategy="as")
    best = run_backtest(bars, quote=tuned.quote, risk=risk, backtest=tuned.backtest, strategy="as")
    metrics = {**_quoter(free, "as_"), **_quoter(best, TUNED_QUOTER)}
    eq_free, eq_best = equity_curve(free), equity_curve(best)
    for prefix, curve in (("as_", eq_free), (TUNED_QUOTER, eq_best)):
        stats = curve_stats(curve, bar_ns=bar_ns, risk_aversion=config.risk_aversion)
        metrics.update({f"{prefix}{k}": stats[k] for k in ("utility", "pnl_bps_day")})
    metrics.update(_differences(eq_best, eq_free, prefix="tas_over_as_", bar_ns=bar_ns, config=config))
    metrics["tas_over_as_pnl_diff_pct"] = metrics["tas_pnl_pct"] - metrics["as_pnl_pct"]
    equity = pd.DataFrame(
        {
            "as": eq_free[1:] / eq_free[0],
            "tuned_as": eq_best[1:] / eq_best[0],
            "buy_hold": buy_and_hold(bars),
        },
        index=pd.DatetimeIndex(bars["timestamp"], name="timestamp"),
    )
    return WindowReport(metrics=metrics, equity=equity)


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
    quoters = [
        (prefix, name)
        for prefix, name in (("", "model"), ("as_", "A-S"), (TUNED_QUOTER, "A-S tuned"))
        if any(f"{w}_{prefix}pnl_net" in metrics for w in windows)
    ]
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


def _returns(equity: np.ndarray) -> np.ndarray:
    return np.diff(equity) / equity[:-1]


def _pnl_bps(equity: np.ndarray) -> np.ndarray:
    """Per-bar PnL in bps of the curve's first value (the capital)."""
    if len(equity) < 2 or equity[0] <= 0:
        raise ValueError(
            f"need >= 2 equity values and a positive capital, got {len(equity)} from {equity[:1]}"
        )
    return np.diff(equity) / equity[0] * BPS


def _sharpe_rows(returns: np.ndarray) -> np.ndarray:
    std = returns.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 0, returns.mean(axis=1) / std, np.nan)
