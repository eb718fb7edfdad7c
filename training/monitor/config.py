"""The ``monitor`` section of ``params.yaml``: windows, drift methods and thresholds, the alarm rule.

Why these defaults (measured on the shipped BTC minute data, see ``bench/drift_calibration.py``):

* p-value tests (KS, chi-square) flag almost every feature on minute samples of thousands of rows
  (Evidently issues #50, #509, #710): any real market moves a little, and the tests detect it. An
  effect size is used instead: Evidently's normalised Wasserstein distance (distance / reference
  std), computed on columns standardised by the reference's mean and std, because Evidently
  floors the std at 0.001 and most features here (log returns, volatilities, bar ranges) have a
  std below it, which would shrink their scores towards zero.
* one day per window: intraday seasonality (volatility is higher in US hours) cancels inside a
  window, so a window is comparable with a reference of whole days.
* calendar features (time of day and of week) are excluded: they are a clock, and a one-day
  window covers one weekday only. So are features over windows longer than
  ``max_feature_window``: a 1440-bar feature holds about one independent value in a one-day
  window and would be judged on noise.
* three checks make a window drift, each calibrated on the stationary splits of
  ``bench/drift_calibration.py`` (see ``params.yaml``): the share of all watched features that
  drift (broad drift); a feature family's median score (the volatility family: the 2025 and 2026
  data differ mainly in volatility level, which a share over all 47 features dilutes); and the
  volatility regime, the realised volatility of the window against the reference's as a z-score
  that knows how many days each holds (a month against three months is judged on far less noise
  than a day against a day, which per-feature effect sizes cannot see).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Evidently 0.7 method names (``method=``): effect sizes first; the p-value tests are there for
# small windows and for comparison, not as a default (see the module docstring).
Method = Literal["wasserstein", "psi", "jensenshannon", "hellinger", "kl_div", "ks", "anderson"]

# the volatility family: the 2025 and 2026 data differ mainly in volatility level
_FAMILIES: dict[str, tuple[str, ...]] = {"volatility": ("rv_", "bb_width_", "kc_width_", "atr_", "bar_range")}


class MonitorConfig(BaseModel):
    """How drift is measured and when it raises an alarm (sizes in bars of the series)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_bars: int = Field(1440, ge=10, description="bars per current window (1440: one day of 1m bars)")
    consecutive_windows: int = Field(
        2, ge=1, description="an alarm needs this many consecutive drifted windows (sustained)"
    )
    min_window_bars: int = Field(
        720, ge=10, description="a window with fewer rows is too small to judge (error, or not counted)"
    )
    reference_max_rows: int = Field(
        10_000, ge=100, description="reference sample cap, rows (evenly spaced over the training window)"
    )
    max_feature_window: int | None = Field(
        240, ge=1, description="watch features over windows up to this many bars (null: all)"
    )
    exclude_prefixes: tuple[str, ...] = Field(
        ("tod_", "dow_"), description="feature name prefixes never watched (the calendar)"
    )
    num_method: Method = Field("wasserstein", description="drift method for numerical features")
    num_threshold: float = Field(0.5, gt=0, description="a feature drifts at a score >= this")
    drift_share: float = Field(
        0.5, gt=0, le=1, description="a window drifts when this share of watched features drift"
    )
    families: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: dict(_FAMILIES),
        description="feature families (name prefixes) whose median score is judged on its own",
    )
    family_max_window: int | None = Field(
        60, ge=1, description="family members over windows up to this many bars (null: all watched)"
    )
    family_threshold: float = Field(
        0.45, gt=0, description="a window drifts when a family's median feature score >= this"
    )
    regime_column: str = Field("ret_lag_1", description="the one-bar log return (realised volatility)")
    regime_daily_logvol_sd: float = Field(
        0.33, gt=0, description="day-to-day std of log daily realised volatility (the regime z's unit)"
    )
    regime_z: float = Field(
        1.5, gt=0, description="a window drifts when |log(vol ratio)| / its standard error >= this"
    )
    prediction_method: Method = Field("wasserstein", description="drift method for the model's output")
    prediction_threshold: float = Field(0.5, gt=0, description="the output drifts at a score >= this")
    max_error_ratio: float = Field(
        1.5, gt=1, description="realised MAE over the MAE logged at training (forward window) that alarms"
    )
    min_labelled_rows: int = Field(
        500, ge=10, description="rows with a matured label needed to judge realised performance"
    )
    report_max_features: int = Field(
        20, ge=1, description="features drawn in the HTML report (drifted first, then by score)"
    )

    @model_validator(mode="after")
    def _sizes(self) -> MonitorConfig:
        if self.min_window_bars > self.window_bars:
            raise ValueError("min_window_bars must not exceed window_bars")
        return self
