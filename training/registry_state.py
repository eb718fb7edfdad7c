"""What the registry holds, as plain values: alias and tag names, versions and alias moves.

No MLflow here: :mod:`training.registry` reads MLflow into these, and serving and the CLI read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from training.gate import GovernanceError

CHAMPION, CHALLENGER = "champion", "challenger"
GATE_VERDICT, GATE_AT, GATE_CHAMPION = "mmops.gate.verdict", "mmops.gate.at", "mmops.gate.champion"
GATE_SUMMARY, GATE_REPORT = "mmops.gate.summary", "mmops.gate.report"
APPROVAL, APPROVAL_BY, APPROVAL_AT, APPROVAL_REASON = (
    "mmops.approval.status",
    "mmops.approval.by",
    "mmops.approval.at",
    "mmops.approval.reason",
)
PREVIOUS_CHAMPION = "mmops.champion.previous"
# the last canary evaluation of a version (trading.worker.canary): promote | extend | rollback
CANARY, CANARY_REASON, CANARY_AT = "mmops.canary.recommendation", "mmops.canary.reason", "mmops.canary.at"
CANARY_CHAMPION, CANARY_JOURNAL, CANARY_REPORT = (
    "mmops.canary.champion",
    "mmops.canary.journal",
    "mmops.canary.report",
)
NONE = "none"
MAX_TAG = 4000  # MLflow caps tag values (5000 chars on SQL stores)
LINEAGE_PREFIXES = (
    "lineage.",
    "mmops.family",
    "mmops.task",
    "mmops.symbol",
    "mmops.interval",
    "mmops.venue",
    "mmops.lookback",
    "mmops.run_id",
)


def model_uri(name: str, version: str) -> str:
    return f"models:/{name}/{version}"


@dataclass(frozen=True, slots=True)
class VersionState:
    """One registered version with its tags and the aliases pointing at it."""

    name: str
    version: str
    run_id: str | None
    tags: Mapping[str, str]
    aliases: tuple[str, ...]

    @property
    def gate(self) -> str | None:
        return self.tags.get(GATE_VERDICT)

    @property
    def approval(self) -> str | None:
        return self.tags.get(APPROVAL)

    @property
    def canary(self) -> dict[str, str] | None:
        """The last canary evaluation recorded on this version (None: never evaluated)."""
        if CANARY not in self.tags:
            return None
        keys = {"recommendation": CANARY, "reason": CANARY_REASON, "at": CANARY_AT}
        keys |= {"champion": CANARY_CHAMPION, "journal": CANARY_JOURNAL, "report": CANARY_REPORT}
        return {k: self.tags.get(tag, "") for k, tag in keys.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "aliases": list(self.aliases),
            "family": self.tags.get("mmops.family"),
            "task": self.tags.get("mmops.task"),
            "gate": self.gate,
            "gate_at": self.tags.get(GATE_AT),
            "gate_summary": self.tags.get(GATE_SUMMARY),
            "approval": self.approval,
            "approval_by": self.tags.get(APPROVAL_BY),
            "approval_at": self.tags.get(APPROVAL_AT),
            "approval_reason": self.tags.get(APPROVAL_REASON),
            "canary": self.tags.get(CANARY),
            "run_id": self.run_id,
        }


@dataclass(frozen=True, slots=True)
class RegistryState:
    """Aliases and versions of one registered model, read in one go."""

    name: str
    aliases: Mapping[str, str]
    versions: tuple[VersionState, ...]

    def get(self, version: str) -> VersionState:
        for v in self.versions:
            if v.version == str(version):
                return v
        known = ", ".join(v.version for v in self.versions) or "none"
        raise GovernanceError(f"{self.name} has no version {version} (versions: {known})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "aliases": dict(self.aliases),
            "versions": [v.to_dict() for v in self.versions],
        }


@dataclass(frozen=True, slots=True)
class ModelRef:
    """What an alias resolved to: enough for serving to load it and to say what answered."""

    name: str
    version: str
    alias: str | None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return model_uri(self.name, self.version)

    @property
    def lineage(self) -> dict[str, str]:
        return {k: v for k, v in self.tags.items() if k.startswith(LINEAGE_PREFIXES)}


@dataclass(frozen=True, slots=True)
class AliasChange:
    """One move of an alias (``version`` None: the alias was removed)."""

    name: str
    alias: str
    version: str | None
    previous: str | None
