"""Shared pieces of the ``mmops`` command line: the typer app, option types, error reporting.

Every command prints a human summary, or exactly one JSON document on stdout with ``--json``.
Failures exit non-zero with a one-line reason on stderr. Heavy libraries (Great Expectations,
TensorFlow, MLflow, Prefect) are imported inside the commands that need them, so the data
commands start fast.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from features.errors import MmopsError
from flows.params import Params, load_params
from flows.settings import Locations, locations, use_home

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
    """Turn mmops errors, and a study storage or tracking server that is down or went away
    mid-command, into a one-line reason on stderr and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MmopsError as exc:
            _fail(str(exc), exc)
        except Exception as exc:
            reason = backend_failure(exc)
            if reason is None:
                raise
            _fail(reason, exc)

    return wrapper  # type: ignore[return-value]


def _fail(reason: str, exc: BaseException) -> NoReturn:
    # the message quotes file contents and names: never read it as rich markup
    err.print(Text.assemble(("error:", "red"), f" {reason}"), highlight=False, soft_wrap=True)
    raise typer.Exit(1) from exc


def backend_failure(exc: BaseException) -> str | None:
    """A lost or unreachable server behind a command, in one line; None for any other error.

    Only a library already loaded can have raised: nothing heavy is imported to ask.
    """
    if "optuna" in sys.modules:
        from training.tune import storage_failure

        if failure := storage_failure(exc):
            return f"study storage: {failure}"
    if "mlflow" in sys.modules:
        from training.tracking import tracking_failure

        if failure := tracking_failure(exc):
            return f"MLflow: {failure}"
    return None


def emit(payload: dict[str, Any], *, as_json: bool, human: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
    else:
        # no markup: summaries quote header names and paths; soft wrap: a path or a command stays whole
        Console().print(human, highlight=False, soft_wrap=True, markup=False)


# Third-party output a person did not ask for: TensorFlow's C++ start-up lines (CUDA probing, CPU
# features), MLflow's INFO lines and artifact progress bars, Prefect's per-task console lines (they
# still reach the Prefect API and its UI). The user's own settings win; --verbose shows it all.
QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "ERROR",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
}
QUIET_LOGGERS = {"tensorflow": logging.ERROR, "absl": logging.ERROR, "h5py": logging.WARNING}


def prepare_process(*, verbose: bool) -> Locations:
    """Set up a command's process before any heavy library is imported; returns the locations.

    Third-party state goes under ``MMOPS_HOME`` (:func:`flows.settings.use_home`) and, unless
    ``verbose``, their noise is off; our own logs go to stderr through rich.
    """
    from rich.logging import RichHandler

    where = locations()
    use_home(where)
    if not verbose:
        for key, value in QUIET_ENVIRONMENT.items():
            os.environ.setdefault(key, value)
        for name, level in QUIET_LOGGERS.items():
            logging.getLogger(name).setLevel(level)
    level = logging.INFO if verbose else logging.WARNING
    handler = RichHandler(console=err, show_path=False, level=level)  # records propagated from below too
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler])
    return where


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="log INFO to stderr")] = False,
) -> None:
    prepare_process(verbose=verbose)


def track(items: Iterable[T], description: str) -> Iterable[T]:
    from rich.progress import track

    return track(list(items), description=description, console=err)


def progress_shown(*, as_json: bool) -> contextlib.AbstractContextManager[None]:
    """Progress lines or bars on stderr for long commands (tune, train); none with ``--json``."""
    from flows.progress_view import show_progress

    return contextlib.nullcontext() if as_json else show_progress(err)


def no_progress(items: Iterable[T], _description: str) -> Iterable[T]:
    return items


def context() -> tuple[Locations, Params]:
    where = locations()
    return where, load_params(where.params_file)
