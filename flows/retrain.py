"""The retrain flow: ingest -> validate -> features -> tune (per family) -> evaluate -> register -> gate.

Each task is a thin wrapper over a library call; only the tasks that touch the outside world
(source files or a venue, the registry) retry. The nightly deployment in ``prefect.yaml`` runs
``nightly``; the ``mmops.drift.detected`` event (flows/monitor.py) runs ``retrain`` in canary mode
through the deployment's trigger. Every retrain records its steps on the version it registered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, runtime, task

from features.progress import report
from flows.ingest import features_for, ingest_dataset, worth_retrying
from flows.params import Params, load_params
from flows.settings import Locations, locations, use_home
from flows.training_steps import (
    evaluator_for,
    gate_result,
    model_name,
    open_registry,
    record_retrain,
    register_candidate,
    resolve_task,
    retrain_reason,
    run_family,
    run_quoter,
    series_bars,
)
from training.config import registered_name
from training.pipeline import Candidate, choose
from training.retrain_record import Mode


@task
def tune_family(
    where: Locations, params: Params, family: str, task_name: str, trials: int | None, series: str | None
) -> Candidate:
    """Walk-forward tuning, refit, evaluation on the hold-outs, logged to MLflow (not registered)."""
    bars = series_bars(where, params, series=series)
    return run_family(where, params, bars, family=family, task=task_name, trials=trials)


@task
def tune_quoter(
    where: Locations, params: Params, task_name: str, trials: int | None, series: str | None
) -> dict[str, Any]:
    """The model-free quoter's study (tune.quote_space), so joint models meet a tuned quoter."""
    bars = series_bars(where, params, series=series)
    return run_quoter(where, params, bars, task=task_name, trials=trials).summary()


@task(
    retries=2, retry_delay_seconds=10, retry_condition_fn=worth_retrying
)  # the registry is a server in production
def register_best(
    where: Locations, params: Params, candidates: list[Candidate], series: str | None
) -> dict[str, Any]:
    best = choose(candidates, params.tune.objective)
    bars = series_bars(where, params, series=series)
    version = register_candidate(best, bars)
    name = registered_name(str(bars["symbol"].iloc[0]), str(bars["interval"].iloc[0]))
    name = model_name(params, None) if series is None else name  # serve.model names the primary's
    report("register", detail=f"{best.family} {best.task} as {name} version {version}")
    return {
        "model": name,
        "version": version,
        "chosen": best.summary(),
        "candidates": [c.summary() for c in candidates],
    }


@task(retries=2, retry_delay_seconds=10, retry_condition_fn=worth_retrying)
def gate_version(where: Locations, params: Params, name: str, version: str) -> dict[str, Any]:
    """The metric gate and head-to-head; a pass sets @challenger. Only a human approval (or the
    opt-in auto-approve policy) makes it champion, so a failed gate is a verdict, not an error."""
    evaluate = evaluator_for(where, params, params.gate.window)
    outcome = open_registry(where).gate(name, version, config=params.gate, evaluate=evaluate)
    report("gate", detail=f"version {version} {'passed' if outcome.verdict.passed else 'failed'}")
    return gate_result(outcome)


@task(retries=2, retry_delay_seconds=10, retry_condition_fn=worth_retrying)
def record_steps(
    where: Locations, registered: dict[str, Any], gate: dict[str, Any], **why: Any
) -> dict[str, Any]:
    """Why it ran, what tuning chose, the gate's numbers and the alias, on the version."""
    record = record_retrain(
        where, registered["model"], registered["version"], **why, registered=registered, gate=gate
    )
    report("record", detail=f"version {registered['version']}: {record.outcome()}")
    return record.tags()


@flow(name="retrain", log_prints=True)
def retrain_flow(
    families: list[str] | None = None,
    trials: int | None = None,
    task_name: str | None = None,
    mode: Mode = "standard",
    reason: str | None = None,
    drift: dict[str, Any] | None = None,
    series: str | None = None,
) -> dict[str, Any]:
    """Tune every family on one series, register the best as a new version and gate it.

    Args:
        families: model families to tune (default: tune.families).
        trials: new Optuna trials per family (default: tune.trials).
        task_name: regressor or classifier (default: tune.task).
        mode: ``canary`` when drift started it: a pass makes the version ``@challenger`` (served to
            the canary share), never champion without a recorded approval (or the opt-in policy).
        reason: why it runs, recorded on the version (a canary retrain needs it or ``drift``).
        drift: the ``mmops.drift.detected`` event's payload, recorded on the version.
        series: ``venue:symbol:interval`` to retrain (default: the drift payload's, else the primary).
    """
    where = locations()
    use_home(where)  # run by a worker: the libraries' own state under MMOPS_HOME too
    params = load_params(where.params_file)
    chosen_task = resolve_task(params, task_name)
    why = retrain_reason(mode, reason, drift)
    key = series or (str(drift["series"]) if drift and drift.get("series") else None)
    if params.tune.quote_joint:  # equal terms: the quoter a joint model must beat is tuned too
        tune_quoter(where, params, chosen_task, trials, key)
    candidates = [
        tune_family(where, params, f, chosen_task, trials, key) for f in families or params.tune.families
    ]
    registered = register_best(where, params, candidates, key)
    gate = gate_version(where, params, registered["model"], registered["version"])
    run_id = str(runtime.flow_run.id or "")
    record = record_steps(where, registered, gate, mode=mode, reason=why, drift=drift, flow_run=run_id)
    return {**registered, "mode": mode, "reason": why, "gate": gate, "record": record}


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
    trained = retrain_flow(
        families=families, trials=trials, reason="nightly retrain on freshly ingested data"
    )
    return {"ingested": ingested, "features": built, "trained": trained}
