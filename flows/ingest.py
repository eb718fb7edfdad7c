"""Prefect flows of the data plane: ingest -> validate -> features. Thin wrappers, no logic.

The nightly flow (data plane + retrain) is in :mod:`flows.retrain`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, task

from features.config import DatasetConfig
from features.errors import MmopsError, TemporaryError
from features.pipeline import build_features, ingest_source
from features.progress import report
from flows.params import Params, load_params
from flows.settings import Locations, locations, use_home


def worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry condition: retry what the outside world may fix (a venue or network blip, a
    busy registry), never a verdict on the input (a bad file, a failed validation, a refusal), which
    would only quarantine the same file again and fail the same way."""
    error = state.result(raise_on_failure=False)
    return not isinstance(error, MmopsError) or isinstance(error, TemporaryError)


@task(retries=2, retry_delay_seconds=10, retry_condition_fn=worth_retrying)  # files or a venue
def ingest_dataset(
    dataset: DatasetConfig, where: Locations, params: Params, source_root: Path
) -> dict[str, Any]:
    result = ingest_source(
        dataset.source,
        source_root / dataset.path,
        store_root=where.bars,
        quarantine_root=where.quarantine,
        gx_root=where.gx_root,
        validation=params.validation,
        now=pd.Timestamp.now(tz="UTC"),
        symbol=dataset.symbol,
        interval=dataset.interval,
        venue=dataset.venue,
        layout=dataset.layout(),
    )
    for s in result["series"]:
        report("ingest + validate", detail=f"{s['series']}: {s['rows_total']:,} bars, {s['gap_count']} gaps")
    return result


@task
def features_for(dataset: DatasetConfig, where: Locations, params: Params) -> dict[str, Any]:
    built = build_features(
        where.bars,
        features_root=where.features,
        config=params.features,
        venue=dataset.venue,
        symbol=dataset.symbol,
        interval=dataset.interval,
    )
    report("features", detail=f"{built['series']}: {built['rows']:,} rows x {built['columns']} columns")
    return built


@flow(name="ingest", log_prints=True)
def ingest_flow(source_root: str | None = None) -> list[dict[str, Any]]:
    """Ingest and validate every dataset in ``params.yaml``; a failing batch fails the flow."""
    where = locations()
    use_home(where)  # run by a worker: the libraries' own state under MMOPS_HOME too
    params = load_params(where.params_file)
    root = Path(source_root) if source_root else where.source_data
    return [ingest_dataset(d, where, params, root) for d in params.data.datasets]


@flow(name="features", log_prints=True)
def features_flow() -> list[dict[str, Any]]:
    """Rebuild the feature and label frames of every dataset."""
    where = locations()
    use_home(where)
    params = load_params(where.params_file)
    return [features_for(d, where, params) for d in params.data.datasets]
