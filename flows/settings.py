"""Runtime locations, from the environment with local defaults (never from params.yaml).

``MMOPS_HOME`` (default: the current directory) is the root of ``data/``, ``reports/`` and the
MLflow/Optuna stores, so several isolated homes can coexist. ``MMOPS_SOURCE_DATA`` is where raw
exchange files are looked up (default: ``../shared/data`` beside the repository when present).
``MMOPS_PARAMS`` overrides the params file (default: ``$MMOPS_HOME/params.yaml`` if present,
else the repository's). ``MLFLOW_TRACKING_URI`` (default: SQLite ``$MMOPS_HOME/mlflow.db``, artifacts
under ``$MMOPS_HOME/mlartifacts``) and ``MMOPS_OPTUNA_STORAGE`` (default: SQLite
``$MMOPS_HOME/optuna.db``; any SQLAlchemy URL, e.g. PostgreSQL, for many workers) select the
tracking server and the study storage; ``MMOPS_ARTIFACT_ROOT`` where new experiments keep
artifacts (default: the tracking server's own store, or ``$MMOPS_HOME/mlartifacts`` beside a
local one). Prefect reads ``PREFECT_API_URL`` itself (unset: a temporary local server). The same
commands run on files or on servers; docs/scale-out.md shows the servers.

The libraries mmops runs keep their own state under ``MMOPS_HOME`` too (see
:meth:`Locations.tool_environment`): Prefect's home and database, Keras's config, matplotlib's
and ONNX Runtime's caches, BentoML's store. A run writes nothing into the user's home directory,
and two homes never share a Prefect database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Locations:
    home: Path
    source_data: Path
    params_file: Path

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def bars(self) -> Path:
        return self.data / "bars"

    @property
    def quarantine(self) -> Path:
        return self.data / "quarantine"

    @property
    def features(self) -> Path:
        return self.data / "features"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def logs(self) -> Path:
        """Append-only logs: prediction log, registry audit log."""
        return self.home / "logs"

    @property
    def models(self) -> Path:
        """Scratch space for model artifacts before they are logged to MLflow."""
        return self.home / "models"

    @property
    def tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str | None:
        """Where new MLflow experiments store artifacts (used only when we create the experiment).

        ``MMOPS_ARTIFACT_ROOT`` (any URI MLflow writes to: ``s3://``, ``file://``) wins; against a
        tracking server (``http(s)://``) the default is None, the server's own store
        (``mlflow server --artifacts-destination``, proxied), so no client needs a shared disk;
        against a local store, ``$MMOPS_HOME/mlartifacts``.
        """
        if os.environ.get("MMOPS_ARTIFACT_ROOT"):
            return os.environ["MMOPS_ARTIFACT_ROOT"]
        if self.tracking_uri.startswith(("http://", "https://")):
            return None
        return (self.home / "mlartifacts").as_uri()

    @property
    def optuna_storage(self) -> str:
        return os.environ.get("MMOPS_OPTUNA_STORAGE") or f"sqlite:///{self.home / 'optuna.db'}"

    @property
    def gx_root(self) -> Path:
        """Great Expectations project: validation results and Data Docs HTML."""
        return self.reports / "data_quality"

    @property
    def data_docs(self) -> Path:
        """The Great Expectations Data Docs site's front page."""
        return self.gx_root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"

    @property
    def prefect_home(self) -> Path:
        """Prefect's profiles and the temporary server's SQLite database (``prefect.db``).

        A hidden folder, like Prefect's own ``~/.prefect``: a ``prefect/`` folder in a checkout (the
        default home is the repository root) would read as a first-party ``prefect`` package to
        import sorters and type checkers.
        """
        return self.home / ".prefect"

    def tool_environment(self) -> dict[str, str]:
        """Environment variables that keep third-party state under this home, telemetry off.

        ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` is ours to own: Prefect waits 20 s by
        default for its temporary server, and a first start (creating and migrating
        ``prefect.db`` on a loaded 2-core machine) can take longer.
        """
        cache = self.home / ".cache"
        return {
            "PREFECT_HOME": str(self.prefect_home),
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "XDG_CACHE_HOME": str(cache),  # ONNX Runtime writes a device id there on import
            "MPLCONFIGDIR": str(cache / "matplotlib"),
            "KERAS_HOME": str(cache / "keras"),
            "BENTOML_HOME": str(self.home / ".bentoml"),  # hidden for the same reason
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
        }


def use_home(where: Locations, *, force: bool = False) -> None:
    """Point third-party state at ``where`` (before Prefect, MLflow or TensorFlow is imported).

    Args:
        where: the resolved locations.
        force: replace variables the user set (tests, for isolation); by default theirs win, so
            ``PREFECT_HOME`` or ``XDG_CACHE_HOME`` set in the shell still apply.
    """
    for key, value in where.tool_environment().items():
        if force:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)


def locations() -> Locations:
    """Resolve locations from the environment now (call at the edge, not at import)."""
    home = Path(os.environ.get("MMOPS_HOME") or Path.cwd()).resolve()
    source = os.environ.get("MMOPS_SOURCE_DATA")
    if source:
        source_data = Path(source).resolve()
    else:
        candidates = [REPO_ROOT.parent / "shared" / "data", home.parent / "shared" / "data"]
        source_data = next((c for c in candidates if c.is_dir()), candidates[0])
    params = os.environ.get("MMOPS_PARAMS")
    if params:
        params_file = Path(params).resolve()
    else:
        params_file = home / "params.yaml" if (home / "params.yaml").is_file() else REPO_ROOT / "params.yaml"
    return Locations(home=home, source_data=source_data, params_file=params_file)
