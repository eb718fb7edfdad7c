"""Which execution provider the service runs on (``serve.device``), and saying it (issue 16).

The provider lists are the ones ONNX Runtime reports: the CPU wheel's, and the GPU wheel's as
installed here (onnxruntime-gpu 1.31.1 on a machine without a GPU: it lists CUDA and TensorRT, and a
session asked for CUDA falls back to the CPU).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import yaml
from fakes import FakePredictor, FakeSource
from typer.testing import CliRunner

from features.errors import OperationalError
from flows.cli import app
from serving.batching import MicroBatcher
from serving.config import ServeConfig
from serving.engine import SignalEngine
from training import artifact
from training.artifact import CPU_PROVIDER, CUDA_PROVIDER, choose_providers, select_providers

CPU_WHEEL = ["AzureExecutionProvider", "CPUExecutionProvider"]
GPU_WHEEL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("available", [CPU_WHEEL, GPU_WHEEL])
def test_cpu_is_the_cpu_whatever_the_build_offers(available: list[str]) -> None:
    choice = choose_providers("cpu", available, cuda_starts=True)
    assert (choice.providers, choice.device) == ((CPU_PROVIDER,), "cpu")


@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_cuda_comes_first_where_it_starts(device: str) -> None:
    choice = choose_providers(device, GPU_WHEEL, cuda_starts=True)  # type: ignore[arg-type]
    assert choice.providers == (CUDA_PROVIDER, CPU_PROVIDER)
    assert choice.device == "cuda"
    assert f"serve.device is {device}: models run on {CUDA_PROVIDER}" in choice.reason


def test_auto_on_the_cpu_wheel_falls_back_and_says_why() -> None:
    choice = choose_providers("auto", CPU_WHEEL, cuda_starts=False)
    assert (choice.providers, choice.device) == ((CPU_PROVIDER,), "cpu")
    assert "offers no CUDAExecutionProvider (it offers AzureExecutionProvider, CPUExecutionProvider)" in (
        choice.reason
    )
    assert choice.reason.endswith("models run on the CPU")


def test_auto_on_the_gpu_wheel_without_a_gpu_falls_back_and_says_why() -> None:
    choice = choose_providers("auto", GPU_WHEEL, cuda_starts=False)
    assert choice.device == "cpu"
    assert "has CUDAExecutionProvider but it does not start here: models run on the CPU" in choice.reason


@pytest.mark.parametrize(
    ("available", "why"),
    [
        (
            CPU_WHEEL,
            "offers no CUDAExecutionProvider .it offers AzureExecutionProvider, CPUExecutionProvider.",
        ),
        (GPU_WHEEL, "has CUDAExecutionProvider but it does not start here"),
    ],
)
def test_cuda_without_a_working_gpu_is_refused_with_the_fix(available: list[str], why: str) -> None:
    with pytest.raises(OperationalError, match=f"^serve.device is cuda but this onnxruntime {why}") as raised:
        choose_providers("cuda", available, cuda_starts=False)
    assert "set serve.device to auto or cpu in params.yaml" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_select_asks_the_installed_build_and_probes_cuda_on_this_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The GPU wheel's list on a machine whose onnxruntime cannot open CUDA: the real probe says no."""
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: GPU_WHEEL)
    assert not artifact.cuda_starts()
    assert select_providers("auto").device == "cpu"
    with pytest.raises(OperationalError, match="does not start here"):
        select_providers("cuda")


def test_select_does_not_probe_when_the_build_has_no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    probes: list[int] = []
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: CPU_WHEEL)
    monkeypatch.setattr(artifact, "cuda_starts", lambda: probes.append(1) or True)
    assert select_providers("auto").providers == (CPU_PROVIDER,)
    assert select_providers("cpu").providers == (CPU_PROVIDER,)
    assert probes == []


def test_select_takes_cuda_when_the_probe_opens_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: GPU_WHEEL)
    monkeypatch.setattr(artifact, "cuda_starts", lambda: True)
    assert select_providers("cuda").providers == (CUDA_PROVIDER, CPU_PROVIDER)


def test_the_batcher_bound_follows_the_device() -> None:
    config = ServeConfig(max_batch_windows=4096, gpu_max_batch_windows=16384)
    assert (config.batch_windows("cpu"), config.batch_windows("cuda")) == (4096, 16384)


def test_info_reports_each_versions_provider_and_the_reason() -> None:
    cuda = FakePredictor(offset=1.0, provider=CUDA_PROVIDER, device="cuda")
    choice = choose_providers("auto", GPU_WHEEL, cuda_starts=True)
    engine = SignalEngine(
        name="mmops-TEST-1m",
        config=ServeConfig(),
        source=FakeSource(predictors={"1": cuda}, alias_map={"champion": "1"}),
        batcher=MicroBatcher(max_windows=8, inline_max=0),
        providers=GPU_WHEEL,
        choice=choice,
    )
    engine.refresh()
    info = engine.info()
    assert (info.champion.provider, info.champion.device, info.device) == (CUDA_PROVIDER, "cuda", "cuda")
    assert info.device_reason == choice.reason
    assert info.providers == GPU_WHEEL


def test_a_cpu_predictor_says_cpu_and_splits_large_batches(tmp_path: Path) -> None:
    """The real loader: what the session runs on is what it reports (here, the CPU)."""
    from training.models import make_model

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 3)), rng.normal(size=200)
    predictor = artifact.load_predictor(make_model("sgd", "regressor").fit(X, y).save(tmp_path / "m"))
    assert (predictor.provider, predictor.device) == (CPU_PROVIDER, "cpu")


def test_serve_with_cuda_on_a_machine_without_one_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    doc["serve"]["device"] = "cuda"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("MMOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MMOPS_PARAMS", str(params))
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: CPU_WHEEL)
    started: list[object] = []
    monkeypatch.setattr("subprocess.call", lambda *a, **k: started.append(a) or 0)
    result = CliRunner().invoke(app, ["serve", "--model", "mmops-TEST-1m"])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: serve.device is cuda but"), result.output
    assert "Traceback" not in result.output
    assert started == []  # BentoML never started


def test_serve_auto_says_it_falls_back_to_the_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMOPS_HOME", str(tmp_path))
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: CPU_WHEEL)
    started: list[object] = []
    monkeypatch.setattr("subprocess.call", lambda *a, **k: started.append(a) or 0)
    result = CliRunner().invoke(app, ["serve", "--model", "mmops-TEST-1m"])
    assert result.exit_code == 0, result.output
    assert "serve.device is auto and this onnxruntime offers no CUDAExecutionProvider" in result.output
    assert "models run on the CPU" in result.output
    assert len(started) == 1
