"""dvc.yaml tells the truth: the tune stage reads the features stage's file, lists the params keys
it reads, depends on every module it runs, and declares the registry version it creates.

"Modules it runs" is computed from the source, not guessed: an ``mmops`` command runs what
``flows/cli.py`` imports at module level (every command module registers itself there), the
imports inside its own command function and the flows helpers it calls, and everything the
library packages (features, trading, training) import anywhere (their lazy imports run inside
the calls). ``TYPE_CHECKING`` imports never run and are left out; empty files change nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from flows.params import load_params

REPO = Path(__file__).resolve().parents[3]
PACKAGES = ("features", "flows", "serving", "trading", "training")
LIBRARIES = ("features", "trading", "training")
# each stage's command function, and the flows helpers it calls
ENTRIES = {
    "features@0": {"flows.cli.features"},
    "tune@rf": {"flows.cli_training.tune"}
    | {
        f"flows.training_steps.{name}"
        for name in ("series_bars", "tracking_settings", "register_candidate", "resolve_task", "run_family")
    },
}


def _module_file(name: str) -> Path | None:
    path = REPO.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _imported(nodes: list[ast.AST], module: str, is_package: bool) -> set[str]:
    names: set[str] = set()
    for top in nodes:
        for node in ast.walk(top):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = module.split(".")[: None if is_package else -1]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)
    found = set()
    for name in names:
        parts = name.split(".")
        if parts[0] in PACKAGES:
            found.update(
                m for i in range(1, len(parts) + 1) if _module_file(m := ".".join(parts[:i])) is not None
            )
    return found


def _runs(functions: set[str]) -> set[Path]:
    """Project files a command starting at ``functions`` can execute (see the module docstring)."""
    seen: set[str] = set()
    todo = ["flows.cli"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(module)
        assert path is not None
        tree = ast.parse(path.read_text())
        if module.split(".")[0] in LIBRARIES:
            nodes: list[ast.AST] = [tree]
        else:
            nodes = [
                n
                for n in tree.body
                if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and not (isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))
            ]
        nodes += [
            n for n in tree.body if isinstance(n, ast.FunctionDef) and f"{module}.{n.name}" in functions
        ]
        todo.extend(_imported(nodes, module, path.name == "__init__.py") - seen)
    files = {_module_file(m) for m in seen}
    return {p.relative_to(REPO) for p in files if p is not None and _has_code(p)}


def _has_code(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    docstring = bool(body) and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    return len(body) > int(docstring)


@pytest.fixture(scope="module")
def stages() -> dict[str, dict]:  # type: ignore[type-arg]
    """dvc.yaml's stages with foreach expanded by DVC itself."""
    from dvc.repo import Repo

    repo = Repo(str(REPO))
    out = {}
    for stage in repo.index.stages:
        if not hasattr(stage, "cmd"):
            continue
        params = [p for d in stage.deps if hasattr(d, "params") for p in (d.params or [])]
        out[stage.addressing] = {
            "cmd": stage.cmd,
            "deps": [Path(d.def_path) for d in stage.deps if not hasattr(d, "params")],
            "params": params,
            "outs": [Path(o.def_path) for o in stage.outs],
        }
    return out


def _covered(path: Path, deps: list[Path]) -> bool:
    return any(path == d or d in path.parents for d in deps)


@pytest.mark.parametrize("stage", sorted(ENTRIES))
def test_every_module_the_stage_runs_is_a_dep_and_every_code_dep_runs(stage: str, stages: dict) -> None:  # type: ignore[type-arg]
    deps = stages[stage]["deps"]
    runs = _runs(ENTRIES[stage])
    missing = sorted(str(p) for p in runs if not _covered(p, deps))
    assert not missing, f"{stage} runs modules dvc.yaml does not list as deps: {missing}"
    code = [d for d in deps if d.parts[0] in PACKAGES]
    unused = sorted(str(d) for d in code if not any(p == d or d in p.parents for p in runs))
    assert not unused, f"{stage} lists deps it never runs: {unused}"
    assert all((REPO / d).exists() for d in code)


def _fields(section: str) -> set[str]:
    from flows.params import Params

    model = Params.model_fields[section].annotation
    return {f"{section}.{name}" for name in model.model_fields}  # type: ignore[union-attr]


def _expand(keys: list[str], doc: dict) -> set[str]:  # type: ignore[type-arg]
    """Leaf keys of params.yaml under each listed key."""
    leaves: set[str] = set()
    for key in keys:
        node = doc
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"dvc.yaml lists {key}, which params.yaml lacks"
            node = node[part]
        if isinstance(node, dict) and key.split(".")[0] not in ("models",):
            leaves.update(f"{key}.{k}" for k in node)
        else:
            leaves.add(key)
    return leaves


@pytest.mark.parametrize("family", ["rf", "sgd", "lstm"])
def test_tune_lists_exactly_the_params_keys_it_reads(family: str, stages: dict) -> None:  # type: ignore[type-arg]
    params = load_params(REPO / "params.yaml")
    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    primary = params.data.primary
    profile = params.split.profile
    if profile == "auto":
        profile = "daily" if primary.interval.endswith(("d", "w")) else "minute"
    # what run_family hands the library: these configs whole, one split profile, one family's
    # space, the tune settings a single study uses (families only drives foreach), the primary series
    reads = {"data.datasets", "split.profile", f"split.profiles.{profile}", f"models.{family}"}
    for section in ("features", "quote", "risk", "backtest", "evaluate"):
        reads |= _fields(section)
    reads |= _fields("tune") - {"tune.families"}
    listed = _expand(stages[f"tune@{family}"]["params"], doc)
    assert listed == _expand(sorted(reads), doc)


def test_tune_consumes_the_features_stage_file_and_declares_its_registration(stages: dict) -> None:  # type: ignore[type-arg]
    primary = load_params(REPO / "params.yaml").data.primary
    features_file = Path(f"data/features/{primary.venue}-{primary.symbol}-{primary.interval}.parquet")
    assert features_file in stages["features@0"]["outs"]
    for family in ("rf", "sgd", "lstm"):
        tune = stages[f"tune@{family}"]
        assert features_file in tune["deps"]
        assert f"--features {features_file}" in tune["cmd"]
        assert Path(f"reports/tune/{family}/registered.json") in tune["outs"]
        assert f"--out reports/tune/{family}" in tune["cmd"]
