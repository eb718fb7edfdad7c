"""Shared pieces of the ``mmops`` command line: the typer app, option types, error reporting.

Every command prints a human summary, or exactly one JSON document on stdout with ``--json``.
Failures exit non-zero with a one-line reason on stderr. Heavy libraries (Great Expectations,
TensorFlow, MLflow, Prefect) are imported inside the commands that need them, so the data
commands start fast.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from features.errors import MmopsError
from flows.params import Params, load_params
from flows.settings import Locations, locations

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="MLOps for ML-driven crypto market making."
)
data_app = typer.Typer(no_args_is_help=True, help="Inspect the validated bar store.")
app.add_typer(data_app, name="data")
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
SymbolOpt = Annotated[str | None, typer.Option("--symbol", help="e.g. BTCUSDT")]
IntervalOpt = Annotated[str | None, typer.Option("--interval", help="e.g. 1m, 1h, 1d")]
VenueOpt = Annotated[str | None, typer.Option("--venue", help="e.g. binance, kraken")]


def reported(func: F) -> F:
    """Turn mmops errors into a one-line reason on stderr and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MmopsError as exc:
            err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from exc

    return wrapper  # type: ignore[return-value]


def emit(payload: dict[str, Any], *, as_json: bool, human: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
    else:
        Console().print(human, highlight=False)


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="log INFO to stderr")] = False,
) -> None:
    from rich.logging import RichHandler

    if not verbose:  # keep stderr to what the user asked for; the user's own settings win
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False)],
    )


def track(items: Iterable[T], description: str) -> Iterable[T]:
    from rich.progress import track

    return track(list(items), description=description, console=err)


def no_progress(items: Iterable[T], _description: str) -> Iterable[T]:
    return items


def context() -> tuple[Locations, Params]:
    where = locations()
    return where, load_params(where.params_file)
