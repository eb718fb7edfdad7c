"""``params.yaml``: every tunable, one section per stage, loaded once into frozen typed config."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from features.config import DataConfig, FeaturesConfig, ValidationConfig
from features.errors import ConfigError
from serving.config import ServeConfig
from trading.config import BacktestConfig, QuoteConfig, RiskConfig
from training.config import EvaluateConfig, ModelsConfig, SplitConfig, TuneConfig
from training.gate import GateConfig


class Params(BaseModel):
    """The whole of ``params.yaml``. Sections of later stages are added as those stages land."""

    model_config = ConfigDict(frozen=True, extra="allow")

    data: DataConfig
    validation: ValidationConfig = ValidationConfig()
    features: FeaturesConfig = FeaturesConfig()
    quote: QuoteConfig = QuoteConfig()
    risk: RiskConfig = RiskConfig()
    backtest: BacktestConfig = BacktestConfig()
    gate: GateConfig = GateConfig()
    serve: ServeConfig = ServeConfig()
    split: SplitConfig = SplitConfig()
    tune: TuneConfig = TuneConfig()
    models: ModelsConfig = ModelsConfig()
    evaluate: EvaluateConfig = EvaluateConfig()


def load_params(path: Path) -> Params:
    """Read and validate ``params.yaml``.

    Raises:
        ConfigError: the file is missing, not YAML, or a value is invalid (the message names the key).
    """
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: params file not found (set MMOPS_PARAMS or run from the project)"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc
