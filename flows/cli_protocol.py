"""``mmops protocol``: every family x task tuned and scored on the backtest and forward windows."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, get_args

import typer

from features.errors import ConfigError, DataError
from flows.cli_common import IntervalOpt, JsonOpt, SymbolOpt, VenueOpt, app, context, emit, reported
from flows.training_steps import series_bars, tracking_settings
from training.config import Objective

TrialsOpt = Annotated[
    int | None, typer.Option("--trials", help="new trials per study (default: tune.trials)")
]
FamiliesOpt = Annotated[str | None, typer.Option("--families", help="comma list (default: tune.families)")]
TasksOpt = Annotated[str, typer.Option("--tasks", help="comma list of classifier, regressor")]
ObjectiveOpt = Annotated[
    str | None, typer.Option("--objective", help="utility | sharpe | loss (default: tune.objective)")
]
MarkdownOpt = Annotated[Path | None, typer.Option("--markdown", help="also write the table here (markdown)")]


@app.command()
@reported
def protocol(
    symbol: SymbolOpt = None,
    interval: IntervalOpt = None,
    venue: VenueOpt = None,
    trials: TrialsOpt = None,
    families: FamiliesOpt = None,
    tasks: TasksOpt = "classifier,regressor",
    objective: ObjectiveOpt = None,
    markdown: MarkdownOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Tune, refit and score every family x task (nothing registered); print the protocol table."""
    from training.pipeline import prepare_job
    from training.protocol import protocol_jobs, quoter_job, run_protocol, to_markdown

    where, params = context()
    names = [f.strip() for f in families.split(",")] if families else list(params.tune.families)
    task_names = [t.strip() for t in tasks.split(",")]
    if bad := [t for t in task_names if t not in ("classifier", "regressor")]:
        raise ConfigError(f"--tasks: {bad} are not classifier or regressor")
    if objective not in (None, *get_args(Objective)):
        raise ConfigError(f"--objective must be one of {', '.join(get_args(Objective))}, not {objective!r}")
    tune = params.tune.model_copy(update={"objective": objective or params.tune.objective})
    bars = series_bars(where, params, symbol=symbol, interval=interval, venue=venue)
    try:
        base = prepare_job(
            bars,
            family=names[0],
            task=task_names[0],  # type: ignore[arg-type]  # checked above
            features=params.features,
            split=params.split,
            tune=tune,
            models=params.models,
            quote=params.quote,
            risk=params.risk,
            backtest=params.backtest,
            evaluate=params.evaluate,
        )
        jobs = protocol_jobs(base, params.models, families=names, tasks=task_names)  # type: ignore[arg-type]
        table = run_protocol(
            jobs,
            tracking_settings(where, params),
            trials=trials or params.tune.trials,
            timeout_s=params.tune.timeout_s,
            evaluate=params.evaluate,
            quoter=quoter_job(base),
        )
    except ValueError as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"protocol: {exc}") from exc
    text = to_markdown(table)
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(text)
    rows: list[dict[str, Any]] = [
        {str(k): (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
        for r in table.to_dict(orient="records")
    ]
    emit(
        {"symbol": str(bars["symbol"].iloc[0]), "interval": str(bars["interval"].iloc[0]), "rows": rows},
        as_json=as_json,
        human=text,
    )
