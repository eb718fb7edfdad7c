"""``params.yaml``: every tunable, one section per stage, loaded once into frozen typed config."""

from __future__ import annotations

import difflib
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from features.config import DataConfig, FeaturesConfig, ValidationConfig
from features.errors import ConfigError
from serving.config import ServeConfig
from trading.config import BacktestConfig, CanaryConfig, QuoteConfig, RiskConfig, TradeConfig
from training.config import EvaluateConfig, ModelsConfig, SplitConfig, TuneConfig
from training.gate import GateConfig
from training.monitor.config import MonitorConfig


class Params(BaseModel):
    """The whole of ``params.yaml``. Sections of later stages are added as those stages land."""

    model_config = ConfigDict(
        frozen=True, extra="forbid"
    )  # a misspelt section must not fall back to defaults

    data: DataConfig
    validation: ValidationConfig = ValidationConfig()
    features: FeaturesConfig = FeaturesConfig()
    quote: QuoteConfig = QuoteConfig()
    risk: RiskConfig = RiskConfig()
    backtest: BacktestConfig = BacktestConfig()
    trade: TradeConfig = TradeConfig()
    gate: GateConfig = GateConfig()
    canary: CanaryConfig = CanaryConfig()
    serve: ServeConfig = ServeConfig()
    split: SplitConfig = SplitConfig()
    tune: TuneConfig = TuneConfig()
    models: ModelsConfig = ModelsConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    monitor: MonitorConfig = MonitorConfig()


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
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (data:, gate:, ...)")
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        errors = exc.errors()
        # a bad dataset also makes the tuple "too short"; say only what is wrong inside it
        inner = [e for e in errors if not (e["type"] == "too_short" and _has_inner(e["loc"], errors))]
        problems = "; ".join(_problem(e["loc"], e["msg"], e["type"]) for e in inner)
        raise ConfigError(f"{path}: {problems}") from exc


def _has_inner(loc: tuple[int | str, ...], errors: list[Any]) -> bool:
    return any(len(e["loc"]) > len(loc) and tuple(e["loc"][: len(loc)]) == loc for e in errors)


def _problem(loc: tuple[int | str, ...], message: str, kind: str) -> str:
    where = ".".join(str(p) for p in loc)
    if kind != "extra_forbidden":
        return f"{where}: {message.removeprefix('Value error, ')}"
    known = _keys_at(loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    section = ".".join(str(p) for p in loc[:-1]) or "the top level"
    return f"unknown key {where!r}{hint} (valid keys of {section}: {', '.join(known)})"


def _keys_at(loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the model found by following ``loc`` from :class:`Params`."""
    current: Any = Params
    for part in loc:
        current = _inner(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = current.model_fields.get(part)
            current = field.annotation if field is not None else None
        elif get_origin(current) in (tuple, list) and isinstance(part, int):
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return []
    current = _inner(current)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _inner(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if get_origin(annotation) in (Union, UnionType):
        arms = [a for a in get_args(annotation) if a is not type(None)]
        return arms[0] if len(arms) == 1 else annotation
    return annotation
