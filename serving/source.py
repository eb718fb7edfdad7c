"""Versions for the service from the MLflow registry, loaded as ONNX predictors (no TensorFlow)."""

from __future__ import annotations

from collections.abc import Mapping

from features.errors import OperationalError
from serving.config import ServeSettings
from serving.logic import LoadedModel


def providers_for(device: str) -> list[str] | None:
    """onnxruntime providers for ``serve.device`` (None: the artifact loader's default, CUDA first).

    Raises:
        OperationalError: ``cuda`` was asked for and this onnxruntime has no CUDA provider.
    """
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise OperationalError(f"serve.device is cuda but onnxruntime offers only {available}")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return None


class RegistrySource:
    """Resolves aliases and downloads versions of ``settings.model_name`` (cached per version)."""

    def __init__(self, settings: ServeSettings) -> None:
        from training.registry import Registry

        self.settings = settings
        self.registry = Registry(
            settings.tracking_uri,
            audit_log=settings.log_dir / "registry_audit.jsonl",  # read-only here: serving never writes it
            reports=settings.cache_dir / "reports",
        )
        self.providers = providers_for(settings.config.device)

    def aliases(self) -> Mapping[str, str]:
        return self.registry.aliases(self.settings.model_name)

    def load(self, version: str, alias: str) -> LoadedModel:
        from training.artifact import load_predictor

        ref = self.registry.ref(self.settings.model_name, version, alias)
        folder = self.registry.download(ref, self.settings.cache_dir)
        predictor = load_predictor(folder, providers=self.providers)
        return LoadedModel(
            name=ref.name, version=ref.version, alias=alias, predictor=predictor, lineage=ref.lineage
        )
