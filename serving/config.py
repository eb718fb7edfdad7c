"""Typed configuration of the signal service.

:class:`ServeConfig` is the ``serve`` section of params.yaml. :class:`ServeSettings` adds what the
edge resolves at run time (registered model name, tracking URI, folders); ``mmops serve`` writes
it to a JSON file and points ``MMOPS_SERVE_SETTINGS`` at it, because ``bentoml serve`` starts the
service in a fresh process that must not import the CLI layer. The bearer token never goes into
that file: the service reads it from ``MMOPS_SERVE_TOKEN``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from features.errors import ConfigError

SETTINGS_ENV = "MMOPS_SERVE_SETTINGS"
TOKEN_ENV = "MMOPS_SERVE_TOKEN"


class ServeConfig(BaseModel):
    """How the service routes, batches, polls and logs (the ``serve`` section of params.yaml)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str | None = Field(
        None, description="registered model name; null = mmops-<symbol>-<interval> of the first dataset"
    )
    host: str = "127.0.0.1"
    port: int = Field(3000, ge=1, le=65535)
    mode: Literal["champion", "canary", "shadow"] = Field(
        "champion",
        description="canary: a share of symbols to @challenger; shadow: both run, champion answers",
    )
    canary_fraction: float = Field(
        0.1,
        ge=0,
        le=1,
        description="share of symbols (sticky, by hash) the challenger answers in canary mode",
    )
    canary_salt: str = Field("mmops", description="changes which symbols fall in the canary share")
    poll_interval_s: float = Field(5.0, gt=0, description="how often the aliases are re-read, seconds")
    max_batch_windows: int = Field(
        4096,
        ge=1,
        description="windows per model call under load (CPU); requests are merged only up to 4 MiB of "
        "windows as well (the predictor's call size, training/artifact.py CALL_BYTES)",
    )
    gpu_max_batch_windows: int = Field(
        16384, ge=1, description="windows per model call under load when the models run on CUDA"
    )
    inline_max_windows: int = Field(
        64, ge=0, description="batches up to this size run on the event loop (no thread hop)"
    )
    max_items: int = Field(4096, ge=1, description="symbols per request")
    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="largest request body, bytes (Content-Length, or counted while it streams); more: 413",
    )
    stream_cache_mb: int = Field(
        256,
        ge=1,
        description="most memory for the windows /predict_stream holds (all client streams), MiB; the "
        "least recently used streams are dropped first (their clients resend whole windows once)",
    )
    max_window_rows: int = Field(
        128,
        ge=1,
        description="most rows per symbol's window, rows (bars); more: 422. A version whose lookback "
        "exceeds it is not loaded",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="auto: onnxruntime's CUDA provider when present, else CPU (said at start); cuda: "
        "refuse to start without it",
    )
    log_predictions: bool = True
    log_flush_s: float = Field(0.5, gt=0, description="prediction log buffer flush interval, seconds")
    access_log: bool = Field(
        False,
        description="BentoML's access log line per request (the prediction log already records every "
        "model call with its request id and latency)",
    )
    trace_requests: bool = Field(
        False,
        description="OpenTelemetry spans on the API routes (for a tracing exporter set up in BentoML's "
        "configuration; none is by default)",
    )

    def batch_windows(self, device: Literal["cpu", "cuda"]) -> int:
        """The micro-batcher's windows per model call on ``device``."""
        return self.gpu_max_batch_windows if device == "cuda" else self.max_batch_windows


class ServeSettings(BaseModel):
    """Everything the service process needs, resolved at the edge."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_name: str
    tracking_uri: str
    cache_dir: Path = Field(description="downloaded model versions")
    log_dir: Path = Field(description="append-only prediction log folder")
    config: ServeConfig = ServeConfig()

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        return path


def settings_from_env() -> ServeSettings:
    """Read the settings file named by ``MMOPS_SERVE_SETTINGS`` (set by ``mmops serve``).

    Raises:
        ConfigError: the variable is unset, or the file is missing or invalid.
    """
    path = os.environ.get(SETTINGS_ENV)
    if not path:
        raise ConfigError(f"{SETTINGS_ENV} is not set; start the service with `mmops serve`")
    try:
        return ServeSettings.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read serving settings ({exc})") from exc
