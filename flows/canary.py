"""PLACEHOLDER for the ``canary-evaluate`` deployment (issue 13, branch issue-13-caneval).

``prefect deploy --all`` loads every entrypoint in ``prefect.yaml``, so the deployment entry
needs this file to exist. The canary evaluation flow (challenger vs champion on the worker's
journal, a recommendation recorded on the version) lands on its own branch; at the merge its
``flows/canary.py`` replaces this one whole.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from features.errors import ConfigError


@flow(name="canary-evaluate", log_prints=True)
def canary_evaluate_flow(model: str | None = None) -> dict[str, Any]:
    """Not built on this branch: fails with the reason, so a run is never mistaken for a verdict."""
    raise ConfigError("canary-evaluate is not built in this checkout (issue 13, branch issue-13-caneval)")
