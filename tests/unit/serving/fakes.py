"""A fake predictor and model source with the shapes of the real ones (no ONNX, no registry)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from serving.logic import LoadedModel

FEATURES = ("ret_1", "vol_5", "ofi")


@dataclass(frozen=True)
class FakeInfo:
    family: str = "rf"
    task: str = "regressor"
    lookback: int = 1
    feature_names: tuple[str, ...] = FEATURES


@dataclass
class FakePredictor:
    """Answers ``offset + last row's first feature``, so tests can tell versions apart."""

    offset: float
    info: FakeInfo = field(default_factory=FakeInfo)
    calls: list[int] = field(default_factory=list)
    provider: str = "CPUExecutionProvider"
    device: str = "cpu"

    def predict(self, windows: np.ndarray) -> np.ndarray:
        assert windows.shape[1:] == (self.info.lookback, len(self.info.feature_names))
        self.calls.append(len(windows))
        return (self.offset + windows[:, -1, 0]).astype(np.float32)


@dataclass
class FakeSource:
    """Aliases the test moves, and one predictor per version."""

    predictors: dict[str, FakePredictor]
    alias_map: dict[str, str]
    loads: list[str] = field(default_factory=list)

    def aliases(self) -> dict[str, str]:
        return dict(self.alias_map)

    def load(self, version: str, alias: str) -> LoadedModel:
        self.loads.append(version)
        return LoadedModel(
            name="mmops-TEST-1m",
            version=version,
            alias=alias,
            predictor=self.predictors[version],
            lineage={"lineage.git_commit": f"c{version}"},
        )
