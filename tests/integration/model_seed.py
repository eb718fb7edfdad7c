"""Tiny real models in a real MLflow registry, shared by the serving and governance tests.

Each family is fitted on a few hundred synthetic rows (the target leans on the first feature) and
logged with :func:`training.tracking.log_signal_model`, exactly as training registers versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

N_FEATURES = 6
LOOKBACK = 8
FEATURES = [f"f{i}" for i in range(N_FEATURES)]
TINY = {
    "rf": {"n_estimators": 8, "max_depth": 4},
    "sgd": {"max_iter": 50},
    "lstm": {"lookback": LOOKBACK, "units": 8, "epochs": 1, "batch_size": 64, "patience": 1},
}
PASSING = {
    "forward_utility": 2.0,
    "forward_utility_diff": 0.5,
    "forward_pnl_diff": 0.5,
    "forward_sharpe": 2.0,
    "forward_max_drawdown_pct": 1.0,
    "forward_sharpe_diff": 0.5,
    "forward_n_trades": 200.0,
}


def fit_tiny(family: str, out: Path, *, seed: int = 0, task: str = "regressor") -> Path:
    """Fit and save a tiny ``family`` model; returns the artifact directory."""
    from training.models import make_model

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, N_FEATURES))
    y = 1e-3 * X[:, 0] + 1e-4 * rng.normal(size=400)
    if task == "classifier":
        y = (y > 0).astype(int)
    model = make_model(family, task, random_state=seed, **TINY[family])  # type: ignore[arg-type]
    model.fit(X, y, feature_names=FEATURES)
    return model.save(out / f"{family}-{task}-{seed}")


def register(
    model_dir: Path,
    *,
    tracking_uri: str,
    name: str,
    family: str,
    metrics: Mapping[str, float] = PASSING,
    task: str = "regressor",
) -> str:
    """Log ``model_dir`` in a new run and register it as a new version of ``name``."""
    from training import tracking

    tracking.use_tracking(tracking_uri)
    experiment = tracking.ensure_experiment(
        "mmops-tests",
        artifact_root=(Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri(),
    )
    tags = {
        "mmops.family": family,
        "mmops.task": task,
        "mmops.symbol": "BTCUSDT",
        "mmops.interval": "1m",
        "lineage.git_commit": "test",
        "lineage.dvc_data_hash": "test",
        "lineage.params_hash": "test",
    }
    with tracking.parent_run(experiment, run_name=f"{family}-test", tags={}):
        return tracking.log_signal_model(model_dir, registered_name=name, tags=tags, metrics=metrics)
