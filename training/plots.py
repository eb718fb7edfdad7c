"""Artifacts a reviewer looks at: equity curves, the tear sheet, permutation importance, the Optuna history.

Matplotlib with the Agg backend (no display); every function writes one file and returns its path.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from training.evaluate import markout_horizons

logger = logging.getLogger(__name__)


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def equity_plot(curves: Mapping[str, pd.DataFrame], path: Path, *, title: str) -> Path:
    """One panel per window; each curve starts at 1.0 (relative equity)."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(curves), 1, figsize=(10, 3.2 * len(curves)), squeeze=False)
    for ax, (window, frame) in zip(axes[:, 0], curves.items(), strict=True):
        for column in frame.columns:
            ax.plot(frame.index, frame[column], label=column, linewidth=0.9)
        ax.set_title(f"{title}: {window} window (relative equity)")
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


QUOTERS = (("", "model quoter"), ("as_", "A-S quoter"))


def tear_sheet(
    *,
    metrics: Mapping[str, float],
    equity: pd.DataFrame,
    inventory: pd.DataFrame | None,
    path: Path,
    title: str,
) -> Path:
    """One window on one page: where each quoter's PnL came from.

    Panels: relative equity of the model quoter, the A-S quoter and buy-and-hold; the PnL
    decomposition of both quoters (spread, adverse selection at the shortest markout horizon,
    inventory, fees, net; quote ccy); each quoter's inventory (lots) over time; and the markout
    curve, ``pnl_spread + pnl_adverse_<h>`` against ``h`` (the fills' value h bars later, before
    fees and inventory, quote ccy).

    Args:
        metrics: a window's flat metrics (:func:`training.evaluate.evaluate_window`), with the
            ``pnl_*`` and ``as_pnl_*`` keys.
        equity: the window's relative equity curves (columns ``model``, ``as``, ``buy_hold``).
        inventory: the quoters' inventory in lots (columns ``model``, ``as``), or None.
        path: the PNG to write.
        title: the figure's title (symbol, family, window).

    Raises:
        ValueError: ``metrics`` has no ``pnl_adverse_<h>`` key (no decomposition to draw).
    """
    horizons = markout_horizons(metrics)
    if not horizons:
        raise ValueError(f"tear sheet {path.name}: the metrics hold no pnl_adverse_<h> key to draw")
    plt = _pyplot()
    import matplotlib.dates as mdates

    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    eq, bars, inv, curve = axes[0, 0], axes[0, 1], axes[1, 0], axes[1, 1]
    for column, label in (("model", "model quoter"), ("as", "A-S quoter"), ("buy_hold", "buy & hold")):
        if column in equity.columns:
            eq.plot(equity.index, equity[column], label=label, linewidth=0.9)
    eq.set_title("Relative equity")
    h0 = horizons[0]
    parts = {"spread": "pnl_spread", f"adverse {h0} bar": f"pnl_adverse_{h0}", "inventory": "pnl_inventory"}
    parts |= {"fees": "pnl_fees", "net": "pnl_net"}
    x = np.arange(len(parts))
    for i, (prefix, label) in enumerate(QUOTERS):
        heights = [metrics.get(f"{prefix}{key}", np.nan) for key in parts.values()]
        bars.bar(x + (i - 0.5) * 0.4, heights, width=0.4, label=label)
        spread = metrics.get(f"{prefix}pnl_spread", np.nan)
        curve.plot(
            horizons,
            [spread + metrics.get(f"{prefix}pnl_adverse_{h}", np.nan) for h in horizons],
            marker="o",
            label=label,
        )
    bars.set_xticks(x, list(parts))
    bars.axhline(0.0, color="black", linewidth=0.6)
    bars.set_title("Where the PnL came from (quote ccy)")
    if inventory is not None:
        for column, label in (("model", "model quoter"), ("as", "A-S quoter")):
            inv.plot(inventory.index, inventory[column], label=label, linewidth=0.7)
    inv.set_title("Inventory (lots)")
    for ax in (eq, inv):
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    curve.set_xscale("log")
    curve.set_xticks(horizons, [str(h) for h in horizons])
    curve.axhline(0.0, color="black", linewidth=0.6)
    curve.set_title("Markout: spread + adverse h bars after the fills (quote ccy)")
    curve.set_xlabel("bars after the fill")
    for ax in (eq, bars, inv, curve):
        ax.legend(loc="best", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def permutation_importance(
    predict: Callable[[np.ndarray], np.ndarray],
    X: np.ndarray,
    loss: Callable[[np.ndarray], float],
    names: tuple[str, ...],
    *,
    seed: int,
) -> pd.DataFrame:
    """Loss increase when one feature column is shuffled (rows keep their time order otherwise).

    Args:
        predict: rows in time order -> one prediction per row (NaN allowed for warm-up).
        X: feature rows.
        loss: predictions -> loss (lower is better).
        names: feature names, one per column.
        seed: shuffling seed.
    """
    rng = np.random.default_rng(seed)
    base = loss(predict(X))
    rows = []
    for j, name in enumerate(names):
        shuffled = X.copy()
        shuffled[:, j] = rng.permutation(shuffled[:, j])
        rows.append({"feature": name, "importance": loss(predict(shuffled)) - base})
    return pd.DataFrame(rows).sort_values("importance", ascending=False, ignore_index=True)


def importance_plot(table: pd.DataFrame, path: Path, *, top: int = 25) -> Path:
    plt = _pyplot()
    head = table.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(head) + 1.2))
    ax.barh(head["feature"], head["importance"])
    ax.set_title("Permutation importance (loss increase, backtest window)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def optuna_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optimisation history and, when there are enough completed trials, parameter importances."""
    plt = _pyplot()
    from optuna.visualization import matplotlib as ovm

    written = []
    for name, draw in (
        ("optuna_history.png", ovm.plot_optimization_history),
        ("optuna_param_importance.png", ovm.plot_param_importances),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "experimental" notices and too-few-trials notes
                ax = draw(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # too few trials for fANOVA
            logger.info("skipping %s: %s", name, exc)
            continue
        fig: Any = ax.figure
        fig.set_size_inches(8, 4.5)
        fig.tight_layout()
        fig.savefig(folder / name, dpi=90)
        plt.close(fig)
        written.append(folder / name)
    return written
