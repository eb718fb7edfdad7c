"""MLflow tracking: experiments, parent/nested runs, the logged model and its lineage.

One of the two modules that import MLflow (the other is :mod:`training.registry`; the logged
model's code, :mod:`training.pyfunc_model`, is a third by MLflow's design). The logged model is
an MLflow pyfunc (models-from-code) whose artifact is the self-contained mmops artifact directory
(``model.json`` + framework model + ``model.onnx``): ``mlflow.pyfunc.load_model`` works for
anyone, and the serving path unwraps it to the ONNX :class:`training.artifact.Predictor`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient

from features.errors import OperationalError, TemporaryError

logger = logging.getLogger(__name__)

MODEL_ARTIFACT = "model_dir"  # key of the artifact directory inside the pyfunc model
LINEAGE_PACKAGES = (
    "mmops",
    "numpy",
    "pandas",
    "scikit-learn",
    "tensorflow",
    "keras",
    "onnxruntime",
    "mlflow",
    "optuna",
)


def use_tracking(tracking_uri: str) -> None:
    """Point MLflow (tracking and registry) at ``tracking_uri``; called at the edge, never on import.

    A new SQLite store is created (tables and migrations) under a file lock, so several
    processes starting at once (two ``mmops tune`` on one study) do not race to create it. A
    tracking server (``http://...``) is asked once here, so a wrong URL or a server that is down
    stops the command before any work (MLflow's client retries a refused connection with backoff
    first: ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, 7 by default, about 4 minutes in all).

    Raises:
        OperationalError: the store cannot be reached or its schema is older than this MLflow's.
    """
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        with sqlite_init_lock(tracking_uri):
            MlflowClient().search_experiments(max_results=1)
    except MlflowException as exc:
        failure = tracking_failure(exc) or OperationalError(str(exc.message).strip().splitlines()[0])
        raise type(failure)(f"MLflow tracking at {tracking_uri}: {failure}") from exc


def tracking_failure(exc: BaseException) -> TemporaryError | OperationalError | None:
    """A tracking server that is down or does not answer (temporary: worth a retry later), or a
    store with an older schema (operational: a person upgrades it), as a one-line error; None for
    any other error."""
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return None
    message = str(exc.message)
    if "out-of-date database schema" in message:
        return OperationalError(
            message.split(". Take a backup")[0] + "; back it up, then run `mlflow db upgrade <uri>`"
        )
    if message.startswith("API request to ") and ("Max retries exceeded" in message or "timeout" in message):
        url = message.removeprefix("API request to ").split(" ", 1)[0]
        cause = "connection refused" if "Connection refused" in message else "no answer"
        return TemporaryError(
            f"tracking server unreachable at {url} ({cause}, after MLflow's retries); "
            "check MLFLOW_TRACKING_URI and that `mlflow server` is up"
        )
    return None


@contextmanager
def sqlite_init_lock(url: str) -> Iterator[None]:
    """Hold an exclusive lock beside a ``sqlite:///`` database while it is first opened."""
    if not url.startswith("sqlite:///"):
        yield
        return
    import fcntl

    db = Path(url.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".init-lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_experiment(name: str, *, artifact_root: str | None) -> str:
    """The experiment id of ``name``, created with artifacts under ``artifact_root`` if new
    (None: the tracking server's own artifact store, ``mlflow-artifacts:/``, which it serves)."""
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = f"{artifact_root.rstrip('/')}/{name}" if artifact_root else None
    return str(client.create_experiment(name, artifact_location=location))


class MmopsPyfunc(PythonModel):
    """pyfunc face of an mmops artifact: rows of features in time order in, one signal per row out.

    The first ``lookback - 1`` rows of a call get NaN (not enough history), as in
    :meth:`training.models.base.SignalModel.predict`.
    """

    def load_context(self, context: Any) -> None:
        from training.artifact import load_predictor

        self.predictor = load_predictor(Path(context.artifacts[MODEL_ARTIFACT]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        names = list(self.predictor.info.feature_names)
        frame = (
            model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input, columns=names)
        )
        return np.asarray(self.predictor.predict_frame(frame[names].to_numpy(np.float32)))


def log_signal_model(
    model_dir: Path,
    *,
    registered_name: str,
    tags: Mapping[str, str],
    metrics: Mapping[str, float] | None = None,
    input_example: pd.DataFrame | None = None,
) -> str:
    """Log the artifact directory as a pyfunc model in the active run and register a new version.

    Args:
        model_dir: the directory written by ``SignalModel.save``.
        registered_name: e.g. ``mmops-BTCUSDT-1m``.
        tags: set on the new model version (family, task, lineage, ...).
        metrics: logged on the active run (``{window}_{metric}``) before registering.
        input_example: a few feature rows; also used to infer the signature.

    Returns:
        The new version number as a string.

    Raises:
        RuntimeError: no active MLflow run.
    """
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_signal_model needs an active MLflow run")
    if metrics:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)})
    signature = None
    if input_example is not None:
        signature = infer_signature(input_example, np.zeros(len(input_example), dtype=np.float64))
    with _notices_to_log():  # "Successfully registered model ...": ours to log, not to print
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),  # models-from-code: no pickle
            artifacts={MODEL_ARTIFACT: str(model_dir)},
            signature=signature,
            input_example=input_example,
            registered_model_name=registered_name,
            pip_requirements=[f"mmops=={_version('mmops')}", f"onnxruntime=={_version('onnxruntime')}"],
        )
    version = str(info.registered_model_version)
    client = MlflowClient()
    for key, value in {**tags, "mmops.run_id": run.info.run_id}.items():
        client.set_model_version_tag(registered_name, version, key, str(value))
    logger.info("registered %s version %s", registered_name, version)
    return version


@contextmanager
def _notices_to_log() -> Iterator[None]:
    """MLflow prints some notices straight to stderr (``eprint``: "Successfully registered model");
    while the block runs, what MLflow writes to its own stream goes to our log instead (nothing
    else is captured: our handlers and progress bars keep the real stderr)."""
    from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM

    captured = io.StringIO()
    MLFLOW_LOGGING_STREAM.write = captured.write  # type: ignore[method-assign]
    failed = True
    try:
        yield
        failed = False
    finally:
        del MLFLOW_LOGGING_STREAM.write  # back to the class's method
        level = logging.WARNING if failed else logging.INFO
        for line in captured.getvalue().splitlines():
            if line.strip():
                logger.log(level, "mlflow: %s", line)


@contextmanager
def parent_run(experiment_id: str, *, run_name: str, tags: Mapping[str, str]) -> Iterator[str]:
    """A parent run (one per study); trials log nested runs inside it. Yields the run id."""
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=dict(tags)) as run:
        yield run.info.run_id


def log_trial(
    parent_run_id: str,
    *,
    experiment_id: str,
    number: int,
    params: Mapping[str, Any],
    fold_scores: list[float],
    value: float | None,
    state: str,
) -> None:
    """One nested run per Optuna trial: its parameters, per-fold scores and the objective value."""
    client = MlflowClient()
    run = client.create_run(
        experiment_id,
        run_name=f"trial-{number}",
        tags={"mlflow.parentRunId": parent_run_id, "optuna.trial": str(number), "optuna.state": state},
    )
    run_id = run.info.run_id
    for key, val in params.items():
        client.log_param(run_id, key, val)
    for fold, score in enumerate(fold_scores):
        client.log_metric(run_id, "fold_score", float(score), step=fold)
    if value is not None and np.isfinite(value):
        client.log_metric(run_id, "objective", float(value))
    client.set_terminated(run_id, status="FINISHED" if state == "COMPLETE" else "KILLED")


def log_artifacts(files: list[tuple[str, Path]]) -> None:
    """Log files into the active run, each under its folder."""
    for folder, path in files:
        if path.exists():
            mlflow.log_artifact(str(path), artifact_path=folder)


def log_metrics(metrics: Mapping[str, float]) -> None:
    """Log the finite metrics of a mapping into the active run (NaN = undefined, left out)."""
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)})


def set_run_tags(tags: Mapping[str, str]) -> None:
    mlflow.set_tags(dict(tags))


def register_from_run(
    run_id: str, model_dir: Path, *, registered_name: str, input_example: pd.DataFrame
) -> str:
    """Log ``model_dir`` into the finished run ``run_id`` and register it; the run's ``mmops.*`` and
    ``lineage.*`` tags are copied onto the new version. Returns the version number."""
    run = MlflowClient().get_run(run_id)
    tags = {k: v for k, v in run.data.tags.items() if k.startswith(("mmops.", "lineage."))}
    with mlflow.start_run(run_id=run_id):
        return log_signal_model(
            model_dir, registered_name=registered_name, tags=tags, input_example=input_example
        )


def log_params_flat(params: Mapping[str, Any], *, prefix: str = "") -> None:
    flat = {f"{prefix}{k}": v for k, v in params.items()}
    mlflow.log_params(
        {k: (json.dumps(v) if isinstance(v, list | dict | tuple) else v) for k, v in flat.items()}
    )


def lineage_tags(*, repo: Path, params_doc: Mapping[str, Any], data_hash: str) -> dict[str, str]:
    """Tags that let anyone reproduce a version: data hash, git commit, params hash, packages."""
    return {
        "lineage.git_commit": _git_commit(repo),
        "lineage.dvc_data_hash": data_hash,
        "lineage.params_hash": params_hash(params_doc),
        "lineage.packages": json.dumps({p: _version(p) for p in LINEAGE_PACKAGES}, separators=(",", ":")),
    }


def params_hash(params_doc: Mapping[str, Any]) -> str:
    canonical = json.dumps(params_doc, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _git_commit(repo: Path) -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def dvc_data_hash(dvc_file: Path) -> str:
    """The md5 DVC recorded for the tracked data (first ``outs`` entry), or ``none``."""
    import yaml

    if not dvc_file.is_file():
        return "none"
    outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs") or [{}]
    return str(outs[0].get("md5", "none"))


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def download_model(model_uri: str, *, dest: Path) -> tuple[Path, dict[str, str]]:
    """Fetch a logged model (``models:/name/3``, ``models:/name@champion``, ``runs:/id/model``) and
    return the mmops artifact directory inside it and the version's tags (empty for run URIs).

    Raises:
        DataError: the URI does not resolve, or holds no mmops artifact.
    """
    from mlflow.exceptions import MlflowException

    from features.errors import DataError

    tags: dict[str, str] = {}
    try:
        if model_uri.startswith("models:/"):
            name, _, ref = model_uri.removeprefix("models:/").partition("@")
            client = MlflowClient()
            if ref:
                version = client.get_model_version_by_alias(name, ref)
            else:
                name, _, number = model_uri.removeprefix("models:/").partition("/")
                version = client.get_model_version(name, number)
            tags = dict(version.tags)
            model_uri = f"models:/{name}/{version.version}"
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dest)))
    except MlflowException as exc:
        raise DataError(f"{model_uri}: cannot load the model ({exc.message})") from exc
    found = sorted(local.rglob("model.json"))
    if not found:
        raise DataError(f"{model_uri}: no mmops artifact (model.json) in the logged model")
    return found[0].parent, tags


def load_run_json(run_id: str, path: str) -> dict[str, Any] | None:
    """A JSON artifact of a run (e.g. ``tables/split_plan.json``), or None when it has none."""
    from mlflow.exceptions import MlflowException

    try:
        doc = mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}")
    except (MlflowException, OSError, ValueError):
        return None
    return dict(doc)


def log_monitoring_run(
    experiment: str,
    *,
    artifact_root: str | None,
    run_name: str,
    tags: Mapping[str, str],
    metrics: Mapping[str, float],
    folder: Path,
) -> str:
    """One run in the monitoring experiment per drift check: tags (model version, verdict),
    metrics (drift share, scores) and the report folder as artifacts. Returns the run id."""
    experiment_id = ensure_experiment(experiment, artifact_root=artifact_root)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=dict(tags)) as run:
        log_metrics(metrics)
        mlflow.log_artifacts(str(folder), artifact_path="drift")
        return str(run.info.run_id)
