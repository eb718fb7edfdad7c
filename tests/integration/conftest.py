"""Fixtures of the integration tests that need a real Prefect server (see prefect_server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect_server import prefect_server


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A ``prefect server start`` of this test module's own; the environment that talks to it."""
    with prefect_server(tmp_path_factory.mktemp("prefect-server")) as env:
        yield env
