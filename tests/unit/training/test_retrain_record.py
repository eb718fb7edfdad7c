"""What a retrain writes on its version: the steps as tags (each under MLflow's limit) and words."""

from __future__ import annotations

import json

from training.registry_state import MAX_TAG
from training.retrain_record import RetrainRecord

CHOSEN = {
    "family": "sgd",
    "task": "regressor",
    "study": "mmops-BTCUSDT-1m-sgd-regressor",
    "run_id": "abc",
    "trials": 1,
    "best_value": 0.4,
    "best_params": {"alpha": 1e-4},
    "metrics": {
        "backtest_sharpe": 1.25,
        "forward_sharpe": -0.5,
        "backtest_utility": 2.5,
        "forward_utility": -1.5,
    },
}
DRIFT = {"series": "binance:BTCUSDT:1m", "share_drifted": 0.62, "drifted": ["rv_60"]}
PASSED = ("forward_sharpe: -0.5 >= -1e+06 -> pass", "forward_n_trades: 120 >= 0 -> pass")


def record(**changes: object) -> RetrainRecord:
    fields: dict = {
        "mode": "canary",
        "reason": "sustained drift on binance:BTCUSDT:1m",
        "drift": DRIFT,
        "flow_run": "run-1",
        "chosen": CHOSEN,
        "candidates": [CHOSEN],
        "gate_passed": True,
        "gate_checks": PASSED,
        "gate_failed": (),
        "aliases": ("challenger",),
    }
    return RetrainRecord(**{**fields, **changes})


def test_a_passed_canary_retrain_records_every_step_and_ends_at_challenger() -> None:
    tags = record().tags()
    assert tags["mmops.retrain.mode"] == "canary" and tags["mmops.retrain.flow_run"] == "run-1"
    assert tags["mmops.retrain.alias"] == "challenger"
    assert (
        tags["mmops.retrain.outcome"] == "gate passed; @challenger (champion only after a recorded approval)"
    )
    assert json.loads(tags["mmops.drift.payload"]) == DRIFT and tags["mmops.drift.series"] == DRIFT["series"]
    chosen = json.loads(tags["mmops.tune.chosen"])
    assert (
        chosen["family"] == "sgd" and "run_id" not in chosen and chosen["metrics"]["backtest_sharpe"] == 1.25
    )
    assert tags["mmops.gate.checks"].splitlines() == list(PASSED)
    text = record().description()
    assert text.startswith("**canary retrain**: sustained drift")
    assert "chose sgd after 1 trial(s); utility (bps of capital/day) backtest 2.5, forward -1.5" in text
    assert "  - forward_n_trades: 120 >= 0 -> pass" in text and "- alias: challenger" in text


def test_a_failed_gate_says_why_and_that_no_alias_moved() -> None:
    failed = record(
        gate_passed=False,
        gate_checks=("forward_sharpe: -0.5 >= 0 -> FAIL",),
        gate_failed=("forward Sharpe (365 d) of the model's quoter -0.5 is below the minimum 0",),
        aliases=(),
    )
    tags = failed.tags()
    assert tags["mmops.retrain.alias"] == "none"
    assert tags["mmops.retrain.outcome"] == (
        "gate failed, aliases untouched: forward Sharpe (365 d) of the model's quoter -0.5 is below the minimum 0"
    )


def test_the_policy_champion_is_named_and_a_retrain_without_drift_has_no_drift_tags() -> None:
    policy = record(aliases=("champion",), mode="standard", drift={})
    assert policy.alias == "champion" and "auto-approve policy" in policy.outcome()
    assert not any(k.startswith("mmops.drift.") for k in policy.tags())


def test_every_tag_and_the_description_fit_mlflows_limit() -> None:
    huge = record(reason="x" * 10_000, drift={**DRIFT, "scores": list(range(5000))})
    assert all(len(v) <= MAX_TAG for v in huge.tags().values())
    assert len(huge.description()) <= MAX_TAG


def test_the_chosen_tag_stays_whole_json_with_a_full_summary() -> None:
    # every metric a real candidate summary carries, with long float reprs: before the cut to the
    # headline metrics, this tag outgrew MLflow's limit and was stored as broken JSON
    from dataclasses import replace

    from training.pipeline import SUMMARY_METRICS

    full = {f"{w}_{m}": -0.123456789012345 for w in ("backtest", "forward") for m in SUMMARY_METRICS}
    big = {**CHOSEN, "metrics": full, "best_params": {f"p{i}": 0.1234567890123 for i in range(12)}}
    tags = replace(record(), chosen=big).tags()
    chosen = json.loads(tags["mmops.tune.chosen"])
    assert chosen["metrics"]["forward_utility"] == -0.123456789012345
    assert "forward_as_sharpe" not in chosen["metrics"]  # on the run, not in the tag
