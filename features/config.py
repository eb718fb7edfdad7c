"""Typed configuration of the data plane: the ``data``, ``validation`` and ``features`` sections
of ``params.yaml``. Frozen, validated once at the edge, passed down explicitly.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.schema import interval_ns, normalize_interval
from features.sources.layout import Ambiguous, FileLayout, PresetName, TimeUnit

WINDOW_PRESETS: dict[str, tuple[int, ...]] = {
    # counted in bars: 5 min .. 1 day of minute bars; 1 day .. 4 weeks of daily bars
    "minute": (5, 15, 60, 240, 1440),
    "daily": (1, 7, 14, 21, 28),
}


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatasetConfig(_Section):
    """One series the pipeline ingests and trains on.

    For ``source: file`` the reading options are those of ``mmops ingest --source file``
    (``features.sources.layout.FileLayout``): a ``preset``, a ``columns`` mapping (canonical
    name -> header name or 0-based position), ``time_unit``, ``time_format``, ``tz`` for naive
    date-times and the ``ambiguous`` policy for repeated local times.
    """

    source: Literal["binance-dump", "file"] = "binance-dump"
    path: str = Field(description="source path, relative to the source-data root (MMOPS_SOURCE_DATA)")
    preset: PresetName | None = None
    columns: dict[str, str | int] | None = Field(
        None, description="canonical column -> source column, e.g. {timestamp: unix, volume: Volume BTC}"
    )
    time_unit: TimeUnit = Field("auto", description="auto detects s/ms/us/ns by magnitude")
    time_format: str | None = Field(None, description="strptime format of date-time strings")
    tz: str = Field("UTC", description="IANA zone of naive date-times, e.g. Europe/Berlin")
    ambiguous: Ambiguous = Field(
        "infer", description="repeated local times: infer | earliest | latest | raise"
    )
    venue: str = "binance"
    symbol: str
    interval: str

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        return normalize_interval(value)

    @model_validator(mode="after")
    def _file_options(self) -> DatasetConfig:
        if self.source == "file":
            self.layout()  # unknown columns or time zones fail here, with the nearest name
        elif self.preset or self.columns or self.time_format or self.tz != "UTC" or self.time_unit != "auto":
            raise ValueError("preset, columns, time_unit, time_format and tz apply to source: file only")
        return self

    def layout(self) -> FileLayout:
        """How to read this dataset's file (the same object ``mmops ingest --source file`` builds)."""
        return FileLayout(
            preset=self.preset,
            columns=self.columns or {},
            time_unit=self.time_unit,
            time_format=self.time_format,
            tz=self.tz,
            ambiguous=self.ambiguous,
        )


class DataConfig(_Section):
    """Which series the nightly pipeline works on; the first is the primary one."""

    datasets: tuple[DatasetConfig, ...] = Field(min_length=1)

    @property
    def primary(self) -> DatasetConfig:
        return self.datasets[0]


class ValidationConfig(_Section):
    """Data-quality bounds. A batch outside them is quarantined, never merged."""

    max_abs_log_return: float = Field(1.0, gt=0, description="|ln(close_t / close_t-1)| bound per bar")
    max_log_range: float = Field(4.0, gt=0, description="ln(high / low) bound per bar (catches digit slips)")
    max_missing_fraction: float = Field(
        0.02, ge=0, le=1, description="missing bars / expected bars between first and last; gaps above fail"
    )
    future_tolerance_s: float = Field(
        0.0, ge=0, description="how far past 'now' an open time may be, seconds"
    )


class FeaturesConfig(_Section):
    """Rolling-window features and labels. Windows and lags are counted in bars."""

    preset: Literal["auto", "minute", "daily"] = Field(
        "auto", description="auto: daily for >= 1d bars, else minute"
    )
    windows: tuple[int, ...] | None = Field(None, description="overrides the preset's windows")
    return_lags: tuple[int, ...] = Field((1,), description="extra log-return lags besides the windows")
    bollinger_k: float = Field(2.0, gt=0, description="band half-width in standard deviations")
    keltner_k: float = Field(2.0, gt=0, description="band half-width in ATRs")
    psar_step: float = Field(0.02, gt=0)
    psar_max: float = Field(0.2, gt=0)
    label_horizon: int = Field(15, ge=1, description="forward log-return horizon, bars")

    @property
    def resolved_windows(self) -> tuple[int, ...]:
        if self.windows is not None:
            return tuple(sorted(set(self.windows)))
        if self.preset == "auto":
            raise ValueError("features: preset 'auto' needs the bar interval; call for_interval() first")
        return WINDOW_PRESETS[self.preset]

    def for_interval(self, interval: str) -> FeaturesConfig:
        """This config with an ``auto`` preset resolved for bars of ``interval``."""
        if self.preset != "auto":
            return self
        daily = interval_ns(interval) >= interval_ns("1d")
        return self.model_copy(update={"preset": "daily" if daily else "minute"})

    @field_validator("windows", "return_lags")
    @classmethod
    def _positive(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and (not value or min(value) < 1):
            raise ValueError("windows and lags must be non-empty and >= 1 bar")
        return value
