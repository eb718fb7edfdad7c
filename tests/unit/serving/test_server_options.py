"""BentoML's access log and request tracing follow ``serve.access_log`` and ``serve.trace_requests``."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.config import SETTINGS_ENV, ServeConfig, ServeSettings
from serving.service import API_PATHS, _server_options


def _settings(tmp_path: Path, **config: bool) -> Path:
    return ServeSettings(
        model_name="m",
        tracking_uri="sqlite:///x.db",
        cache_dir=tmp_path,
        log_dir=tmp_path,
        config=ServeConfig(**config),
    ).write(tmp_path / "settings.json")


def test_both_are_off_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(SETTINGS_ENV, str(_settings(tmp_path)))
    options = _server_options()
    assert options["logging"] == {"access": {"enabled": False}}
    assert options["tracing"] == {"excluded_urls": API_PATHS}


def test_the_settings_turn_them_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(SETTINGS_ENV, str(_settings(tmp_path, access_log=True, trace_requests=True)))
    options = _server_options()
    assert options["logging"] == {"access": {"enabled": True}}
    assert options["tracing"] == {"excluded_urls": []}


def test_without_settings_the_defaults_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SETTINGS_ENV, raising=False)
    assert _server_options()["logging"] == {"access": {"enabled": False}}
