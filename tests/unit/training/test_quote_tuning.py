"""Quote settings tuned by Optuna: the model-free quoter's own study, joint studies, starting points,
resuming, and that the tuned quoter's settings are the ones a model is compared with.

Studies here run 1-3 trials on two days of real minute bars (tiny folds), so a test takes seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import ConfigError
from trading.backtest import run_backtest
from trading.config import BacktestConfig, QuoteConfig, RiskConfig
from training import quote_tuning
from training.config import EvaluateConfig, FamilyConfig, SearchParam, SplitProfile, TuneConfig
from training.evaluate import evaluate_window

SPACE = {
    "kappa": SearchParam(type="float", low=1e-4, high=2e-3, log=True),
    "order_lots": SearchParam(type="int", low=1, high=50, log=True),
    "refresh_bars": SearchParam(type="int", low=1, high=5),
}


def test_apply_routes_each_setting_to_its_section_and_validates() -> None:
    q = quote_tuning.apply(QuoteConfig(), BacktestConfig(), {"kappa": 3e-4, "refresh_bars": 3})
    assert q.quote.kappa == 3e-4 and q.backtest.refresh_bars == 3
    assert q.quote.gamma == QuoteConfig().gamma  # untouched settings stay params.yaml's
    assert q.tuned == {"kappa": 3e-4, "refresh_bars": 3}
    with pytest.raises(ConfigError, match="not tunable"):
        quote_tuning.apply(QuoteConfig(), BacktestConfig(), {"maker_fee_bps": 0.0})
    with pytest.raises(ConfigError, match="invalid"):
        quote_tuning.apply(QuoteConfig(), BacktestConfig(), {"order_lots": 0})


def test_tags_round_trip_to_the_same_settings() -> None:
    q = quote_tuning.apply(
        QuoteConfig(), BacktestConfig(), {"gamma": 5e-08, "order_lots": 7, "kappa": 2.0e-3}
    )
    tags = {**q.tags(quote_tuning.TAG_TUNED_AS), "mmops.family": "sgd"}
    own, tuned = quote_tuning.from_version(tags, QuoteConfig(), BacktestConfig())
    assert own is None
    assert tuned is not None and tuned.tuned == q.tuned
    assert isinstance(tuned.tuned["order_lots"], int)


def test_tune_config_refuses_what_it_cannot_tune() -> None:
    with pytest.raises(ValueError, match="not numeric quote settings"):
        TuneConfig(quote_space={"horizon": SearchParam(type="categorical", choices=("rolling",))})
    with pytest.raises(ValueError, match="does not tune"):
        TuneConfig(quote_space=SPACE, quote_starts=({"gamma": 1e-8},))
    with pytest.raises(ValueError, match="fill-engine objective"):
        TuneConfig(quote_space=SPACE, quote_joint=True, objective="loss")


def test_calibrated_kappa_is_converted_to_engine_ticks(tmp_path: Path) -> None:
    doc = {"instruments": {"spot": {"fits": {"mid": {"kappa_per_tick": 0.033, "kappa_per_price": 0.033}}}}}
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(doc))
    # a capture on a 1-USDT tick, an engine on a 0.01 tick: kappa per engine tick is 100x smaller
    assert quote_tuning.calibrated_start(path, tick_size=0.01) == {"kappa": pytest.approx(3.3e-4)}
    with pytest.raises(ConfigError, match="no such calibration file"):
        quote_tuning.calibrated_start(tmp_path / "missing.json", tick_size=0.01)
    path.write_text("{}")
    with pytest.raises(ConfigError, match=r"not a calibration\.json"):
        quote_tuning.calibrated_start(path, tick_size=0.01)


@pytest.fixture(scope="module")
def small(btc_bars: pd.DataFrame):  # type: ignore[no-untyped-def]
    from features.config import FeaturesConfig
    from training.dataset import build_dataset
    from training.splits import plan_splits

    bars = btc_bars.iloc[:6000].reset_index(drop=True)
    ds = build_dataset(bars, FeaturesConfig(), label_horizon=15)
    profile = SplitProfile(n_folds=2, backtest_days=0.5, forward_days=0.5, max_train_bars=1500)
    return ds, profile, plan_splits(ds.index, profile, label_horizon=15)


def _job(small, family: str, tune: TuneConfig, starts=()):  # type: ignore[no-untyped-def]
    from training.tune import TuneJob

    ds, profile, plan = small
    space = {"alpha": SearchParam(type="float", low=1e-6, high=1e-2, log=True)} if family == "sgd" else {}
    return TuneJob(
        dataset=ds,
        plan=plan,
        family=family,
        task="regressor",
        family_config=FamilyConfig(space=space),
        tune=tune,
        split=profile,
        quote=QuoteConfig(),
        risk=RiskConfig(),
        backtest=BacktestConfig(),
        quote_starts=starts,
    )


def test_quoter_study_runs_the_starting_points_first_and_resumes(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from training.tune import open_study, quoter_fold_score, run_trials, tuned_quoter

    tune = TuneConfig(quote_space=SPACE, quote_starts=({"kappa": 3.3e-4},), n_startup_trials=1, prune=False)
    job = _job(small, "as", tune, starts=({"order_lots": 4},))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert tuned_quoter(storage, "m", job) is None  # nothing tuned yet: no tas_ comparison
    study = open_study(storage, "m-as-quoter", maximize=True, config=tune)
    run_trials(study, job, trials=2, timeout_s=None)
    today = {"quote.kappa": 5e-4, "quote.order_lots": 10, "quote.refresh_bars": 1}
    assert study.trials[0].params == today  # params.yaml's values first
    assert study.trials[1].params == {**today, "quote.kappa": 3.3e-4}  # then the calibrated kappa
    # a trial's value is the mean over the same walk-forward folds the families are scored on
    q0 = job.quoting(study.trials[0].params)
    expected = np.mean([quoter_fold_score(job, f, quoting=q0) for f in job.plan.folds])
    assert study.trials[0].value == pytest.approx(expected, rel=1e-12)

    resumed = open_study(storage, "m-as-quoter", maximize=True, config=tune)
    run_trials(resumed, job, trials=2, timeout_s=None)
    params = [t.params for t in resumed.trials]
    assert len(params) == 4
    assert params[2] == {**today, "quote.order_lots": 4}  # the one start not yet run
    assert params[3] not in params[:3]  # then the sampler's own: no start is run twice
    name, best = tuned_quoter(storage, "m", job) or ("", None)
    assert name == "m-as-quoter"
    assert best is not None and best.tuned == quote_tuning.from_trial_params(resumed.best_trial.params)


def test_the_quoter_study_needs_a_space(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from training.tune import open_study, run_trials

    job = _job(small, "as", TuneConfig())
    study = open_study(f"sqlite:///{tmp_path / 'o.db'}", "x", maximize=True, config=job.tune)
    with pytest.raises(ValueError, match=r"tune\.quote_space"):
        run_trials(study, job, trials=1, timeout_s=None)


def test_a_joint_study_tunes_the_family_and_the_quote_settings_together(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from training.tune import open_study, run_trials, study_name

    tune = TuneConfig(quote_space=SPACE, quote_joint=True, n_startup_trials=1, prune=False)
    job = _job(small, "sgd", tune)
    assert study_name("m", "sgd", "regressor", joint=True) == "m-sgd-regressor-quote"
    study = open_study(f"sqlite:///{tmp_path / 'j.db'}", "j", maximize=True, config=tune)
    run_trials(study, job, trials=2, timeout_s=None)
    first, second = (t.params for t in study.trials)
    assert {"alpha", "quote.kappa", "quote.order_lots", "quote.refresh_bars"} == set(first)
    assert first["quote.kappa"] == 5e-4  # today's values start the joint study too
    assert second != first


def test_the_comparison_uses_the_tuned_quoter_and_the_model_its_own_settings(small) -> None:  # type: ignore[no-untyped-def]
    ds, _, plan = small
    rows = plan.backtest
    bars = ds.bars.iloc[rows].reset_index(drop=True)
    preds = np.full(len(bars), 1e-4)
    tuned = quote_tuning.apply(QuoteConfig(), BacktestConfig(), {"kappa": 2e-4, "refresh_bars": 2})
    own = quote_tuning.apply(QuoteConfig(), BacktestConfig(), {"order_lots": 3})
    report = evaluate_window(
        bars,
        preds,
        ds.fwd_return[rows],
        task="regressor",
        quote=QuoteConfig(),
        risk=RiskConfig(),
        backtest=BacktestConfig(),
        config=EvaluateConfig(bootstrap_samples=100),
        model_quoting=own,
        tuned_quoter=tuned,
    )
    m = report.metrics
    direct = run_backtest(bars, quote=tuned.quote, risk=RiskConfig(), backtest=tuned.backtest, strategy="as")
    default = run_backtest(
        bars, quote=QuoteConfig(), risk=RiskConfig(), backtest=BacktestConfig(), strategy="as"
    )
    assert m["tas_pnl_pct"] == direct.metrics.pnl_pct
    assert m["tas_n_trades"] == direct.metrics.n_trades
    assert m["as_n_trades"] == default.metrics.n_trades != m["tas_n_trades"]  # a different quoter
    assert m["tas_pnl_diff_pct"] == pytest.approx(m["pnl_pct"] - m["tas_pnl_pct"], abs=1e-12)
    assert {"tas_sharpe_diff", "tas_sharpe_diff_lo", "tas_sharpe_diff_hi"} <= set(m)
    assert "tuned_as" in report.equity.columns
    signals = pd.DataFrame({"timestamp": bars["timestamp"].to_numpy(), "pred_return": preds})
    mine = run_backtest(
        bars, quote=own.quote, risk=RiskConfig(), backtest=own.backtest, signals=signals, strategy="model"
    )
    assert m["n_trades"] == mine.metrics.n_trades  # the model quoted with its own tuned size


def test_the_protocol_tunes_the_quoter_first_and_shows_it_beside_each_model(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import math

    from training.pipeline import TrackingSettings
    from training.protocol import quoter_job, run_protocol

    base = _job(small, "sgd", TuneConfig(quote_space=SPACE, n_startup_trials=1, prune=False))
    assert quoter_job(_job(small, "sgd", TuneConfig(objective="loss", quote_space=SPACE))) is None
    assert quoter_job(_job(small, "sgd", TuneConfig())) is None  # no space: nothing to tune
    settings = TrackingSettings(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_root=(tmp_path / "art").as_uri(),
        optuna_storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        scratch=tmp_path / "models",
        repo=tmp_path,
        dvc_data_hash="none",
        params_doc={},
    )
    table = run_protocol(
        [base],
        settings,
        trials=1,
        timeout_s=None,
        evaluate=EvaluateConfig(bootstrap_samples=100, importance_rows=100),
        quoter=quoter_job(base),
    )
    # one trial of the quoter's study is its first starting point, params.yaml's own settings: the
    # "tuned" quoter is then the default one, to the last digit, on both windows
    assert table["tas_pnl_pct"].tolist() == table["as_pnl_pct"].tolist()
    assert all(math.isfinite(v) for v in table["tas_sharpe_diff_lo"])
