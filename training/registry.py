"""The MLflow model registry of mmops: gate verdicts, approvals, aliases, rollback, audit.

One of the two modules that import MLflow (the other is :mod:`training.tracking`). Aliases carry
the meaning: ``champion`` is what serves and trades, ``challenger`` the latest version that passed
the gate. Only :meth:`Registry.approve` (a recorded approval of a gate-passed version) and
:meth:`Registry.rollback` (back to a champion that was itself approved) move ``champion``.

Every action first reads and checks everything it needs and raises :class:`GovernanceError`
before writing anything, so a refusal leaves the registry and the audit log exactly as they were.
Decisions are stored as version tags (``mmops.gate.*``, ``mmops.approval.*``) and every alias
change is appended, with the previous holder, to the :class:`training.audit.AuditLog`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from training.audit import AuditLog
from training.gate import GateConfig, GateVerdict, GovernanceError, judge
from training.gate_report import GATE_LINE_PREFIXES, render_markdown, verdict_line
from training.registry_state import (
    APPROVAL,
    APPROVAL_AT,
    APPROVAL_BY,
    APPROVAL_REASON,
    CANARY,
    CANARY_AT,
    CANARY_CHAMPION,
    CANARY_JOURNAL,
    CANARY_REASON,
    CANARY_REPORT,
    CHALLENGER,
    CHAMPION,
    GATE_AT,
    GATE_CHAMPION,
    GATE_REPORT,
    GATE_SUMMARY,
    GATE_VERDICT,
    MAX_TAG,
    NONE,
    PREVIOUS_CHAMPION,
    AliasChange,
    ModelRef,
    RegistryState,
    VersionState,
    model_uri,
)

__all__ = ["AliasChange", "GateOutcome", "ModelRef", "Registry", "RegistryState", "VersionState", "model_uri"]

logger = logging.getLogger(__name__)

Evaluate = Callable[[str], Mapping[str, float]]
Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class GateOutcome:
    version: str
    verdict: GateVerdict
    report: Path
    changes: tuple[AliasChange, ...]


class Registry:
    """Governance operations on the MLflow registry at ``tracking_uri``.

    Args:
        tracking_uri: MLflow tracking (and registry) URI.
        audit_log: the append-only JSONL log of alias changes and decisions.
        reports: local folder for gate reports (also logged to the version's run).
        clock: returns the current UTC time (injected by tests).
    """

    def __init__(self, tracking_uri: str, *, audit_log: Path, reports: Path, clock: Clock = _utcnow) -> None:
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.audit = AuditLog(audit_log)
        self.reports = reports
        self.clock = clock

    # ---- reading -------------------------------------------------------------------------
    def state(self, name: str) -> RegistryState:
        """Aliases and all versions (oldest first) of ``name``.

        Raises:
            GovernanceError: no such registered model.
        """
        try:
            model = self.client.get_registered_model(name)
        except MlflowException as exc:
            _unless_missing(exc)
            raise GovernanceError(
                f"no registered model {name!r} at {self.tracking_uri} (train and register one first)"
            ) from exc
        aliases = {str(a): str(v) for a, v in (model.aliases or {}).items()}
        found = self.client.search_model_versions(f"name='{name}'")
        versions = sorted(found, key=lambda mv: int(mv.version))
        return RegistryState(
            name=name,
            aliases=aliases,
            versions=tuple(
                VersionState(
                    name=name,
                    version=str(mv.version),
                    run_id=mv.run_id,
                    tags=dict(mv.tags or {}),
                    aliases=tuple(sorted(a for a, v in aliases.items() if v == str(mv.version))),
                )
                for mv in versions
            ),
        )

    def aliases(self, name: str) -> dict[str, str]:
        """alias -> version of ``name`` (one cheap call; what the service polls)."""
        try:
            model = self.client.get_registered_model(name)
        except MlflowException as exc:
            _unless_missing(exc)
            raise GovernanceError(f"no registered model {name!r} at {self.tracking_uri}") from exc
        return {str(a): str(v) for a, v in (model.aliases or {}).items()}

    def ref(self, name: str, version: str, alias: str | None = None) -> ModelRef:
        """``version`` of ``name`` with its tags (lineage, family, task)."""
        try:
            mv = self.client.get_model_version(name, str(version))
        except MlflowException as exc:
            _unless_missing(exc)
            raise GovernanceError(f"{name} has no version {version}") from exc
        return ModelRef(name=name, version=str(mv.version), alias=alias, tags=dict(mv.tags or {}))

    def resolve(self, name: str, alias: str) -> ModelRef | None:
        """The version ``alias`` points at, or None when the alias is not set."""
        state = self.state(name)
        version = state.aliases.get(alias)
        if version is None:
            return None
        return ModelRef(name=name, version=version, alias=alias, tags=state.get(version).tags)

    def run_metrics(self, version: VersionState) -> dict[str, float]:
        """The metrics logged on the version's run ({} when it has no run)."""
        if not version.run_id:
            return {}
        return {k: float(v) for k, v in self.client.get_run(version.run_id).data.metrics.items()}

    def download(self, ref: ModelRef, cache: Path) -> Path:
        """The artifact directory (the one holding ``model.json``) of ``ref``, cached under ``cache``.

        Downloads into a temporary folder and renames it into place, so a concurrent reader never
        sees a half-written directory.
        """
        target = cache / ref.name / f"v{ref.version}"
        if not target.exists():
            cache.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=cache))
            try:
                # The concrete store location: models:/ URIs would resolve against the global registry.
                location = self.client.get_model_version_download_uri(ref.name, ref.version)
                mlflow.artifacts.download_artifacts(
                    artifact_uri=location, dst_path=str(tmp), tracking_uri=self.tracking_uri
                )
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    tmp.rename(target)
                except OSError:  # another process won the race; its copy is complete
                    shutil.rmtree(tmp, ignore_errors=True)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        found = sorted(target.rglob("model.json"))
        if not found:
            raise GovernanceError(f"{ref.uri}: no model.json in the logged model at {target}")
        return found[0].parent

    # ---- the gate ------------------------------------------------------------------------
    def gate(self, name: str, version: str, *, config: GateConfig, evaluate: Evaluate) -> GateOutcome:
        """Judge ``version`` against the thresholds and head-to-head against the champion.

        Stores the verdict as tags and the report as an artifact of the version's run; a pass sets
        ``challenger`` (a fail removes it if it pointed here). With the auto-approve policy enabled
        and the margin met, the version is then approved as ``policy:auto_approve``.
        """
        state = self.state(name)
        candidate = state.get(version)
        champion = state.aliases.get(CHAMPION)
        versus = champion if champion and champion != candidate.version else None
        candidate_eval = evaluate(model_uri(name, candidate.version))
        champion_eval = evaluate(model_uri(name, versus)) if versus else None
        metrics = self.run_metrics(candidate)
        verdict = judge(
            metrics,
            task=candidate.tags.get("mmops.task", "regressor"),
            config=config,
            candidate_eval=candidate_eval,
            champion_eval=champion_eval,
            champion_version=versus,
        )
        at = self.clock().isoformat()
        report = self._write_report(name, candidate, verdict, metrics=metrics, at=at, window=config.window)
        report_uri = report.as_uri()
        if candidate.run_id:
            self.client.log_artifacts(
                candidate.run_id, str(report.parent), artifact_path=f"gate/v{candidate.version}"
            )
            report_uri = f"runs:/{candidate.run_id}/gate/v{candidate.version}/{report.name}"
        tags = {
            GATE_VERDICT: "passed" if verdict.passed else "failed",
            GATE_AT: at,
            GATE_CHAMPION: versus or NONE,
            GATE_SUMMARY: verdict.summary()[:MAX_TAG],
            GATE_REPORT: report_uri,
        }
        for key, value in tags.items():
            self.client.set_model_version_tag(name, candidate.version, key, value)
        # where reviewers look first (the MLflow UI's version page): the verdict and its failing checks
        self.client.update_model_version(name, candidate.version, description=verdict_line(verdict)[:MAX_TAG])
        changes: list[AliasChange] = []
        current = state.aliases.get(CHALLENGER)
        context = {"action": "gate", "by": "gate", "reason": verdict.summary()[:500]}
        if verdict.passed and current != candidate.version:
            changes.append(self._move(name, CHALLENGER, candidate.version, current, at=at, **context))
        elif not verdict.passed and current == candidate.version:
            changes.append(self._move(name, CHALLENGER, None, current, at=at, **context))
        if not changes:
            self._record(name, at=at, version=candidate.version, **context)
        if verdict.auto_approve:
            changes += self.approve(
                name,
                candidate.version,
                by="policy:auto_approve",
                reason=f"gate passed by the auto-approve margin ({verdict.summary()})",
            )
        return GateOutcome(version=candidate.version, verdict=verdict, report=report, changes=tuple(changes))

    def _write_report(
        self,
        name: str,
        version: VersionState,
        verdict: GateVerdict,
        *,
        metrics: Mapping[str, float],
        at: str,
        window: str,
    ) -> Path:
        folder = self.reports / "gate" / name / f"v{version.version}"
        folder.mkdir(parents=True, exist_ok=True)
        plots = self._copy_equity_plots(version, folder)
        path = folder / "gate_report.md"
        text = render_markdown(
            verdict,
            name=name,
            version=version.version,
            metrics=metrics,
            gated_at=at,
            plots=plots,
            window=window,
        )
        path.write_text(text, encoding="utf-8")
        return path

    def _copy_equity_plots(self, version: VersionState, folder: Path) -> list[str]:
        """Equity plots and tear sheets the training run logged (``*equity*.png``, ``*tear*.png``,
        two folder levels deep)."""
        if not version.run_id:
            return []
        found: list[str] = []
        pending: list[tuple[str | None, int]] = [(None, 0)]
        while pending:
            path, depth = pending.pop()
            for item in self.client.list_artifacts(version.run_id, path):
                if item.is_dir and depth < 2 and not item.path.startswith("gate"):
                    pending.append((item.path, depth + 1))
                elif item.path.endswith(".png") and _is_report_plot(item.path.rsplit("/", 1)[-1]):
                    local = self.client.download_artifacts(version.run_id, item.path, str(folder))
                    found.append(Path(local).name)
        return sorted(found)

    def record_canary(self, name: str, version: str, evaluation: Mapping[str, Any]) -> str:
        """Store a canary evaluation (:meth:`trading.worker.canary.CanaryEvaluation.to_dict`) on
        ``version``: its recommendation as tags, the whole of it as JSON logged to the version's run
        (and kept under ``reports/canary``), a line in the audit log. Moves no alias.

        Returns:
            Where the JSON is (``runs:/...`` when the version has a run).

        Raises:
            GovernanceError: no such model or version.
        """
        candidate = self.state(name).get(version)
        at = self.clock().isoformat()
        folder = self.reports / "canary" / name / f"v{candidate.version}" / at.replace(":", "")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "canary_evaluation.json"
        path.write_text(json.dumps(evaluation, indent=2, default=str), encoding="utf-8")
        uri = path.as_uri()
        if candidate.run_id:
            where = f"canary/v{candidate.version}/{folder.name}"
            self.client.log_artifacts(candidate.run_id, str(folder), artifact_path=where)
            uri = f"runs:/{candidate.run_id}/{where}/{path.name}"
        advice = evaluation["recommendation"]
        tags = {
            CANARY: advice["action"],
            CANARY_REASON: advice["reason"][:MAX_TAG],
            CANARY_AT: at,
            CANARY_CHAMPION: str(evaluation["champion"]),
            CANARY_JOURNAL: str(evaluation["journal"])[:MAX_TAG],
            CANARY_REPORT: uri,
        }
        for key, value in tags.items():
            self.client.set_model_version_tag(name, candidate.version, key, value)
        self._record(
            name,
            at=at,
            version=candidate.version,
            action="canary",
            by="canary-evaluate",
            reason=advice["reason"],
        )
        return uri

    # ---- approvals -----------------------------------------------------------------------
    def approve(self, name: str, version: str, *, by: str, reason: str) -> list[AliasChange]:
        """Make a gate-passed version champion, recording who approved it, when and why.

        Raises:
            GovernanceError: no gate verdict, a failed or stale verdict (the champion changed since),
                a rejected version, the version is already champion, or ``by``/``reason`` empty.
        """
        _require_person(by, reason)
        state = self.state(name)
        candidate = state.get(version)
        champion = state.aliases.get(CHAMPION)
        _check_promotable(candidate, champion)
        at = self.clock().isoformat()
        tags = {
            APPROVAL: "approved",
            APPROVAL_BY: by,
            APPROVAL_AT: at,
            APPROVAL_REASON: reason[:MAX_TAG],
            PREVIOUS_CHAMPION: champion or NONE,
        }
        for key, value in tags.items():
            self.client.set_model_version_tag(name, candidate.version, key, value)
        context = {"action": "approve", "by": by, "reason": reason}
        changes = [self._move(name, CHAMPION, candidate.version, champion, at=at, **context)]
        if state.aliases.get(CHALLENGER) == candidate.version:
            changes.append(self._move(name, CHALLENGER, None, candidate.version, at=at, **context))
        return changes

    def reject(self, name: str, version: str, *, by: str, reason: str) -> list[AliasChange]:
        """Record that a person refused ``version``; it can never be approved afterwards.

        Raises:
            GovernanceError: the version is the champion (roll back first) or already rejected.
        """
        _require_person(by, reason)
        state = self.state(name)
        candidate = state.get(version)
        if CHAMPION in candidate.aliases:
            raise GovernanceError(
                f"{name} version {version} is the champion; run `mmops rollback` before rejecting it"
            )
        if candidate.approval == "rejected":
            raise GovernanceError(
                f"{name} version {version} was already rejected by {candidate.tags.get(APPROVAL_BY)}"
            )
        at = self.clock().isoformat()
        tags = {APPROVAL: "rejected", APPROVAL_BY: by, APPROVAL_AT: at, APPROVAL_REASON: reason[:MAX_TAG]}
        for key, value in tags.items():
            self.client.set_model_version_tag(name, candidate.version, key, value)
        context = {"action": "reject", "by": by, "reason": reason}
        if CHALLENGER in candidate.aliases:
            return [self._move(name, CHALLENGER, None, candidate.version, at=at, **context)]
        self._record(name, at=at, version=candidate.version, **context)
        return []

    def rollback(self, name: str, *, by: str, reason: str) -> AliasChange:
        """Put back the champion that the current one replaced; the current one's approval is revoked.

        Raises:
            GovernanceError: no champion, no previous champion, or the previous one was rejected since.
        """
        _require_person(by, reason)
        state = self.state(name)
        current = state.aliases.get(CHAMPION)
        if current is None:
            raise GovernanceError(f"{name} has no champion to roll back")
        previous = state.get(current).tags.get(PREVIOUS_CHAMPION, NONE)
        if previous == NONE:
            raise GovernanceError(f"{name} version {current} has no previous champion to roll back to")
        target = state.get(previous)
        if target.approval == "rejected" or target.gate != "passed" or not target.tags.get(APPROVAL_BY):
            raise GovernanceError(
                f"{name} version {previous} (the previous champion) is {target.approval or 'unapproved'} "
                f"with gate {target.gate or 'missing'}; approve a version instead"
            )
        at = self.clock().isoformat()
        tags = {
            APPROVAL: "revoked",
            "mmops.rollback.by": by,
            "mmops.rollback.at": at,
            "mmops.rollback.reason": reason[:MAX_TAG],
        }
        for key, value in tags.items():
            self.client.set_model_version_tag(name, current, key, value)
        return self._move(name, CHAMPION, previous, current, at=at, action="rollback", by=by, reason=reason)

    # ---- writing -------------------------------------------------------------------------
    def annotate(
        self, name: str, version: str, *, tags: Mapping[str, str], description: str | None = None
    ) -> None:
        """Record facts on a version (tags, each cut to MLflow's limit, and the description).

        Moves no alias and writes no audit entry: what a retrain did, not a decision. A description
        keeps the gate's verdict line on top where the gate wrote one.

        Raises:
            GovernanceError: no such version.
        """
        self.ref(name, version)  # refuse before writing anything
        for key, value in tags.items():
            self.client.set_model_version_tag(name, str(version), key, value[:MAX_TAG])
        if description is not None:
            current = self.client.get_model_version(name, str(version)).description or ""
            first = current.split("\n", 1)[0]
            if first.startswith(GATE_LINE_PREFIXES):
                description = f"{first}\n\n{description}"
            self.client.update_model_version(name, str(version), description=description[:MAX_TAG])

    def _move(
        self,
        name: str,
        alias: str,
        version: str | None,
        previous: str | None,
        *,
        at: str,
        action: str,
        by: str,
        reason: str,
    ) -> AliasChange:
        if version is None:
            self.client.delete_registered_model_alias(name, alias)
        else:
            self.client.set_registered_model_alias(name, alias, version)
        self.audit.append(
            {
                "at": at,
                "name": name,
                "action": action,
                "alias": alias,
                "version": version,
                "previous": previous,
                "by": by,
                "reason": reason,
            }
        )
        logger.info("%s: %s %s -> %s (%s by %s)", name, alias, previous, version, action, by)
        return AliasChange(name=name, alias=alias, version=version, previous=previous)

    def _record(self, name: str, *, at: str, version: str, action: str, by: str, reason: str) -> None:
        """A decision that moved no alias (a failed gate, a rejection)."""
        self.audit.append(
            {
                "at": at,
                "name": name,
                "action": action,
                "alias": None,
                "version": version,
                "previous": None,
                "by": by,
                "reason": reason,
            }
        )


def _is_report_plot(file_name: str) -> bool:
    return "equity" in file_name or "tear" in file_name


def _require_person(by: str, reason: str) -> None:
    if not by.strip():
        raise GovernanceError("say who decides (--by)")
    if not reason.strip():
        raise GovernanceError("say why (--reason)")


def _check_promotable(candidate: VersionState, champion: str | None) -> None:
    """Raise unless ``candidate`` may become champion now."""
    label = f"{candidate.name} version {candidate.version}"
    if candidate.version == champion:
        raise GovernanceError(f"{label} is already the champion")
    if candidate.approval == "rejected":
        raise GovernanceError(
            f"{label} was rejected by {candidate.tags.get(APPROVAL_BY)} at {candidate.tags.get(APPROVAL_AT)}: "
            f"{candidate.tags.get(APPROVAL_REASON)}"
        )
    if candidate.gate is None:
        raise GovernanceError(
            f"{label} has not been gated; run `mmops gate --version {candidate.version}` first"
        )
    if candidate.gate != "passed":
        raise GovernanceError(
            f"{label} failed the gate ({candidate.tags.get(GATE_SUMMARY)}); it cannot become champion"
        )
    gated_against = candidate.tags.get(GATE_CHAMPION, NONE)
    if gated_against != (champion or NONE):
        raise GovernanceError(
            f"{label} was gated against champion {gated_against} but the champion is now {champion or NONE}; "
            f"re-run `mmops gate --version {candidate.version}`"
        )


def _unless_missing(exc: MlflowException) -> None:
    """Re-raise ``exc`` unless it says the model or version does not exist: a tracking server that
    is down must read as down (one line, through the CLI), not as "no registered model"."""
    if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
        raise exc
