"""The canary-evaluate flow: read the worker's journal -> compare challenger and champion -> record
the recommendation on the challenger's registry version (``prefect.yaml``: ``canary-evaluate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from flows.canary_steps import evaluate_journal, record_evaluation
from flows.ingest import worth_retrying
from flows.params import Params, load_params
from flows.settings import Locations, locations, use_home
from trading.worker.canary import CanaryEvaluation


@task
def evaluate(params: Params, journal: str, champion: str | None, challenger: str | None) -> CanaryEvaluation:
    return evaluate_journal(params, Path(journal), champion=champion, challenger=challenger)


@task(retries=2, retry_delay_seconds=10, retry_condition_fn=worth_retrying)  # the registry is a server
def record(
    where: Locations, params: Params, evaluation: CanaryEvaluation, model: str | None
) -> dict[str, Any]:
    return record_evaluation(where, params, evaluation, model=model)


@flow(name="canary-evaluate", log_prints=True)
def canary_evaluate_flow(
    journal: str,
    model: str | None = None,
    champion: str | None = None,
    challenger: str | None = None,
    record_on_version: bool = True,
) -> dict[str, Any]:
    """Evaluate the canary in ``journal`` and record promote / extend / rollback on the challenger.

    Args:
        journal: the worker's journal file (read-only; the worker may still be running).
        model: registered model (default: serve.model or the primary series' name).
        champion, challenger: versions (default: the aliases the journal's orders carry).
        record_on_version: False to evaluate without writing to the registry.
    """
    where = locations()
    use_home(where)  # run by a worker: the libraries' own state under MMOPS_HOME too
    params = load_params(where.params_file)
    evaluation = evaluate(params, journal, champion, challenger)
    recorded = record(where, params, evaluation, model) if record_on_version else None
    return {"evaluation": evaluation.to_dict(), "recorded": recorded}
