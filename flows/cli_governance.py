"""``mmops gate | approve | reject | rollback | registry status | serve``: governance and serving.

Thin: each command resolves locations and params, calls :class:`training.registry.Registry` (or
starts ``bentoml serve``), and reports. Refusals are :class:`training.gate.GovernanceError`, so
they exit 1 with the reason and change nothing.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from features.errors import ConfigError
from flows.cli_common import JsonOpt, app, context, emit, reported
from flows.params import Params
from flows.settings import REPO_ROOT, Locations
from flows.training_steps import model_name, open_registry

if TYPE_CHECKING:
    from serving.config import ServeSettings
    from training.registry import AliasChange

registry_app = typer.Typer(no_args_is_help=True, help="Inspect the model registry.")
app.add_typer(registry_app, name="registry")

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
    changes = open_registry(where).approve(name, version, by=by, reason=reason)
    emit(
        {"model": name, "version": version, "changes": _changes(changes)},
        as_json=as_json,
        human=_human(changes),
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
    where, params = context()
    settings = serve_settings(where, params, model=model, canary=canary, shadow=shadow)
    path = settings.write(where.home / "serving" / "settings.json")
    config = settings.config
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
