"""Per-client windows for ``/predict_stream``: a client sends each symbol's newest feature row,
not its whole window again.

The quoting worker asks for every symbol's signal once a bar, and 31 of the 32 rows of each
window are the ones it sent the bar before (857 KB a tick at 100 symbols x 32 rows x 67
features, against 27 KB of new rows). A *stream* is one client's windows, kept here by the
client's stream id: a request names each symbol's newest row by its row number (``seq``, the
symbol's bar count, from 0) and carries either that row alone or, for the symbols in ``full``,
the whole window.

A row is taken only when it extends what is held: the held window ends at row ``seq - 1`` (the
row is appended) or at ``seq`` itself (a retry of a request that was applied: the row must be
the one held). Anything else is a miss, and the whole request is answered with
:class:`StreamMiss` (HTTP 409), changing nothing: the client then sends the windows whole. A
miss is what a client sees after the service restarted, after the served models changed shape
(lookback or features), after its stream was evicted, or when another process answers; so the
service never guesses a window, and a client that does not know what is held sends whole
windows, as on the first request.

Memory is bounded by ``serve.stream_cache_mb`` over all streams: the least recently used are
dropped first, and a stream larger than that alone is dropped after its answer (its clients then
see one miss). One stream holds at most ``serve.max_items`` symbols (what one request carries):
when symbols come and go past that, the ones the request does not ask for are forgotten. A
stream is held for the served models' lookback and feature names; models with others drop it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from serving.logic import InvalidInput, encode_raw_batch
from serving.observers import StreamObserver, notify

MAX_SEQ = 2**62
"""Row numbers stop below this (a bar a second for 10^11 years); larger ones are refused, not
wrapped."""


MissKind = Literal["unknown_stream", "gap"]
DropReason = Literal["evicted", "models_changed"]


class StreamMiss(Exception):  # noqa: N818 - reads as the answer it is (HTTP 409)
    """The service does not hold what a step request builds on; nothing was changed.

    ``kind``: ``unknown_stream`` (nothing held for the stream: a restart, an eviction, a model
    change or another process behind the port) or ``gap`` (the stream is held, but not up to the
    row before for some of the symbols, or not those symbols, or a retry of the newest row with
    other values than held).
    """

    def __init__(self, stream: str, symbols: Sequence[str], why: str, *, kind: MissKind) -> None:
        shown = ", ".join(symbols[:5]) + (f" and {len(symbols) - 5} more" if len(symbols) > 5 else "")
        super().__init__(f"stream {stream!r}: {why} for {shown}; send those windows whole (in full)")
        self.stream = stream
        self.symbols = tuple(symbols)
        self.kind: MissKind = kind


@dataclass(frozen=True, slots=True)
class StreamStep:
    """One ``/predict_stream`` request, parsed.

    Args:
        stream: the client's stream id.
        symbols: the symbols whose signals are wanted, each once.
        seq: per symbol, the row number of its newest row (its bar count, from 0).
        full: indices into ``symbols`` whose whole window is sent (``rows`` rows each).
        windows: ``(len(full), rows, features)`` float32, in the order of ``full``.
        newest: ``(len(symbols) - len(full), features)`` float32: the newest row of each other
            symbol, in the order of ``symbols``.
    """

    stream: str
    symbols: tuple[str, ...]
    seq: np.ndarray
    full: np.ndarray
    windows: np.ndarray
    newest: np.ndarray


def parse_step(
    raw: memoryview | bytes,
    *,
    stream: str,
    symbols: Sequence[str],
    seq: Sequence[int],
    full: Sequence[int],
    rows: int,
) -> StreamStep:
    """The body after the JSON line: the ``full`` windows, then the other symbols' newest rows.

    Raises:
        InvalidInput: repeated symbols, ``seq`` or ``full`` not matching ``symbols``, or a body
            size that does not split into those windows and rows of one feature width.
    """
    n = len(symbols)
    seen: set[str] = set()
    for i, symbol in enumerate(symbols):
        if symbol in seen:
            raise InvalidInput(
                f"symbol {symbol!r} appears twice; a stream holds one window per symbol", loc=("symbols", i)
            )
        seen.add(symbol)
    if len(seq) != n:
        raise InvalidInput(f"seq has {len(seq)} entries for {n} symbols; send one per symbol", loc=("seq",))
    if any(not 0 <= r < MAX_SEQ for r in seq):
        raise InvalidInput(f"seq holds row numbers, from 0 to {MAX_SEQ - 1}", loc=("seq",))
    if any(not 0 <= i < n for i in full) or len(set(full)) != len(full):
        raise InvalidInput(f"full holds distinct indices into symbols (0 to {n - 1})", loc=("full",))
    seq_arr = np.asarray(seq, dtype=np.int64)
    full_arr = np.asarray(full, dtype=np.int64)
    size = len(raw) if isinstance(raw, bytes) else raw.nbytes
    floats = size // 4
    per_feature = len(full_arr) * rows + (n - len(full_arr))
    if size % 4 or per_feature == 0 or floats == 0 or floats % per_feature:
        raise InvalidInput(
            f"the body after the JSON line holds {size} bytes; expected ({len(full_arr)} whole windows x "
            f"{rows} rows + {n - len(full_arr)} newest rows) x features x 4 (float32)",
            loc=("body",),
        )
    width = floats // per_feature
    data = np.frombuffer(raw, dtype="<f4")
    cut = len(full_arr) * rows * width
    return StreamStep(
        stream=stream,
        symbols=tuple(symbols),
        seq=seq_arr,
        full=full_arr,
        windows=data[:cut].reshape(len(full_arr), rows, width),
        newest=data[cut:].reshape(n - len(full_arr), width),
    )


def encode_step(
    *,
    stream: str,
    symbols: Sequence[str],
    windows: np.ndarray,
    seq: np.ndarray,
    held: Mapping[str, int],
    request_id: str | None = None,
) -> tuple[bytes, int]:
    """A ``/predict_stream`` body (the client's side of :func:`parse_step`): the newest row of
    each symbol whose window the service holds up to the row before (or up to this one), the
    whole window of every other symbol.

    Args:
        windows: ``(len(symbols), rows, features)``, oldest row first.
        seq: per symbol, the row number of its window's newest row.
        held: symbol -> the newest row number the client believes the service holds.

    Returns:
        The body, and how many windows it carries whole.
    """
    have = np.fromiter((held.get(s, -2) for s in symbols), dtype=np.int64, count=len(symbols))
    step = (have == seq - 1) | (have == seq)
    full = np.flatnonzero(~step)
    meta = {
        "stream": stream,
        "symbols": list(symbols),
        "seq": np.asarray(seq, dtype=np.int64).tolist(),
        "full": full.tolist(),
        "rows": int(windows.shape[1]),
    }
    if request_id is not None:
        meta["request_id"] = request_id
    data = np.concatenate([windows[full].reshape(-1), windows[step, -1, :].reshape(-1)])
    return encode_raw_batch(meta, data), len(full)


class _Stream:
    """One client's windows: a slot per symbol in one ``(slots, rows, features)`` array.

    ``features`` names the columns the windows hold: a stream held for other models' features
    (even of the same count) is dropped, never answered from.
    """

    def __init__(self, rows: int, features: tuple[str, ...]) -> None:
        self.rows, self.features = rows, features
        self.slot: dict[str, int] = {}
        self.win: np.ndarray = np.empty((0, rows, len(features)), dtype=np.float32)
        self.seq: np.ndarray = np.empty(0, dtype=np.int64)

    @property
    def nbytes(self) -> int:
        return self.win.nbytes + self.seq.nbytes

    def keep_only(self, symbols: Sequence[str]) -> None:
        """Forget every symbol but ``symbols`` (their windows move to the first slots)."""
        kept = [s for s in symbols if s in self.slot]
        idx = np.fromiter((self.slot[s] for s in kept), dtype=np.int64, count=len(kept))
        self.win, self.seq = self.win[idx], self.seq[idx]
        self.slot = {s: i for i, s in enumerate(kept)}

    def slots(self, symbols: Sequence[str]) -> np.ndarray:
        """Slots of ``symbols``, new ones added (their ``seq`` is -2: nothing held)."""
        new = [s for s in symbols if s not in self.slot]
        if new:
            start = len(self.slot)
            need = start + len(new)
            if need > len(self.win):
                grown = max(need, 2 * len(self.win))
                self.win = np.concatenate(
                    [self.win, np.empty((grown - len(self.win), self.rows, len(self.features)), np.float32)]
                )
                self.seq = np.concatenate([self.seq, np.full(grown - len(self.seq), -2, dtype=np.int64)])
            for i, s in enumerate(new):
                self.slot[s] = start + i
        return np.fromiter((self.slot[s] for s in symbols), dtype=np.int64, count=len(symbols))


class StreamStore:
    """The streams the service holds, least recently used first; see the module docstring.

    Args:
        max_bytes: the most the held windows may take; older streams are dropped to stay under,
            and a stream over it alone is dropped after its answer (its next step is a miss).
        max_symbols: the most symbols one stream holds; a request that would hold more keeps
            only its own symbols (the others' next steps are misses).
        observe: told of each miss (``conflict_<MissKind>``) and each stream dropped
            (``dropped_<DropReason>``); see :mod:`serving.observers`.
    """

    def __init__(self, *, max_bytes: int, max_symbols: int, observe: StreamObserver | None = None) -> None:
        self.max_bytes, self.max_symbols = max_bytes, max_symbols
        self.observe = observe
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._streams)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def windows(self, step: StreamStep, *, rows: int, features: Sequence[str]) -> np.ndarray:
        """The step applied to its stream; returns ``(len(symbols), rows, features)`` windows (a copy).

        Everything is checked before anything held changes: a refused request leaves the stream
        as it was.

        Args:
            rows: the served models' window rows; a stream held at another shape is dropped.
            features: the served models' feature names; a stream held for others is dropped.

        Raises:
            InvalidInput: full windows with fewer than ``rows`` rows, rows of another width, or a
                NaN or infinite value (the message names the symbol).
            StreamMiss: a step row that does not extend the held window.
        """
        try:
            return self._windows(step, rows=rows, features=tuple(features))
        except StreamMiss as miss:
            self._tell(f"conflict_{miss.kind}")
            raise

    def _windows(self, step: StreamStep, *, rows: int, features: tuple[str, ...]) -> np.ndarray:
        _check(step, rows=rows, width=len(features))
        held = self._streams.get(step.stream)
        if held is not None and (held.rows, held.features) != (rows, features):
            self._drop(step.stream, "models_changed")  # nothing held fits the served models
            held = None
        is_step = np.ones(len(step.symbols), dtype=bool)
        is_step[step.full] = False
        step_idx = np.flatnonzero(is_step)
        if held is None:
            if len(step_idx):
                symbols = [step.symbols[i] for i in step_idx]
                raise StreamMiss(step.stream, symbols, "no windows held", kind="unknown_stream")
            held = _Stream(rows, features)
        append = _appends(held, step, step_idx)
        self._bytes -= held.nbytes if step.stream in self._streams else 0
        if len(held.slot) + sum(s not in held.slot for s in step.symbols) > self.max_symbols:
            held.keep_only(step.symbols)  # symbols come and go: the ones not asked for now leave
        slots = held.slots(step.symbols)
        if len(step.full):
            fs = slots[step.full]
            held.win[fs] = step.windows[:, -rows:, :]
            held.seq[fs] = step.seq[step.full]
        moving = slots[step_idx[append]]
        if len(moving):
            held.win[moving, :-1] = held.win[moving, 1:]
            held.win[moving, -1] = step.newest[append]
            held.seq[moving] = step.seq[step_idx[append]]
        answer = held.win[slots]  # fancy indexing: a copy, safe from what follows
        self._streams[step.stream] = held
        self._streams.move_to_end(step.stream)
        self._bytes += held.nbytes
        while self._streams and self._bytes > self.max_bytes:
            self._drop(next(iter(self._streams)), "evicted")
        return answer

    def _drop(self, stream: str, reason: DropReason) -> None:
        self._bytes -= self._streams.pop(stream).nbytes
        self._tell(f"dropped_{reason}")

    def _tell(self, event: str) -> None:
        notify(self.observe, event, what=f"stream event {event!r}")


def _check(step: StreamStep, *, rows: int, width: int) -> None:
    """:class:`InvalidInput` for rows of another width, short windows, or NaN and infinities."""
    got = step.newest.shape[1] if len(step.newest) else step.windows.shape[2]
    if got != width:
        raise InvalidInput(f"each row needs {width} features; got {got}", loc=("body",))
    if len(step.full) and step.windows.shape[1] < rows:
        raise InvalidInput(
            f"each window needs at least {rows} rows (the model lookback); got {step.windows.shape[1]}",
            loc=("rows",),
        )
    bad_full = ~np.isfinite(step.windows[:, -rows:, :]).all(axis=(1, 2))
    bad_new = ~np.isfinite(step.newest).all(axis=1)
    if bad_full.any() or bad_new.any():
        is_full = np.zeros(len(step.symbols), dtype=bool)
        is_full[step.full] = True
        bad = np.zeros(len(step.symbols), dtype=bool)
        bad[step.full[bad_full]] = True
        bad[np.flatnonzero(~is_full)[bad_new]] = True
        i = int(np.argmax(bad))
        raise InvalidInput(
            f"{step.symbols[i]}'s {'window' if is_full[i] else 'newest row'} has NaN or infinite values",
            loc=("symbols", i),
        )


def _appends(held: _Stream, step: StreamStep, step_idx: np.ndarray) -> np.ndarray:
    """Which of the step rows (``step_idx`` into the symbols) extend the held windows; the others
    are retries of the row held. :class:`StreamMiss` when any row does neither."""
    step_seq = step.seq[step_idx]
    known = np.array([step.symbols[i] in held.slot for i in step_idx], dtype=bool)
    slots_known = np.fromiter(
        (held.slot[step.symbols[i]] for i, k in zip(step_idx, known, strict=True) if k), dtype=np.int64
    )
    have = np.full(len(step_idx), -2, dtype=np.int64)
    have[known] = held.seq[slots_known]
    append = have == step_seq - 1
    again = have == step_seq
    if again.any():  # a retry: its row must be the one held
        slots_again = np.fromiter((held.slot[step.symbols[i]] for i in step_idx[again]), dtype=np.int64)
        same = (held.win[slots_again, -1] == step.newest[again]).all(axis=1)
        again[np.flatnonzero(again)[~same]] = False
    missed = ~(append | again)
    if missed.any():
        first = int(np.argmax(missed))
        was = "nothing held" if have[first] < 0 else f"held up to row {have[first]}"
        if have[first] == step_seq[first]:
            was += " with another row there"
        raise StreamMiss(
            step.stream,
            [step.symbols[i] for i in step_idx[missed]],
            f"the held window does not end at the row before seq "
            f"({step.symbols[step_idx[first]]}: {was}, got seq {step_seq[first]})",
            kind="gap",
        )
    return append
