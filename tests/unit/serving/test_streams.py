"""``/predict_stream``'s windows (serving/streams.py): what a client sends row by row is the
window it would have sent whole, through restarts, lost answers, retries and evictions."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from fakes import FEATURES, FakeInfo, FakePredictor, FakeSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.batching import MicroBatcher
from serving.config import ServeConfig
from serving.engine import SignalEngine
from serving.logic import InvalidInput, split_raw_batch
from serving.streams import StreamMiss, StreamStep, StreamStore, encode_step, parse_step


def names(width: int) -> tuple[str, ...]:
    return tuple(f"f{i}" for i in range(width))


def parse(body: bytes) -> StreamStep:
    head, raw = split_raw_batch(body)
    doc = json.loads(head)
    return parse_step(
        raw, stream=doc["stream"], symbols=doc["symbols"], seq=doc["seq"], full=doc["full"], rows=doc["rows"]
    )


class Client:
    """The client's side as :class:`serving.worker_source.HttpSignalSource` keeps it."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.held: dict[str, int] = {}
        self.conflicts = 0

    def ask(
        self, store: StreamStore, symbols, windows, seq, *, rows: int, lose_answer: bool = False
    ) -> np.ndarray:
        body, _ = encode_step(stream=self.stream, symbols=symbols, windows=windows, seq=seq, held=self.held)
        try:
            got = store.windows(parse(body), rows=rows, features=names(windows.shape[2]))
        except StreamMiss:
            self.conflicts += 1
            self.held.clear()
            body, whole = encode_step(
                stream=self.stream, symbols=symbols, windows=windows, seq=seq, held=self.held
            )
            assert whole == len(symbols)
            got = store.windows(parse(body), rows=rows, features=names(windows.shape[2]))
        if not lose_answer:
            self.held.update(zip(symbols, np.asarray(seq).tolist(), strict=True))
        return got


class History:
    """Each symbol's feature rows so far: the ground truth the held windows must equal."""

    def __init__(self, symbols: list[str], width: int, seed: int) -> None:
        self.rows: dict[str, list[np.ndarray]] = {s: [] for s in symbols}
        self.rng = np.random.default_rng(seed)
        self.width = width

    def advance(self, symbol: str) -> None:
        self.rows[symbol].append(self.rng.normal(size=self.width).astype(np.float32))

    def request(self, symbols: list[str], rows: int) -> tuple[np.ndarray, np.ndarray]:
        windows = np.stack([np.stack(self.rows[s][-rows:]) for s in symbols])
        seq = np.array([len(self.rows[s]) - 1 for s in symbols], dtype=np.int64)
        return windows, seq


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_symbols=st.integers(1, 6),
    rows=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    events=st.lists(
        st.sampled_from(["tick", "tick", "tick", "restart", "lose", "retry", "other"]), max_size=40
    ),
    tiny_cache=st.booleans(),
)
def test_windows_held_by_a_stream_equal_the_whole_windows(n_symbols, rows, seed, events, tiny_cache) -> None:
    """Random ticks (a random subset of symbols gets a bar), service restarts, lost answers,
    retries, and another client's stream in a cache small enough to evict: every answer's
    windows are the last ``rows`` rows of each symbol, as a whole-window request would send."""
    symbols = [f"S{i}" for i in range(n_symbols)]
    rng = np.random.default_rng(seed)
    max_bytes = 1 if tiny_cache else 1 << 20  # 1 byte: any second stream evicts the first
    store = StreamStore(max_symbols=64, max_bytes=max_bytes)
    me, other = Client("me"), Client("other")
    truth, other_truth = History(symbols, len(FEATURES), seed), History(symbols, len(FEATURES), seed + 1)
    for _ in range(rows):  # warm up: complete windows
        for s in symbols:
            truth.advance(s)
            other_truth.advance(s)
    last: tuple[list[str], np.ndarray, np.ndarray] | None = None
    for event in events:
        if event == "restart":
            store = StreamStore(max_symbols=64, max_bytes=max_bytes)
            continue
        if event == "retry" and last is not None:
            asked, windows, seq = last
            np.testing.assert_array_equal(me.ask(store, asked, windows, seq, rows=rows), windows)
            continue
        if event == "other":
            windows, seq = other_truth.request(symbols, rows)
            np.testing.assert_array_equal(other.ask(store, symbols, windows, seq, rows=rows), windows)
            continue
        moved = [s for s in symbols if rng.random() < 0.7]
        for s in moved:
            truth.advance(s)
        if not moved:
            continue
        windows, seq = truth.request(moved, rows)
        np.testing.assert_array_equal(
            me.ask(store, moved, windows, seq, rows=rows, lose_answer=event == "lose"), windows
        )
        last = (moved, windows, seq)


def stepped(store: StreamStore, *, n: int = 3, rows: int = 4) -> tuple[Client, History, list[str]]:
    symbols = [f"S{i}" for i in range(n)]
    client, truth = Client("c"), History(symbols, len(FEATURES), 0)
    for s in symbols:
        for _ in range(rows - 1):
            truth.advance(s)
    for _ in range(2):
        for s in symbols:
            truth.advance(s)
        client.ask(store, symbols, *truth.request(symbols, rows), rows=rows)
    return client, truth, symbols


def next_step(
    client: Client, truth: History, symbols: list[str]
) -> tuple[bytes, np.ndarray, np.ndarray, int]:
    """Every symbol one bar on: the client's next body, its windows and row numbers, how many whole."""
    for s in symbols:
        truth.advance(s)
    windows, seq = truth.request(symbols, 4)
    body, whole = encode_step(stream="c", symbols=symbols, windows=windows, seq=seq, held=client.held)
    return body, windows, seq, whole


def test_a_step_only_sends_the_newest_row() -> None:
    store = StreamStore(max_symbols=64, max_bytes=1 << 20)
    client, truth, symbols = stepped(store)
    body, windows, _, whole = next_step(client, truth, symbols)
    step = parse(body)
    assert (
        whole == 0 and step.windows.shape == (0, 4, len(FEATURES)) and step.newest.shape == (3, len(FEATURES))
    )
    np.testing.assert_array_equal(store.windows(step, rows=4, features=names(len(FEATURES))), windows)


def test_a_gap_is_a_miss_that_names_the_symbols_and_changes_nothing() -> None:
    store = StreamStore(max_symbols=64, max_bytes=1 << 20)
    client, truth, _ = stepped(store)
    truth.advance("S0")
    truth.advance("S1")
    truth.advance("S1")  # S1 skips a row the service never saw
    windows, seq = truth.request(["S0", "S1"], 4)
    body, _ = encode_step(stream="c", symbols=["S0", "S1"], windows=windows, seq=seq, held={"S0": 4, "S1": 5})
    with pytest.raises(
        StreamMiss,
        match=r"stream 'c': the held window does not end at the row before seq "
        r"\(S1: held up to row 4, got seq 6\) for S1;",
    ):
        store.windows(parse(body), rows=4, features=names(len(FEATURES)))
    # S0's row was not taken: sending it again with another value is still an append, not a retry
    other = windows[:1].copy()
    other[0, -1] += 1.0
    body, _ = encode_step(stream="c", symbols=["S0"], windows=other, seq=seq[:1], held=client.held)
    np.testing.assert_array_equal(store.windows(parse(body), rows=4, features=names(len(FEATURES))), other)


def test_a_retry_with_another_row_under_the_same_number_is_a_miss() -> None:
    store = StreamStore(max_symbols=64, max_bytes=1 << 20)
    client, truth, symbols = stepped(store)
    windows, seq = truth.request(symbols, 4)
    changed = windows.copy()
    changed[1, -1, 0] += 1.0
    body, whole = encode_step(stream="c", symbols=symbols, windows=changed, seq=seq, held=client.held)
    assert whole == 0
    with pytest.raises(StreamMiss, match="for S1;"):
        store.windows(parse(body), rows=4, features=names(len(FEATURES)))


def test_a_refused_row_leaves_the_stream_as_it_was() -> None:
    store = StreamStore(max_symbols=64, max_bytes=1 << 20)
    client, truth, symbols = stepped(store)
    for s in symbols:
        truth.advance(s)
    windows, seq = truth.request(symbols, 4)
    bad = windows.copy()
    bad[2, -1, 1] = np.nan
    body, _ = encode_step(stream="c", symbols=symbols, windows=bad, seq=seq, held=client.held)
    with pytest.raises(InvalidInput, match=r"S2's newest row has NaN or infinite values"):
        store.windows(parse(body), rows=4, features=names(len(FEATURES)))
    with pytest.raises(InvalidInput, match="each row needs 5 features; got 3"):
        store.windows(parse(body), rows=4, features=names(5))
    np.testing.assert_array_equal(client.ask(store, symbols, windows, seq, rows=4), windows)
    assert client.conflicts == 0  # the good rows were appended after the refusals, not re-sent whole


def test_a_model_of_another_lookback_drops_what_is_held() -> None:
    store = StreamStore(max_symbols=64, max_bytes=1 << 20)
    client, truth, symbols = stepped(store, rows=4)
    body, _, seq, _ = next_step(client, truth, symbols)
    with pytest.raises(StreamMiss, match="no windows held"):
        store.windows(parse(body), rows=3, features=names(len(FEATURES)))
    longer, seq = truth.request(symbols, 5)
    assert client.ask(store, symbols, longer, seq, rows=5).shape == (3, 5, len(FEATURES))
    assert client.conflicts == 1


def test_the_cache_drops_the_least_recently_used_stream() -> None:
    one_stream = 3 * 4 * len(FEATURES) * 4 + 3 * 8  # 3 symbols' windows and row numbers
    events: list[str] = []
    store = StreamStore(max_symbols=64, max_bytes=2 * one_stream, observe=events.append)
    for name in ("a", "b", "c"):
        client, truth, symbols = stepped(store)
        client.stream = name
        client.held.clear()
        client.ask(store, symbols, *truth.request(symbols, 4), rows=4)
    assert len(store) == 2 and store.nbytes <= 2 * one_stream
    assert store.nbytes == sum(held.nbytes for held in store._streams.values())
    assert set(store._streams) == {"b", "c"}  # the third stream pushed out "a", the least recently used
    assert events == ["dropped_evicted"]


def test_each_conflict_is_reported_with_its_kind() -> None:
    events: list[str] = []
    store = StreamStore(max_symbols=64, max_bytes=1 << 20, observe=events.append)
    client, truth, symbols = stepped(store)
    assert events == []  # the first request was whole: no conflict
    body, _, _, _ = next_step(client, truth, symbols)
    with pytest.raises(StreamMiss, match="no windows held") as unknown:
        store.windows(parse(body.replace(b'"c"', b'"x"', 1)), rows=4, features=names(len(FEATURES)))
    assert unknown.value.kind == "unknown_stream"
    truth.advance(symbols[0])  # a row the service never saw, and a client that believes it did
    client.held[symbols[0]] += 1
    windows, seq = truth.request(symbols, 4)
    body, whole = encode_step(stream="c", symbols=symbols, windows=windows, seq=seq, held=client.held)
    assert whole == 0
    with pytest.raises(StreamMiss, match="does not end at the row before") as gap:
        store.windows(parse(body), rows=4, features=names(len(FEATURES)))
    assert gap.value.kind == "gap" and gap.value.symbols == (symbols[0],)
    assert events == ["conflict_unknown_stream", "conflict_gap"]


def test_an_observer_that_fails_changes_no_answer() -> None:
    def broken(_event: str) -> None:
        raise RuntimeError("metrics down")

    one_stream = 3 * 4 * len(FEATURES) * 4 + 3 * 8
    store = StreamStore(max_symbols=64, max_bytes=one_stream - 1, observe=broken)
    client, _, _ = stepped(store)  # misses and drops on every step: still the right windows (Client.ask)
    assert client.conflicts == 1 and len(store) == 0


def test_a_stream_over_the_cache_alone_is_answered_then_dropped() -> None:
    one_stream = 3 * 4 * len(FEATURES) * 4 + 3 * 8
    store = StreamStore(max_symbols=64, max_bytes=one_stream - 1)
    client, _, _ = stepped(store)  # every step after the first is a miss, then whole
    assert len(store) == 0 and store.nbytes == 0
    assert client.conflicts == 1  # and each answer was still the right windows (Client.ask)


def test_models_with_other_features_of_the_same_count_drop_what_is_held() -> None:
    events: list[str] = []
    store = StreamStore(max_symbols=64, max_bytes=1 << 20, observe=events.append)
    client, truth, symbols = stepped(store)
    body, _, _, _ = next_step(client, truth, symbols)
    renamed = tuple(reversed(names(len(FEATURES))))
    with pytest.raises(StreamMiss, match="no windows held"):
        store.windows(parse(body), rows=4, features=renamed)
    assert len(store) == 0
    assert events == ["dropped_models_changed", "conflict_unknown_stream"]


def test_symbols_that_come_and_go_do_not_grow_a_stream_past_max_symbols() -> None:
    store = StreamStore(max_symbols=4, max_bytes=1 << 20)
    client = Client("c")
    for day in range(10):  # each day two symbols list and two delist
        symbols = [f"S{day}", f"S{day + 1}", f"S{day + 2}"]
        truth = History(symbols, len(FEATURES), day)
        for s in symbols:
            for _ in range(4):
                truth.advance(s)
        client.held.clear()  # a fresh history: whole windows
        np.testing.assert_array_equal(
            client.ask(store, symbols, *truth.request(symbols, 4), rows=4), truth.request(symbols, 4)[0]
        )
        assert len(store._streams["c"].slot) <= 4


@pytest.mark.parametrize(
    ("symbols", "seq", "full", "size", "message"),
    [
        (["A", "A"], [0, 0], [0, 1], 2 * 4 * 3 * 4, "symbol 'A' appears twice"),
        (["A", "B"], [0], [], 2 * 3 * 4, "seq has 1 entries for 2 symbols"),
        (["A"], [-1], [], 3 * 4, r"seq holds row numbers, from 0 to"),
        (["A"], [2**63], [], 3 * 4, r"seq holds row numbers, from 0 to"),
        (["A"], [0], [2**70], 4 * 3 * 4, r"full holds distinct indices"),
        (["A", "B"], [0, 0], [2], 2 * 3 * 4, r"full holds distinct indices into symbols \(0 to 1\)"),
        (["A", "B"], [0, 0], [0, 0], 2 * 4 * 3 * 4, "distinct"),
        (
            ["A", "B"],
            [0, 0],
            [0],
            7,
            r"holds 7 bytes; expected \(1 whole windows x 4 rows \+ 1 newest rows\)",
        ),
        (["A"], [0], [], 0, "holds 0 bytes"),
    ],
)
def test_malformed_steps_are_refused_with_what_is_wrong(symbols, seq, full, size, message) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_step(bytes(size), stream="s", symbols=symbols, seq=seq, full=full, rows=4)


def held_now(store: StreamStore, client: Client, truth: History, rows: int) -> np.ndarray:
    """What the store holds for ``client``, read by a retry of its last rows (which changes nothing)."""
    symbols = list(truth.rows)
    windows, seq = truth.request(symbols, rows)
    body, whole = encode_step(
        stream=client.stream, symbols=symbols, windows=windows, seq=seq, held=client.held
    )
    assert whole == 0
    return store.windows(parse(body), rows=rows, features=names(truth.width))


@settings(max_examples=200, deadline=None)
@given(
    raw=st.binary(max_size=512),
    symbols=st.lists(st.sampled_from(["A", "B", "C", "D"]), min_size=1, max_size=5),
    seq=st.lists(st.integers(-3, 10) | st.integers(-(2**70), 2**70), max_size=6),
    full=st.lists(st.integers(-2, 6) | st.integers(-(2**70), 2**70), max_size=6),
    rows=st.integers(1, 6),
    width=st.integers(1, 4),
    held_rows=st.integers(1, 6),
)
def test_any_body_is_answered_or_refused_with_a_message(
    raw, symbols, seq, full, rows, width, held_rows
) -> None:
    """Fuzz: a store that holds a stream gets arbitrary bodies; the only errors are the two the
    service turns into a 400 and a 409, and a refused body leaves what is held unchanged."""
    store = StreamStore(max_symbols=64, max_bytes=1 << 20)
    client, truth = Client("s"), History(["A", "B"], width, 0)
    for _ in range(held_rows - 1):  # the first request then has whole windows
        truth.advance("A")
        truth.advance("B")
    for _ in range(2):
        truth.advance("A")
        truth.advance("B")
        client.ask(store, ["A", "B"], *truth.request(["A", "B"], held_rows), rows=held_rows)
    before = held_now(store, client, truth, held_rows)
    try:
        step = parse_step(raw, stream="s", symbols=symbols, seq=seq, full=full, rows=rows)
        store.windows(step, rows=held_rows, features=names(width))
    except (InvalidInput, StreamMiss):
        np.testing.assert_array_equal(held_now(store, client, truth, held_rows), before)


def test_the_engine_answers_a_stream_as_it_answers_whole_windows() -> None:
    info = FakeInfo(family="lstm", lookback=4)
    source = FakeSource({"1": FakePredictor(0.0, info=info)}, {"champion": "1"})
    engine = SignalEngine(
        name="mmops-TEST-1m",
        config=ServeConfig(),
        source=source,
        batcher=MicroBatcher(max_windows=4096, inline_max=64),
    )
    engine.refresh()
    symbols = ["A", "B"]
    truth = History(symbols, len(FEATURES), 3)
    held: dict[str, int] = {}

    async def tick() -> tuple[list[float], list[float]]:
        for s in symbols:
            truth.advance(s)
        windows, seq = truth.request(symbols, 4)
        body, _ = encode_step(stream="e", symbols=symbols, windows=windows, seq=seq, held=held)
        streamed = await engine.predict_stream(parse(body), feature_names=None, request_id=None)
        whole = await engine.predict_columns(symbols, windows, feature_names=None, request_id=None)
        held.update(zip(symbols, seq.tolist(), strict=True))
        return streamed.values, whole.values

    for _ in range(4):
        truth.advance("A")
        truth.advance("B")
    for _ in range(3):
        streamed, whole = asyncio.run(tick())
        assert streamed == whole
    windows, seq = truth.request(symbols, 4)
    body, _ = encode_step(stream="e", symbols=symbols, windows=windows, seq=seq, held=held)
    with pytest.raises(InvalidInput, match="feature_names differ"):
        asyncio.run(engine.predict_stream(parse(body), feature_names=["x", "y", "z"], request_id=None))
    engine.close()
