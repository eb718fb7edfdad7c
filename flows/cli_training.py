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
    series_bars,
)

if TYPE_CHECKING:
    from training.pipeline import Candidate

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
    return (
        f"registered {result['registered_model']} version {result['version']} ({result['family']} {result['task']})\n"
        f"backtest: sharpe {m.get('backtest_sharpe', float('nan')):.2f} vs A-S {m.get('backtest_as_sharpe', float('nan')):.2f}; "
        f"forward: sharpe {m.get('forward_sharpe', float('nan')):.2f} vs A-S {m.get('forward_as_sharpe', float('nan')):.2f}, "
        f"diff CI [{m.get('forward_sharpe_diff_lo', float('nan')):.2f}, {m.get('forward_sharpe_diff_hi', float('nan')):.2f}]"
    )


@app.command()
@reported
def tune(
    model: Annotated[str, typer.Option("--model", help="rf | sgd | lstm")],
    task: TaskOpt = None,
    trials: TrialsOpt = None,
    timeout: TimeoutOpt = None,
    symbol: SymbolOpt = None,
    interval: IntervalOpt = None,
    venue: VenueOpt = None,
    out: OutOpt = None,
    features: FeaturesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Tune one family (Optuna TPE, walk-forward on the fill engine), refit, evaluate, register.

    With ``--out``, the registered version is also written there (``registered.json``)."""
    from training.pipeline import write_outputs, write_registration

    where, params = context()
    if model not in ("rf", "sgd", "lstm"):
        raise ConfigError(f"--model must be rf, sgd or lstm, not {model!r}")
    bars = series_bars(where, params, symbol=symbol, interval=interval, venue=venue)
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
