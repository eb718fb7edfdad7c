"""``mmops gate | approve | reject | rollback | registry status | canary evaluate | serve``: governance
and serving.

Thin: each command resolves locations and params, calls :class:`training.registry.Registry` (or
starts ``bentoml serve``), and reports. Refusals are :class:`training.gate.GovernanceError`, so
they exit 1 with the reason and change nothing.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from features.errors import ConfigError
from flows.cli_common import JsonOpt, app, context, emit, err, reported
from flows.params import Params
from flows.settings import REPO_ROOT, Locations
from flows.training_steps import model_name, open_registry
from training.gate import GovernanceError

if TYPE_CHECKING:
    from serving.config import ServeSettings
    from training.registry import AliasChange

registry_app = typer.Typer(no_args_is_help=True, help="Inspect the model registry.")
app.add_typer(registry_app, name="registry")
canary_app = typer.Typer(no_args_is_help=True, help="Judge a canary on what it did in the worker's journal.")
app.add_typer(canary_app, name="canary")

VersionOpt = Annotated[str, typer.Option("--version", help="registered model version, e.g. 3")]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="registered model (default: serve.model or mmops-SYMBOL-INTERVAL)"),
]
ByOpt = Annotated[str, typer.Option("--by", help="who decides (recorded)")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="why (recorded)")]


def _changes(changes: list[AliasChange]) -> list[dict[str, Any]]:
    return [{"alias": c.alias, "version": c.version, "previous": c.previous} for c in changes]


def _human(changes: list[AliasChange]) -> str:
    return (
        "\n".join(f"{c.alias}: {c.previous or '-'} -> {c.version or '-'}" for c in changes)
        or "no alias moved"
    )


@app.command()
@reported
def gate(version: VersionOpt, model: ModelOpt = None, as_json: JsonOpt = False) -> None:
    """Judge a version against the params.yaml gate and the champion; a pass sets @challenger."""
    from flows.training_steps import evaluator_for

    where, params = context()
    name = model_name(params, model)
    outcome = open_registry(where).gate(
        name, version, config=params.gate, evaluate=evaluator_for(where, params, params.gate.window)
    )
    v = outcome.verdict
    payload = {
        "model": name,
        "version": outcome.version,
        "passed": v.passed,
        "champion": v.champion_version,
        "auto_approved": v.auto_approve,
        "report": str(outcome.report),
        "changes": _changes(list(outcome.changes)),
        "checks": [
            {
                "name": c.name,
                "value": c.value,
                "threshold": c.threshold,
                "comparator": c.comparator,
                "passed": c.passed,
                "skipped": c.skipped,
                "note": c.note,
            }
            for c in v.checks
        ],
    }
    human = "\n".join(
        [
            f"{name} v{outcome.version}: gate {'PASSED' if v.passed else 'FAILED'}",
            *(f"  {c.describe()}" for c in v.checks),
            f"report: {outcome.report}",
            _human(list(outcome.changes)),
        ]
    )
    emit(payload, as_json=as_json, human=human)
    if not v.passed:
        raise typer.Exit(1)


@app.command()
@reported
def approve(
    version: VersionOpt, by: ByOpt, reason: ReasonOpt, model: ModelOpt = None, as_json: JsonOpt = False
) -> None:
    """Make a gate-passed version champion (who, when and why are recorded and audited)."""
    where, params = context()
    name = model_name(params, model)
    registry = open_registry(where)
    changes = registry.approve(name, version, by=by, reason=reason)
    canary = registry.state(name).get(version).canary
    seen = f"canary ({canary['at']}): {canary['reason']}" if canary else "canary: no evaluation recorded"
    emit(
        {"model": name, "version": version, "changes": _changes(changes), "canary": canary},
        as_json=as_json,
        human=f"{_human(changes)}\n{seen}",
    )


@app.command()
@reported
def reject(
    version: VersionOpt, by: ByOpt, reason: ReasonOpt, model: ModelOpt = None, as_json: JsonOpt = False
) -> None:
    """Refuse a version for good (it loses @challenger; it can never be approved)."""
    where, params = context()
    name = model_name(params, model)
    changes = open_registry(where).reject(name, version, by=by, reason=reason)
    emit(
        {"model": name, "version": version, "rejected": True, "changes": _changes(changes)},
        as_json=as_json,
        human=f"{name} v{version} rejected\n{_human(changes)}",
    )


@app.command()
@reported
def rollback(
    reason: Annotated[str, typer.Option("--reason", help="why (recorded)")] = "rollback",
    by: Annotated[str | None, typer.Option("--by", help="who decides (default: the OS user)")] = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put back the previous champion (the current one's approval is revoked; audited)."""
    where, params = context()
    name = model_name(params, model)
    change = open_registry(where).rollback(name, by=by or getpass.getuser(), reason=reason)
    emit({"model": name, "changes": _changes([change])}, as_json=as_json, human=_human([change]))


@registry_app.command("status")
@reported
def registry_status(model: ModelOpt = None, as_json: JsonOpt = False) -> None:
    """Versions, aliases, gate verdicts and approvals."""
    where, params = context()
    state = open_registry(where).state(model_name(params, model)).to_dict()
    lines = [f"{state['name']}  aliases: {state['aliases'] or '-'}"]
    for v in state["versions"]:
        lines.append(
            f"  v{v['version']:<4} {v['family'] or '?':<5} {','.join(v['aliases']) or '-':<20} "
            f"gate={v['gate'] or '-':<7} approval={v['approval'] or '-'}"
            + (
                f" by {v['approval_by']} at {v['approval_at']}: {v['approval_reason']}"
                if v["approval_by"]
                else ""
            )
        )
    emit(state, as_json=as_json, human="\n".join(lines))


@canary_app.command("evaluate")
@reported
def canary_evaluate(
    journal: Annotated[Path, typer.Option("--journal", help="the worker's journal of the canary run")],
    champion: Annotated[str | None, typer.Option("--champion", help="default: the journal's")] = None,
    challenger: Annotated[str | None, typer.Option("--challenger", help="default: the journal's")] = None,
    record: Annotated[
        bool,
        typer.Option("--record/--no-record", help="store the recommendation on the challenger's version"),
    ] = True,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Challenger vs champion on their fills, PnL and markouts, with a CI; promote, extend or roll back."""
    from flows.canary_steps import evaluate_journal, record_evaluation, summary

    where, params = context()
    evaluation = evaluate_journal(params, journal, champion=champion, challenger=challenger)
    try:
        recorded = record_evaluation(where, params, evaluation, model=model) if record else None
    except GovernanceError as exc:
        raise GovernanceError(f"{exc}; to see the evaluation without recording it: --no-record") from exc
    human = summary(evaluation) + (
        f"\nrecorded on {recorded['model']} v{recorded['version']}: {recorded['report']}" if recorded else ""
    )
    emit({"evaluation": evaluation.to_dict(), "recorded": recorded}, as_json=as_json, human=human)


@app.command()
@reported
def serve(
    port: Annotated[int | None, typer.Option("--port", help="default: serve.port")] = None,
    host: Annotated[str | None, typer.Option("--host", help="default: serve.host")] = None,
    canary: Annotated[
        float | None, typer.Option("--canary", min=0.0, max=1.0, help="share of symbols to @challenger")
    ] = None,
    shadow: Annotated[
        bool, typer.Option("--shadow", help="run @challenger too, answer with @champion")
    ] = False,
    model: ModelOpt = None,
) -> None:
    """Serve the champion with BentoML (until interrupted); the token comes from MMOPS_SERVE_TOKEN."""
    from training.artifact import select_providers

    where, params = context()
    settings = serve_settings(where, params, model=model, canary=canary, shadow=shadow)
    config = settings.config
    # said before BentoML starts: serve.device cuda without a working GPU is one line and exit 1 here
    err.print(select_providers(config.device).reason, highlight=False, markup=False, soft_wrap=True)
    path = settings.write(where.home / "serving" / "settings.json")
    cmd = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "serving.service:SignalService",
        "--working-dir",
        str(REPO_ROOT),
        "--port",
        str(port or config.port),
        "--host",
        host or config.host,
    ]
    env = {**os.environ, "MMOPS_SERVE_SETTINGS": str(path), "BENTOML_DO_NOT_TRACK": "True"}
    raise typer.Exit(subprocess.call(cmd, env=env))


def serve_settings(
    where: Locations, params: Params, *, model: str | None, canary: float | None, shadow: bool
) -> ServeSettings:
    """The service's settings from params.yaml and the command-line overrides."""
    from serving.config import ServeSettings

    if canary is not None and shadow:
        raise ConfigError("--canary and --shadow exclude each other")
    overrides: dict[str, Any] = {}
    if canary is not None:
        overrides = {"mode": "canary", "canary_fraction": canary}
    elif shadow:
        overrides = {"mode": "shadow"}
    return ServeSettings(
        model_name=model_name(params, model),
        tracking_uri=where.tracking_uri,
        cache_dir=where.models / "serving",
        log_dir=where.logs,
        config=params.serve.model_copy(update=overrides),
    )
