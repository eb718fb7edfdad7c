"""The repository's params.yaml with a training budget fit for a test (same code paths, less work)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def small_budget_params(path: Path) -> Path:
    """The repository's params.yaml with a budget fit for a test (same code paths)."""
    doc: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
    minute = doc["split"]["profiles"]["minute"]
    minute.update(n_folds=2, max_train_bars=3000, backtest_days=3, forward_days=3)
    doc["tune"].update(trials=2, n_startup_trials=1)
    doc["models"]["rf"]["space"]["n_estimators"] = {"type": "int", "low": 10, "high": 20}
    doc["models"]["lstm"]["fixed"].update(epochs=1, batch_size=512)
    doc["models"]["lstm"]["space"] = {
        "lookback": {"type": "int", "low": 4, "high": 8},
        "units": {"type": "categorical", "choices": [4]},
    }
    doc["evaluate"].update(bootstrap_samples=200, importance_rows=300)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
