"""LSTM over the last ``lookback`` feature rows (Keras 3 on TensorFlow, imported on first use).

Training windows are strided views of the feature array (``sliding_window_view``); a
``keras.utils.PyDataset`` gathers one shuffled batch at a time, so memory stays at one copy of
``X`` plus one batch, never ``n * lookback`` rows. Feature standardisation (mean/std of the
training rows) is a layer of the model, and so is the regressor's target de-standardisation, so
the saved ``.keras`` file and the exported ONNX graph both map raw features to final outputs.

Keras' own ``Normalization`` layer is not used: it keeps its adapted mean/variance as plain
tensors, which tf2onnx turns into extra graph inputs; the small ``Standardize`` layer below
keeps them as (non-trainable) weights, which export as constants.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from features.errors import DataError
from training.artifact import ArtifactInfo, sliding_windows
from training.models.base import FloatArray, SignalModel, Task, wrap_onnx

if TYPE_CHECKING:
    import onnx

# Windows per Keras predict call: large batches amortise Keras' per-call overhead.
PREDICT_BATCH = 4096


_TF_IMPORT_LOCK = threading.Lock()


@functools.cache
def _import_tensorflow() -> None:
    """Import TensorFlow once; in quiet mode (``TF_CPP_MIN_LOG_LEVEL=3``, the CLI's default) with its
    C++ start-up lines dropped as well. Since TF 2.19 the CUDA probe ("Could not find cuda drivers")
    logs through absl before TensorFlow reads that variable (tensorflow/tensorflow#100442), so the
    only way to keep it off a person's screen is to hold stderr during the import."""
    with _TF_IMPORT_LOCK:
        if os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "3" or "tensorflow" in sys.modules:
            import tensorflow  # noqa: F401

            return
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as held:
            try:
                os.dup2(held.fileno(), 2)
                import tensorflow  # noqa: F401
            except BaseException:
                os.dup2(saved, 2)
                held.seek(0)
                sys.stderr.write(held.read().decode(errors="replace"))  # a failed import shows all it said
                raise
            finally:
                os.dup2(saved, 2)
                os.close(saved)

@functools.cache
def _keras_classes() -> tuple[Any, Any]:
    """Import Keras and define (once) the custom layer and the window dataset."""
    _import_tensorflow()
    import keras

    @keras.saving.register_keras_serializable(package="mmops", name="Standardize")
    class Standardize(keras.layers.Layer):
        """``(x - mean) / std`` per feature, with mean/std as frozen weights set after build."""

        def build(self, input_shape: tuple[int | None, ...]) -> None:
            n = input_shape[-1]
            self.mean = self.add_weight(shape=(n,), initializer="zeros", trainable=False, name="mean")
            self.std = self.add_weight(shape=(n,), initializer="ones", trainable=False, name="std")

        def call(self, inputs: Any) -> Any:
            return (inputs - self.mean) / self.std

    class Windows(keras.utils.PyDataset):
        """Batches of ``(windows[idx], target[idx])``; reshuffled each epoch when seeded."""

        def __init__(self, windows: Any, target: Any, batch_size: int, seed: int | None) -> None:
            super().__init__()
            self.windows, self.target, self.batch_size = windows, target, batch_size
            self.order = np.arange(len(windows))
            self.rng = None if seed is None else np.random.default_rng(seed)
            self.on_epoch_end()

        def __len__(self) -> int:
            return math.ceil(len(self.order) / self.batch_size)

        def __getitem__(self, i: int) -> tuple[Any, Any]:
            idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
            return self.windows[idx], self.target[idx]

        def on_epoch_end(self) -> None:
            if self.rng is not None:
                self.rng.shuffle(self.order)

    return Standardize, Windows


class LSTMModel(SignalModel):
    """One LSTM layer + dropout + a dense head: sigmoid P(up) or the forward log return.

    Args:
        task: "classifier" or "regressor".
        random_state: seed for weights, dropout and batch order (``keras.utils.set_random_seed``).
        lookback: rows per window.
        units: LSTM units.
        dropout: dropout rate after the LSTM.
        learning_rate: Adam learning rate.
        epochs: epochs at most.
        batch_size: windows per gradient step.
        patience: epochs without validation improvement before stopping (needs ``X_val``).
    """

    family: ClassVar[str] = "lstm"
    framework_file: ClassVar[str] = "model.keras"
    framework_packages: ClassVar[tuple[str, ...]] = ("tensorflow", "keras", "tf2onnx")

    def __init__(
        self,
        task: Task = "regressor",
        *,
        random_state: int = 0,
        lookback: int = 32,
        units: int = 32,
        dropout: float = 0.1,
        learning_rate: float = 1e-3,
        epochs: int = 20,
        batch_size: int = 256,
        patience: int = 3,
    ) -> None:
        self.task = task
        self.random_state = random_state
        self.lookback = lookback
        self.units = units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience

    @classmethod
    def compute_device(cls) -> str:
        """Whether TensorFlow sees a GPU here (it trains on the first one when it does)."""
        _import_tensorflow()
        import tensorflow as tf

        gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
        if gpus:
            return f"lstm trains on the GPU: TensorFlow {tf.__version__} sees {len(gpus)} ({', '.join(gpus)})"
        return (
            f"lstm trains on the CPU: TensorFlow {tf.__version__} sees no GPU (a GPU needs an NVIDIA "
            "device, its driver and the GPU variant: make install GPU=1)"
        )

    @property
    def lookback(self) -> int:
        """Rows per window (a constructor parameter here)."""
        return self._lookback

    @lookback.setter
    def lookback(self, value: int) -> None:
        self._lookback = value

    def _fit(self, X: FloatArray, y: FloatArray, val: tuple[FloatArray, FloatArray] | None) -> None:
        _, windows_cls = _keras_classes()  # imports TensorFlow first (quietly)
        import keras
        import tensorflow as tf

        if self.lookback < 1:
            raise ValueError(f"lookback must be >= 1, got {self.lookback}")
        # Global seeds and deterministic kernels: same seed + data -> same weights.
        keras.utils.set_random_seed(self.random_state)
        tf.config.experimental.enable_op_determinism()
        target = y[self.lookback - 1 :]
        if self.task == "regressor":
            target = self._target_scaler(target)
        train = windows_cls(self._windows(X), target.astype(np.float32), self.batch_size, self.random_state)
        val_data, callbacks = None, []
        if val is not None:
            val_target = self._scale_target(val[1][self.lookback - 1 :])
            val_data = windows_cls(
                self._windows(val[0]), val_target.astype(np.float32), self.batch_size, None
            )
            callbacks = [
                keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=self.patience, restore_best_weights=True
                )
            ]
        core = self._build(X)
        history = core.fit(
            train, validation_data=val_data, epochs=self.epochs, callbacks=callbacks, verbose=0
        )
        self.epochs_run_ = len(history.history["loss"])
        if self.task == "regressor":
            scaled = keras.layers.Rescaling(scale=self.y_scale_, offset=self.y_mean_, name="target_scale")
            self.model_ = keras.Model(core.inputs, scaled(core.outputs[0]), name="lstm_signal")
        else:
            self.model_ = core

    def _windows(self, X: npt.NDArray[Any]) -> Any:
        # One float32 copy of X at most (none when it already is float32); windows are views of it.
        return sliding_windows(np.asarray(X, dtype=np.float32), self.lookback)

    def _scale_target(self, y: FloatArray) -> FloatArray:
        if self.task == "classifier":
            return y
        return (y - self.y_mean_) / self.y_scale_

    def _build(self, X: FloatArray) -> Any:
        standardize_cls, _ = _keras_classes()
        import keras

        n_features = X.shape[1]
        inputs = keras.Input((self.lookback, n_features), dtype="float32", name="windows")
        standardize = standardize_cls(name="standardize")
        hidden = keras.layers.LSTM(self.units, name="lstm")(standardize(inputs))
        hidden = keras.layers.Dropout(self.dropout, name="dropout")(hidden)
        classifier = self.task == "classifier"
        out = keras.layers.Dense(1, activation="sigmoid" if classifier else None, name="head")(hidden)
        core = keras.Model(inputs, out, name="lstm_core")
        std = X.std(axis=0)
        standardize.set_weights(
            [X.mean(axis=0).astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)]
        )
        core.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss="binary_crossentropy" if classifier else "mean_squared_error",
        )
        return core

    def _predict_windows(self, windows: FloatArray) -> FloatArray:
        batch = windows.astype(np.float32)
        out = self.model_.predict(batch, batch_size=min(len(batch), PREDICT_BATCH) or 1, verbose=0)
        return np.asarray(out[:, 0], dtype=np.float64)

    def _state(self) -> dict[str, Any]:
        return super()._state() | {"epochs_run": self.epochs_run_}

    def _save_framework(self, path: Path) -> None:
        self.model_.save(path)

    @classmethod
    def load(cls, path: Path, info: ArtifactInfo) -> Self:
        _keras_classes()  # registers the custom layer (and imports TensorFlow quietly)
        import keras

        file = path / info.framework_file
        model = cls(**info.params)
        try:
            model.model_ = keras.saving.load_model(file)
        except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors...
            raise DataError(f"model artifact {file} could not be loaded by Keras: {exc!r}") from exc
        model.n_features_in_ = info.n_features
        model.feature_names_in_ = info.feature_names
        model.epochs_run_ = int(info.state["epochs_run"])
        if info.task == "regressor":
            model.y_mean_ = float(info.state["y_mean"])
            model.y_scale_ = float(info.state["y_scale"])
        return model

    def _to_onnx(self) -> onnx.ModelProto:
        import onnx
        import tensorflow as tf

        signature = [tf.TensorSpec((None, self.lookback, self.n_features_in_), tf.float32, name="windows")]
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            target = Path(tmp) / "model.onnx"
            self.model_.export(str(target), format="onnx", verbose=False, input_signature=signature)
            exported = onnx.load(str(target))
        return wrap_onnx(
            exported,
            n_features=self.n_features_in_,
            lookback=self.lookback,
            output=exported.graph.output[0].name,
        )
