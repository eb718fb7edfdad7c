"""Ingest: validation gate, quarantine, idempotent and atomic merges into the store."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from helpers import store_bytes

from features.config import ValidationConfig
from features.errors import DataError, ValidationFailed
from features.pipeline import ingest_source
from features.store import BarStore

NOW = pd.Timestamp("2026-11-21", tz="UTC")
CONFIG = ValidationConfig()


def ingest(path: Path, home: Path, **kwargs: object) -> dict[str, object]:
    return ingest_source(
        "binance-dump",
        path,
        store_root=home / "bars",
        quarantine_root=home / "quarantine",
        gx_root=None,
        validation=CONFIG,
        now=NOW,
        **kwargs,
    )  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def april_rows(source_data: Path) -> list[str]:
    """The first 600 real rows of the April 2026 dump (microsecond timestamps)."""
    with zipfile.ZipFile(source_data / "binance-spot-1m" / "BTCUSDT-1m-2026-04.zip") as archive:
        text = archive.read(archive.namelist()[0]).decode()
    return text.splitlines()[:600]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, source_data: Path) -> Path:
    """A store holding the valid March dump."""
    home = tmp_path_factory.mktemp("seeded")
    ingest(source_data / "binance-spot-1m" / "BTCUSDT-1m-2026-03.zip", home)
    return home


@pytest.fixture
def store_home(seeded: Path, tmp_path: Path) -> Path:
    shutil.copytree(seeded, tmp_path / "home")
    return tmp_path / "home"


def fields(row: str) -> list[str]:
    return row.split(",")


def set_field(rows: list[str], index: int, column: int, value: str) -> list[str]:
    out = list(rows)
    parts = fields(out[index])
    parts[column] = value
    out[index] = ",".join(parts)
    return out


def zipped(tmp: Path, rows: list[str] | None = None, raw: bytes | None = None) -> Path:
    path = tmp / "BTCUSDT-1m-2026-04.zip"
    if raw is not None:
        path.write_bytes(raw)
        return path
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("BTCUSDT-1m-2026-04.csv", "\n".join(rows or []) + ("\n" if rows else ""))
    path.write_bytes(buffer.getvalue())
    return path


def future_row(rows: list[str]) -> list[str]:
    # a bar stamped a year after the clock, correctly aligned, with the rest of a real row
    ts = int(pd.Timestamp("2027-11-21", tz="UTC").value // 1000)
    return [
        *rows[:-1],
        ",".join([str(ts), *fields(rows[-1])[1:6], str(ts + 59_999_999), *fields(rows[-1])[7:]]),
    ]


def truncated(tmp: Path, rows: list[str]) -> Path:
    blob = zipped(tmp, rows).read_bytes()
    return zipped(tmp, raw=blob[: len(blob) // 2])


CORRUPTIONS: dict[str, tuple[Callable[[list[str]], list[str]], str]] = {
    "nan-close": (lambda r: set_field(r, 5, 4, "NaN"), "not_be_null on close"),
    "duplicate-timestamp": (lambda r: [*r[:10], r[9], *r[11:]], "be_unique on timestamp"),
    "unsorted-timestamps": (lambda r: [*r[:10], r[11], r[10], *r[12:]], "be_increasing on timestamp"),
    "high-below-low": (lambda r: set_field(r, 7, 2, str(float(fields(r[7])[3]) - 50)), "high,low"),
    "negative-volume": (lambda r: set_field(r, 8, 5, "-3.5"), "between on volume"),
    "taker-buy-over-volume": (
        lambda r: set_field(r, 9, 9, str(float(fields(r[9])[5]) + 1)),
        "volume,taker_buy_volume",
    ),
    "wrong-column-count": (lambda r: [*r[:3], ",".join(fields(r[3])[:9]), *r[4:]], "row 4 has 9 columns"),
    "non-numeric-field": (lambda r: set_field(r, 4, 1, "12o.5"), "row 5, column 'open'"),
    "mixed-ms-us": (lambda r: set_field(r, 6, 0, str(int(fields(r[6])[0]) // 1000)), "mixed timestamp units"),
    "out-of-range-price": (
        lambda r: set_field(set_field(r, 12, 4, "6698858000"), 12, 2, "6698858000"),
        "log_return",
    ),
    "zero-price": (lambda r: set_field(r, 13, 3, "0"), "between on low"),
    "future-timestamp": (future_row, "between on timestamp"),
    "misaligned-timestamp": (
        lambda r: set_field(r, 14, 0, str(int(fields(r[14])[0]) + 7_000_000)),
        "ts_offset_ns",
    ),
    "empty-file": (lambda r: [], "empty"),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_batch_is_rejected_quarantined_and_the_store_is_untouched(
    kind: str, april_rows: list[str], store_home: Path, tmp_path: Path
) -> None:
    corrupt, match = CORRUPTIONS[kind]
    before = store_bytes(store_home / "bars")
    with pytest.raises(DataError, match=match):
        ingest(zipped(tmp_path, corrupt(april_rows)), store_home)
    assert store_bytes(store_home / "bars") == before
    (entry,) = (store_home / "quarantine").iterdir()
    assert (entry / "BTCUSDT-1m-2026-04.zip").is_file()
    assert json.loads((entry / "validation.json").read_text())["reason"]


@pytest.mark.parametrize("kind", ["truncated-zip", "not-a-zip"])
def test_broken_archives_are_rejected(
    kind: str, april_rows: list[str], store_home: Path, tmp_path: Path
) -> None:
    before = store_bytes(store_home / "bars")
    path = (
        truncated(tmp_path, april_rows)
        if kind == "truncated-zip"
        else zipped(tmp_path, raw=b"<html>404</html>")
    )
    with pytest.raises(DataError, match="corrupt"):
        ingest(path, store_home)
    assert store_bytes(store_home / "bars") == before


def test_failure_message_names_the_rows(april_rows: list[str], store_home: Path, tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match=r"timestamp=2026-04-01T00:07:00") as caught:
        ingest(zipped(tmp_path, CORRUPTIONS["high-below-low"][0](april_rows)), store_home)
    assert caught.value.quarantine_path and Path(caught.value.quarantine_path).is_dir()


def test_reingesting_the_same_file_changes_no_byte(store_home: Path, source_data: Path) -> None:
    before = store_bytes(store_home / "bars")
    result = ingest(source_data / "binance-spot-1m" / "BTCUSDT-1m-2026-03.zip", store_home)
    assert store_bytes(store_home / "bars") == before
    assert result["series"] == [
        {
            "series": "binance:BTCUSDT:1m",
            "rows_in": 44640,
            "rows_added": 0,
            "rows_replaced": 0,
            "rows_total": 44640,
            "months_written": [],
            "gap_count": 0,
            "longest_gap_bars": 0,
        }
    ]


def test_overlapping_ingest_leaves_exactly_the_same_rows(
    store_home: Path, april_rows: list[str], tmp_path: Path
) -> None:
    ingest(zipped(tmp_path, april_rows[:400]), store_home)
    once = store_bytes(store_home / "bars")
    ingest(zipped(tmp_path, april_rows[200:]), store_home)  # overlaps rows 200..399
    ingest(zipped(tmp_path, april_rows), store_home)
    bars = BarStore(store_home / "bars").read("binance", "BTCUSDT", "1m", start="2026-04-01")
    assert len(bars) == 600 and bars["timestamp"].is_unique and bars["timestamp"].is_monotonic_increasing
    assert store_bytes(store_home / "bars") != once


def test_a_crash_before_commit_leaves_the_previous_state(
    store_home: Path, april_rows: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = BarStore(store_home / "bars").read("binance", "BTCUSDT", "1m")

    def crash(self: BarStore, manifest: dict[str, dict[str, str]]) -> None:
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(BarStore, "_commit", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest(zipped(tmp_path, april_rows), store_home)
    after = BarStore(store_home / "bars").read("binance", "BTCUSDT", "1m")
    pd.testing.assert_frame_equal(before, after)
    monkeypatch.undo()
    ingest(zipped(tmp_path, april_rows), store_home)  # the next ingest succeeds and cleans up
    assert len(BarStore(store_home / "bars").read("binance", "BTCUSDT", "1m")) == 44640 + 600
    assert len(list((store_home / "bars").rglob("*.parquet"))) == 2
