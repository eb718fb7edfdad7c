"""params.yaml: unknown keys fail loudly, naming the file, the key and the nearest valid name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from features.errors import ConfigError
from flows.params import load_params

REPO = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, change: dict[str, Any]) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for dotted, value in change.items():
        *parents, key = dotted.split(".")
        node = params
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_the_repository_params_load() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.data.datasets[1].layout().preset == "kraken"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"gat": {"min_sharpe": 1.0}},
            r"unknown key 'gat'; did you mean 'gate'\? \(valid keys of the top level: data, ",
        ),
        (
            {"gate.min_sharp": 1.0},
            r"unknown key 'gate.min_sharp'; did you mean 'min_sharpe'\? \(valid keys of gate: ",
        ),
        (
            {"split.profiles.minute.n_fold": 3},
            r"unknown key 'split.profiles.minute.n_fold'; did you mean 'n_folds'\?",
        ),
        (
            {"data.datasets.1.colums": {"timestamp": 0}},
            r"unknown key 'data.datasets.1.colums'; did you mean 'columns'\?",
        ),
        (
            {"data.datasets.1.columns": {"clse": 4}},
            r"data.datasets.1: unknown column 'clse'; did you mean 'close'\?",
        ),
        (
            {"data.datasets.1.tz": "Europe/Berln"},
            r"data.datasets.1: unknown time zone 'Europe/Berln'; did you mean 'Europe/Berlin'\?",
        ),
        ({"data.datasets.0.tz": "Europe/Berlin"}, r"data.datasets.0: .*apply to source: file only"),
    ],
    ids=[
        "top-level",
        "section",
        "nested",
        "dataset",
        "dataset-column",
        "dataset-zone",
        "file-options-on-a-dump",
    ],
)
def test_a_misspelt_key_names_the_file_the_key_and_the_nearest(
    tmp_path: Path, change: dict[str, Any], match: str
) -> None:
    path = write(tmp_path, change)
    with pytest.raises(ConfigError, match=match) as caught:
        load_params(path)
    assert str(caught.value).startswith(f"{path}: ") and "too short" not in str(caught.value)


def test_a_top_level_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("- data\n- gate\n")
    with pytest.raises(ConfigError, match="the top level must be a mapping"):
        load_params(path)
