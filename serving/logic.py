"""Pure logic of the signal service: input checks, canary routing, the served model set.

Nothing here imports BentoML or MLflow, so it is unit-tested directly. A request's windows are
``float32 (n_symbols, rows, n_features)``, oldest row first, features in the model's order; each
model reads the last ``lookback`` rows (1 for rf and sgd), so a client sends ``window_rows``
rows: the largest lookback among the models that may answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import xxhash

Role = Literal["champion", "challenger"]
SignalKind = Literal["forward_log_return", "prob_up"]


class InvalidInput(ValueError):  # noqa: N818 - reads as the request it reports
    """A request that cannot be served as sent; ``loc`` points at the offending field."""

    def __init__(self, message: str, *, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.loc = loc


class OverLimit(InvalidInput):
    """A well-formed request over one of the service's size limits (answered 422, not 400)."""


class ArtifactInfoLike(Protocol):
    @property
    def family(self) -> str: ...
    @property
    def task(self) -> str: ...
    @property
    def lookback(self) -> int: ...
    @property
    def feature_names(self) -> Sequence[str]: ...


class PredictorLike(Protocol):
    """What :func:`training.artifact.load_predictor` returns."""

    @property
    def info(self) -> ArtifactInfoLike: ...
    @property
    def provider(self) -> str:
        """The execution provider the session runs on (its first)."""
        ...

    @property
    def device(self) -> str:
        """``cuda`` or ``cpu``: where the model runs."""
        ...

    def predict(self, windows: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """One registry version loaded for serving."""

    name: str
    version: str
    alias: str
    predictor: PredictorLike
    lineage: Mapping[str, str] = field(default_factory=dict)

    @property
    def lookback(self) -> int:
        return int(self.predictor.info.lookback)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.predictor.info.feature_names)

    @property
    def kind(self) -> SignalKind:
        return "prob_up" if self.predictor.info.task == "classifier" else "forward_log_return"

    @property
    def device(self) -> str:
        return self.predictor.device

    def describe(self) -> dict[str, Any]:
        info = self.predictor.info
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "family": info.family,
            "task": info.task,
            "kind": self.kind,
            "lookback": self.lookback,
            "feature_names": list(self.feature_names),
            "lineage": dict(self.lineage),
            "provider": self.predictor.provider,
            "device": self.predictor.device,
        }


@dataclass(frozen=True, slots=True)
class ModelSet:
    """What answers right now; replaced as a whole when an alias moves (requests pin one set)."""

    champion: LoadedModel
    challenger: LoadedModel | None = None
    mode: Literal["champion", "canary", "shadow"] = "champion"
    canary_fraction: float = 0.0
    canary_salt: str = "mmops"

    @property
    def window_rows(self) -> int:
        return max(m.lookback for m in self.active)

    @property
    def active(self) -> tuple[LoadedModel, ...]:
        if self.challenger is None or self.mode == "champion":
            return (self.champion,)
        return (self.champion, self.challenger)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.champion.feature_names

    @property
    def versions(self) -> tuple[str | None, str | None]:
        return self.champion.version, None if self.challenger is None else self.challenger.version

    def describe(self) -> dict[str, Any]:
        mode = self.mode if self.challenger is not None else "champion"
        return {
            "mode": mode,
            "canary_fraction": self.canary_fraction if mode == "canary" else 0.0,
            "window_rows": self.window_rows,
            "feature_names": list(self.feature_names),
            "champion": self.champion.describe(),
            "challenger": None if self.challenger is None else self.challenger.describe(),
        }


def compatible(champion: LoadedModel, challenger: LoadedModel) -> str | None:
    """Why ``challenger`` cannot share requests with ``champion`` (None when it can)."""
    if challenger.feature_names != champion.feature_names:
        return (
            f"challenger v{challenger.version} expects features {list(challenger.feature_names)}, "
            f"the champion v{champion.version} {list(champion.feature_names)}"
        )
    return None


def canary_share(symbol: str, salt: str) -> float:
    """A stable number in [0, 1) per symbol: the same symbol always lands on the same side."""
    digest = hashlib.blake2b(f"{salt}:{symbol}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def route(symbols: Sequence[str], models: ModelSet) -> np.ndarray:
    """Per symbol, True when the challenger answers (canary mode only, sticky per symbol)."""
    if models.mode != "canary" or models.challenger is None or models.canary_fraction <= 0:
        return np.zeros(len(symbols), dtype=bool)
    return np.fromiter(
        (canary_share(s, models.canary_salt) < models.canary_fraction for s in symbols),
        dtype=bool,
        count=len(symbols),
    )


def to_windows(windows: Sequence[Sequence[Sequence[float]]] | np.ndarray) -> np.ndarray:
    """Stack the request's windows into ``float32 (n, rows, features)``.

    Raises:
        InvalidInput: ragged windows (different rows or feature counts between symbols or rows).
    """
    try:
        array = np.asarray(windows, dtype=np.float32)
    except ValueError as exc:
        raise InvalidInput(
            "windows must all have the same shape (rows x features), oldest row first", loc=("items",)
        ) from exc
    if array.ndim != 3:
        raise InvalidInput(
            f"each window must be a 2-D list (rows x features); got {array.ndim - 1}-D", loc=("items",)
        )
    return array


RAW_MEDIA_TYPE = "application/octet-stream"


def decode_windows(data: str, *, n_symbols: int, rows: int) -> np.ndarray:
    """The bulk path's windows: base64 of little-endian float32 in C order, (n_symbols, rows, features).

    Raises:
        InvalidInput: not base64, or a size that is not n_symbols x rows x features x 4 bytes.
    """
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"windows_b64 is not valid base64 ({exc})", loc=("windows_b64",)) from exc
    return windows_from_bytes(raw, n_symbols=n_symbols, rows=rows, loc=("windows_b64",))


def windows_from_bytes(
    raw: bytes | memoryview, *, n_symbols: int, rows: int, loc: tuple[str | int, ...] = ("windows",)
) -> np.ndarray:
    """Little-endian float32 bytes in C order as a read-only ``(n_symbols, rows, features)`` array (no copy
    unless the buffer is misaligned).

    Raises:
        InvalidInput: a size that is not n_symbols x rows x features x 4 bytes.
    """
    size = len(raw) if isinstance(raw, bytes) else raw.nbytes
    per_window = n_symbols * rows * 4
    if not size or per_window == 0 or size % per_window:
        raise InvalidInput(
            f"{loc[-1] if loc else 'the windows'} holds {size} bytes; expected {n_symbols} symbols x {rows} rows x features x 4 (float32)",
            loc=loc,
        )
    array = np.frombuffer(raw, dtype="<f4").reshape(n_symbols, rows, -1)
    return array if array.flags.aligned else array.copy()


def split_raw_batch(body: bytes) -> tuple[bytes, memoryview]:
    """The raw bulk body: one line of JSON (the other fields), then the float32 windows.

    Raises:
        InvalidInput: no newline ending the JSON part.
    """
    end = body.find(b"\n", 0, 1 << 20)
    if end < 0:
        raise InvalidInput(
            "an application/octet-stream body starts with one line of JSON (symbols, rows, ...), "
            "then the float32 windows; no newline found",
            loc=("body",),
        )
    return body[:end], memoryview(body)[end + 1 :]


def encode_windows(windows: np.ndarray) -> str:
    """Inverse of :func:`decode_windows` (what clients send)."""
    return base64.b64encode(np.ascontiguousarray(windows, dtype="<f4").tobytes()).decode("ascii")


def encode_raw_batch(meta: Mapping[str, Any], windows: np.ndarray) -> bytes:
    """Inverse of :func:`split_raw_batch`: JSON line (padded so the windows start 8-byte aligned) + float32."""
    head = json.dumps(dict(meta), separators=(",", ":")).encode()
    head += b" " * (-(len(head) + 1) % 8)
    return head + b"\n" + np.ascontiguousarray(windows, dtype="<f4").tobytes()


def check_windows(
    windows: np.ndarray, models: ModelSet, *, feature_names: Sequence[str] | None
) -> np.ndarray:
    """Check a stacked request against the served models; returns the last ``window_rows`` rows.

    Raises:
        InvalidInput: too few rows, a wrong feature count or names, or non-finite values (the
            message names the first offending item).
    """
    rows, width = models.window_rows, len(models.feature_names)
    if feature_names is not None and tuple(feature_names) != models.feature_names:
        raise InvalidInput(
            f"feature_names differ from the model's (in order): expected {list(models.feature_names)}",
            loc=("feature_names",),
        )
    if windows.shape[2] != width:
        raise InvalidInput(
            f"each window row needs {width} features {list(models.feature_names)}; got {windows.shape[2]}",
            loc=("items", 0, "window"),
        )
    if windows.shape[1] < rows:
        raise InvalidInput(
            f"each window needs at least {rows} rows (the model lookback); got {windows.shape[1]}",
            loc=("items", 0, "window"),
        )
    windows = windows[:, -rows:, :]
    finite = np.isfinite(windows).all(axis=(1, 2))
    if not finite.all():
        bad = int(np.argmin(finite))
        raise InvalidInput(f"item {bad}: window has NaN or infinite values", loc=("items", bad, "window"))
    return windows


def inputs_digest(window: np.ndarray) -> str:
    """Short fingerprint of one window as the model saw it (XXH3-128 of its float32 bytes, 24 hex digits).

    A fingerprint to match a logged prediction with the inputs it came from, not a security
    check, so a fast non-cryptographic hash: 0.6 us per 8.6 KB LSTM window against SHA-256's 5.4 us
    (the most of the log thread's time per prediction, on the cores the model runs on;
    BENCHMARKS.md, issue 11's sixth round). 96 bits: a collision among 10^9 logged windows has odds
    of about 10^-11.
    """
    return xxhash.xxh3_128_hexdigest(np.ascontiguousarray(window, dtype=np.float32).data)[:24]
