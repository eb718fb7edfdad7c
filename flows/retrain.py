"""The retrain flow: ingest -> validate -> features -> tune (per family) -> evaluate -> register -> gate.

Each task is a thin wrapper over a library call; only the tasks that touch the outside world
(source files or a venue, the registry) retry. The nightly deployment in ``prefect.yaml`` runs
``nightly``; the drift monitor will run ``retrain`` in canary mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from features.progress import report
from flows.ingest import features_for, ingest_dataset, worth_retrying
from flows.params import Params, load_params
from flows.settings import Locations, locations, use_home
from flows.training_steps import (
    evaluator_for,
    model_name,
    open_registry,
    register_candidate,
    resolve_task,
    run_family,
    series_bars,
)
from training.pipeline import Candidate, choose


@task
def tune_family(
    where: Locations, params: Params, family: str, task_name: str, trials: int | None
) -> Candidate:
    """Walk-forward tuning, refit, evaluation on the hold-outs, logged to MLflow (not registered)."""
    bars = series_bars(where, params)
    return run_family(where, params, bars, family=family, task=task_name, trials=trials)


@task(
    retries=2, retry_delay_seconds=10, retry_condition_fn=worth_retrying
)  # the registry is a server in production
def register_best(where: Locations, params: Params, candidates: list[Candidate]) -> dict[str, Any]:
    best = choose(candidates, params.tune.objective)
    version = register_candidate(best, series_bars(where, params))
    report("register", detail=f"{best.family} {best.task} as {model_name(params, None)} version {version}")
    return {"version": version, "chosen": best.summary(), "candidates": [c.summary() for c in candidates]}


@task(retries=2, retry_delay_seconds=10, retry_condition_fn=worth_retrying)
def gate_version(where: Locations, params: Params, version: str) -> dict[str, Any]:
    """The metric gate and head-to-head; a pass sets @challenger. Only a human approval (or the
    opt-in auto-approve policy) makes it champion, so a failed gate is a verdict, not an error."""
    evaluate = evaluator_for(where, params, params.gate.window)
    outcome = open_registry(where).gate(
        model_name(params, None), version, config=params.gate, evaluate=evaluate
    )
    verdict = outcome.verdict
    report("gate", detail=f"version {version} {'passed' if verdict.passed else 'failed'}")
    return {
        "version": version,
        "passed": verdict.passed,
        "report": str(outcome.report),
        "checks": [c.describe() for c in verdict.checks],
        "failed": [c.sentence() for c in verdict.failed],
    }


@flow(name="retrain", log_prints=True)
def retrain_flow(
    families: list[str] | None = None, trials: int | None = None, task_name: str | None = None
) -> dict[str, Any]:
    """Tune every family on the primary series and register the best as a new version."""
    where = locations()
    use_home(where)  # run by a worker: the libraries' own state under MMOPS_HOME too
    params = load_params(where.params_file)
    chosen_task = resolve_task(params, task_name)
    candidates = [
        tune_family(where, params, f, chosen_task, trials) for f in families or params.tune.families
    ]
    registered = register_best(where, params, candidates)
    return {**registered, "gate": gate_version(where, params, registered["version"])}


@flow(name="nightly", log_prints=True)
def nightly_flow(
    source_root: str | None = None, families: list[str] | None = None, trials: int | None = None
) -> dict[str, Any]:
    """The nightly retrain end to end: fresh data in, a new registered version out."""
    where = locations()
    use_home(where)
    params = load_params(where.params_file)
    root = Path(source_root) if source_root else where.source_data
    ingested = [ingest_dataset(d, where, params, root) for d in params.data.datasets]
    built = [features_for(d, where, params) for d in params.data.datasets]
    trained = retrain_flow(families=families, trials=trials)
    return {"ingested": ingested, "features": built, "trained": trained}
