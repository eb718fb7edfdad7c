"""Request and response models of the signal service (pydantic; validated before any model runs)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from serving.logic import InvalidInput, SignalKind

SYMBOL_PATTERN = r"^[A-Za-z0-9._:/-]{1,64}$"
Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN, description="e.g. BTCUSDT")]


class SymbolWindow(BaseModel):
    """One symbol's recent feature rows, oldest first, features in the model's order."""

    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(pattern=SYMBOL_PATTERN, description="e.g. BTCUSDT")
    window: list[list[float]] = Field(min_length=1, description="rows x features (window_rows x n_features)")


class RawPredictHead(BaseModel):
    """The JSON line of a raw (``application/octet-stream``) ``/predict`` body; the windows follow it."""

    model_config = ConfigDict(extra="forbid")

    symbols: Annotated[list[Symbol], Field(min_length=1)]
    rows: Annotated[int, Field(ge=1)]
    feature_names: list[str] | None = None
    request_id: str | None = None


class Signal(BaseModel):
    """The model's signal for one symbol, and which version produced it."""

    symbol: str
    value: float = Field(description="forward_log_return: predicted log return; prob_up: P(up) in [0, 1]")
    kind: SignalKind
    version: str
    alias: str = Field(description="champion or challenger")


class PredictResponse(BaseModel):
    request_id: str
    model: str
    signals: list[Signal]


class BatchPredictResponse(BaseModel):
    """The bulk path's answer, column-wise: entry i of each list belongs to ``symbols[i]``."""

    request_id: str
    model: str
    symbols: list[str]
    values: list[float]
    versions: list[str]
    aliases: list[str]
    kinds: list[SignalKind]
    shadow_values: list[float] | None = Field(
        None,
        description="shadow mode only (else null): the challenger's value per symbol, in the order "
        "of symbols; the service only logs it, the worker runs it through a shadow paper book",
    )
    shadow_version: str | None = Field(None, description="the challenger version behind shadow_values")
    shadow_kind: SignalKind | None = Field(
        None, description="what shadow_values are (the challenger may be of another task than the champion)"
    )


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str
    family: str
    task: str
    kind: SignalKind
    lookback: int
    feature_names: list[str]
    lineage: dict[str, str]
    provider: str = Field(description="the ONNX Runtime execution provider this version runs on")
    device: str = Field(description="cuda or cpu")


class InfoResponse(BaseModel):
    """What is serving: name, versions, aliases, lineage, routing mode and the expected input."""

    model: str
    mode: Literal["champion", "canary", "shadow"]
    canary_fraction: float
    window_rows: int
    feature_names: list[str]
    champion: ModelInfo
    challenger: ModelInfo | None
    loaded_at: str
    providers: list[str] = Field(description="the execution providers this onnxruntime build offers")
    device: str = Field(description="cuda or cpu: where the champion runs")
    device_reason: str = Field("", description="why (serve.device and what this machine offers)")


def validation_error(exc: InvalidInput) -> ValidationError:
    """The same 400 response shape as a schema violation, for checks that need the loaded model."""
    detail = InitErrorDetails(type=PydanticCustomError("invalid_input", str(exc)), loc=exc.loc, input=None)
    return ValidationError.from_exception_data("Input", [detail])
