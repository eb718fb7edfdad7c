"""The base class every model family implements, and the shared ONNX export plumbing.

Why a base class: tuning, evaluation, tracking and serving handle RF, SGD and LSTM models the same
way. Each family is a scikit-learn estimator (``__init__`` stores params, fitted state ends in
``_``, ``fit`` returns ``self``, ``predict`` checks it is fitted) that sees feature rows in time
order and predicts, for each row, the forward log return (regressor) or P(up) (classifier).
A model that needs history (the LSTM) looks at the last ``lookback`` rows; the first
``lookback - 1`` rows of a frame therefore get NaN.

Regressor targets (forward log returns, ~1e-3 per bar) are standardised on the training y and
predictions mapped back, so SGD and Adam see unit-scale targets; the inverse map is part of the
exported graph, so every path returns log returns.
"""

from __future__ import annotations

import abc
import importlib.metadata
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, cast

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from training.artifact import (
    FRAME_CHUNK,
    INFO_FILE,
    ONNX_FILE,
    ONNX_INPUT,
    ONNX_OUTPUT,
    ArtifactInfo,
    iter_chunks,
    sliding_windows,
)

if TYPE_CHECKING:
    import onnx

Task = Literal["classifier", "regressor"]
TASKS: tuple[Task, ...] = ("classifier", "regressor")
FloatArray = npt.NDArray[np.float64]

# Fast path vs framework, max absolute difference. Classifier: in probability. Regressor: in
# units of the training target's standard deviation (the graph runs in float32 on standardised
# targets, so its error scales with that std); ``tolerance`` in model.json is already multiplied.
# Why these sizes: ONNX Runtime and the framework evaluate one float32 computation with other
# kernels (fused ops, another summation order), so they differ by round-off only: the largest
# differences measured on the test models are 7.4e-7 in probability (RF classifier) and 1.8e-10 in
# target units (LSTM regressor). The limits sit 10x and more above that; an export that is wrong
# (a standardisation or a de-standardisation lost, a weight transposed) is off by 1e-2 or more.
CLASSIFIER_TOLERANCE = 1e-5
REGRESSOR_TOLERANCE_STD = 1e-4


class SignalModel(BaseEstimator, abc.ABC):
    """A trading-signal model: one prediction per feature row, exportable to ONNX."""

    family: ClassVar[str]
    framework_file: ClassVar[str]
    framework_packages: ClassVar[tuple[str, ...]]
    task: Task
    random_state: int

    @classmethod
    def compute_device(cls) -> str:
        """Where this family trains, in one line for the progress output (the CPU unless overridden)."""
        return f"{cls.family} trains on the CPU"

    @property
    def lookback(self) -> int:
        """Rows of feature history one prediction needs (1 for tabular models)."""
        return 1

    @property
    def tolerance(self) -> float:
        """Max abs difference fast path vs framework, in output units (see module constants)."""
        if self.task == "classifier":
            return CLASSIFIER_TOLERANCE
        return REGRESSOR_TOLERANCE_STD * float(getattr(self, "y_scale_", 1.0))

    # --- fitting -------------------------------------------------------------------------------

    def fit(
        self,
        X: npt.ArrayLike,
        y: npt.ArrayLike,
        *,
        X_val: npt.ArrayLike | None = None,
        y_val: npt.ArrayLike | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> Self:
        """Fit on time-ordered rows; preprocessing is fitted on ``X`` only.

        Args:
            X: ``(n, n_features)`` finite features, time order (warm-up/NaN rows already dropped).
            y: ``(n,)`` forward log return per row (regressor) or 0/1 up-direction (classifier).
            X_val: validation rows for early stopping (LSTM); other families ignore it.
            y_val: targets of ``X_val``.
            feature_names: column names (default ``x0, x1, ...``), kept in the artifact.

        Returns:
            self.

        Raises:
            ValueError: bad shapes, non-finite values, labels not 0/1, too few rows or one class.
        """
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        X_arr, y_arr = self._check_xy(X, y, "X", "y", min_rows=self.lookback + 1)
        val = None
        if X_val is not None and y_val is not None:
            # One window is enough to score; a short tail may hold a single class.
            val = self._check_xy(X_val, y_val, "X_val", "y_val", min_rows=self.lookback)
            if val[0].shape[1] != X_arr.shape[1]:
                raise ValueError(f"X_val has {val[0].shape[1]} features, X has {X_arr.shape[1]}")
        names = tuple(feature_names) if feature_names is not None else None
        if names is not None and len(names) != X_arr.shape[1]:
            raise ValueError(f"{len(names)} feature names for {X_arr.shape[1]} columns")
        self.n_features_in_ = X_arr.shape[1]
        self.feature_names_in_ = names or tuple(f"x{i}" for i in range(X_arr.shape[1]))
        self._fit(X_arr, y_arr, val)
        return self

    def _check_xy(
        self, X: npt.ArrayLike, y: npt.ArrayLike, x_name: str, y_name: str, *, min_rows: int
    ) -> tuple[FloatArray, FloatArray]:
        X_arr = np.asarray(X, dtype=np.float64)
        y_arr = np.asarray(y, dtype=np.float64)
        if X_arr.ndim != 2 or y_arr.shape != (len(X_arr),):
            raise ValueError(f"{x_name} must be (n, f) and {y_name} (n,); got {X_arr.shape}, {y_arr.shape}")
        if len(X_arr) < min_rows:
            raise ValueError(
                f"{x_name} has {len(X_arr)} rows; need at least {min_rows} (lookback {self.lookback})"
            )
        for name, arr in ((x_name, X_arr), (y_name, y_arr)):
            if not np.isfinite(arr).all():
                bad = np.argwhere(~np.isfinite(arr))[0].tolist()
                raise ValueError(f"{name} has non-finite values (first at index {bad}); drop warm-up rows")
        if self.task == "classifier":
            labels = np.unique(y_arr[self.lookback - 1 :])
            if not np.isin(labels, (0.0, 1.0)).all() or (y_name == "y" and len(labels) != 2):
                raise ValueError(
                    f"classifier {y_name} must hold labels 0 and 1 only (both in y), got {labels[:5]}"
                )
        return X_arr, y_arr

    def _target_scaler(self, y: FloatArray) -> FloatArray:
        """Store the regressor target's mean/std and return the standardised target."""
        self.y_mean_ = float(y.mean())
        self.y_scale_ = float(y.std()) or 1.0
        return (y - self.y_mean_) / self.y_scale_

    def _unscale(self, z: FloatArray) -> FloatArray:
        if self.task == "classifier":
            return z
        return z * self.y_scale_ + self.y_mean_

    @abc.abstractmethod
    def _fit(self, X: FloatArray, y: FloatArray, val: tuple[FloatArray, FloatArray] | None) -> None:
        """Fit the family's model; set fitted attributes (ending in ``_``)."""

    # --- prediction ----------------------------------------------------------------------------

    def predict(self, X: npt.ArrayLike) -> FloatArray:
        """Predict for every row of ``X`` (time order).

        Returns:
            ``(n,)`` float64: forward log return (regressor) or P(up) (classifier); the first
            ``lookback - 1`` entries are NaN. Prepend ``lookback - 1`` context rows to get a value
            for every row of interest.
        """
        check_is_fitted(self)
        X_arr = self._check_x(X, 2)
        out = np.full(len(X_arr), np.nan)
        if len(X_arr) < self.lookback:
            return out
        windows = sliding_windows(X_arr, self.lookback)
        offset = self.lookback - 1
        for chunk in iter_chunks(len(windows), FRAME_CHUNK):
            out[offset + chunk.start : offset + chunk.stop] = self._predict_windows(windows[chunk])
        return out

    def predict_windows(self, windows: npt.ArrayLike) -> FloatArray:
        """The framework's own prediction for ``(batch, lookback, n_features)`` windows.

        Returns:
            ``(batch,)`` float64, one value per window (for its last row).
        """
        check_is_fitted(self)
        return self._predict_windows(self._check_x(windows, 3))

    def _check_x(self, X: npt.ArrayLike, ndim: int) -> FloatArray:
        arr = np.asarray(X, dtype=np.float64)
        shape_ok = arr.ndim == ndim and arr.shape[-1] == self.n_features_in_
        if ndim == 3:
            shape_ok = shape_ok and arr.shape[1] == self.lookback
        if not shape_ok:
            want = "(n, f)" if ndim == 2 else f"(batch, {self.lookback}, f)"
            raise ValueError(f"expected {want} with f = {self.n_features_in_}, got {arr.shape}")
        return arr

    @abc.abstractmethod
    def _predict_windows(self, windows: FloatArray) -> FloatArray:
        """``(batch, lookback, f)`` -> ``(batch,)`` float64 (input already checked)."""

    # --- artifact ------------------------------------------------------------------------------

    def save(self, path: Path) -> Path:
        """Write a self-contained artifact directory (replacing one already at ``path``).

        Contents: ``model.json``, the framework model (``framework_file``) and ``model.onnx``.
        Written to a temporary sibling first, so a crash never leaves a half-written artifact.

        Returns:
            ``path``.
        """
        check_is_fitted(self)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            self._save_framework(tmp / self.framework_file)
            onnx_model = self._to_onnx()
            (tmp / ONNX_FILE).write_bytes(onnx_model.SerializeToString())
            (tmp / INFO_FILE).write_text(_dump_json(self.info().to_json()))
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return path

    def info(self) -> ArtifactInfo:
        """The ``model.json`` content of this fitted model."""
        check_is_fitted(self)
        return ArtifactInfo(
            family=self.family,
            task=self.task,
            lookback=self.lookback,
            feature_names=tuple(self.feature_names_in_),
            params=self.get_params(),
            tolerance=self.tolerance,
            framework_file=self.framework_file,
            versions=_versions(("numpy", "onnx", "onnxruntime", *self.framework_packages)),
            state=self._state(),
        )

    def _state(self) -> dict[str, Any]:
        """Fitted scalars worth recording in model.json (and needed by ``load`` where not pickled)."""
        state: dict[str, Any] = {"n_features_in": self.n_features_in_}
        if self.task == "regressor":
            state |= {"y_mean": self.y_mean_, "y_scale": self.y_scale_}
        return state

    @abc.abstractmethod
    def _save_framework(self, path: Path) -> None:
        """Write the framework model to ``path``."""

    @abc.abstractmethod
    def _to_onnx(self) -> onnx.ModelProto:
        """The fast-path graph: ``windows`` float32 (batch, lookback, f) -> ``prediction`` (batch,)."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: Path, info: ArtifactInfo) -> Self:
        """Rebuild the fitted model from the artifact directory ``path`` (use ``load_model``)."""


def _versions(packages: Sequence[str]) -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _dump_json(doc: dict[str, Any]) -> str:
    import json

    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def wrap_onnx(
    model: onnx.ModelProto,
    *,
    n_features: int,
    lookback: int | None,
    output: str,
    column: int | None = None,
    affine: tuple[float, float] | None = None,
) -> onnx.ModelProto:
    """Give an exported graph the uniform fast-path interface.

    Args:
        model: the exported graph; its first input takes rows ``(batch, f)`` when ``lookback`` is
            None (tabular, it then gets the last row of each window) or windows otherwise.
        n_features: feature count.
        lookback: window length for sequence models; None for tabular models (any window length).
        output: the graph output holding the prediction (``(batch, k)``).
        column: column of ``output`` to return (1 = P(up) of a classifier); None: the only one.
        affine: ``(scale, offset)`` applied last (the regressor's target de-standardisation).

    Returns:
        The same graph with input ``windows`` and single output ``prediction`` (batch,) float32.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inner_input = graph.input[0].name
    init = graph.initializer
    pre: list[onnx.NodeProto] = []
    if lookback is None:
        init.append(numpy_helper.from_array(np.array(-1, dtype=np.int64), "mmops_last_row"))
        pre.append(helper.make_node("Gather", [ONNX_INPUT, "mmops_last_row"], [inner_input], axis=1))
    elif inner_input != ONNX_INPUT:
        pre.append(helper.make_node("Identity", [ONNX_INPUT], [inner_input]))
    post: list[onnx.NodeProto] = []
    if column is None:
        init.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), "mmops_flat"))
        post.append(helper.make_node("Reshape", [output, "mmops_flat"], ["mmops_pred"]))
    else:
        init.append(numpy_helper.from_array(np.array(column, dtype=np.int64), "mmops_column"))
        post.append(helper.make_node("Gather", [output, "mmops_column"], ["mmops_pred"], axis=1))
    last = "mmops_pred"
    if affine is not None:
        init.append(numpy_helper.from_array(np.array(affine[0], dtype=np.float32), "mmops_y_scale"))
        init.append(numpy_helper.from_array(np.array(affine[1], dtype=np.float32), "mmops_y_mean"))
        post.append(helper.make_node("Mul", [last, "mmops_y_scale"], ["mmops_scaled"]))
        post.append(helper.make_node("Add", ["mmops_scaled", "mmops_y_mean"], ["mmops_shifted"]))
        last = "mmops_shifted"
    post.append(helper.make_node("Identity", [last], [ONNX_OUTPUT]))

    nodes = [*pre, *graph.node, *post]
    del graph.node[:]
    graph.node.extend(nodes)
    time_dim: str | int = "time" if lookback is None else lookback
    del graph.input[:]
    graph.input.append(
        helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, ["batch", time_dim, n_features])
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, ["batch"]))
    onnx.checker.check_model(model)
    return model


class SklearnSignalModel(SignalModel):
    """Shared body of the tabular scikit-learn families: a Pipeline on the window's last row.

    Subclasses only build the Pipeline; fitting, target scaling, pickling and the skl2onnx export
    (zipmap off, so a classifier's probabilities are a plain tensor) live here.
    """

    framework_file: ClassVar[str] = "model.joblib"
    framework_packages: ClassVar[tuple[str, ...]] = ("scikit-learn", "skl2onnx", "joblib")

    @abc.abstractmethod
    def _pipeline(self) -> Any:
        """An unfitted ``sklearn.pipeline.Pipeline`` whose last step is named ``model``."""

    def _fit(self, X: FloatArray, y: FloatArray, val: tuple[FloatArray, FloatArray] | None) -> None:
        pipeline = self._pipeline()
        if self.task == "classifier":
            pipeline.fit(X, y.astype(np.int64))
        else:
            pipeline.fit(X, self._target_scaler(y))
        self.pipeline_ = pipeline

    def _predict_windows(self, windows: FloatArray) -> FloatArray:
        rows = windows[:, -1, :]
        if self.task == "classifier":
            proba = self.pipeline_.predict_proba(rows)
            return cast(FloatArray, proba[:, list(self.pipeline_.classes_).index(1)].astype(np.float64))
        return self._unscale(np.asarray(self.pipeline_.predict(rows), dtype=np.float64))

    def _save_framework(self, path: Path) -> None:
        import joblib

        joblib.dump(self, path)

    @classmethod
    def load(cls, path: Path, info: ArtifactInfo) -> Self:
        import joblib

        from features.errors import DataError

        file = path / info.framework_file
        try:
            model = joblib.load(file)
        except Exception as exc:  # unpickling raises anything from EOFError to ModuleNotFoundError
            raise DataError(f"model artifact {file} could not be unpickled: {exc!r}") from exc
        if not isinstance(model, cls):
            raise DataError(f"model artifact {file} holds a {type(model).__name__}, expected {cls.__name__}")
        return model

    def _to_onnx(self) -> onnx.ModelProto:
        from skl2onnx import to_onnx

        sample = np.zeros((1, self.n_features_in_), dtype=np.float32)
        options = {id(self.pipeline_.steps[-1][1]): {"zipmap": False}} if self.task == "classifier" else None
        exported = to_onnx(self.pipeline_, sample, options=options, target_opset={"": 17, "ai.onnx.ml": 3})
        outputs = [o.name for o in exported.graph.output]
        if self.task == "classifier":
            return wrap_onnx(
                exported,
                n_features=self.n_features_in_,
                lookback=None,
                output=outputs[1],  # (label, probabilities)
                column=list(self.pipeline_.classes_).index(1),
            )
        return wrap_onnx(
            exported,
            n_features=self.n_features_in_,
            lookback=None,
            output=outputs[0],
            affine=(self.y_scale_, self.y_mean_),
        )
