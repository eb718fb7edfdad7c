"""Input checks and canary routing of the service (pure functions)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes import FEATURES, FakeInfo, FakePredictor

from serving.logic import (
    InvalidInput,
    LoadedModel,
    ModelSet,
    canary_share,
    check_windows,
    decode_windows,
    encode_raw_batch,
    encode_windows,
    route,
    split_raw_batch,
    to_windows,
    windows_from_bytes,
)


def model(version: str, lookback: int = 1, alias: str = "champion") -> LoadedModel:
    return LoadedModel("m", version, alias, FakePredictor(0.0, FakeInfo(lookback=lookback)))


def canary(fraction: float, salt: str = "mmops") -> ModelSet:
    return ModelSet(
        model("1"), model("2", alias="challenger"), mode="canary", canary_fraction=fraction, canary_salt=salt
    )


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.5])
def test_canary_fraction_within_tolerance_over_many_symbols(fraction: float) -> None:
    symbols = [f"SYM{i}USDT" for i in range(20_000)]
    share = route(symbols, canary(fraction)).mean()
    # binomial standard error at n = 20,000 is at most 0.0035; 4 sigma
    assert abs(share - fraction) < 4 * np.sqrt(fraction * (1 - fraction) / len(symbols))


def test_canary_is_sticky_per_symbol_and_salted() -> None:
    symbols = [f"S{i}" for i in range(500)]
    first = route(symbols, canary(0.3))
    assert (route(list(reversed(symbols)), canary(0.3))[::-1] == first).all()  # order does not matter
    assert (route(symbols, canary(0.3, salt="other")) != first).any()
    assert 0 <= canary_share("BTCUSDT", "mmops") < 1
    bigger = route(symbols, canary(0.6))
    assert (bigger[first]).all()  # raising the fraction only adds symbols


def test_no_canary_routing_without_a_challenger_or_outside_canary_mode() -> None:
    assert not route(["A", "B"], ModelSet(model("1"), None, mode="canary", canary_fraction=1.0)).any()
    assert not route(["A", "B"], ModelSet(model("1"), model("2"), mode="shadow", canary_fraction=1.0)).any()


def test_window_rows_is_the_largest_served_lookback() -> None:
    both = ModelSet(model("1", lookback=1), model("2", lookback=16), mode="shadow")
    assert both.window_rows == 16
    assert ModelSet(model("1", lookback=1), model("2", lookback=16), mode="champion").window_rows == 1


def test_check_windows_keeps_the_last_rows() -> None:
    models = ModelSet(model("1", lookback=2))
    windows = to_windows([[[1, 0, 0], [2, 0, 0], [3, 0, 0]]])
    assert check_windows(windows, models, feature_names=list(FEATURES))[0, :, 0].tolist() == [2, 3]


@pytest.mark.parametrize(
    ("windows", "names", "match", "loc"),
    [
        ([[[1.0, 2.0]]], None, "needs 3 features", ("items", 0, "window")),
        ([[[1.0, 2.0, 3.0]]], ["ret_1", "ofi", "vol_5"], "feature_names differ", ("feature_names",)),
        ([[[1.0, 2.0, 3.0]], [[1.0, np.nan, 3.0]]], None, "item 1: window has NaN", ("items", 1, "window")),
        (
            [[[1.0, 2.0, 3.0]], [[1.0, np.inf, 3.0]]],
            None,
            "item 1: window has NaN or infinite",
            ("items", 1, "window"),
        ),
    ],
)
def test_bad_windows_are_refused_with_a_message(windows, names, match: str, loc: tuple) -> None:
    with pytest.raises(InvalidInput, match=match) as info:
        check_windows(to_windows(windows), ModelSet(model("1")), feature_names=names)
    assert info.value.loc == loc


def test_too_few_rows_and_ragged_windows_are_refused() -> None:
    with pytest.raises(InvalidInput, match="at least 4 rows"):
        check_windows(to_windows([[[1.0, 2.0, 3.0]]]), ModelSet(model("1", lookback=4)), feature_names=None)
    with pytest.raises(InvalidInput, match="same shape"):
        to_windows([[[1.0, 2.0, 3.0]], [[1.0, 2.0]]])
    with pytest.raises(InvalidInput, match="2-D list"):
        to_windows([[1.0, 2.0, 3.0]])


def test_bulk_windows_round_trip_and_bad_payloads_are_refused() -> None:
    windows = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    assert (decode_windows(encode_windows(windows), n_symbols=2, rows=4) == windows).all()
    with pytest.raises(InvalidInput, match="holds 96 bytes; expected 5 symbols x 4 rows"):
        decode_windows(encode_windows(windows), n_symbols=5, rows=4)
    with pytest.raises(InvalidInput, match="not valid base64"):
        decode_windows("***", n_symbols=2, rows=4)


def test_raw_bulk_body_round_trips_without_a_copy_and_bad_bodies_are_refused() -> None:
    windows = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    body = encode_raw_batch({"symbols": ["A", "B"], "rows": 4}, windows)
    head, raw = split_raw_batch(body)
    assert json.loads(head) == {"symbols": ["A", "B"], "rows": 4} and (len(head) + 1) % 8 == 0
    decoded = windows_from_bytes(raw, n_symbols=2, rows=4)
    assert (decoded == windows).all() and decoded.flags.aligned and not decoded.flags.writeable
    assert np.shares_memory(decoded, np.frombuffer(body, dtype=np.uint8))
    unaligned = windows_from_bytes(memoryview(b"x" + windows.tobytes())[1:], n_symbols=2, rows=4)
    assert (unaligned == windows).all() and unaligned.flags.aligned
    with pytest.raises(
        InvalidInput, match="windows holds 95 bytes; expected 2 symbols x 4 rows x features x 4"
    ):
        windows_from_bytes(raw[:-1], n_symbols=2, rows=4)
    with pytest.raises(InvalidInput, match="no newline"):
        split_raw_batch(windows.tobytes().replace(b"\n", b""))
