"""A real ``bentoml serve`` (started by ``mmops serve``) on a free port, over a real MLflow registry.

One server for the module: tiny real SGD, RF and LSTM versions are registered; the champion
moves sgd -> rf -> lstm while clients keep calling, then a challenger takes a canary share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from model_seed import FEATURES, fit_tiny, register

from serving.client import RejectedRequest, SignalClient
from serving.logic import canary_share, encode_raw_batch, encode_windows
from training.artifact import select_providers
from training.gate import GateConfig
from training.registry import Registry

REPO = Path(__file__).resolve().parents[2]
NAME = "mmops-SERVE-1m"
TOKEN = "test-token"
CANARY = 0.25


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Small caps, so that bodies just under and over them stay cheap to send; the largest request
# of the other tests (1,000 symbols x 8 rows x 6 features raw, ~202 KB) fits under 256 KiB.
MAX_BODY = 256 * 1024
MAX_ROWS = 64


@contextlib.contextmanager
def running_server(home: Path, uri: str, *, serve: dict, args: Sequence[str] = ()) -> Iterator[dict]:
    """``mmops serve`` on a free 127.0.0.1 port over the registry at ``uri``, with ``serve``
    overriding params.yaml's serve section; yields base URL and process, stops the process group."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["serve"].update(serve)
    (home / "params.yaml").write_text(yaml.safe_dump(params))
    port = free_port()
    env = {
        **os.environ,
        "MMOPS_HOME": str(home),
        "MMOPS_PARAMS": str(home / "params.yaml"),
        "MLFLOW_TRACKING_URI": uri,
        "MMOPS_SERVE_TOKEN": TOKEN,
        "BENTOML_HOME": str(home / "bentoml"),
    }
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"server exited with {proc.returncode}:\n{(home / 'server.log').read_text()[-4000:]}"
                )
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not ready in 180 s:\n{(home / 'server.log').read_text()[-4000:]}")
            time.sleep(0.5)
        yield {"base": base, "proc": proc, "home": home}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("serving")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    for family in ("sgd", "rf", "lstm"):  # versions 1, 2, 3
        register(fit_tiny(family, home / "models"), tracking_uri=uri, name=NAME, family=family)
    register(fit_tiny("sgd", home / "models", seed=1), tracking_uri=uri, name=NAME, family="sgd")  # v4
    reg = Registry(uri, audit_log=home / "logs" / "registry_audit.jsonl", reports=home / "reports")
    promote(reg, "1")
    serve = {
        "model": NAME,
        "poll_interval_s": 0.3,
        "log_flush_s": 0.1,
        "max_body_bytes": MAX_BODY,
        "max_window_rows": MAX_ROWS,
    }
    with running_server(home, uri, serve=serve, args=["--canary", str(CANARY)]) as running:
        yield {**running, "registry": reg}


def promote(reg: Registry, version: str) -> None:
    reg.gate(
        NAME, version, config=GateConfig(), evaluate=lambda uri: {"utility": float(uri.rsplit("/", 1)[1])}
    )
    reg.approve(NAME, version, by="tests", reason=f"serve v{version}")


def client(server: dict, **kw) -> SignalClient:
    return SignalClient(server["base"], token=TOKEN, timeout_s=5.0, **kw)


def windows(symbols: list[str], rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {s: rng.normal(size=(rows, len(FEATURES))) for s in symbols}


def wait_for(server: dict, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    with client(server) as c:
        while time.monotonic() < deadline:
            info = c.info()
            if check(info):
                return info
            time.sleep(0.2)
    pytest.fail("the service did not pick up the alias move in time")


def test_champion_answers_predict_and_info_reports_lineage(server: dict) -> None:
    with client(server) as c:
        info = c.info()
        assert (info.model, info.champion.version, info.champion.alias, info.champion.family) == (
            NAME,
            "1",
            "champion",
            "sgd",
        )
        assert info.champion.lineage["lineage.git_commit"] == "test" and info.feature_names == FEATURES
        assert "CPUExecutionProvider" in info.providers
        # serve.device auto: what this machine opens (the CPU without a GPU), said with its reason
        expected = select_providers("auto")
        assert (info.device, info.champion.device) == (expected.device, expected.device)
        assert info.champion.provider == expected.providers[0]
        assert info.device_reason == expected.reason
        out = c.predict(
            windows(["BTCUSDT", "ETHUSDT"], info.window_rows), feature_names=FEATURES, request_id="first"
        )
    assert out.request_id == "first"
    assert [(s.symbol, s.version, s.alias, s.kind) for s in out.signals] == [
        ("BTCUSDT", "1", "champion", "forward_log_return"),
        ("ETHUSDT", "1", "champion", "forward_log_return"),
    ]
    assert all(np.isfinite(s.value) for s in out.signals)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"items": [{"symbol": "BTCUSDT", "window": [[0.1] * 5]}]}, "needs 6 features"),
        ({"items": [{"symbol": "BTCUSDT", "window": [[0.1] * 5 + [float("nan")]]}]}, "NaN or infinite"),
        (
            {"items": [{"symbol": "BTCUSDT", "window": [[0.1] * 6]}], "feature_names": ["x"] * 6},
            "feature_names differ",
        ),
        ({"items": [{"symbol": "BTC USDT", "window": [[0.1] * 6]}]}, "String should match pattern"),
        ({"items": [{"symbol": "BTCUSDT", "window": "oops"}]}, "Input should be a valid array"),
        ({"items": []}, "no symbols: send at least one"),
        ({}, "Field required"),
    ],
)
def test_bad_inputs_get_a_4xx_with_a_message(server: dict, body: dict, message: str) -> None:
    response = httpx.post(
        f"{server['base']}/predict",
        content=json.dumps(body),
        timeout=5,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500
    assert message in response.text


def test_bulk_path_matches_the_item_path(server: dict) -> None:
    with client(server) as c:
        rows = c.info().window_rows
        batch = windows([f"B{i}" for i in range(64)], rows, seed=3)
        items = c.predict(batch)
        bulk = c.predict_batch(list(batch), np.stack(list(batch.values())), feature_names=FEATURES)
    assert bulk.symbols == list(batch)
    assert bulk.versions == [s.version for s in items.signals]
    # Same float32 model on another batch composition: summation-order round-off only (~1e-7 relative;
    # see tests/helpers.summation_order_atol); 1e-5 is the fast path's own classifier tolerance.
    assert np.allclose(bulk.values, [s.value for s in items.signals], rtol=1e-5, atol=1e-9)
    bad = httpx.post(
        f"{server['base']}/predict_batch",
        json={"symbols": ["A"], "windows_b64": "AAAA", "rows": 1},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    assert bad.status_code == 400 and "expected 1 symbols x 1 rows x features" in bad.text


def test_bulk_path_raw_and_base64_forms_agree_and_bad_raw_bodies_get_400(server: dict) -> None:
    url, auth = f"{server['base']}/predict_batch", {"Authorization": f"Bearer {TOKEN}"}
    raw_headers = {**auth, "Content-Type": "application/octet-stream"}
    with client(server) as c:
        rows = c.info().window_rows
    batch = np.stack(list(windows([f"R{i}" for i in range(16)], rows, seed=4).values()))
    meta = {"symbols": [f"R{i}" for i in range(16)], "rows": rows}
    raw = httpx.post(url, content=encode_raw_batch(meta, batch), headers=raw_headers, timeout=10)
    b64 = httpx.post(url, json={**meta, "windows_b64": encode_windows(batch)}, headers=auth, timeout=10)
    assert raw.status_code == b64.status_code == 200 and raw.json()["values"] == b64.json()["values"]

    def refused(body: bytes) -> str:
        r = httpx.post(url, content=body, headers=raw_headers, timeout=10)
        assert r.status_code == 400, r.text
        return r.text

    assert "holds 12 bytes; expected 2 symbols x 1 rows x features x 4" in refused(
        encode_raw_batch({"symbols": ["A", "B"], "rows": 1}, np.zeros(3))
    )
    assert "needs 6 features" in refused(encode_raw_batch({"symbols": ["A"], "rows": 1}, np.zeros(5)))
    assert "no newline" in refused(b"\x00" * 16)
    assert "symbols" in refused(encode_raw_batch({"rows": 1}, np.zeros(6)))  # a field missing
    assert "rows" in refused(encode_raw_batch({"symbols": ["A"], "rows": 0}, np.zeros(6)))
    assert "not in it" in refused(
        encode_raw_batch({"symbols": ["A"], "rows": 1, "windows_b64": "AAAA"}, np.zeros(6))
    )
    no_windows = httpx.post(url, json=meta, headers=auth, timeout=10)
    assert no_windows.status_code == 400 and "application/octet-stream" in no_windows.text


def test_predict_raw_form_matches_json_and_bad_raw_bodies_get_400(server: dict) -> None:
    url, auth = f"{server['base']}/predict", {"Authorization": f"Bearer {TOKEN}"}
    raw_headers = {**auth, "Content-Type": "application/octet-stream"}
    with client(server) as c:
        rows = c.info().window_rows
        batch = windows([f"P{i}" for i in range(8)], rows, seed=5)
        typed = c.predict(batch, feature_names=FEATURES, request_id="raw-1")  # the client sends the raw form
    as_json = httpx.post(
        url,
        headers=auth,
        timeout=10,
        json={
            "items": [
                {"symbol": s, "window": np.asarray(w, dtype=np.float32).tolist()} for s, w in batch.items()
            ],
        },
    )
    assert as_json.status_code == 200, as_json.text
    assert typed.request_id == "raw-1"
    assert [s.symbol for s in typed.signals] == list(batch)
    assert [s.value for s in typed.signals] == [s["value"] for s in as_json.json()["signals"]]
    assert [s.version for s in typed.signals] == [s["version"] for s in as_json.json()["signals"]]

    def refused(body: bytes) -> str:
        r = httpx.post(url, content=body, headers=raw_headers, timeout=10)
        assert r.status_code == 400, r.text
        return r.text

    assert "holds 12 bytes; expected 2 symbols x 1 rows x features x 4" in refused(
        encode_raw_batch({"symbols": ["A", "B"], "rows": 1}, np.zeros(3))
    )
    assert "needs 6 features" in refused(encode_raw_batch({"symbols": ["A"], "rows": 1}, np.zeros(5)))
    assert "NaN or infinite" in refused(encode_raw_batch({"symbols": ["A"], "rows": 1}, np.full(6, np.nan)))
    assert "no newline" in refused(b"\x00" * 16)
    assert "symbols" in refused(encode_raw_batch({"rows": 1}, np.zeros(6)))
    assert "String should match pattern" in refused(
        encode_raw_batch({"symbols": ["A B"], "rows": 1}, np.zeros(6))
    )
    assert "Extra inputs" in refused(
        encode_raw_batch({"symbols": ["A"], "rows": 1, "items": []}, np.zeros(6))
    )
    assert "feature_names differ" in refused(
        encode_raw_batch({"symbols": ["A"], "rows": 1, "feature_names": ["x"] * 6}, np.zeros(6))
    )


def raw_bulk(n_symbols: int, rows: int) -> bytes:
    """A raw ``/predict_batch`` body of ``n_symbols`` windows of ``rows`` x 6 features."""
    symbols = [f"L{i}" for i in range(n_symbols)]
    batch = np.random.default_rng(n_symbols).normal(size=(n_symbols, rows, len(FEATURES)))
    return encode_raw_batch({"symbols": symbols, "rows": rows}, batch)


def test_a_body_over_max_body_bytes_gets_413_and_one_just_under_it_is_served(server: dict) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/octet-stream"}
    fits = max(n for n in range(1, 400) if len(raw_bulk(n, MAX_ROWS)) <= MAX_BODY)
    under, over = raw_bulk(fits, MAX_ROWS), raw_bulk(fits + 1, MAX_ROWS)
    assert len(under) <= MAX_BODY < len(over)
    with httpx.Client(base_url=server["base"], headers=auth, timeout=10) as c:
        refused = c.post("/predict_batch", content=over)
        assert refused.status_code == 413, refused.text
        assert refused.json()["error"] == (
            f"/predict_batch: the body is {len(over)} bytes (Content-Length); the limit is {MAX_BODY} "
            "bytes (serve.max_body_bytes): send fewer symbols per request, or the raw float32 form"
        )
        served = c.post("/predict_batch", content=under)  # the same connection: still usable
        assert served.status_code == 200, served.text
        assert len(served.json()["values"]) == fits and np.isfinite(served.json()["values"]).all()

        def chunks():  # no Content-Length: counted while it streams
            for start in range(0, len(over), 16 * 1024):
                yield over[start : start + 16 * 1024]

        streamed = c.post("/predict", content=chunks())
        assert streamed.status_code == 413, streamed.text
        assert "while read; the limit is 262144 bytes (serve.max_body_bytes)" in streamed.json()["error"]
        assert c.post("/predict_batch", content=iter([under])).status_code == 200  # chunked, under the cap


def test_windows_over_max_window_rows_get_422_in_every_form(server: dict) -> None:
    rows = MAX_ROWS + 1
    auth = {"Authorization": f"Bearer {TOKEN}"}
    raw_headers = {**auth, "Content-Type": "application/octet-stream"}
    window = np.random.default_rng(0).normal(size=(rows, len(FEATURES)))
    limit = f"a window of {rows} rows is over the limit of {MAX_ROWS} rows (serve.max_window_rows)"
    with httpx.Client(base_url=server["base"], timeout=10) as c:
        answers = {
            "json items": c.post(
                "/predict",
                headers=auth,
                json={
                    "items": [
                        {"symbol": "A", "window": [[0.1] * 6]},
                        {"symbol": "B", "window": window.tolist()},
                    ]
                },
            ),
            "raw predict": c.post("/predict", headers=raw_headers, content=raw_bulk(2, rows)),
            "raw bulk": c.post("/predict_batch", headers=raw_headers, content=raw_bulk(2, rows)),
            "base64 bulk": c.post(
                "/predict_batch",
                headers=auth,
                json={"symbols": ["A"], "rows": rows, "windows_b64": encode_windows(window[None])},
            ),
        }
    for form, r in answers.items():
        assert r.status_code == 422, (form, r.text)
        assert limit in r.text, (form, r.text)
    assert answers["json items"].json()[0]["error"].startswith(f"items.1.window: {limit}")
    assert answers["raw bulk"].json()[0]["error"].startswith(f"rows: {limit}; send the last")
    with client(server) as c, pytest.raises(RejectedRequest, match=re.escape(f"HTTP 422: rows: {limit}")):
        c.predict_batch(["A"], window[None])


def test_a_missing_or_wrong_token_gets_401(server: dict) -> None:
    body = {"items": [{"symbol": "BTCUSDT", "window": [[0.1] * 6]}]}
    assert httpx.post(f"{server['base']}/predict", json=body, timeout=5).status_code == 401
    wrong = httpx.post(f"{server['base']}/info", json={}, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401 and "wrong bearer token" in wrong.json()["error"]
    assert httpx.get(f"{server['base']}/readyz", timeout=5).status_code == 200


def test_alias_moves_are_picked_up_without_a_failed_request(server: dict) -> None:
    """sgd v1 -> rf v2 -> lstm v3 while four clients call without retries."""
    failures: list[str] = []
    seen: list[list[str]] = [[] for _ in range(4)]
    stop = threading.Event()

    def hammer(i: int) -> None:
        with client(server, attempts=1) as c:
            batch = windows([f"SYM{i}"], 8, seed=i)  # 8 rows: enough for every version's lookback
            while not stop.is_set():
                try:
                    seen[i].append(c.predict(batch).signals[0].version)
                except Exception as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        promote(server["registry"], "2")
        info = wait_for(server, lambda i: i.champion.version == "2")
        assert info.champion.family == "rf"
        time.sleep(0.5)
        promote(server["registry"], "3")
        info = wait_for(server, lambda i: i.champion.version == "3")
        assert (info.champion.family, info.window_rows) == ("lstm", 8)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    for versions in seen:
        assert versions[0] == "1" and versions[-1] == "3" and "2" in versions
        assert versions == sorted(versions)  # never back to an older version


def test_the_stream_path_answers_as_whole_windows_do_and_recovers_from_a_conflict(server: dict) -> None:
    """The worker's /predict_stream (one new row per symbol and tick) against /predict_batch on
    the same windows, on the LSTM champion: the same values every tick while symbols advance
    unevenly; a client wrong about what is held gets one 409 and then the right values; a NaN
    row is a 400 naming the symbol that leaves the stream as it was."""
    from serving.worker_source import HttpSignalSource

    if wait_for(server, lambda i: True).champion.version != "3":
        promote(server["registry"], "3")
    rows = wait_for(server, lambda i: i.champion.version == "3").window_rows
    symbols = [f"ST{i}USDT" for i in range(6)]
    rng = np.random.default_rng(7)
    history = {s: [rng.normal(size=len(FEATURES)) for _ in range(rows)] for s in symbols}

    def now() -> tuple[np.ndarray, np.ndarray]:
        win = np.stack([np.stack(history[s][-rows:]) for s in symbols]).astype(np.float32)
        return win, np.array([len(history[s]) - 1 for s in symbols])

    async def scenario() -> None:
        stream = HttpSignalSource(server["base"], token=TOKEN, timeout_s=5.0)
        whole = HttpSignalSource(server["base"], token=TOKEN, timeout_s=5.0, stream=False)
        try:
            for tick in range(12):
                for s in symbols:
                    if tick == 0 or rng.random() < 0.6:  # the others have no new bar this tick
                        history[s].append(rng.normal(size=len(FEATURES)))
                win, seq = now()
                got = await stream.signals(symbols, win, seq=seq)
                want = await whole.signals(symbols, win, seq=seq)
                assert got.values.tolist() == want.values.tolist(), tick
                assert list(got.versions) == list(want.versions)
            assert (stream.conflicts, stream.whole_windows) == (0, len(symbols))

            for s in symbols:  # two rows the service never saw, and a client that believes one
                history[s] += [rng.normal(size=len(FEATURES)) for _ in range(2)]
            win, seq = now()
            stream._held = {s: int(q) - 1 for s, q in zip(symbols, seq, strict=True)}
            got = await stream.signals(symbols, win, seq=seq)
            assert got.values.tolist() == (await whole.signals(symbols, win)).values.tolist()
            assert (stream.conflicts, stream.whole_windows) == (1, 2 * len(symbols))
            metrics = httpx.get(f"{server['base']}/metrics", timeout=5).text
            assert re.search(r'^mmops_stream_events_total\{event="conflict_gap"\} [1-9]', metrics, re.M), (
                "the 409 is counted by kind"
            )

            history[symbols[2]].append(rng.normal(size=len(FEATURES)))
            win, seq = now()
            bad = win.copy()
            bad[2, -1, 5] = np.nan
            with pytest.raises(
                RejectedRequest, match=rf"symbols.2: {symbols[2]}'s newest row has NaN"
            ) as exc:
                await stream.signals(symbols, bad, seq=seq)
            assert exc.value.status == 400
            got = await stream.signals(symbols, win, seq=seq)  # the clean row is still an append
            assert got.values.tolist() == (await whole.signals(symbols, win)).values.tolist()
            assert (stream.conflicts, stream.whole_windows) == (1, 2 * len(symbols))

            huge = seq.copy().astype(object)
            huge[0] = 2**63  # past int64: refused with what is wrong, not a 500
            body = encode_raw_batch(
                {"stream": stream.stream_id, "symbols": symbols, "seq": huge.tolist(), "full": []},
                win[:, -1, :],
            )
            async with stream._session().post(f"{server['base']}/predict_stream", data=body) as answer:
                status, text = answer.status, await answer.text()
            assert status == 400 and "seq" in text, text
        finally:
            await stream.close()
            await whole.close()

    asyncio.run(scenario())


def test_canary_sends_a_sticky_share_of_symbols_to_the_challenger(server: dict) -> None:
    reg = server["registry"]
    champion = reg.aliases(NAME)["champion"]
    reg.gate(
        NAME,
        "4",
        config=GateConfig(min_utility_over_champion=-10),
        evaluate=lambda uri: {"utility": float(uri.rsplit("/", 1)[1])},
    )
    info = wait_for(server, lambda i: i.challenger is not None and i.challenger.version == "4")
    assert (info.mode, info.canary_fraction) == ("canary", CANARY)
    symbols = [f"C{i}USDT" for i in range(1000)]
    with client(server) as c:
        first = c.predict(windows(symbols, info.window_rows))
        again = c.predict(windows(symbols, info.window_rows, seed=1))
    expected = ["4" if canary_share(s, "mmops") < CANARY else champion for s in symbols]
    assert [s.version for s in first.signals] == expected == [s.version for s in again.signals]
    share = expected.count("4") / len(symbols)
    assert abs(share - CANARY) < 0.05
    assert {s.alias for s in first.signals if s.version == "4"} == {"challenger"}


def test_metrics_and_the_prediction_log(server: dict) -> None:
    metrics = httpx.get(f"{server['base']}/metrics", timeout=5).text
    assert (
        'mmops_predictions_total{alias="champion",model="mmops-SERVE-1m",role="served",version="1"}'
        in metrics
    )
    assert "mmops_model_call_seconds_bucket" in metrics and "bentoml_service_request_total" in metrics
    log = server["home"] / "logs" / "predictions.jsonl"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
        if any(x["request_id"] == "first" for x in lines):
            break
        time.sleep(0.2)
    first = [x for x in lines if x["request_id"] == "first"]
    assert [(x["symbol"], x["version"], x["role"]) for x in first] == [
        ("BTCUSDT", "1", "served"),
        ("ETHUSDT", "1", "served"),
    ]
    assert all(len(x["inputs_digest"]) == 24 and x["latency_ms"] > 0 for x in first)
