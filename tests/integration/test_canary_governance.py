"""Canary evaluation recorded on a real MLflow registry: ``mmops canary evaluate`` and the
``canary-evaluate`` flow put the recommendation on the challenger's version (tags, JSON artifact,
audit line) and ``mmops approve`` shows it; bad input exits 1 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from canary_journal import Plan, build_journal
from model_seed import PASSING, fit_tiny, register
from typer.testing import CliRunner

from training.gate import GateConfig
from training.registry import Registry

NAME = "mmops-CANARY-1m"


def evaluate(uri: str) -> dict[str, float]:  # the gate's head-to-head: v2 beats v1
    score = float(uri.rsplit("/", 1)[1])
    return {"utility": score, "sharpe": score, "max_drawdown_pct": 1.0}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Champion v1 (approved) and challenger v2 (gate passed) of one model; a canary journal where
    v2 earns three times v1's edge, and one where v2 does worse."""
    home = tmp_path_factory.mktemp("canary-governance")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    artifact = fit_tiny("sgd", home / "models")
    for _ in range(2):
        register(artifact, tracking_uri=uri, name=NAME, family="sgd", metrics=PASSING)
    reg = Registry(uri, audit_log=home / "logs" / "registry_audit.jsonl", reports=home / "reports")
    reg.gate(NAME, "1", config=GateConfig(), evaluate=evaluate)
    reg.approve(NAME, "1", by="alice", reason="first")
    reg.gate(NAME, "2", config=GateConfig(), evaluate=evaluate)
    better = build_journal(home / "better.db", Plan(challenger_edge=3.0, versions=("1", "2")))
    worse = build_journal(home / "worse.db", Plan(challenger_edge=-1.0, versions=("1", "2"), seed=1))
    return {"home": home, "uri": uri, "reg": reg, "better": better, "worse": worse}


@pytest.fixture
def mmops(world: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    # the repository's params, with a window this test's journals reach (one symbol a version)
    params = tmp_path / "params.yaml"
    text = (Path(__file__).resolve().parents[2] / "params.yaml").read_text()
    params.write_text(
        text.replace("min_ticks: 1440", "min_ticks: 500").replace("min_symbols: 3", "min_symbols: 1")
    )
    monkeypatch.setenv("MMOPS_HOME", str(world["home"]))
    monkeypatch.setenv("MMOPS_PARAMS", str(params))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", world["uri"])
    return CliRunner()


def test_cli_records_the_recommendation_on_the_challenger_and_approve_shows_it(
    world: dict, mmops: CliRunner
) -> None:
    from flows.cli import app

    out = mmops.invoke(
        app, ["canary", "evaluate", "--journal", str(world["better"]), "--model", NAME, "--json"]
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    advice = doc["evaluation"]["recommendation"]
    assert advice["action"] == "promote" and advice["reason"].startswith(
        "promote: challenger v2 - champion v1 = +"
    )
    assert doc["recorded"]["version"] == "2" and doc["recorded"]["report"].startswith("runs:/")
    v2 = world["reg"].state(NAME).get("2")
    assert v2.canary is not None
    assert (v2.canary["recommendation"], v2.canary["reason"], v2.canary["champion"]) == (
        "promote",
        advice["reason"],
        "1",
    )
    local = sorted((world["home"] / "reports" / "canary" / NAME / "v2").rglob("canary_evaluation.json"))
    assert json.loads(local[-1].read_text())["recommendation"] == advice
    client = world["reg"].client
    listed = client.list_artifacts(v2.run_id, "canary/v2")
    assert listed and client.list_artifacts(v2.run_id, listed[-1].path)[0].path.endswith(
        "canary_evaluation.json"
    )
    assert [e["action"] for e in world["reg"].audit.entries() if e["version"] == "2"][-1] == "canary"
    human = mmops.invoke(app, ["canary", "evaluate", "--journal", str(world["better"]), "--no-record"])
    assert human.exit_code == 0 and "v2         challenger B  4000 fills" in human.output
    assert "book live: PnL" in human.output and human.output.rstrip().splitlines()[-1] == advice["reason"]

    approved = mmops.invoke(
        app, ["approve", "--model", NAME, "--version", "2", "--by", "bob", "--reason", "canary"]
    )
    assert approved.exit_code == 0, approved.output
    assert "champion: 1 -> 2" in approved.output
    assert f"canary ({v2.canary['at']}): {advice['reason']}" in approved.output.replace("\n", "")


def test_bad_input_exits_1_with_one_line(world: dict, mmops: CliRunner, tmp_path: Path) -> None:
    from flows.cli import app

    cases = [
        (["--journal", str(tmp_path / "none.db")], "no journal here; give the run's --journal"),
        (["--journal", str(world["better"]), "--challenger", "9"], "version 9 never quoted in this run"),
        (
            ["--journal", str(build_journal(tmp_path / "q.db", Plan(ticks=40, challenger_fills=False)))],
            "challenger v8 has no fills yet",
        ),
        (
            ["--journal", str(build_journal(tmp_path / "x.db", Plan(ticks=40)))],
            "has no version 8 (versions: 1, 2); to see the evaluation without recording it: --no-record",
        ),
    ]
    for args, says in cases:
        out = mmops.invoke(app, ["canary", "evaluate", "--model", NAME, *args])
        assert out.exit_code == 1, out.output
        assert says in out.output and "Traceback" not in out.output
        assert out.output.startswith("error:")


@pytest.mark.e2e
def test_the_flow_records_a_rollback_under_prefect(
    world: dict, mmops: CliRunner, prefect_harness: None
) -> None:
    from flows.canary import canary_evaluate_flow

    result = canary_evaluate_flow(journal=str(world["worse"]), model=NAME, champion="1", challenger="2")
    advice = result["evaluation"]["recommendation"]
    assert advice["action"] == "rollback" and "below 0" in advice["reason"]
    assert world["reg"].state(NAME).get("2").canary["recommendation"] == "rollback"  # type: ignore[index]
    assert result["recorded"]["report"].startswith("runs:/")
