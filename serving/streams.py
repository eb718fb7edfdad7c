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

Memory is bounded by ``serve.stream_cache_mb``: the least recently used streams are dropped
first (their clients then see one miss).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from serving.logic import InvalidInput, encode_raw_batch


class StreamMiss(Exception):  # noqa: N818 - reads as the answer it is (HTTP 409)
    """The service does not hold what a step request builds on; nothing was changed."""

    def __init__(self, stream: str, symbols: Sequence[str], why: str) -> None:
        shown = ", ".join(symbols[:5]) + (f" and {len(symbols) - 5} more" if len(symbols) > 5 else "")
        super().__init__(f"stream {stream!r}: {why} for {shown}; send those windows whole (in full)")
        self.stream = stream
        self.symbols = tuple(symbols)


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
    if len(set(symbols)) != n:
        first = next(s for i, s in enumerate(symbols) if s in symbols[:i])
        raise InvalidInput(
            f"symbol {first!r} appears twice; a stream holds one window per symbol", loc=("symbols",)
        )
    if len(seq) != n:
        raise InvalidInput(f"seq has {len(seq)} entries for {n} symbols; send one per symbol", loc=("seq",))
    seq_arr = np.asarray(seq, dtype=np.int64)
    if n and seq_arr.min() < 0:
        raise InvalidInput("seq holds row numbers, from 0; got a negative one", loc=("seq",))
    full_arr = np.asarray(full, dtype=np.int64)
    if len(full_arr) and (
        full_arr.min() < 0 or full_arr.max() >= n or len(np.unique(full_arr)) != len(full_arr)
    ):
        raise InvalidInput(f"full holds distinct indices into symbols (0 to {n - 1})", loc=("full",))
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
    """One client's windows: a slot per symbol in one ``(slots, rows, features)`` array."""

    def __init__(self, rows: int, width: int) -> None:
        self.rows, self.width = rows, width
        self.slot: dict[str, int] = {}
        self.win: np.ndarray = np.empty((0, rows, width), dtype=np.float32)
        self.seq: np.ndarray = np.empty(0, dtype=np.int64)

    @property
    def nbytes(self) -> int:
        return self.win.nbytes + self.seq.nbytes

    def slots(self, symbols: Sequence[str]) -> np.ndarray:
        """Slots of ``symbols``, new ones added (their ``seq`` is -2: nothing held)."""
        new = [s for s in symbols if s not in self.slot]
        if new:
            start = len(self.slot)
            need = start + len(new)
            if need > len(self.win):
                grown = max(need, 2 * len(self.win))
                self.win = np.concatenate(
                    [self.win, np.empty((grown - len(self.win), self.rows, self.width), np.float32)]
                )
                self.seq = np.concatenate([self.seq, np.full(grown - len(self.seq), -2, dtype=np.int64)])
            for i, s in enumerate(new):
                self.slot[s] = start + i
        return np.fromiter((self.slot[s] for s in symbols), dtype=np.int64, count=len(symbols))


class StreamStore:
    """The streams the service holds, least recently used first; see the module docstring.

    Args:
        max_bytes: the most the held windows may take; older streams are dropped to stay under.
    """

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._streams: OrderedDict[str, _Stream] = OrderedDict()

    def __len__(self) -> int:
        return len(self._streams)

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self._streams.values())

    def windows(self, step: StreamStep, *, rows: int, width: int) -> np.ndarray:
        """The step applied to its stream; returns ``(len(symbols), rows, width)`` windows (a copy).

        Everything is checked before anything held changes: a refused request leaves the stream
        as it was.

        Args:
            rows: the served models' window rows; a stream held at another shape is dropped.
            width: the served models' feature count.

        Raises:
            InvalidInput: full windows with fewer than ``rows`` rows, rows of another width, or a
                NaN or infinite value (the message names the symbol).
            StreamMiss: a step row that does not extend the held window.
        """
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
                f"item {i} ({step.symbols[i]}): {'window' if is_full[i] else 'newest row'} has NaN or infinite values",
                loc=("items", i),
            )
        held = self._streams.get(step.stream)
        if held is not None and (held.rows, held.width) != (rows, width):
            del self._streams[step.stream]  # the served models changed shape: nothing held fits
            held = None
        is_step = np.ones(len(step.symbols), dtype=bool)
        is_step[step.full] = False
        step_idx = np.flatnonzero(is_step)
        step_seq = step.seq[step_idx]
        if held is None:
            if len(step_idx):
                raise StreamMiss(step.stream, [step.symbols[i] for i in step_idx], "no windows held")
            held = _Stream(rows, width)
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
            raise StreamMiss(
                step.stream,
                [step.symbols[i] for i in step_idx[missed]],
                "the held window does not end at the row before seq",
            )
        slots = held.slots(step.symbols)
        if len(step.full):
            fs = slots[step.full]
            held.win[fs] = step.windows[:, -rows:, :]
            held.seq[fs] = step.seq[step.full]
        moving = slots[step_idx[append]]
        if len(moving):
            held.win[moving, :-1] = held.win[moving, 1:]
            held.win[moving, -1] = step.newest[append]
            held.seq[moving] = step_seq[append]
        self._streams[step.stream] = held
        self._streams.move_to_end(step.stream)
        while len(self._streams) > 1 and self.nbytes > self.max_bytes:
            self._streams.popitem(last=False)
        return held.win[slots]

    def drop(self, stream: str) -> None:
        self._streams.pop(stream, None)
