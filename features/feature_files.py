"""The feature and label files the ``features`` stage writes and the ``tune`` stage reads.

Features are computed in float64 (online == batch, bit for bit) and **stored as float32**. The
training matrix is float32 anyway (``training.dataset.Dataset.X``, what the ONNX models take), and
rounding a float64 to float32 once gives the same float32 whether it happens before the write or
after a fresh computation: a dataset built from the file is bit-identical to one built from the
bars (tests/unit/features/test_feature_files.py pins it). NaN stays NaN, so the warm-up rows are
found the same way. Half the bytes of float64, and no precision lost that training did not
already drop.

Written without dictionary encoding and without a compression codec. Measured on 1M minute bars
(bench/features.py, BENCHMARKS.md): Parquet's default dictionary pass over 67 float columns
of mostly distinct values was most of the write time; snappy, lz4 or zstd save 4-14 % of the
bytes of float32 mantissas at 2-3x the write time, byte-stream-split 25 % at 3-4x.

The file carries the features config it was computed with (resolved for the series' interval)
and the series key in its schema metadata, so a reader can refuse a file made with other params.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.config import FeaturesConfig
from features.errors import DataError
from features.schema import TIMESTAMP

CONFIG_KEY = b"mmops.features.config"
SERIES_KEY = b"mmops.features.series"
STORAGE_DTYPE = np.float32
# no dictionary pass, no codec: the measured reasons are in the module docstring
WRITE_OPTIONS = {"compression": "none", "use_dictionary": False}


def labels_path(features_path: Path) -> Path:
    """Where the labels of a feature file live: ``<stem>.labels.parquet`` beside it."""
    return features_path.with_name(features_path.stem + ".labels.parquet")


def _resolved(config: FeaturesConfig, series: str) -> str:
    """The config as JSON with its ``auto`` preset resolved for the series' interval."""
    return config.for_interval(series.rsplit(":", 1)[-1]).model_dump_json()


def write_features(frame: pd.DataFrame, path: Path, *, config: FeaturesConfig, series: str) -> None:
    """Write a feature frame (timestamp index, float columns) as float32 with its config attached."""
    # one pass casts and transposes, so every column is contiguous and Arrow takes it without a copy
    values = frame.to_numpy(dtype=np.float64).astype(STORAGE_DTYPE, order="F")
    metadata = {CONFIG_KEY: _resolved(config, series).encode(), SERIES_KEY: series.encode()}
    _write(frame.index, values, list(frame.columns), path, metadata)


def write_labels(labels: pd.DataFrame, path: Path) -> None:
    """Write a label frame as float64 (targets and backtest scores keep full precision; 2 columns)."""
    values = np.asarray(labels.to_numpy(dtype=np.float64), order="F")
    _write(labels.index, values, list(labels.columns), path, {})


def _write(
    index: pd.Index, values: np.ndarray, names: list[str], path: Path, metadata: dict[bytes, bytes]
) -> None:
    stamps = pa.array(pd.DatetimeIndex(index).as_unit("ns").asi8, type=pa.int64()).cast(
        pa.timestamp("ns", tz="UTC")
    )
    columns = [pa.array(values[:, j]) for j in range(values.shape[1])] + [stamps]
    # pandas' own metadata, taken from an empty frame of the same shape: pd.read_parquet gives
    # back the timestamp index and column names as before, without pandas converting 1M rows
    empty = pd.DataFrame(
        {n: np.empty(0, values.dtype) for n in names},
        index=pd.DatetimeIndex([], tz="UTC", name=TIMESTAMP).as_unit("ns"),
    )
    pandas_meta = pa.Table.from_pandas(empty).schema.metadata or {}
    table = pa.Table.from_arrays(columns, names=[*names, TIMESTAMP]).replace_schema_metadata(
        {**pandas_meta, **metadata}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **WRITE_OPTIONS)


def read_features(path: Path, *, config: FeaturesConfig, series: str) -> pd.DataFrame:
    """The feature frame of ``series`` (``venue:symbol:interval``) made with ``config``.

    Returns:
        float32 columns indexed by bar open time (UTC).

    Raises:
        DataError: the file is missing or unreadable, or was written for another series or with
            other features params (the message says which and how to rebuild it).
    """
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"{path}: cannot read the feature file ({exc}); run `mmops features` first") from exc
    meta = table.schema.metadata or {}
    if CONFIG_KEY not in meta or SERIES_KEY not in meta:
        raise DataError(f"{path}: not a feature file written by `mmops features` (no config in its metadata)")
    written_series = meta[SERIES_KEY].decode()
    if written_series != series:
        raise DataError(f"{path}: features of {written_series}, not of {series}; pass that series' file")
    written = json.loads(meta[CONFIG_KEY])
    expected = json.loads(_resolved(config, series))
    if written != expected:
        differ = sorted(k for k in expected.keys() | written.keys() if written.get(k) != expected.get(k))
        detail = ", ".join(f"{k}: file {written.get(k)!r}, params {expected.get(k)!r}" for k in differ)
        raise DataError(f"{path}: written with other features params ({detail}); rerun `mmops features`")
    return table.to_pandas()
