"""The model zoo: one module per family, all :class:`~training.models.base.SignalModel`.

Importing this package does not import TensorFlow; the LSTM module imports it on first use.
"""

from __future__ import annotations

from typing import Any

from training.models.base import SignalModel, Task
from training.models.forest import ForestModel
from training.models.lstm import LSTMModel
from training.models.sgd import SGDModel

FAMILIES = ("rf", "sgd", "lstm")
_CLASSES: dict[str, type[SignalModel]] = {"rf": ForestModel, "sgd": SGDModel, "lstm": LSTMModel}

__all__ = [
    "FAMILIES",
    "ForestModel",
    "LSTMModel",
    "SGDModel",
    "SignalModel",
    "Task",
    "make_model",
    "model_class",
]


def model_class(family: str) -> type[SignalModel]:
    """The class of a model family.

    Raises:
        ValueError: unknown family.
    """
    try:
        return _CLASSES[family]
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}") from None


def make_model(family: str, task: Task, *, random_state: int = 0, **params: Any) -> SignalModel:
    """Build an unfitted model of ``family`` with constructor ``params``.

    Raises:
        ValueError: unknown family, task or parameter (the message names it).
    """
    cls = model_class(family)
    if task not in ("classifier", "regressor"):
        raise ValueError(f"unknown task {task!r} for family {family!r}; expected 'classifier' or 'regressor'")
    known = set(cls._get_param_names()) - {"task", "random_state"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for model family {family!r}; known: {sorted(known)}"
        )
    return cls(task, random_state=random_state, **params)
