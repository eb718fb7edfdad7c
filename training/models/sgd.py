"""Linear model by stochastic gradient descent, on standardised features (and targets)."""

from __future__ import annotations

from typing import Any, ClassVar

from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from training.models.base import SklearnSignalModel, Task


class SGDModel(SklearnSignalModel):
    """StandardScaler + logistic regression (P(up)) or Huber regression (forward log return).

    The regressor is fitted on the standardised target (see ``training.models.base``), so
    ``epsilon``, the Huber threshold, is in units of the target's standard deviation: the default
    0.01 makes the loss close to absolute error (a median regression, robust to fat tails).

    Args:
        task: "classifier" or "regressor".
        random_state: seed for the sample shuffling.
        alpha: regularisation strength.
        l1_ratio: elastic-net mixing (0 = L2, 1 = L1).
        penalty: "l2", "l1", "elasticnet" or None.
        max_iter: epochs at most.
        tol: stopping tolerance on the training loss.
        epsilon: Huber threshold of the regressor (standardised-target units).
    """

    family: ClassVar[str] = "sgd"

    def __init__(
        self,
        task: Task = "regressor",
        *,
        random_state: int = 0,
        alpha: float = 1e-4,
        l1_ratio: float = 0.15,
        penalty: str | None = "elasticnet",
        max_iter: int = 1000,
        tol: float = 1e-3,
        epsilon: float = 0.01,
    ) -> None:
        self.task = task
        self.random_state = random_state
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.penalty = penalty
        self.max_iter = max_iter
        self.tol = tol
        self.epsilon = epsilon

    def _pipeline(self) -> Any:
        common: dict[str, Any] = {
            "alpha": self.alpha,
            "l1_ratio": self.l1_ratio,
            "penalty": self.penalty,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "random_state": self.random_state,
        }
        if self.task == "classifier":
            model: Any = SGDClassifier(loss="log_loss", **common)
        else:
            model = SGDRegressor(loss="huber", epsilon=self.epsilon, **common)
        return Pipeline([("scale", StandardScaler()), ("model", model)])
