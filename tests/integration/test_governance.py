"""Governance on a real MLflow registry (SQLite) with real registered model versions.

The gate's head-to-head evaluator is injected (Sharpe by version) so the outcome of each step is
known; the thresholds read the metrics logged on each version's run, as in production.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from model_seed import PASSING, fit_tiny, register
from typer.testing import CliRunner

from training.gate import AutoApproveConfig, GateConfig, GovernanceError
from training.gate_report import verdict_line
from training.registry import Registry

FAILING = {**PASSING, "forward_utility": -1.0}
SHARPE = {"1": 1.0, "2": 2.0, "3": 3.0, "4": 4.0}


def evaluate(uri: str) -> dict[str, float]:
    score = SHARPE[uri.rsplit("/", 1)[1]]
    return {"utility": score, "sharpe": score, "max_drawdown_pct": 1.0}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("governance")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    return {"home": home, "uri": uri, "artifact": fit_tiny("sgd", home / "models")}


def registry(world: dict) -> Registry:
    home = world["home"]
    return Registry(world["uri"], audit_log=home / "logs" / "registry_audit.jsonl", reports=home / "reports")


def seed(world: dict, name: str, metrics: list[dict]) -> Registry:
    for m in metrics:
        register(world["artifact"], tracking_uri=world["uri"], name=name, family="sgd", metrics=m)
    return registry(world)


def snapshot(reg: Registry, name: str) -> tuple:
    state = reg.state(name)
    audit = reg.audit.path.read_bytes() if reg.audit.path.exists() else b""
    return dict(state.aliases), {v.version: dict(v.tags) for v in state.versions}, audit


def alias_moves(reg: Registry, name: str) -> list[tuple[str, str, str | None, str | None]]:
    return [
        (e["action"], e["alias"], e["version"], e["previous"])
        for e in reg.audit.entries()
        if e["name"] == name and e["alias"]
    ]


def test_ungated_gate_failed_rejected_and_stale_versions_are_refused_without_any_change(world: dict) -> None:
    name = "mmops-REFUSE-1m"
    reg = seed(world, name, [PASSING, FAILING, PASSING, PASSING])
    before = snapshot(reg, name)
    with pytest.raises(GovernanceError, match="version 1 has not been gated; run `mmops gate --version 1`"):
        reg.approve(name, "1", by="alice", reason="looks good")
    assert snapshot(reg, name) == before

    failed = reg.gate(name, "2", config=GateConfig(), evaluate=evaluate)
    assert not failed.verdict.passed and failed.changes == ()
    before = snapshot(reg, name)
    with pytest.raises(GovernanceError, match=r"version 2 failed the gate .*forward_utility: -1"):
        reg.approve(name, "2", by="alice", reason="override")
    assert snapshot(reg, name) == before
    assert reg.state(name).get("2").gate == "failed" and "challenger" not in reg.state(name).aliases

    reg.gate(name, "3", config=GateConfig(), evaluate=evaluate)
    reg.reject(name, "3", by="bob", reason="trades too much at night")
    before = snapshot(reg, name)
    with pytest.raises(GovernanceError, match="version 3 was rejected by bob"):
        reg.approve(name, "3", by="alice", reason="again")
    with pytest.raises(GovernanceError, match="say who decides"):
        reg.approve(name, "1", by=" ", reason="x")
    assert snapshot(reg, name) == before

    reg.gate(name, "4", config=GateConfig(), evaluate=evaluate)  # gated while there is no champion
    reg.gate(name, "1", config=GateConfig(), evaluate=evaluate)
    reg.approve(name, "1", by="alice", reason="first champion")
    before = snapshot(reg, name)
    with pytest.raises(GovernanceError, match="gated against champion none but the champion is now 1"):
        reg.approve(name, "4", by="alice", reason="stale head-to-head")
    with pytest.raises(GovernanceError, match="already the champion"):
        reg.approve(name, "1", by="alice", reason="twice")
    with pytest.raises(GovernanceError, match="is the champion; run `mmops rollback`"):
        reg.reject(name, "1", by="bob", reason="no")
    assert snapshot(reg, name) == before
    assert reg.state(name).aliases["champion"] == "1"


def test_rollback_restores_the_previous_champion_and_the_audit_log_lists_every_alias_change(
    world: dict,
) -> None:
    name = "mmops-ROLLBACK-1m"
    reg = seed(world, name, [PASSING, PASSING, PASSING])
    for version in ("1", "2", "3"):
        outcome = reg.gate(name, version, config=GateConfig(), evaluate=evaluate)
        assert outcome.verdict.passed and reg.state(name).aliases["challenger"] == version
        reg.approve(name, version, by="alice", reason=f"promote v{version}")
    assert reg.state(name).aliases == {"champion": "3"}
    v3 = reg.state(name).get("3").tags
    assert (v3["mmops.approval.by"], v3["mmops.approval.reason"], v3["mmops.champion.previous"]) == (
        "alice",
        "promote v3",
        "2",
    )
    assert v3["mmops.approval.at"].startswith("20")

    assert reg.rollback(name, by="carol", reason="v3 loses money").version == "2"
    assert reg.state(name).aliases["champion"] == "2"
    assert reg.state(name).get("3").approval == "revoked"
    assert reg.rollback(name, by="carol", reason="v2 too").version == "1"
    before = snapshot(reg, name)
    with pytest.raises(GovernanceError, match="no previous champion"):
        reg.rollback(name, by="carol", reason="once more")
    assert snapshot(reg, name) == before

    assert alias_moves(reg, name) == [
        ("gate", "challenger", "1", None),
        ("approve", "champion", "1", None),
        ("approve", "challenger", None, "1"),
        ("gate", "challenger", "2", None),
        ("approve", "champion", "2", "1"),
        ("approve", "challenger", None, "2"),
        ("gate", "challenger", "3", None),
        ("approve", "champion", "3", "2"),
        ("approve", "challenger", None, "3"),
        ("rollback", "champion", "2", "3"),
        ("rollback", "champion", "1", "2"),
    ]
    seqs = [e["seq"] for e in reg.audit.entries()]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_the_verdict_and_the_report_are_stored_on_the_version(world: dict) -> None:
    name = "mmops-REPORT-1m"
    reg = seed(world, name, [PASSING, PASSING])
    reg.gate(name, "1", config=GateConfig(), evaluate=evaluate)
    reg.approve(name, "1", by="alice", reason="ok")
    outcome = reg.gate(name, "2", config=GateConfig(min_sharpe_over_champion=0.5), evaluate=evaluate)
    assert outcome.verdict.passed and outcome.verdict.champion_version == "1"
    tags = reg.state(name).get("2").tags
    assert tags["mmops.gate.verdict"] == "passed" and tags["mmops.gate.champion"] == "1"
    run_id = reg.state(name).get("2").run_id
    assert tags["mmops.gate.report"] == f"runs:/{run_id}/gate/v2/gate_report.md"
    logged = [a.path for a in reg.client.list_artifacts(run_id, "gate/v2")]
    assert logged == ["gate/v2/gate_report.md"]
    text = Path(
        reg.client.download_artifacts(run_id, "gate/v2/gate_report.md", str(world["home"]))
    ).read_text()
    head = next(c for c in outcome.verdict.checks if c.name.startswith("head-to-head sharpe"))
    assert "**Verdict: PASSED.**" in text and f"| {head.label} | 1 | >= 0.5 | pass |" in text
    assert "| sharpe | — | 2 |" in text  # the forward_sharpe logged by training, in the appendix
    # the MLflow UI's version page shows the verdict in one line, and a later note keeps it on top
    version = reg.client.get_model_version(name, "2")
    assert version.description == verdict_line(outcome.verdict) and version.description.startswith(
        "Gate passed"
    )
    reg.annotate(name, "2", tags={}, description="**canary retrain**: drift")
    assert (
        reg.client.get_model_version(name, "2").description
        == f"{version.description}\n\n**canary retrain**: drift"
    )


def test_auto_approve_policy_promotes_only_with_the_margin(world: dict) -> None:
    name = "mmops-AUTO-1m"
    reg = seed(world, name, [PASSING, PASSING])
    policy = GateConfig(auto_approve=AutoApproveConfig(enabled=True, min_sharpe_margin=0.4))
    first = reg.gate(name, "1", config=policy, evaluate=evaluate)  # utility margins 2.0, 0.5, 0.5 >= 0.5
    assert first.verdict.auto_approve and reg.state(name).aliases == {"champion": "1"}
    assert reg.state(name).get("1").tags["mmops.approval.by"] == "policy:auto_approve"
    second = reg.gate(name, "2", config=policy.model_copy(update={"min_sharpe": 1.8}), evaluate=evaluate)
    assert second.verdict.passed and not second.verdict.auto_approve  # 2.0 - 1.8 < 0.4
    assert reg.state(name).aliases == {"champion": "1", "challenger": "2"}


def test_cli_refusals_exit_non_zero_with_the_reason(world: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.cli import app

    name = "mmops-CLI-1m"
    reg = seed(world, name, [PASSING, PASSING])
    reg.gate(name, "1", config=GateConfig(), evaluate=evaluate)
    monkeypatch.setenv("MMOPS_HOME", str(world["home"]))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", world["uri"])
    runner = CliRunner()
    refused = runner.invoke(app, ["approve", "--model", name, "--version", "2", "--by", "x", "--reason", "y"])
    assert refused.exit_code == 1 and "has not been gated" in refused.output
    ok = runner.invoke(
        app, ["approve", "--model", name, "--version", "1", "--by", "dave", "--reason", "go", "--json"]
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["changes"][0] == {"alias": "champion", "version": "1", "previous": None}
    status = runner.invoke(app, ["registry", "status", "--model", name, "--json"])
    doc = json.loads(status.stdout)
    assert doc["aliases"] == {"champion": "1"}
    assert [(v["version"], v["gate"], v["approval"], v["approval_by"]) for v in doc["versions"]] == [
        ("1", "passed", "approved", "dave"),
        ("2", None, None, None),
    ]
    refused = runner.invoke(app, ["rollback", "--model", name, "--reason", "test"])
    assert refused.exit_code == 1 and "no previous champion" in refused.output


def test_a_canary_retrain_that_fails_the_gate_leaves_the_aliases_and_records_why(
    world: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.settings import Locations
    from flows.training_steps import gate_result, record_retrain

    name = "mmops-CANARYFAIL-1m"
    reg = seed(world, name, [PASSING, FAILING])
    reg.gate(name, "1", config=GateConfig(), evaluate=evaluate)
    reg.approve(name, "1", by="alice", reason="first champion")
    before = dict(reg.state(name).aliases)
    audit_before = len(reg.audit.entries())
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the home's own mlflow.db, as `world`
    where = Locations(
        home=world["home"], source_data=world["home"], params_file=world["home"] / "params.yaml"
    )
    gate = gate_result(reg.gate(name, "2", config=GateConfig(), evaluate=evaluate))
    drift = {"series": "binance:BTCUSDT:1m", "share_drifted": 0.7}
    chosen = {"family": "sgd", "trials": 1, "metrics": {"forward_sharpe": -1.0}}
    record = record_retrain(
        where,
        name,
        "2",
        mode="canary",
        reason="sustained drift on binance:BTCUSDT:1m",
        drift=drift,
        flow_run="",
        registered={"chosen": chosen, "candidates": [chosen]},
        gate=gate,
    )
    assert reg.state(name).aliases == before == {"champion": "1"}
    entries = reg.audit.entries()[audit_before:]
    assert [(e["action"], e["alias"], e["version"]) for e in entries] == [
        ("gate", None, "2")
    ]  # no alias move
    tags = reg.state(name).get("2").tags
    assert tags["mmops.gate.verdict"] == "failed" and tags["mmops.retrain.alias"] == "none"
    assert tags["mmops.retrain.outcome"] == record.outcome()
    assert tags["mmops.retrain.outcome"].startswith("gate failed, aliases untouched: forward utility")
    assert "-1 is below the minimum 0" in tags["mmops.retrain.outcome"]
    assert "forward_utility: -1 >= 0 -> FAIL" in tags["mmops.gate.checks"]
    assert json.loads(tags["mmops.drift.payload"]) == drift
    description = reg.client.get_model_version(name, "2").description
    assert "- gate: failed" in str(description)
