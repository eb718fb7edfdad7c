"""Model artifacts on disk and the fast inference path that serving and the evaluator use.

An artifact is a directory written by :meth:`training.models.base.SignalModel.save`:

* ``model.json``: family, task, lookback, feature names, constructor params, package versions
  and the fast-path tolerance (the largest absolute difference allowed between the ONNX output
  and the framework's own prediction, in output units: probability for classifiers, forward log
  return for regressors);
* the framework model (``model.joblib`` for scikit-learn, ``model.keras`` for Keras);
* ``model.onnx``: the fast path, preprocessing and target scaling included. Its one input is
  ``windows``, float32 ``(batch, lookback, n_features)``; its one output is ``prediction``,
  float32 ``(batch,)``. Tabular models (lookback 1) read the last row of whatever window they get.

This module imports only numpy and onnxruntime at import time, so a serving process never pays
for TensorFlow or scikit-learn; :func:`load_model` imports the family lazily.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import numpy.typing as npt

from features.errors import DataError, OperationalError

if TYPE_CHECKING:
    import onnxruntime as ort

    from training.models.base import SignalModel

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
INFO_FILE = "model.json"
ONNX_FILE = "model.onnx"
ONNX_INPUT = "windows"
ONNX_OUTPUT = "prediction"
FAMILIES = ("rf", "sgd", "lstm")
TASKS = ("classifier", "regressor")
# Windows per ONNX call in predict_frame: bounds memory (batch * lookback * features float32).
FRAME_CHUNK = 4096
# Input bytes per ONNX call in Predictor.predict (at most; a batch is split into equal calls). A
# recurrent model walks its whole batch once per timestep, so a batch far larger than the core's
# cache re-reads memory every step: LSTM windows of 32 x 67 run at 0.94x the windows/s of 0.5 MiB
# calls at 8 MiB, 0.89x at 16 and 0.79x at 32, against 1.02-1.06x at 1-4 MiB (bench/predict_call.py).
# What decides between 1 and 4 MiB is the GIL: each call gives it up and takes it back, and the
# service's event loop holds it for stretches; a 512-window request beside a thread holding it
# 1 ms of every 2.5 kept 0.66 of its rate in 1 MiB calls (5), 0.96-1.02 in 4 MiB ones (2).
# Tabular windows are one row, so this splits only batches of tens of thousands there.
CALL_BYTES = 4 << 20


@dataclass(frozen=True)
class ArtifactInfo:
    """What ``model.json`` says about an artifact (enough to build its inputs without loading it)."""

    family: str
    task: Literal["classifier", "regressor"]
    lookback: int
    feature_names: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)
    tolerance: float = 0.0
    framework_file: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def to_json(self) -> dict[str, Any]:
        """The ``model.json`` document (with the format version)."""
        return {
            "format_version": FORMAT_VERSION,
            "family": self.family,
            "task": self.task,
            "lookback": self.lookback,
            "feature_names": list(self.feature_names),
            "params": self.params,
            "tolerance": self.tolerance,
            "framework_file": self.framework_file,
            "fast_path": {"file": ONNX_FILE, "input": ONNX_INPUT, "output": ONNX_OUTPUT},
            "versions": self.versions,
            "state": self.state,
        }


def read_info(path: Path) -> ArtifactInfo:
    """Read and check ``model.json`` of the artifact directory ``path``.

    Raises:
        DataError: the directory or ``model.json`` is missing, unreadable or incomplete.
    """
    path = Path(path)
    info_path = path / INFO_FILE
    if not path.is_dir():
        raise DataError(f"model artifact {path} does not exist or is not a directory")
    try:
        doc = json.loads(info_path.read_text())
    except FileNotFoundError:
        raise DataError(f"model artifact {path} has no {INFO_FILE}; was it written by save()?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"model artifact {info_path} is not readable JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise DataError(f"model artifact {info_path}: expected a JSON object, got {type(doc).__name__}")
    try:
        info = ArtifactInfo(
            family=str(doc["family"]),
            task=doc["task"],
            lookback=int(doc["lookback"]),
            feature_names=tuple(str(n) for n in doc["feature_names"]),
            params=dict(doc["params"]),
            tolerance=float(doc["tolerance"]),
            framework_file=str(doc["framework_file"]),
            versions=dict(doc.get("versions", {})),
            state=dict(doc.get("state", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"model artifact {info_path} is missing or has a bad field: {exc!r}") from exc
    if doc.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"model artifact {info_path} has format_version {doc.get('format_version')!r}, "
            f"this code reads {FORMAT_VERSION}; re-train or upgrade mmops"
        )
    if info.family not in FAMILIES or info.task not in TASKS or info.lookback < 1 or not info.n_features:
        raise DataError(
            f"model artifact {info_path}: family {info.family!r} (one of {FAMILIES}), task "
            f"{info.task!r} (one of {TASKS}), lookback {info.lookback} (>= 1) and "
            f"{info.n_features} feature names (>= 1) are not all valid"
        )
    return info


def sliding_windows(X: npt.NDArray[Any], lookback: int) -> npt.NDArray[Any]:
    """``(n, f)`` rows -> ``(n - lookback + 1, lookback, f)`` windows, a view (no copy).

    Window ``i`` holds rows ``i .. i + lookback - 1``, so it predicts for row ``i + lookback - 1``.
    """
    view = np.lib.stride_tricks.sliding_window_view(X, lookback, axis=0)  # (m, f, lookback)
    return view.transpose(0, 2, 1)


def iter_even_chunks(n: int, most: int) -> Iterator[slice]:
    """As few consecutive slices of at most ``most`` covering ``range(n)`` as can be, their sizes
    at most 1 apart (513 at 489 -> 257 + 256; 4096 at 489 -> 9 of 455-456)."""
    calls = max(1, math.ceil(n / most))
    size, extra = divmod(n, calls)
    start = 0
    for i in range(calls):
        stop = start + size + (i < extra)
        yield slice(start, stop)
        start = stop


def iter_chunks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering ``range(n)``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class ProviderChoice:
    """The ONNX Runtime execution providers a session asks for, the device they mean, and why.

    ``providers`` is what is asked for; the session may still end up on the CPU (a CUDA build on a
    machine without a usable GPU falls back), so what runs is :attr:`Predictor.provider`.
    """

    providers: tuple[str, ...]
    device: Literal["cpu", "cuda"]
    reason: str


def choose_providers(device: Device, available: Sequence[str], *, cuda_starts: bool) -> ProviderChoice:
    """The providers for ``device``, given what this onnxruntime build offers and whether CUDA starts.

    Args:
        device: ``serve.device``: ``auto`` (CUDA when it starts, else CPU), ``cpu`` or ``cuda``.
        available: ``onnxruntime.get_available_providers()`` (what the build has, not what works).
        cuda_starts: a session on the CUDA provider opened on this machine (see :func:`cuda_starts`);
            the GPU build lists CUDA on a machine without a GPU too.

    Raises:
        OperationalError: ``cuda`` was asked for and this build has no CUDA provider, or it does
            not start here.
    """
    offered = ", ".join(available) or "none"
    if device == "cpu":
        return ProviderChoice((CPU_PROVIDER,), "cpu", "serve.device is cpu: models run on the CPU")
    if CUDA_PROVIDER not in available:
        why = f"this onnxruntime offers no {CUDA_PROVIDER} (it offers {offered})"
        fix = "on a machine with an NVIDIA GPU install the GPU variant (make install GPU=1)"
    elif not cuda_starts:
        why = f"this onnxruntime has {CUDA_PROVIDER} but it does not start here"
        fix = "it needs an NVIDIA GPU, its driver (CUDA 13: driver 580 or later) and the GPU variant's libraries"
    else:
        return ProviderChoice(
            (CUDA_PROVIDER, CPU_PROVIDER),
            "cuda",
            f"serve.device is {device}: models run on {CUDA_PROVIDER} (nodes it lacks on the CPU)",
        )
    if device == "cuda":
        raise OperationalError(
            f"serve.device is cuda but {why}; {fix}, or set serve.device to auto or cpu in params.yaml"
        )
    return ProviderChoice((CPU_PROVIDER,), "cpu", f"serve.device is auto and {why}: models run on the CPU")


@functools.cache
def _load_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries of the nvidia-* wheels (the GPU variant) before the CUDA
    provider needs them: without it onnxruntime looks only on the system's library path."""
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)  # onnxruntime-gpu 1.21+
    if preload is not None:
        preload()


def cuda_starts() -> bool:
    """Whether an ONNX Runtime session on the CUDA provider opens on this machine (a one-node probe).

    The GPU build falls back to the CPU, with an error on stderr, when there is no GPU or driver;
    the probe is quiet and says only whether the session kept CUDA.
    """
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    if CUDA_PROVIDER not in ort.get_available_providers():
        return False
    _load_cuda_libraries()
    value = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1]) for name in ("x", "y")]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", value[:1], value[1:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.log_severity_level = 4  # the fallback's error lines: the caller says it in one line
    ort.set_default_logger_severity(4)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a build without CUDA warns that it was asked for
            session = ort.InferenceSession(
                model.SerializeToString(), options, providers=[CUDA_PROVIDER, CPU_PROVIDER]
            )
    except Exception:  # onnxruntime's own untyped errors: CUDA does not start
        return False
    finally:
        ort.set_default_logger_severity(2)
    return CUDA_PROVIDER in session.get_providers()


def select_providers(device: Device) -> ProviderChoice:
    """:func:`choose_providers` on this machine: the installed build, and the CUDA probe when it counts.

    Raises:
        OperationalError: ``cuda`` was asked for and does not start here.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    probe = device != "cpu" and CUDA_PROVIDER in available
    return choose_providers(device, available, cuda_starts=cuda_starts() if probe else False)


def default_providers() -> list[str]:
    """CUDA first where it starts on this machine, else CPU (``serve.device: auto``)."""
    return list(select_providers("auto").providers)


class Predictor:
    """The exported model behind one ONNX Runtime session: the fast path for serving.

    Keeps the session and the artifact's :class:`ArtifactInfo`; the output equals the framework's
    ``SignalModel.predict_windows`` within ``info.tolerance`` (checked in the unit tests).
    """

    def __init__(self, session: ort.InferenceSession, info: ArtifactInfo, path: Path) -> None:
        self.session = session
        self.info = info
        self.path = path
        self._input = session.get_inputs()[0].name
        # what the session runs on: a CUDA build that could not start its provider falls back to CPU
        self.provider: str = session.get_providers()[0]
        self.device: Literal["cpu", "cuda"] = "cuda" if self.provider == CUDA_PROVIDER else "cpu"
        # CALL_BYTES is a CPU cache bound; on the GPU the whole batch goes in one call (the
        # micro-batcher's serve.gpu_max_batch_windows bounds it)
        self._split = self.device == "cpu"

    def predict(self, windows: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """Predict one value per window.

        Args:
            windows: ``(batch, lookback, n_features)`` feature rows in time order, last row = now.
                Cast to float32 when it is not already.

        Returns:
            ``(batch,)`` float32: P(up) for a classifier, forward log return for a regressor.

        Raises:
            ValueError: wrong rank or shape.
        """
        windows = np.asarray(windows)
        lookback, n_features = self.info.lookback, self.info.n_features
        if windows.ndim != 3 or windows.shape[2] != n_features or windows.shape[1] < lookback:
            raise ValueError(
                f"expected windows of shape (batch, {lookback}, {n_features}) for {self.path}, "
                f"got {windows.shape}"
            )
        if windows.shape[1] != lookback:
            windows = windows[:, -lookback:, :]
        per_call = max(1, CALL_BYTES // (4 * lookback * n_features)) if self._split else len(windows)
        if len(windows) <= per_call:
            return self._run(windows)
        out = np.empty(len(windows), dtype=np.float32)
        for chunk in iter_even_chunks(len(windows), per_call):
            out[chunk] = self._run(windows[chunk])
        return out

    def _run(self, windows: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        feed = np.ascontiguousarray(windows, dtype=np.float32)  # a view when it already is
        out = self.session.run(None, {self._input: feed})[0]
        return cast(npt.NDArray[np.float32], out)

    def predict_frame(self, X: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Predict for every row of a time-ordered frame, like ``SignalModel.predict``.

        Args:
            X: ``(n, n_features)`` rows in time order.

        Returns:
            ``(n,)`` float64, NaN for the first ``lookback - 1`` rows (not enough history).
        """
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.info.n_features:
            raise ValueError(f"expected X of shape (n, {self.info.n_features}), got {X.shape}")
        lookback = self.info.lookback
        out = np.full(len(X), np.nan)
        if len(X) < lookback:
            return out
        windows = sliding_windows(X.astype(np.float32, copy=False), lookback)
        for chunk in iter_chunks(len(windows), FRAME_CHUNK):
            out[lookback - 1 + chunk.start : lookback - 1 + chunk.stop] = self.predict(windows[chunk])
        return out


def load_predictor(
    path: Path, *, providers: Sequence[str] | None = None, intra_op_threads: int = 1
) -> Predictor:
    """Open the fast path of the artifact at ``path``.

    Args:
        path: artifact directory.
        providers: ONNX Runtime execution providers; default CUDA first when available, else CPU.
        intra_op_threads: threads per operator. 1 gives the lowest single-row latency (no
            thread hand-off) and leaves cores to other requests; raise it for large batches.

    Raises:
        DataError: missing or corrupt artifact.
    """
    import onnxruntime as ort

    path = Path(path)
    info = read_info(path)
    onnx_path = path / ONNX_FILE
    if not onnx_path.is_file():
        raise DataError(f"model artifact {path} has no {ONNX_FILE} (the fast path); re-save the model")
    chosen = list(providers or default_providers())
    if CUDA_PROVIDER in chosen:
        _load_cuda_libraries()
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(str(onnx_path), options, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
        raise DataError(f"model artifact {onnx_path} could not be loaded by onnxruntime: {exc}") from exc
    shape = session.get_inputs()[0].shape
    if len(shape) != 3 or shape[2] != info.n_features:
        raise DataError(
            f"model artifact {onnx_path} takes input shape {shape}, but {INFO_FILE} says "
            f"{info.n_features} features; the files do not belong together"
        )
    return Predictor(session, info, path)


def load_model(path: Path) -> SignalModel:
    """Load the framework model (scikit-learn or Keras) of the artifact at ``path``.

    Raises:
        DataError: missing or corrupt artifact.
    """
    from training.models import model_class

    path = Path(path)
    info = read_info(path)
    framework_path = path / info.framework_file
    if not framework_path.is_file():
        raise DataError(f"model artifact {path} has no {info.framework_file} (the framework model)")
    return model_class(info.family).load(path, info)
