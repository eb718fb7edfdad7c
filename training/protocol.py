"""The seed's evaluation protocol as one table: every family x task tuned, refitted and scored on
the backtest and forward windows, beside buy-and-hold, long/flat and the model-free A-S quoter.

Each study goes through :func:`training.pipeline.tune_and_log` exactly as ``mmops tune`` does (so
each is an MLflow parent run with its trials), but nothing is registered. Units of the table:

- ``mae``/``rmse``: regressors against the forward log return (horizon of the split profile);
  classifiers as P(up) against the 0/1 direction (Brier-style), so the two tasks do not compare.
- ``mae_ratio``/``rmse_ratio``: model / the no-information forecast (zero return, P(up) = 0.5);
  below 1 beats it. ``skill``: 1 - rmse_ratio^2 (MSE skill score; above 0 beats it).
- ``accuracy`` with its Wilson 95% interval; ``majority_accuracy``: always calling the window's
  more frequent direction (in hindsight).
- ``*_utility``: the objective (:func:`training.evaluate.objective_score`), mean-variance
  utility of daily PnL, bps of capital per day; ``utility_diff``/``pnl_diff``: model-skewed
  quoter minus A-S quoter, bps/day, each with its paired moving-block bootstrap 95% interval.
- ``*_pnl_pct``: percent change of equity over the whole window, net of fees.
- ``*_sharpe``: per-bar returns annualised on 365 days (crypto trades every day).
- ``sharpe_diff``: model-skewed quoter minus A-S quoter, with its bootstrap 95% interval;
  ``tas_*``: the same against the A-S quoter at the settings its own study tuned (NaN when the
  series' quoter was not tuned).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

import pandas as pd

from training.config import EvaluateConfig, FamilyConfig, ModelsConfig, Task
from training.pipeline import WINDOWS, Candidate, TrackingSettings, tune_and_log
from training.quote_tuning import QUOTER
from training.quoter import tune_quoter_and_log
from training.tune import TuneJob

DECOMPOSITION = ("spread", "adverse_1", "adverse_60", "inventory", "fees", "net")
# table column -> metric key in ``Candidate.metrics`` (after the ``<window>_`` prefix)
METRICS: dict[str, str] = {
    "mae": "mae",
    "rmse": "rmse",
    "mae_ratio": "mae_ratio",
    "rmse_ratio": "rmse_ratio",
    "skill": "skill",
    "accuracy": "accuracy",
    "accuracy_lo": "accuracy_lo",
    "accuracy_hi": "accuracy_hi",
    "majority_accuracy": "majority_accuracy",
    "quoter_utility": "utility",
    "as_utility": "as_utility",
    "utility_diff": "utility_diff",
    "utility_diff_lo": "utility_diff_lo",
    "utility_diff_hi": "utility_diff_hi",
    "pnl_diff": "pnl_diff",
    "pnl_diff_lo": "pnl_diff_lo",
    "pnl_diff_hi": "pnl_diff_hi",
    "quoter_pnl_pct": "pnl_pct",
    "quoter_sharpe": "sharpe",
    "as_pnl_pct": "as_pnl_pct",
    "as_sharpe": "as_sharpe",
    "sharpe_diff": "sharpe_diff",
    "sharpe_diff_lo": "sharpe_diff_lo",
    "sharpe_diff_hi": "sharpe_diff_hi",
    "lf_pnl_pct": "lf_pnl_pct",
    "lf_sharpe": "lf_sharpe",
    "bh_pnl_pct": "bh_pnl_pct",
    "bh_sharpe": "bh_sharpe",
    "quoter_trades": "n_trades",
    "tas_utility": "tas_utility",  # the model-free quoter at its tuned settings (training.quoter)
    "tas_utility_diff": "tas_utility_diff",
    "tas_utility_diff_lo": "tas_utility_diff_lo",
    "tas_utility_diff_hi": "tas_utility_diff_hi",
    "tas_pnl_pct": "tas_pnl_pct",
    "tas_sharpe": "tas_sharpe",
    "tas_sharpe_diff": "tas_sharpe_diff",
    "tas_sharpe_diff_lo": "tas_sharpe_diff_lo",
    "tas_sharpe_diff_hi": "tas_sharpe_diff_hi",
    "tas_pnl_diff": "tas_pnl_diff",
    "tas_pnl_diff_lo": "tas_pnl_diff_lo",
    "tas_pnl_diff_hi": "tas_pnl_diff_hi",
    # where the PnL comes from (quote currency; trading.pnl): model quoter, then A-S at default settings
    **{f"{q}pnl_{part}": f"{q}pnl_{part}" for q in ("", "as_", "tas_") for part in DECOMPOSITION},
}
COLUMNS: tuple[str, ...] = ("family", "task", "window", *METRICS, "trials", "run_id")
HEADERS: dict[str, str] = {
    "family": "family",
    "task": "task",
    "window": "window",
    "mae": "MAE",
    "rmse": "RMSE",
    "mae_ratio": "MAE / zero",
    "rmse_ratio": "RMSE / zero",
    "skill": "skill",
    "accuracy": "acc. [95% CI]",
    "majority_accuracy": "majority acc.",
    "quoter_utility": "quoter utility bp/d",
    "as_utility": "A–S utility bp/d",
    "utility_diff": "utility diff bp/d [95% CI]",
    "pnl_diff": "PnL diff bp/d [95% CI]",
    "quoter_pnl_pct": "quoter PnL %",
    "quoter_sharpe": "quoter Sharpe",
    "as_pnl_pct": "A–S PnL %",
    "as_sharpe": "A–S Sharpe",
    "sharpe_diff": "Sharpe diff [95% CI]",
    "lf_pnl_pct": "long/flat PnL %",
    "lf_sharpe": "long/flat Sharpe",
    "bh_pnl_pct": "buy&hold PnL %",
    "bh_sharpe": "buy&hold Sharpe",
    "quoter_trades": "quoter trades",
    "tas_utility": "tuned A–S utility bp/d",
    "tas_utility_diff": "utility diff vs tuned A–S bp/d [95% CI]",
    "tas_pnl_pct": "tuned A–S PnL %",
    "tas_sharpe": "tuned A–S Sharpe",
    "tas_sharpe_diff": "Sharpe diff vs tuned A–S [95% CI]",
    "tas_pnl_diff": "PnL diff vs tuned A–S bp/d [95% CI]",
    **{
        f"{q}pnl_{part}": f"{label}{part.replace('_', ' ')}"
        for q, label in (("", ""), ("as_", "A–S "), ("tas_", "tuned A–S "))
        for part in DECOMPOSITION
    },
}


def protocol_jobs(
    base: TuneJob, models: ModelsConfig, *, families: Sequence[str], tasks: Sequence[Task]
) -> list[TuneJob]:
    """One job per family x task on ``base``'s dataset and split plan (built once).

    Raises:
        ValueError: an unknown family, or no family or task.
    """
    if not families or not tasks:
        raise ValueError("protocol: give at least one family and one task")
    return [
        dataclasses.replace(base, family=f, task=t, family_config=models.family(f))
        for f in families
        for t in tasks
    ]


def quoter_job(base: TuneJob) -> TuneJob | None:
    """The model-free quoter's study on ``base``'s dataset and plan, or None where it cannot run:
    no ``tune.quote_space``, or the forecast-loss objective (a quoter makes no forecast)."""
    if not base.tune.quote_space or base.tune.objective == "loss":
        return None
    return dataclasses.replace(base, family=QUOTER, family_config=FamilyConfig())


def run_protocol(
    jobs: Iterable[TuneJob],
    settings: TrackingSettings,
    *,
    trials: int,
    timeout_s: float | None,
    evaluate: EvaluateConfig,
    quoter: TuneJob | None = None,
) -> pd.DataFrame:
    """Tune (``trials`` more trials per study), refit, evaluate and log every job; register nothing.
    With ``quoter`` (the model-free quoter's job) its study runs first, with the same budget, so
    every row is also compared with the tuned A-S quoter (``tas_`` columns).

    Returns:
        :func:`protocol_table` of the candidates (units in the module docstring).

    Raises:
        ValueError: a study completed no trial (the message names it).
    """
    if quoter is not None:
        tune_quoter_and_log(quoter, settings, trials=trials, timeout_s=timeout_s, evaluate=evaluate)
    return protocol_table(
        [tune_and_log(job, settings, trials=trials, timeout_s=timeout_s, evaluate=evaluate) for job in jobs]
    )


def protocol_table(candidates: Sequence[Candidate]) -> pd.DataFrame:
    """Tidy table: one row per candidate and hold-out window, the columns of :data:`COLUMNS`
    (NaN where a metric is undefined, e.g. the Sharpe of a flat equity)."""
    rows = [
        {
            "family": c.family,
            "task": c.task,
            "window": w,
            **{col: c.metrics.get(f"{w}_{key}", math.nan) for col, key in METRICS.items()},
            "trials": c.trials,
            "run_id": c.run_id,
        }
        for c in candidates
        for w in WINDOWS
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def to_markdown(table: pd.DataFrame, *, columns: Sequence[str] | None = None) -> str:
    """A GitHub markdown table of ``table`` (default: every metric column, no run id); numbers to
    4 significant digits for errors and 2 decimals for PnL/Sharpe; the Sharpe difference with its CI."""
    cols = list(columns or [c for c in COLUMNS if c not in _SHOWN_IN_CELL and c != "run_id"])
    lines = ["| " + " | ".join(HEADERS.get(c, c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_cell(row, c) for c in cols) + " |")
    return "\n".join(lines) + "\n"


# columns shown with their 95% interval in one cell, and the interval's own columns
_WITH_CI: dict[str, str] = {
    "accuracy": ".3f",
    "utility_diff": ".2f",
    "pnl_diff": ".2f",
    "sharpe_diff": ".2f",
    "tas_utility_diff": ".2f",
    "tas_sharpe_diff": ".2f",
}
_SHOWN_IN_CELL = tuple(f"{c}_{end}" for c in _WITH_CI for end in ("lo", "hi"))


def _cell(row: pd.Series, column: str) -> str:
    value = row[column]
    if column in _WITH_CI:
        spec = _WITH_CI[column]
        return f"{_fmt(value, spec)} [{_fmt(row[f'{column}_lo'], spec)}, {_fmt(row[f'{column}_hi'], spec)}]"
    if isinstance(value, str):
        return value
    if column in ("mae", "rmse"):
        return _fmt(value, ".4g")
    if column in ("mae_ratio", "rmse_ratio", "skill", "majority_accuracy"):
        return _fmt(value, ".3f")
    if column in ("trials", "quoter_trades"):
        return _fmt(value, ".0f")
    return _fmt(value, ".2f")


def _fmt(value: object, spec: str) -> str:
    number = float(value)  # type: ignore[arg-type]
    return format(number, spec) if math.isfinite(number) else "–"
