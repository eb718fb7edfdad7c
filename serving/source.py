"""Versions for the service from the MLflow registry, loaded as ONNX predictors (no TensorFlow)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from features.errors import OperationalError
from serving.config import ServeSettings
from serving.logic import LoadedModel
from training.artifact import ProviderChoice

logger = logging.getLogger(__name__)


class RegistrySource:
    """Resolves aliases and downloads versions of ``settings.model_name`` (cached per version).

    Each version opens on ``choice``'s providers (:func:`training.artifact.select_providers`).
    """

    def __init__(self, settings: ServeSettings, choice: ProviderChoice) -> None:
        from training.registry import Registry

        self.settings = settings
        self.registry = Registry(
            settings.tracking_uri,
            audit_log=settings.log_dir / "registry_audit.jsonl",  # read-only here: serving never writes it
            reports=settings.cache_dir / "reports",
        )
        self.choice = choice

    def aliases(self) -> Mapping[str, str]:
        return self.registry.aliases(self.settings.model_name)

    def load(self, version: str, alias: str) -> LoadedModel:
        from training.artifact import load_predictor

        ref = self.registry.ref(self.settings.model_name, version, alias)
        folder = self.registry.download(ref, self.settings.cache_dir)
        predictor = load_predictor(folder, providers=self.choice.providers)
        if self.choice.device == "cuda" and predictor.device != "cuda":
            # the probe opened CUDA, this model did not (a node CUDA cannot place, or device memory)
            why = f"v{ref.version} ({alias}) opened on {predictor.provider}, not on CUDA"
            if self.settings.config.device == "cuda":
                raise OperationalError(f"serve.device is cuda but {why}; set serve.device to auto or cpu")
            logger.warning("%s: %s", self.settings.model_name, why)
        return LoadedModel(
            name=ref.name, version=ref.version, alias=alias, predictor=predictor, lineage=ref.lineage
        )
