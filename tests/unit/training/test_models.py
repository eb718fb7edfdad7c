"""Model zoo: the scikit-learn contract, artifacts, and the fast path equal to the framework.

Tiny data (3,000 rows x 10 features, a weak linear signal) and a tiny LSTM keep the file fast;
each family x task is fitted and saved once per module.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import summation_order_atol
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from features.errors import DataError
from training.artifact import load_model, load_predictor, read_info, sliding_windows
from training.models import FAMILIES, SignalModel, make_model
from training.models.base import CLASSIFIER_TOLERANCE, REGRESSOR_TOLERANCE_STD

REPO = Path(__file__).resolve().parents[3]
N_ROWS, N_FEATURES, N_TRAIN, N_VAL = 3000, 10, 2000, 500
SMALL: dict[str, dict[str, Any]] = {
    "rf": {"n_estimators": 30, "max_depth": 8},
    "sgd": {},
    "lstm": {"lookback": 16, "units": 8, "epochs": 2, "batch_size": 128},
}
CASES = [(family, task) for family in FAMILIES for task in ("classifier", "regressor")]


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.standard_normal((N_ROWS, N_FEATURES)) * rng.uniform(0.5, 50, N_FEATURES) + 3.0
    signal = X[:, 0] / X[:, 0].std() - 0.5 * np.roll(X[:, 1], 3) / X[:, 1].std()
    returns = 1e-3 * (0.4 * signal + rng.standard_normal(N_ROWS))  # forward log returns, ~1e-3
    return {"X": X, "regressor": returns, "classifier": (returns > 0).astype(np.float64)}


def batch_order_atol(model: SignalModel, data: dict[str, np.ndarray]) -> float:
    """The LSTM runs in float32 through ``lookback`` recurrent steps, each summing the features and
    the hidden units; RF and SGD are float64 sums over the features."""
    scale = float(np.std(data["regressor"])) if model.task == "regressor" else 1.0
    if model.family == "lstm":
        depth = model.lookback * (N_FEATURES + int(model.get_params()["units"]))
        return summation_order_atol(depth=depth, scale=scale, dtype=np.float32)
    return summation_order_atol(depth=N_FEATURES, scale=scale, dtype=np.float64)


def fit_small(family: str, task: str, data: dict[str, np.ndarray], **params: Any) -> SignalModel:
    y = data[task]
    model = make_model(family, task, random_state=3, **(SMALL[family] | params))  # type: ignore[arg-type]
    tr, va = slice(0, N_TRAIN), slice(N_TRAIN, N_TRAIN + N_VAL)
    names = [f"f{i}" for i in range(N_FEATURES)]
    return model.fit(data["X"][tr], y[tr], X_val=data["X"][va], y_val=y[va], feature_names=names)


@pytest.fixture(scope="module")
def fitted(
    request: pytest.FixtureRequest, data: dict[str, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> tuple[SignalModel, Path]:
    family, task = request.param
    model = fit_small(family, task, data)
    return model, model.save(tmp_path_factory.mktemp("artifacts") / f"{family}-{task}")


def test_windows(data: dict[str, np.ndarray]) -> None:
    X32 = data["X"][:100].astype(np.float32)
    windows = sliding_windows(X32, 16)
    assert windows.shape == (85, 16, N_FEATURES)
    assert np.shares_memory(windows, X32)  # a strided view, not a copy per sample
    np.testing.assert_array_equal(windows[40], X32[40:56])


@pytest.mark.parametrize("fitted", CASES, indirect=True, ids=[f"{f}-{t}" for f, t in CASES])
def test_fast_path_equals_framework(fitted: tuple[SignalModel, Path], data: dict[str, np.ndarray]) -> None:
    model, path = fitted
    predictor = load_predictor(path)
    info = read_info(path)
    expected_tol = (
        CLASSIFIER_TOLERANCE
        if model.task == "classifier"
        else REGRESSOR_TOLERANCE_STD * float(np.std(data["regressor"][model.lookback - 1 : N_TRAIN]))
    )
    assert info.tolerance == pytest.approx(expected_tol)
    X_test = data["X"][N_TRAIN + N_VAL :]
    windows = sliding_windows(X_test.astype(np.float32), model.lookback)
    framework = model.predict_windows(windows)
    fast = predictor.predict(windows)
    assert fast.shape == framework.shape == (len(X_test) - model.lookback + 1,)
    assert np.std(framework) > 0  # a constant model would make the comparison vacuous
    assert np.max(np.abs(fast - framework)) <= info.tolerance
    # Frame semantics, float64 input: NaN warm-up in the same places, values within tolerance.
    by_row, fast_by_row = model.predict(X_test), predictor.predict_frame(X_test)
    np.testing.assert_array_equal(np.isnan(by_row), np.isnan(fast_by_row))
    assert np.nanmax(np.abs(by_row - fast_by_row)) <= info.tolerance


@pytest.mark.parametrize("fitted", CASES, indirect=True, ids=[f"{f}-{t}" for f, t in CASES])
def test_save_load_same_predictions(fitted: tuple[SignalModel, Path], data: dict[str, np.ndarray]) -> None:
    model, path = fitted
    loaded = load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict(data["X"][-300:]), model.predict(data["X"][-300:]))
    info = read_info(path)
    assert (info.family, info.task, info.lookback) == (model.family, model.task, model.lookback)
    assert info.feature_names == tuple(f"f{i}" for i in range(N_FEATURES))
    assert info.params == model.get_params()
    assert {"numpy", "onnxruntime", "python"} <= set(info.versions)
    assert sorted(p.name for p in path.iterdir()) == sorted(
        ["model.json", "model.onnx", model.framework_file]
    )


@pytest.mark.parametrize("fitted", CASES, indirect=True, ids=[f"{f}-{t}" for f, t in CASES])
def test_predict_semantics(fitted: tuple[SignalModel, Path], data: dict[str, np.ndarray]) -> None:
    model, _ = fitted
    lookback, X = model.lookback, data["X"][-200:]
    pred = model.predict(X)
    assert pred.shape == (200,) and pred.dtype == np.float64
    assert np.isnan(pred[: lookback - 1]).all() and np.isfinite(pred[lookback - 1 :]).all()
    if model.task == "classifier":
        assert ((pred[lookback - 1 :] >= 0) & (pred[lookback - 1 :] <= 1)).all()
    # Row i's prediction uses rows i - lookback + 1 .. i: prepending context gives the same value,
    # up to the round-off of another batch size (a different summation order in BLAS/oneDNN).
    np.testing.assert_allclose(
        model.predict(X[-lookback:])[-1], pred[-1], rtol=0, atol=batch_order_atol(model, data)
    )
    assert np.isnan(model.predict(X[: lookback - 1])).all()


def test_tabular_predictor_reads_last_row_of_longer_windows(
    data: dict[str, np.ndarray], tmp_path: Path
) -> None:
    model = fit_small("sgd", "regressor", data)
    predictor = load_predictor(model.save(tmp_path / "sgd"))
    windows = sliding_windows(data["X"][-50:].astype(np.float32), 8)
    np.testing.assert_allclose(
        predictor.predict(windows), predictor.predict(windows[:, -1:, :]), rtol=0, atol=model.tolerance
    )
    with pytest.raises(ValueError, match=r"expected windows of shape \(batch, 1, 10\)"):
        predictor.predict(windows[:, :, :5])


def test_predictor_splits_large_batches_without_changing_outputs(
    data: dict[str, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.artifact as artifact

    model = fit_small("lstm", "regressor", data)
    predictor = load_predictor(model.save(tmp_path / "lstm"))
    windows = sliding_windows(data["X"][-300:].astype(np.float32), model.lookback)
    whole = predictor.session.run(None, {"windows": windows.copy()})[0]
    calls: list[int] = []
    run = predictor.session.run
    monkeypatch.setattr(artifact, "CALL_BYTES", 4 * model.lookback * N_FEATURES * 64)  # 64 windows a call
    monkeypatch.setattr(
        predictor.session, "run", lambda out, feed: calls.append(len(feed["windows"])) or run(out, feed)
    )
    for n in (len(windows), len(windows) - 7, 65, 64):  # counts that 64 divides and does not
        calls.clear()
        np.testing.assert_array_equal(predictor.predict(windows[:n]), whole[:n])
        # as few calls of at most 64 as can be, equal to a window: no short last call
        assert len(calls) == -(-n // 64) and sum(calls) == n and max(calls) - min(calls) <= 1, (n, calls)
        assert max(calls) <= 64


def test_even_chunks_cover_the_range_in_the_fewest_calls_at_most_one_apart() -> None:
    from training.artifact import iter_even_chunks

    for n in range(1, 400):
        for most in (1, 2, 3, 7, 64, 489):
            chunks = list(iter_even_chunks(n, most))
            sizes = [c.stop - c.start for c in chunks]
            assert chunks[0].start == 0 and chunks[-1].stop == n, (n, most)
            assert all(a.stop == b.start for a, b in itertools.pairwise(chunks)), (n, most)
            assert len(chunks) == -(-n // most) and max(sizes) <= most and max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("family", FAMILIES)
def test_predict_before_fit_raises_not_fitted(family: str, tmp_path: Path) -> None:
    model = make_model(family, "classifier")
    with pytest.raises(NotFittedError):
        model.predict(np.zeros((40, 3)))
    with pytest.raises(NotFittedError):
        model.predict_windows(np.zeros((2, model.lookback, 3)))
    with pytest.raises(NotFittedError):
        model.save(tmp_path / "never")


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_predictions(family: str, data: dict[str, np.ndarray]) -> None:
    unfitted = make_model(family, "regressor", random_state=3, **SMALL[family])
    X_train, y_train, X = data["X"][:N_TRAIN], data["regressor"][:N_TRAIN], data["X"][-300:]
    first = clone(unfitted).fit(X_train, y_train).predict(X)
    again = clone(unfitted).fit(X_train, y_train).predict(X)
    np.testing.assert_array_equal(first, again)  # bit-identical, LSTM included (deterministic ops)
    other_seed = clone(unfitted).set_params(random_state=4).fit(X_train, y_train).predict(X)
    assert not np.array_equal(other_seed, first, equal_nan=True)


def test_lstm_trains_on_views_and_stops_early(data: dict[str, np.ndarray]) -> None:
    from training.models.lstm import _keras_classes

    model = make_model("lstm", "regressor", lookback=8)
    X32 = data["X"][:64].astype(np.float32)
    windows = model._windows(X32)
    assert np.shares_memory(windows, X32)
    dataset = _keras_classes()[1](windows, np.arange(len(windows), dtype=np.float32), 16, 0)
    batch_x, batch_y = dataset[0]
    assert batch_x.shape == (16, 8, N_FEATURES)
    np.testing.assert_array_equal(batch_x, windows[batch_y.astype(int)])  # shuffled, yet aligned

    # Pure-noise target and a large step: validation loss rises at once, so training stops early.
    noise = np.random.default_rng(0).standard_normal(N_ROWS) * 1e-3
    stopped = make_model("lstm", "regressor", lookback=8, units=16, epochs=12, patience=1, learning_rate=0.05)
    stopped.fit(data["X"][:1000], noise[:1000], X_val=data["X"][1000:1500], y_val=noise[1000:1500])
    assert stopped.epochs_run_ < 12


def test_corrupt_or_missing_artifacts_raise_data_error(data: dict[str, np.ndarray], tmp_path: Path) -> None:
    good = fit_small("rf", "classifier", data).save(tmp_path / "good")

    with pytest.raises(DataError, match="does not exist"):
        load_predictor(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"has no model\.json"):
        load_predictor(tmp_path / "empty")

    def broken(name: str, file: str, content: bytes) -> Path:
        path = Path(shutil.copytree(good, tmp_path / name))
        (path / file).write_bytes(content)
        return path

    with pytest.raises(DataError, match="not readable JSON"):
        read_info(broken("json", "model.json", b"{not json"))
    doc = json.loads((good / "model.json").read_text())
    with pytest.raises(DataError, match="format_version"):
        read_info(broken("version", "model.json", json.dumps(doc | {"format_version": 99}).encode()))
    no_lookback = json.dumps({k: v for k, v in doc.items() if k != "lookback"}).encode()
    with pytest.raises(DataError, match="lookback"):
        read_info(broken("field", "model.json", no_lookback))
    with pytest.raises(DataError, match=r"model\.onnx could not be loaded by onnxruntime"):
        load_predictor(broken("onnx", "model.onnx", b"\x00garbage"))
    with pytest.raises(DataError, match=r"model\.joblib could not be unpickled"):
        load_model(broken("joblib", "model.joblib", b"garbage"))
    no_onnx = Path(shutil.copytree(good, tmp_path / "no_onnx"))
    (no_onnx / "model.onnx").unlink()
    with pytest.raises(DataError, match=r"has no model\.onnx"):
        load_predictor(no_onnx)


def test_make_model_params_and_errors() -> None:
    assert FAMILIES == ("rf", "sgd", "lstm")
    defaults: dict[str, dict[str, Any]] = {
        "rf": {
            "n_estimators": 200,
            "max_depth": None,
            "min_samples_leaf": 1,
            "max_features": 0.5,
            "n_jobs": 1,
        },
        "sgd": {
            "alpha": 1e-4,
            "l1_ratio": 0.15,
            "penalty": "elasticnet",
            "max_iter": 1000,
            "tol": 1e-3,
            "epsilon": 0.01,
        },
        "lstm": {
            "lookback": 32,
            "units": 32,
            "dropout": 0.1,
            "learning_rate": 1e-3,
            "epochs": 20,
            "batch_size": 256,
            "patience": 3,
        },
    }
    for family, params in defaults.items():
        model = make_model(family, "regressor", random_state=5)
        assert model.get_params() == params | {"task": "regressor", "random_state": 5}
        assert model.family == family
    assert make_model("lstm", "classifier", lookback=8).lookback == 8
    assert make_model("rf", "classifier").lookback == 1
    with pytest.raises(ValueError, match="unknown model family 'xgb'"):
        make_model("xgb", "regressor")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['bogus'\] for model family 'sgd'"):
        make_model("sgd", "regressor", bogus=1)


def test_fit_rejects_bad_input(data: dict[str, np.ndarray]) -> None:
    X, y = data["X"][:200].copy(), data["classifier"][:200]
    X[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"X has non-finite values \(first at index \[5, 2\]\)"):
        make_model("sgd", "classifier").fit(X, y)
    with pytest.raises(ValueError, match=r"must hold labels 0 and 1 only \(both in y\)"):
        make_model("rf", "classifier").fit(data["X"][:200], data["regressor"][:200])
    short_val = make_model("sgd", "classifier").fit(data["X"][:200], y, X_val=data["X"][:1], y_val=np.ones(1))
    assert short_val.n_features_in_ == N_FEATURES  # one validation window, one class: accepted
    with pytest.raises(ValueError, match=r"3 feature names for 10 columns"):
        make_model("rf", "regressor").fit(data["X"][:200], y, feature_names=["a", "b", "c"])


def test_imports_stay_light() -> None:
    code = (
        "import sys, training.artifact;"
        "assert not {'tensorflow', 'sklearn', 'keras'} & set(sys.modules), 'artifact import too heavy';"
        "import training.models;"
        "assert not {'tensorflow', 'keras'} & set(sys.modules), 'models import pulled in TensorFlow'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
