"""The serving engine with fake predictors: routing, shadow logging, alias swaps under load."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from fakes import FEATURES, FakeInfo, FakePredictor, FakeSource

from features.errors import ConfigError
from serving.batching import MicroBatcher
from serving.config import ServeConfig
from serving.engine import NoChampion, SignalEngine
from serving.logic import InvalidInput, OverLimit, canary_share, inputs_digest, windows_from_bytes
from serving.prediction_log import PredictionLog
from serving.schemas import SymbolWindow


def engine(source: FakeSource, tmp_path: Path | None = None, **config) -> SignalEngine:
    log = None if tmp_path is None else PredictionLog(tmp_path / "predictions.jsonl", flush_s=0.05)
    eng = SignalEngine(
        name="mmops-TEST-1m",
        config=ServeConfig(**config),
        source=source,
        batcher=MicroBatcher(max_windows=1024, inline_max=4),
        log=log,
    )
    eng.refresh()
    if log is not None:
        log.start()
    return eng


def items(symbols, rows: int = 1) -> list[SymbolWindow]:
    return [SymbolWindow(symbol=s, window=[[float(i), 0.0, 0.0]] * rows) for i, s in enumerate(symbols)]


def predict(eng: SignalEngine, batch, **kw):
    return asyncio.run(
        eng.predict(batch, feature_names=kw.get("feature_names"), request_id=kw.get("request_id"))
    )


def two_versions(**challenger_info) -> FakeSource:
    return FakeSource(
        {"1": FakePredictor(100.0), "2": FakePredictor(200.0, FakeInfo(**challenger_info))},
        {"champion": "1", "challenger": "2"},
    )


def test_champion_answers_single_and_multi_symbol_requests() -> None:
    eng = engine(two_versions())  # champion mode: the challenger alias is ignored
    one = predict(eng, items(["BTCUSDT"]), request_id="r1")
    assert one.request_id == "r1" and one.model == "mmops-TEST-1m"
    assert [(s.symbol, s.value, s.version, s.alias, s.kind) for s in one.signals] == [
        ("BTCUSDT", 100.0, "1", "champion", "forward_log_return")
    ]
    many = predict(eng, items(["A", "B", "C"]))
    assert [s.value for s in many.signals] == [100.0, 101.0, 102.0]
    assert eng.info().challenger is None and eng.info().champion.lineage == {"lineage.git_commit": "c1"}


def test_canary_tags_each_signal_with_the_version_that_answered() -> None:
    eng = engine(two_versions(), mode="canary", canary_fraction=0.3)
    symbols = [f"S{i}" for i in range(400)]
    out = predict(eng, items(symbols))
    to_challenger = [canary_share(s, "mmops") < 0.3 for s in symbols]
    assert [s.version for s in out.signals] == ["2" if c else "1" for c in to_challenger]
    assert [s.value - i for i, s in enumerate(out.signals)] == [200.0 if c else 100.0 for c in to_challenger]
    assert all((s.version == "2") == (s.alias == "challenger") for s in out.signals)
    assert 0.2 < np.mean(to_challenger) < 0.4
    assert eng.info().mode == "canary" and eng.info().canary_fraction == 0.3


def test_shadow_returns_the_champion_and_logs_both(tmp_path: Path) -> None:
    eng = engine(two_versions(lookback=4), tmp_path, mode="shadow")
    assert eng.models.window_rows == 4  # clients send the longest lookback; each model reads its tail
    out = predict(eng, items(["A", "B"], rows=4), request_id="req-7")
    assert [(s.version, s.value) for s in out.signals] == [("1", 100.0), ("1", 101.0)]
    eng.close()
    lines = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert sorted((x["symbol"], x["role"], x["version"], x["output"]) for x in lines) == [
        ("A", "served", "1", 100.0),
        ("A", "shadow", "2", 200.0),
        ("B", "served", "1", 101.0),
        ("B", "shadow", "2", 201.0),
    ]
    assert all(
        x["request_id"] == "req-7" and len(x["inputs_digest"]) == 24 and x["latency_ms"] >= 0 for x in lines
    )
    assert lines[0]["inputs_digest"] != lines[1]["inputs_digest"] or lines[0]["symbol"] == lines[1]["symbol"]


def test_an_incompatible_challenger_is_not_routed_to() -> None:
    eng = engine(two_versions(feature_names=("x", "y", "z")), mode="canary", canary_fraction=1.0)
    assert eng.models.challenger is None
    assert {s.version for s in predict(eng, items(["A", "B"])).signals} == {"1"}


def test_invalid_requests_raise_before_any_model_runs() -> None:
    source = two_versions()
    eng = engine(source, max_items=2)
    with pytest.raises(InvalidInput, match="at most 2 symbols"):
        predict(eng, items(["A", "B", "C"]))
    with pytest.raises(InvalidInput, match="feature_names differ"):
        predict(eng, items(["A"]), feature_names=["a", "b", "c"])
    assert predict(eng, items(["A"]), feature_names=list(FEATURES)).signals[0].value == 100.0
    assert source.predictors["1"].calls == [1, 1]  # the warm-up and the one valid request


def test_no_champion_refuses_to_start() -> None:
    with pytest.raises(NoChampion, match="approve a version"):
        engine(FakeSource({"1": FakePredictor(1.0)}, {"challenger": "1"}))


def test_alias_move_swaps_atomically_with_no_failed_request() -> None:
    source = FakeSource({str(v): FakePredictor(100.0 * v) for v in (1, 2, 3)}, {"champion": "1"})
    eng = engine(source)

    async def scenario() -> list[str]:
        seen: list[str] = []

        async def client(i: int) -> None:
            for _ in range(60):
                out = await eng.predict(items([f"S{i}"]), feature_names=None, request_id=None)
                seen.append(out.signals[0].version)
                assert out.signals[0].value == 100.0 * int(out.signals[0].version)
                await asyncio.sleep(0)

        async def mover() -> None:
            for version in ("2", "3"):
                await asyncio.sleep(0.005)
                source.alias_map["champion"] = version
                await asyncio.to_thread(eng.refresh)

        await asyncio.gather(*(client(i) for i in range(8)), mover())
        return seen

    seen = asyncio.run(scenario())
    assert len(seen) == 480 and seen[-1] == "3" and {"1", "3"} <= set(seen)
    assert source.loads == ["1", "2", "3"]
    assert eng.refresh() is False  # nothing moved: nothing reloaded


def test_a_version_moving_from_challenger_to_champion_is_not_reloaded() -> None:
    source = two_versions()
    eng = engine(source, mode="canary", canary_fraction=0.5)
    source.alias_map = {"champion": "2"}
    assert eng.refresh() is True
    assert source.loads == ["1", "2"] and eng.models.champion.alias == "champion"
    source.alias_map = {}
    assert eng.refresh() is False and eng.models.champion.version == "2"  # alias gone: keep serving


def test_concurrent_requests_share_model_calls() -> None:
    source = FakeSource({"1": FakePredictor(0.0)}, {"champion": "1"})
    eng = engine(source)
    source.predictors["1"].calls.clear()

    async def burst() -> None:
        await asyncio.gather(
            *(eng.predict(items([f"S{i}"]), feature_names=None, request_id=None) for i in range(50))
        )

    asyncio.run(burst())
    calls = source.predictors["1"].calls
    assert sum(calls) == 50 and len(calls) < 50  # batched across requests


def test_bulk_path_answers_column_wise_like_the_item_path() -> None:
    eng = engine(two_versions(), mode="canary", canary_fraction=0.5)
    symbols = [f"S{i}" for i in range(50)]
    per_item = predict(eng, items(symbols))
    windows = np.array([[[float(i), 0.0, 0.0]] for i in range(50)], dtype=np.float32)
    bulk = asyncio.run(eng.predict_columns(symbols, windows, feature_names=None, request_id="b"))
    assert bulk.symbols == symbols and bulk.request_id == "b"
    assert bulk.values == [s.value for s in per_item.signals]
    assert bulk.versions == [s.version for s in per_item.signals]
    assert bulk.aliases == [s.alias for s in per_item.signals] and set(bulk.kinds) == {"forward_log_return"}


def test_logged_digests_equal_the_inline_digest_of_what_each_model_saw(tmp_path: Path) -> None:
    """The log thread digests a reference to the request's (read-only) windows: same digests as inline."""
    eng = engine(two_versions(lookback=2), tmp_path, mode="canary", canary_fraction=0.5)
    symbols = [f"S{i}" for i in range(40)]
    rng = np.random.default_rng(5)
    stacked = rng.normal(size=(40, 3, 3)).astype(np.float32)  # 3 rows: more than the longest lookback (2)
    windows = windows_from_bytes(stacked.tobytes(), n_symbols=40, rows=3)
    assert not windows.flags.writeable
    bulk = asyncio.run(eng.predict_columns(symbols, windows, feature_names=None, request_id="d"))
    eng.close()
    lines = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 40 and {x["version"] for x in lines} == {"1", "2"}
    lookback = {"1": 1, "2": 2}
    for x in lines:
        i = symbols.index(x["symbol"])
        assert x["version"] == bulk.versions[i]
        assert x["inputs_digest"] == inputs_digest(stacked[i, -lookback[x["version"]] :, :].copy())


def test_shadow_mode_hands_the_challengers_values_and_version_to_the_bulk_caller() -> None:
    eng = engine(two_versions(task="classifier"), mode="shadow")
    windows = np.array([[[float(i), 0.0, 0.0]] for i in range(5)], dtype=np.float32)
    bulk = asyncio.run(eng.predict_columns(list("ABCDE"), windows, feature_names=None, request_id="s"))
    assert bulk.values == [100.0, 101.0, 102.0, 103.0, 104.0] and set(bulk.versions) == {"1"}
    assert bulk.shadow_values == [200.0, 201.0, 202.0, 203.0, 204.0]
    assert (bulk.shadow_version, bulk.shadow_kind) == ("2", "prob_up")  # the challenger's own kind
    assert set(bulk.kinds) == {"forward_log_return"}


@pytest.mark.parametrize("mode", ["champion", "canary"])
def test_without_a_shadow_call_the_bulk_answer_has_no_shadow_fields(mode: str) -> None:
    eng = engine(two_versions(), mode=mode, canary_fraction=0.5)
    windows = np.zeros((20, 1, 3), dtype=np.float32)
    bulk = asyncio.run(
        eng.predict_columns([f"S{i}" for i in range(20)], windows, feature_names=None, request_id=None)
    )
    assert (bulk.shadow_values, bulk.shadow_version, bulk.shadow_kind) == (None, None, None)
    assert set(bulk.versions) == ({"1", "2"} if mode == "canary" else {"1"})
    wire = bulk.model_dump(mode="json")
    assert wire["shadow_values"] is None and wire["shadow_version"] is None


def test_windows_longer_than_max_window_rows_are_over_the_limit_on_every_path() -> None:
    source = two_versions()
    eng = engine(source, max_window_rows=4)
    source.predictors["1"].calls.clear()
    assert predict(eng, items(["A"], rows=4)).signals[0].value == 100.0  # at the cap: served
    with pytest.raises(OverLimit, match=r"items\.1\.window: a window of 5 rows is over the limit of 4 rows"):
        predict(eng, [*items(["A"], rows=4), *items(["B"], rows=5)])
    long = np.zeros((2, 5, 3), dtype=np.float32)
    with pytest.raises(
        OverLimit, match=r"rows: a window of 5 rows .* \(serve.max_window_rows\); send the last 1"
    ):
        asyncio.run(eng.predict_columns(["A", "B"], long, feature_names=None, request_id=None))
    with pytest.raises(OverLimit, match="over the limit of 4 rows"):
        asyncio.run(eng.predict_windows(["A", "B"], long, feature_names=None, request_id=None))
    assert source.predictors["1"].calls == [1]  # only the request at the cap reached the model


def test_a_version_whose_lookback_is_over_max_window_rows_is_not_served() -> None:
    with pytest.raises(ConfigError, match=r"lookback of 8 rows is over serve.max_window_rows \(4\)"):
        engine(
            FakeSource({"1": FakePredictor(1.0, FakeInfo(lookback=8))}, {"champion": "1"}), max_window_rows=4
        )
    source = FakeSource(
        {"1": FakePredictor(1.0), "2": FakePredictor(2.0, FakeInfo(lookback=8))}, {"champion": "1"}
    )
    eng = engine(source, max_window_rows=4)
    source.alias_map["champion"] = "2"
    with pytest.raises(ConfigError, match=r"raise serve\.max_window_rows"):
        eng.refresh()  # the poller logs this and keeps serving what is loaded
    assert eng.models.champion.version == "1" and predict(eng, items(["A"])).signals[0].value == 1.0


def test_an_observer_that_fails_changes_no_answer(tmp_path: Path) -> None:
    """The per-call metric failing (a label error, a full disk under the metrics' mmap files)
    must not fail the request, nor lose its prediction-log line."""

    def broken(*_args: object) -> None:
        raise RuntimeError("metrics down")

    eng = SignalEngine(
        name="mmops-TEST-1m",
        config=ServeConfig(mode="shadow"),
        source=two_versions(),
        batcher=MicroBatcher(max_windows=1024, inline_max=4, observe=broken),
        log=PredictionLog(tmp_path / "predictions.jsonl", flush_s=0.05),
        observe=broken,
    )
    eng.refresh()
    eng.log.start()
    out = predict(eng, items(["A", "B"]), request_id="r1")
    eng.log.close()
    assert [(s.value, s.version) for s in out.signals] == [(100.0, "1"), (101.0, "1")]
    lines = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [(r["symbol"], r["role"]) for r in lines] == [
        ("A", "served"),
        ("B", "served"),
        ("A", "shadow"),
        ("B", "shadow"),
    ]
