"""The drift alarm on the shipped BTC minute data: calm periods stay quiet, the 2025 and 2026 regimes
alarm, a shifted feature is caught and named. Reference capped at 3,000 rows; the regime tests featurise
both years whole (the same frames ``bench/drift_calibration.py`` calibrates on)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import compute_features
from features.config import FeaturesConfig
from features.errors import DataError
from features.sources.files import read_file
from flows.params import load_params
from training.monitor import EVENT, MonitorConfig, judge, resource_id
from training.monitor.drift import split_windows, wasserstein_norm, watched_features
from training.monitor.report import list_reports

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def config() -> MonitorConfig:
    return load_params(REPO / "params.yaml").monitor.model_copy(update={"reference_max_rows": 3000})


def features(bars: pd.DataFrame, first: str, days: int) -> pd.DataFrame:
    """Features of ``days`` UTC days from ``first`` (one day before it warms the windows up)."""
    start = pd.Timestamp(first, tz="UTC")
    end = start + pd.Timedelta(days=days) - pd.Timedelta(minutes=1)
    part = bars.loc[
        (bars["timestamp"] >= start - pd.Timedelta(days=1, minutes=1)) & (bars["timestamp"] <= end)
    ]
    return compute_features(part, FeaturesConfig(), start=start)


@pytest.fixture(scope="module")
def bars_2025(source_data: Path) -> pd.DataFrame:
    path = source_data / "ohlcv" / "binance_BTC_USDT-1m_2025-05-20_2025-08-18.feather"
    return read_file(path, preset="freqtrade", symbol="BTCUSDT", venue="binance", interval="1m")


@pytest.fixture(scope="module")
def whole_2025(bars_2025: pd.DataFrame) -> pd.DataFrame:
    """All of May-August 2025 (no taker volume: no OFI columns)."""
    return compute_features(bars_2025, FeaturesConfig()).dropna(axis=1, how="all").dropna()


@pytest.fixture(scope="module")
def whole_2026(btc_bars: pd.DataFrame) -> pd.DataFrame:
    """All of March-April 2026."""
    return compute_features(btc_bars, FeaturesConfig()).dropna()


def utc_days(frame: pd.DataFrame) -> list[pd.DataFrame]:
    key = pd.DatetimeIndex(frame.index).floor("D")
    return [frame[key == d] for d in np.unique(key) if (key == d).sum() == 1440]


def test_the_fast_score_is_evidentlys_and_why_columns_are_standardised() -> None:
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    rng = np.random.default_rng(0)
    for scale, expected_floor in ((1.0, False), (1e-4, True)):
        ref, cur = rng.normal(size=3000) * scale, (rng.normal(size=700) * 1.3 + 0.4) * scale
        test = get_stattest(pd.Series(ref), pd.Series(cur), ColumnType.Numerical, "wasserstein")
        theirs = test(pd.Series(ref), pd.Series(cur), ColumnType.Numerical, 0.5).drift_score
        assert wasserstein_norm(np.sort(ref), cur) == pytest.approx(theirs, rel=1e-9)
        standardised = wasserstein_norm(np.sort(ref / ref.std()), cur / ref.std())
        # a std under Evidently's 0.001 floor shrinks the raw score: log returns would never drift
        assert bool(theirs < 0.2 * standardised) == expected_floor


def test_halves_of_a_calm_period_give_no_alarm(btc_bars: pd.DataFrame, config: MonitorConfig) -> None:
    period = features(btc_bars, "2026-03-23", 4)  # daily volatility 2.6, 2.3, 2.4, 2.5 %
    verdict = judge(period.iloc[:2880], period.iloc[2880:], series="BTCUSDT-1m", config=config)
    assert len(verdict.windows) == 2 and not verdict.drift


def test_adjacent_calm_days_give_no_alarm(btc_bars: pd.DataFrame, config: MonitorConfig) -> None:
    period = features(btc_bars, "2026-03-24", 3)
    verdict = judge(period.iloc[:1440], period.iloc[1440:], series="BTCUSDT-1m", config=config)
    assert not verdict.drift and all(w.drift_share < config.drift_share for w in verdict.windows)
    assert all(w.regime is not None and not w.regime.drifted for w in verdict.windows)
    assert all(not f.drifted for w in verdict.windows for f in w.families)


@pytest.mark.parametrize("way", ["2026_vs_2025", "2025_vs_2026"])
def test_the_whole_years_against_each_other_alarm(
    way: str, whole_2025: pd.DataFrame, whole_2026: pd.DataFrame, config: MonitorConfig
) -> None:
    reference, current = (whole_2026, whole_2025) if way == "2026_vs_2025" else (whole_2025, whole_2026)
    halves = config.model_copy(update={"window_bars": len(current) // 2})  # the two windows
    verdict = judge(reference, current, series="BTCUSDT-1m", config=halves)
    assert verdict.drift and verdict.sustained
    # the volatility regime drifts in both halves, in the same direction (2025 is the calmer year)
    zs = [w.regime.z for w in verdict.windows if w.regime is not None]
    assert len(zs) == 2 and all(abs(z) >= config.regime_z for z in zs)
    assert all(z < 0 for z in zs) if way == "2026_vs_2025" else all(z > 0 for z in zs)


def test_weeks_of_one_year_against_days_of_the_other_alarm_when_volatility_differs(
    whole_2025: pd.DataFrame, whole_2026: pd.DataFrame, config: MonitorConfig
) -> None:
    """Every 2026 week against a grid of 2025 day pairs and back: not one hand-picked pair. Pairs whose
    two days' realised volatility are both over 1.3x apart from the week's must nearly all alarm;
    the rest are no different in volatility (the two years' daily volatility overlaps)."""
    apart, alarmed = 0, 0
    for reference, current in ((whole_2026, whole_2025), (whole_2025, whole_2026)):
        days = utc_days(current)
        for start in range(0, len(reference) - 10_080 + 1, 10_080 * 2):
            week = reference.iloc[start : start + 10_080]
            vol = week["ret_lag_1"].std()
            for j in range(0, len(days) - 1, 9):
                two = days[j : j + 2]
                if all(abs(np.log(d["ret_lag_1"].std() / vol)) > np.log(1.3) for d in two):
                    apart += 1
                    alarmed += judge(week, pd.concat(two), series="BTCUSDT-1m", config=config).drift
    assert apart >= 15 and alarmed / apart >= 0.8


def test_a_shift_of_one_feature_is_caught_and_named(
    btc_bars: pd.DataFrame, config: MonitorConfig, tmp_path: Path
) -> None:
    period = features(btc_bars, "2026-03-24", 3)
    reference, current = period.iloc[:1440], period.iloc[1440:].copy()
    before = judge(reference, current, series="BTCUSDT-1m", config=config)
    assert "mfi_15" not in {c.column for c in before.drifted_features}
    current["mfi_15"] += 1.0 * reference["mfi_15"].std()  # one reference std
    verdict = judge(
        reference, current, series="BTCUSDT-1m", config=config, model_version="7", out_dir=tmp_path
    )
    (caught,) = [c for c in verdict.drifted_features if c.column == "mfi_15"]
    assert caught.score > 0.6
    assert "mfi_15" in verdict.event_payload()["drifted_features"]
    doc = verdict.to_dict()
    assert doc["event"]["event"] == EVENT and doc["event"]["resource"] == resource_id("BTCUSDT-1m")
    # the reports: self-contained HTML, a snapshot Evidently reads back, a summary the review lists
    assert verdict.report_html is not None and verdict.report_json is not None
    assert '<script src="http' not in verdict.report_html.read_text()
    from evidently.core.report import Snapshot

    tests = Snapshot.loads(verdict.report_json.read_text()).dict()["tests"]
    assert any(t["status"] == "FAIL" and "mfi_15" in t["name"] for t in tests)
    (listed,) = list_reports(tmp_path)
    assert listed["version"] == "7" and "mfi_15" in listed["drifted"] and listed["report"]
    assert json.loads(Path(listed["folder"], "summary.json").read_text())["series"] == "BTCUSDT-1m"


def test_one_drifted_window_is_not_an_alarm(btc_bars: pd.DataFrame, config: MonitorConfig) -> None:
    period = features(btc_bars, "2026-03-24", 3)
    reference, current = period.iloc[:1440], period.iloc[1440:].copy()
    names = watched_features(list(current.columns), config)[:20]  # a jump on the last day only
    last = current.index[1440:]
    current.loc[last, names] = current.loc[last, names] + 2.0 * reference[names].std()
    verdict = judge(reference, current, series="BTCUSDT-1m", config=config)
    assert verdict.windows[-1].drifted and not verdict.windows[0].drifted and not verdict.drift


def test_the_regime_z_knows_how_many_days_each_side_holds(config: MonitorConfig) -> None:
    from training.monitor.drift import RegimeReference, family_members, regime_of

    rng = np.random.default_rng(0)
    index = pd.date_range("2026-01-01", periods=30 * 1440, freq="1min", tz="UTC")
    frame = pd.DataFrame({"ret_lag_1": rng.normal(size=len(index)) * 1.2e-3}, index=index)
    day, month = RegimeReference.of(frame.iloc[:1440], config), RegimeReference.of(frame, config)
    assert day is not None and month is not None and day.days == pytest.approx(1.0)
    louder = frame.iloc[:1440] * 1.2  # 20% more volatile: noise for a day, drift against a month
    one, many = regime_of(day, louder, config), regime_of(month, louder, config)
    assert one is not None and many is not None
    assert one.log_ratio == pytest.approx(many.log_ratio, abs=0.03) and 0 < one.z < many.z
    assert not one.drifted and abs(one.z) < config.regime_z
    members = family_members(["rv_5", "rv_240", "bar_range", "mfi_15", "atr_60"], config)
    assert members == {"volatility": ["rv_5", "bar_range", "atr_60"]}  # 240-bar members: noise on a day


def test_a_window_under_the_minimum_is_refused(config: MonitorConfig) -> None:
    index = pd.date_range("2026-01-01", periods=config.min_window_bars - 1, freq="1min", tz="UTC")
    with pytest.raises(DataError, match="at least 720 are needed"):
        split_windows(index, config)


def test_params_yaml_states_every_monitor_setting() -> None:
    import yaml

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(raw["monitor"]) == set(MonitorConfig.model_fields)  # no setting left to a hidden default
