"""The prediction log's lines: byte for byte what json.dumps of each symbol's record gives."""

from __future__ import annotations

import json

import numpy as np

from serving.logic import inputs_digest
from serving.prediction_log import PredictionRecord, _lines


def test_lines_equal_json_dumps_of_each_symbols_dict_even_for_odd_values() -> None:
    windows = np.random.default_rng(0).normal(size=(4, 2, 3)).astype(np.float32)
    record = PredictionRecord(
        at="2026-12-01T10:00:00.123456+00:00",
        request_id='r "quoted" \\ back\\slash\n\u00e9\u4e2d',  # the client chooses request ids
        symbols=("BTCUSDT", "ETH/USD:PERP", "a.b-c_d", "X"),
        model="mmops-BTCUSDT-1m",
        version="12",
        alias="challenger",
        role="shadow",
        windows=windows,
        outputs=np.array([0.1, -1e-9, np.nan, np.inf], dtype=np.float32),
        latency_ms=1.23456789,
    )
    expected = [
        json.dumps(
            {
                "at": record.at,
                "request_id": record.request_id,
                "symbol": s,
                "model": record.model,
                "version": record.version,
                "alias": record.alias,
                "role": record.role,
                "inputs_digest": inputs_digest(windows[i]),
                "output": float(record.outputs[i]),
                "latency_ms": round(record.latency_ms, 3),
            }
        )
        + "\n"
        for i, s in enumerate(record.symbols)
    ]
    assert _lines(record) == expected
    assert json.loads(_lines(record)[1])["symbol"] == "ETH/USD:PERP"
