"""The promotion gate's pure logic, the gate report and the audit log.

Hand-computed float64 values are compared with ``pytest.approx``'s default (relative 1e-6): the
round-off of these few operations is ~1e-15, so the default only absorbs the rounding of the
decimal constants written here, and a wrong formula or a missed fee is off by far more.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from training.audit import AuditLog
from training.gate import AutoApproveConfig, GateConfig, judge

GOOD = {
    "forward_utility": 3.0,
    "forward_sharpe": 2.0,
    "forward_max_drawdown_pct": 1.0,
    "forward_utility_diff": 0.8,
    "forward_utility_diff_lo": 0.1,
    "forward_pnl_diff": 0.9,
    "forward_pnl_diff_lo": 0.2,
    "forward_sharpe_diff": 0.4,
    "forward_sharpe_diff_lo": 0.1,
    "forward_n_trades": 50.0,
    "forward_mae": 0.001,
    "forward_rmse": 0.002,
    "forward_skill": 0.01,
    "backtest_utility": 2.5,
}


def verdict(metrics=GOOD, *, task="regressor", champion=None, candidate=None, **config):
    return judge(
        metrics,
        task=task,
        config=GateConfig(**config),
        candidate_eval=candidate or {"utility": 3.0, "sharpe": 2.0},
        champion_eval=champion,
        champion_version=None if champion is None else "1",
    )


def test_good_candidate_passes_without_a_champion() -> None:
    v = verdict()
    assert v.passed
    assert [c.name for c in v.checks if c.skipped] == ["head-to-head utility (candidate - champion)"]
    assert not v.auto_approve  # the policy is off by default
    assert not any("sharpe" in c.name or "skill" in c.name for c in v.checks)  # off by default


@pytest.mark.parametrize(
    ("change", "config", "failing"),
    [
        ({"forward_utility": -0.1}, {}, "forward_utility"),
        ({"forward_max_drawdown_pct": 6.0}, {}, "forward_max_drawdown_pct"),
        ({"forward_n_trades": 9.0}, {}, "forward_n_trades"),
        ({"forward_mae": 0.01}, {"max_mae": 0.005}, "forward_mae"),
        ({"forward_rmse": 0.01}, {"max_rmse": 0.005}, "forward_rmse"),
        ({"forward_skill": -0.01}, {"min_skill": 0.0}, "forward_skill"),
        ({"forward_pnl_diff_lo": -0.2}, {"ci_over_quoter": True}, "forward_pnl_diff_lo (95% CI)"),
        ({"forward_sharpe": -0.1}, {"min_sharpe": 0.0}, "forward_sharpe"),
        (
            {"forward_sharpe_diff": -0.01},
            {"min_sharpe_over_quoter": 0.0},
            "forward_sharpe_diff (model - A-S quoter)",
        ),
        (
            {"forward_sharpe_diff_lo": -0.2},
            {"min_sharpe_over_quoter": 0.0, "ci_over_quoter": True},
            "forward_sharpe_diff_lo (95% CI)",
        ),
    ],
)
def test_each_threshold_can_fail_the_gate(change: dict, config: dict, failing: str) -> None:
    v = verdict({**GOOD, **change}, **config)
    assert not v.passed
    assert [c.name for c in v.failed] == [failing]
    assert failing in v.summary()


def test_losing_more_than_the_quoter_fails_on_utility_and_pnl() -> None:
    v = verdict({**GOOD, "forward_utility_diff": -0.3, "forward_pnl_diff": -0.2})
    assert [c.name for c in v.failed] == [
        "forward_utility_diff (model - A-S quoter)",
        "forward_pnl_diff (model - A-S quoter)",
    ]
    assert v.failed[1].sentence() == (
        "forward net PnL per day over the model-free A-S quoter, bps/day -0.2 is below the minimum 0"
    )


def test_an_old_params_key_whose_meaning_changed_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"require_ci_over_quoter .* is now gate\.ci_over_quoter"):
        GateConfig.model_validate({"require_ci_over_quoter": True})
    old = GateConfig.model_validate({"min_sharpe": 0.0, "min_sharpe_over_champion": 0.0})
    assert old.min_sharpe == 0.0  # the Sharpe keys keep working, beside the new default checks
    assert not verdict({**GOOD, "forward_sharpe": -1.0}, min_sharpe=0.0).passed


def test_a_missing_metric_fails_rather_than_passes() -> None:
    metrics = {k: val for k, val in GOOD.items() if k != "forward_n_trades"}
    v = verdict(metrics)
    assert not v.passed
    assert v.failed[0].note == "metric not logged"


def test_thresholds_read_the_configured_window() -> None:
    assert not verdict(window="backtest").passed  # only backtest_utility was logged for that window
    assert verdict(
        {**GOOD, **{k.replace("forward", "backtest"): x for k, x in GOOD.items()}}, window="backtest"
    ).passed


def test_mae_limits_do_not_apply_to_classifiers() -> None:
    v = verdict({**GOOD, "forward_mae": 0.4}, task="classifier", max_mae=0.005)
    assert v.passed
    assert any(c.skipped and c.name == "forward_mae" for c in v.checks)


def test_head_to_head_against_the_champion() -> None:
    assert verdict(champion={"utility": 2.9, "sharpe": 2.5}).passed  # Sharpe head-to-head is off
    losing = verdict(champion={"utility": 3.5, "sharpe": 1.0})
    assert not losing.passed and losing.failed[0].name == "head-to-head utility (candidate - champion)"
    assert losing.failed[0].value == pytest.approx(-0.5)
    assert not verdict(champion={"utility": 2.9}, min_utility_over_champion=0.2).passed
    sharpe = verdict(champion={"utility": 2.9, "sharpe": 2.5}, min_sharpe_over_champion=0.0)
    assert [c.name for c in sharpe.failed] == ["head-to-head sharpe (candidate - champion)"]
    silent = verdict(champion={"sharpe": 1.0})  # an evaluator that gives no utility fails the check
    assert silent.failed[0].note == "evaluator returned no utility"


def test_auto_approve_needs_the_policy_and_the_margin() -> None:
    on = {"auto_approve": AutoApproveConfig(enabled=True, min_utility_margin=0.15)}
    # margins: utility 3.0, utility_diff 0.8, pnl_diff 0.9, head-to-head 3.0 - 2.5 = 0.5
    assert verdict(champion={"utility": 2.5}, **on).auto_approve
    assert not verdict(champion={"utility": 2.9}, **on).auto_approve  # head-to-head margin 0.1 < 0.15
    assert not verdict(
        {**GOOD, "forward_n_trades": 1.0}, **on
    ).auto_approve  # a failed gate never auto-approves
    sharpe_on = {
        **on,
        "min_sharpe": 1.8,
        "auto_approve": AutoApproveConfig(enabled=True, min_sharpe_margin=0.3),
    }
    assert not verdict(champion={"utility": 2.5}, **sharpe_on).auto_approve  # Sharpe margin 0.2 < 0.3


def test_audit_log_numbers_entries_in_order_and_only_appends(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "logs" / "audit.jsonl")
    assert log.entries() == []
    log.append({"alias": "champion", "version": "1", "previous": None})
    before = log.path.read_bytes()
    log.append({"alias": "champion", "version": "2", "previous": "1"})
    assert log.path.read_bytes().startswith(before)
    assert [(e["seq"], e["version"], e["previous"]) for e in log.entries()] == [(1, "1", None), (2, "2", "1")]


def test_audit_log_concurrent_appends_lose_nothing(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    threads = [
        threading.Thread(target=lambda i=i: [log.append({"writer": i}) for _ in range(20)]) for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert [e["seq"] for e in entries] == list(range(1, 81))


def test_each_check_reads_as_a_sentence_with_its_numbers() -> None:
    v = verdict({**GOOD, "forward_utility": -19.4057, "forward_max_drawdown_pct": 6.5})
    assert [c.sentence() for c in v.failed] == [
        "forward utility of the model's quoter, bps of capital per day -19.4057 is below the minimum 0",
        "forward max drawdown, % of peak 6.5 is above the maximum 5",
    ]
    passed = {c.name: c.sentence() for c in v.checks}
    assert passed["forward_n_trades"] == "forward fills 50 meets the minimum 10"
    assert passed["head-to-head utility (candidate - champion)"] == (
        "utility over the champion on the same window, bps/day: not checked (no champion yet)"
    )
    missing = verdict({k: x for k, x in GOOD.items() if k != "forward_n_trades"})
    assert missing.failed[0].sentence() == "forward fills: metric not logged"
