"""``mmops tune`` says where each family trains: TensorFlow's GPUs for the LSTM (issue 16)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from training.models import ForestModel, LSTMModel


def test_the_lstm_line_names_the_gpus_tensorflow_sees(monkeypatch: pytest.MonkeyPatch) -> None:
    import tensorflow as tf

    gpu = SimpleNamespace(name="/physical_device:GPU:0", device_type="GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [gpu] if kind == "GPU" else [])
    line = LSTMModel.compute_device()
    assert line.startswith("lstm trains on the GPU: TensorFlow")
    assert line.endswith("sees 1 (/physical_device:GPU:0)")


def test_the_lstm_line_says_when_tensorflow_sees_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import tensorflow as tf

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    line = LSTMModel.compute_device()
    assert "trains on the CPU" in line and "sees no GPU" in line and "make install GPU=1" in line


def test_scikit_learn_families_train_on_the_cpu() -> None:
    assert ForestModel.compute_device() == "rf trains on the CPU"
