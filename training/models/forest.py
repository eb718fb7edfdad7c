"""Random forest: bagged trees on the current feature row (no scaling needed)."""

from __future__ import annotations

from typing import Any, ClassVar

from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.pipeline import Pipeline

from training.models.base import SklearnSignalModel, Task


class ForestModel(SklearnSignalModel):
    """RandomForestClassifier (P(up)) or RandomForestRegressor (forward log return).

    Args:
        task: "classifier" or "regressor".
        random_state: seed for bootstrap samples and feature draws.
        n_estimators: trees.
        max_depth: tree depth limit (None: grow until ``min_samples_leaf``).
        min_samples_leaf: rows per leaf at least.
        max_features: fraction of features tried per split.
        n_jobs: fitting/prediction processes (1 keeps tuning trials from fighting over cores).
    """

    family: ClassVar[str] = "rf"

    def __init__(
        self,
        task: Task = "regressor",
        *,
        random_state: int = 0,
        n_estimators: int = 200,
        max_depth: int | None = None,
        min_samples_leaf: int = 1,
        max_features: float = 0.5,
        n_jobs: int = 1,
    ) -> None:
        self.task = task
        self.random_state = random_state
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.n_jobs = n_jobs

    def _pipeline(self) -> Any:
        forest = RandomForestClassifier if self.task == "classifier" else RandomForestRegressor
        model = forest(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        )
        return Pipeline([("model", model)])
