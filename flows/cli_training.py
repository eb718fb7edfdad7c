"""``mmops tune | train | evaluate``: walk-forward tuning, registration and evaluation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from features.errors import ConfigError
from flows.cli_common import (
    IntervalOpt,
    JsonOpt,
    SymbolOpt,
    VenueOpt,
    app,
    context,
    emit,
    progress_shown,
    reported,
)
from flows.training_steps import (
    evaluate_uri,
    register_candidate,
    resolve_task,
    run_family,
    run_quoter,
    series_bars,
)

if TYPE_CHECKING:
    import pandas as pd

    from flows.params import Params
    from flows.settings import Locations
    from training.pipeline import Candidate
    from training.quoter import QuoterResult

TaskOpt = Annotated[str | None, typer.Option("--task", help="regressor | classifier (default: tune.task)")]
TrialsOpt = Annotated[
    int | None, typer.Option("--trials", help="new trials per family (default: tune.trials)")
]
OutOpt = Annotated[Path | None, typer.Option("--out", help="write metrics.json and equity_<window>.csv here")]
TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", help="seconds per family (default: tune.timeout_s)")
]
FeaturesOpt = Annotated[
    Path | None,
    typer.Option(
        "--features",
        help="the series' feature file from `mmops features` (the DVC features stage); default: computed from the bars",
    ),
]


def _result(candidate: Candidate, registered: str, others: list[Candidate]) -> dict[str, Any]:
    return {
        "registered_model": registered,
        "version": candidate.version,
        "family": candidate.family,
        "task": candidate.task,
        "chosen": candidate.summary(),
        "candidates": [c.summary() for c in others],
    }


def _human(result: Mapping[str, Any]) -> str:
    m = result["chosen"]["metrics"]
    nan = float("nan")
    return (
        f"registered {result['registered_model']} version {result['version']} ({result['family']} {result['task']})\n"
        f"forward utility {m.get('forward_utility', nan):.2f} vs A-S {m.get('forward_as_utility', nan):.2f} bp/day; "
        f"PnL over A-S {m.get('forward_pnl_diff', nan):.2f} bp/day "
        f"[{m.get('forward_pnl_diff_lo', nan):.2f}, {m.get('forward_pnl_diff_hi', nan):.2f}]\n"
        f"backtest: sharpe {m.get('backtest_sharpe', float('nan')):.2f} vs A-S {m.get('backtest_as_sharpe', float('nan')):.2f}; "
        f"forward: sharpe {m.get('forward_sharpe', float('nan')):.2f} vs A-S {m.get('forward_as_sharpe', float('nan')):.2f}, "
        f"diff CI [{m.get('forward_sharpe_diff_lo', float('nan')):.2f}, {m.get('forward_sharpe_diff_hi', float('nan')):.2f}]"
    ) + _tuned_line(m)


def _tuned_line(m: Mapping[str, Any]) -> str:
    if "forward_tas_pnl_pct" not in m:
        return ""
    return (
        f"\nforward vs tuned A-S: pnl {m['forward_pnl_pct']:.3f}% vs {m['forward_tas_pnl_pct']:.3f}%, "
        f"sharpe diff {m.get('forward_tas_sharpe_diff', float('nan')):.2f} "
        f"[{m.get('forward_tas_sharpe_diff_lo', float('nan')):.2f}, {m.get('forward_tas_sharpe_diff_hi', float('nan')):.2f}]"
    )


@app.command()
@reported
def tune(
    model: Annotated[str, typer.Option("--model", help="rf | sgd | lstm | as (the model-free quoter)")],
    task: TaskOpt = None,
    trials: TrialsOpt = None,
    timeout: TimeoutOpt = None,
    symbol: SymbolOpt = None,
    interval: IntervalOpt = None,
    venue: VenueOpt = None,
    out: OutOpt = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            help="--model as: a mmops calibrate calibration.json; its kappa is a starting point",
        ),
    ] = None,
    features: FeaturesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Tune one family (Optuna TPE, walk-forward on the fill engine), refit, evaluate, register;
    ``--model as`` tunes the model-free quoter's settings (tune.quote_space) instead, registers nothing.

    With ``--out``, the registered version is also written there (``registered.json``)."""
    from training.pipeline import write_outputs, write_registration

    where, params = context()
    if model not in ("rf", "sgd", "lstm", "as"):
        raise ConfigError(f"--model must be rf, sgd, lstm or as, not {model!r}")
    if calibration is not None and model != "as":
        raise ConfigError("--calibration starts the model-free quoter's study: use it with --model as")
    bars = series_bars(where, params, symbol=symbol, interval=interval, venue=venue)
    if model == "as":
        _tune_quoter(
            where,
            params,
            bars,
            task=task,
            trials=trials,
            timeout=timeout,
            out=out,
            calibration=calibration,
            as_json=as_json,
        )
        return
    with progress_shown(as_json=as_json):
        candidate = run_family(
            where,
            params,
            bars,
            family=model,
            task=resolve_task(params, task),
            trials=trials,
            timeout=timeout,
            features_file=features,
        )
    from training.config import registered_name

    name = registered_name(str(bars["symbol"].iloc[0]), str(bars["interval"].iloc[0]))
    register_candidate(candidate, bars)
    if out is not None:
        write_outputs(candidate, out)
        write_registration(candidate, out, registered_model=name)
    result = _result(candidate, name, [])
    emit(result, as_json=as_json, human=_human(result))


def _tune_quoter(
    where: Locations,
    params: Params,
    bars: pd.DataFrame,
    *,
    task: str | None,
    trials: int | None,
    timeout: float | None,
    out: Path | None,
    calibration: Path | None,
    as_json: bool,
) -> None:
    from training.quoter import write_quoter_outputs

    with progress_shown(as_json=as_json):
        quoter = run_quoter(
            where,
            params,
            bars,
            task=resolve_task(params, task),
            trials=trials,
            timeout=timeout,
            calibration=calibration,
        )
    if out is not None:
        write_quoter_outputs(quoter, out)
    emit(quoter.summary(), as_json=as_json, human=_quoter_human(quoter))


def _quoter_human(quoter: QuoterResult) -> str:
    m = quoter.metrics
    settings = ", ".join(f"{k} {v:.4g}" for k, v in sorted(quoter.best_settings.items()))
    lines = [f"{quoter.study}: best {quoter.best_value:.3g} after {quoter.trials} trials; {settings}"]
    for w in ("backtest", "forward"):
        lines.append(
            f"{w}: tuned A-S pnl {m.get(f'{w}_tas_pnl_pct', float('nan')):.3f}% sharpe {m.get(f'{w}_tas_sharpe', float('nan')):.2f}"
            f" vs default A-S pnl {m.get(f'{w}_as_pnl_pct', float('nan')):.3f}% sharpe {m.get(f'{w}_as_sharpe', float('nan')):.2f}"
        )
    return "\n".join(lines)


@app.command()
@reported
def train(
    task: TaskOpt = None,
    trials: TrialsOpt = None,
    timeout: TimeoutOpt = None,
    families: Annotated[
        str | None, typer.Option("--families", help="comma list (default: tune.families)")
    ] = None,
    symbol: SymbolOpt = None,
    interval: IntervalOpt = None,
    venue: VenueOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Tune every family, register the best on the backtest window; print name and version."""
    from training.config import registered_name
    from training.pipeline import choose

    where, params = context()
    names = families.split(",") if families else list(params.tune.families)
    bars = series_bars(where, params, symbol=symbol, interval=interval, venue=venue)
    chosen_task = resolve_task(params, task)
    with progress_shown(as_json=as_json):
        if params.tune.quote_joint:  # equal terms: the quoter a joint model must beat is tuned too
            run_quoter(where, params, bars, task=chosen_task, trials=trials, timeout=timeout)
        candidates = [
            run_family(
                where, params, bars, family=f.strip(), task=chosen_task, trials=trials, timeout=timeout
            )
            for f in names
        ]
    best = choose(candidates, params.tune.objective)
    register_candidate(best, bars)
    result = _result(
        best, registered_name(str(bars["symbol"].iloc[0]), str(bars["interval"].iloc[0])), candidates
    )
    emit(result, as_json=as_json, human=_human(result))


@app.command()
@reported
def evaluate(
    model_uri: Annotated[
        str, typer.Option("--model-uri", help="models:/NAME/VERSION, models:/NAME@ALIAS, runs:/...")
    ],
    window: Annotated[str | None, typer.Option("--window", help="backtest | forward")] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="a raw dump/file, validated and featurised on the fly")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Statistics and fill-engine metrics of a model, the A-S quoter, buy-and-hold and long/flat."""
    if (window is None) == (data is None):
        raise ConfigError("give exactly one of --window backtest|forward or --data PATH")
    if window is not None and window not in ("backtest", "forward"):
        raise ConfigError(f"--window must be backtest or forward, not {window!r}")
    where, params = context()
    metrics = evaluate_uri(where, params, model_uri, window=window, data=data)
    human = "\n".join(f"{k:>24} {v:.6g}" for k, v in sorted(metrics.items()))
    emit(
        {"model_uri": model_uri, "window": window or str(data), "metrics": metrics},
        as_json=as_json,
        human=human,
    )
