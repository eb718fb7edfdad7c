"""Quote settings as tunable parameters: the search space, its starting points, and the tags that
carry a tuned quoter from the study to evaluation and the gate.

The model-free Avellaneda-Stoikov quoter gets its own study (``<registered>-as-quoter``) over the
same walk-forward folds and trial budget as the model families, and a family can tune the same
settings jointly with its hyper-parameters, so a model is compared with a quoter that was tuned as
hard as it was. Parameter names in a study are ``quote.<name>`` (``quote.gamma``,
``quote.refresh_bars``) so they never meet a family's own names.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from features.errors import ConfigError
from trading.config import BacktestConfig, QuoteConfig

QUOTER = "as"  # the model-free quoter as a "family" on the command line (mmops tune --model as)
PREFIX = "quote."
BACKTEST_FIELDS = ("refresh_bars",)  # fill-engine settings a quoter chooses (the venue's are not tunable)
TAG_MODEL = "mmops.quote."  # run/version tags: the quote settings the model was tuned with
TAG_TUNED_AS = "mmops.tas."  # the tuned model-free quoter the model was compared with


def tunable(name: str) -> bool:
    """A quote setting the space may name: any numeric ``quote`` field, or ``backtest.refresh_bars``."""
    if name in BACKTEST_FIELDS:
        return True
    info = QuoteConfig.model_fields.get(name)
    return info is not None and info.annotation in (int, float)


@dataclass(frozen=True)
class Quoting:
    """The quote and fill-engine settings one quoter runs with, and which of them were tuned."""

    quote: QuoteConfig
    backtest: BacktestConfig
    tuned: Mapping[str, float | int] = field(default_factory=dict)

    def tags(self, prefix: str) -> dict[str, str]:
        return {f"{prefix}{k}": repr(v) for k, v in sorted(self.tuned.items())}


def apply(quote: QuoteConfig, backtest: BacktestConfig, values: Mapping[str, Any]) -> Quoting:
    """``quote``/``backtest`` with ``values`` (names without the ``quote.`` prefix) put in, validated.

    Raises:
        ConfigError: a name is not a tunable quote setting, or a value breaks the section's rules.
    """
    unknown = sorted(k for k in values if not tunable(k))
    if unknown:
        raise ConfigError(f"quote settings {unknown} are not tunable (numeric quote fields or refresh_bars)")
    on_backtest = {k: v for k, v in values.items() if k in BACKTEST_FIELDS}
    on_quote = {k: v for k, v in values.items() if k not in BACKTEST_FIELDS}
    try:
        q = QuoteConfig.model_validate({**quote.model_dump(), **on_quote})
        b = BacktestConfig.model_validate({**backtest.model_dump(), **on_backtest})
    except ValidationError as exc:
        raise ConfigError(f"tuned quote settings {dict(values)} are invalid: {exc}") from exc
    tuned = {k: getattr(b if k in BACKTEST_FIELDS else q, k) for k in values}
    return Quoting(quote=q, backtest=b, tuned=tuned)


def from_trial_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The quote settings among a trial's parameters, without their prefix."""
    return {k.removeprefix(PREFIX): v for k, v in params.items() if k.startswith(PREFIX)}


def model_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's parameters less the quote settings: what the family's constructor takes."""
    return {k: v for k, v in params.items() if not k.startswith(PREFIX)}


def from_tags(tags: Mapping[str, str], prefix: str) -> dict[str, float | int]:
    """Settings written by :meth:`Quoting.tags` (numbers as text), back as numbers."""
    out: dict[str, float | int] = {}
    for key, text in tags.items():
        if key.startswith(prefix):
            number = float(text)
            out[key.removeprefix(prefix)] = int(number) if number.is_integer() and "." not in text else number
    return out


def starting_points(
    names: Iterable[str],
    quote: QuoteConfig,
    backtest: BacktestConfig,
    extra: Iterable[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Trials to run first, as study parameters: today's ``params.yaml`` values of the tuned names,
    then each of ``extra`` (e.g. a calibrated kappa) on top of today's values; duplicates dropped."""
    names = list(names)
    today = {n: getattr(backtest if n in BACKTEST_FIELDS else quote, n) for n in names}
    points: list[dict[str, Any]] = []
    for point in [today, *({**today, **{k: v for k, v in e.items() if k in names}} for e in extra)]:
        prefixed = {f"{PREFIX}{k}": v for k, v in point.items()}
        if prefixed not in points:
            points.append(prefixed)
    return points


def calibrated_start(path: Path, *, tick_size: float) -> dict[str, float]:
    """The kappa of a ``mmops calibrate --out`` file, in the fill engine's ticks (1/tick).

    The capture's tick may differ from ``backtest.tick_size``; kappa per price unit is converted:
    ``kappa_engine = kappa_per_price * tick_size``. Several instruments: the first one's mid fit.

    Raises:
        ConfigError: the file is missing, not JSON, or holds no mid fit.
    """
    try:
        doc = json.loads(path.read_text())
        first = next(iter(doc["instruments"].values()))
        kappa_per_price = float(first["fits"]["mid"]["kappa_per_price"])
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such calibration file (write one with mmops calibrate --out)") from exc
    except (ValueError, KeyError, StopIteration, TypeError) as exc:
        raise ConfigError(f"{path}: not a calibration.json with instruments.<name>.fits.mid ({exc})") from exc
    return {"kappa": kappa_per_price * tick_size}


def from_version(
    tags: Mapping[str, str], quote: QuoteConfig, backtest: BacktestConfig
) -> tuple[Quoting | None, Quoting | None]:
    """The model's own quote settings and the tuned model-free quoter's, from a version's (or
    run's) tags; None where the version carries none (tuned without them, or before they existed)."""
    own, tuned = from_tags(tags, TAG_MODEL), from_tags(tags, TAG_TUNED_AS)
    return (
        apply(quote, backtest, own) if own else None,
        apply(quote, backtest, tuned) if tuned else None,
    )
