"""Artifacts a reviewer looks at: equity curves, permutation importance, the Optuna history.

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
