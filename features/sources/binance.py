"""Binance public-data kline dumps: reading the monthly/daily zips, and downloading them.

A dump is a zip holding one headerless CSV with 12 columns (see ``KLINE_COLUMNS``). Open times
are milliseconds since the epoch in older dumps and microseconds in spot dumps since 2025; the
unit is detected per file, and a file mixing both is rejected.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import lzma
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from features.errors import SourceError, TemporaryError
from features.schema import conform, normalize_interval

log = logging.getLogger(__name__)

KLINE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
_NAME_RE = re.compile(
    r"^(?P<symbol>[A-Z0-9]+)-(?P<interval>\d+[smhdwM])-(?P<period>\d{4}-\d{2}(?:-\d{2})?)\.zip$"
)
# Open times below this are milliseconds (year 2286 in ms); at or above, microseconds.
_MICROS_THRESHOLD = 10**13
PUBLIC_DATA_URL = "https://data.binance.vision/data/spot"


def parse_dump_name(path: Path) -> tuple[str, str]:
    """``BTCUSDT-1m-2026-03.zip`` -> (``BTCUSDT``, ``1m``).

    Raises:
        SourceError: the name is not a Binance kline dump name.
    """
    match = _NAME_RE.match(path.name)
    if match is None:
        raise SourceError(
            f"{path}: not a Binance kline dump name (expected SYMBOL-INTERVAL-YYYY-MM[-DD].zip)"
        )
    return match.group("symbol"), normalize_interval(match.group("interval"))


def dump_files(path: Path) -> list[Path]:
    """The dump zips at ``path`` (a zip, or a directory searched non-recursively), in name order."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == ".zip")
        if not files:
            raise SourceError(f"{path}: no .zip kline dumps in this directory")
        return files
    if not path.exists():
        raise SourceError(f"{path}: no such file or directory")
    return [path]


def read_dump(path: Path, *, symbol: str | None = None, interval: str | None = None) -> pd.DataFrame:
    """Read one kline dump zip into canonical bars (venue ``binance``).

    Args:
        path: the zip file.
        symbol: overrides the symbol taken from the file name.
        interval: overrides the interval taken from the file name.

    Raises:
        SourceError: unreadable zip, wrong member count, wrong column count, a non-numeric
            field, an empty file, or mixed millisecond/microsecond timestamps; the message names
            the file and the row.
    """
    name_symbol, name_interval = (
        parse_dump_name(path) if symbol is None or interval is None else (symbol, interval)
    )
    raw = _read_zip_member(path)
    frame = _parse_csv(raw, path)
    frame["timestamp"] = pd.to_datetime(_to_nanoseconds(frame["open_time"].to_numpy(), path), utc=True)
    return conform(frame, symbol=symbol or name_symbol, venue="binance", interval=interval or name_interval)


def read_dumps(paths: Iterable[Path], **kwargs: str | None) -> pd.DataFrame:
    frames = [read_dump(p, **kwargs) for p in paths]
    return pd.concat(frames, ignore_index=True)


def _read_zip_member(path: Path) -> bytes:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) != 1:
                raise SourceError(f"{path}: expected one CSV inside the zip, found {len(members)}")
            return archive.read(members[0])
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, lzma.LZMAError) as exc:
        raise SourceError(
            f"{path}: not a readable zip ({exc}); the download is truncated or corrupt"
        ) from exc
    except (RuntimeError, NotImplementedError) as exc:  # encrypted, or a compression zipfile lacks
        raise SourceError(
            f"{path}: a zip that cannot be read here ({exc}); unzip it and pass the CSV"
        ) from exc
    except OSError as exc:  # CRC errors and short reads surface as OSError subclasses
        raise SourceError(f"{path}: cannot read the zip member ({exc}); the file is corrupt") from exc


def _parse_csv(raw: bytes, path: Path) -> pd.DataFrame:
    text = raw.decode("utf-8", errors="strict") if raw else ""
    rows = list(csv.reader(io.StringIO(text)))
    if rows and not rows[0][0].strip().lstrip("-").isdigit():
        rows = rows[1:]  # some dumps carry a header row
    if not rows:
        raise SourceError(f"{path}: the CSV is empty (no kline rows)")
    for line, row in enumerate(rows, start=1):
        if len(row) != len(KLINE_COLUMNS):
            raise SourceError(
                f"{path}: row {line} has {len(row)} columns, a kline dump has {len(KLINE_COLUMNS)}: {','.join(row)[:120]}"
            )
    frame = pd.DataFrame(rows, columns=list(KLINE_COLUMNS))
    for column in KLINE_COLUMNS:
        numeric = pd.to_numeric(frame[column], errors="coerce")
        bad = numeric.isna() & ~frame[column].str.strip().str.lower().isin(
            ("", "nan")
        )  # NaN is validation's job
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 1
            raise SourceError(
                f"{path}: row {line}, column {column!r}: {frame[column].iloc[line - 1]!r} is not a number"
            )
        frame[column] = numeric
    return frame


def _to_nanoseconds(open_time: np.ndarray, path: Path) -> np.ndarray:
    values = open_time.astype(np.int64)
    micros = values >= _MICROS_THRESHOLD
    if micros.any() and not micros.all():
        first = int(np.flatnonzero(micros != micros[0])[0]) + 1
        raise SourceError(
            f"{path}: mixed timestamp units, row 1 is {'micro' if micros[0] else 'milli'}seconds but row {first} is not;"
            " a dump must use one unit"
        )
    return values * (1_000 if micros[0] else 1_000_000)


# -- downloading -------------------------------------------------------------------------------
def dump_url(symbol: str, interval: str, period: str, *, market: str = "spot") -> str:
    """URL of a monthly (``YYYY-MM``) or daily (``YYYY-MM-DD``) kline dump."""
    cadence = "monthly" if len(period) == 7 else "daily"
    base = PUBLIC_DATA_URL.replace("/spot", f"/{market}")
    return f"{base}/{cadence}/klines/{symbol}/{interval}/{symbol}-{interval}-{period}.zip"


@retry(
    retry=retry_if_exception_type(TemporaryError),
    wait=wait_exponential(multiplier=1, max=30),
    stop=stop_after_attempt(5),
    reraise=True,
)
def _get(client: httpx.Client, url: str) -> bytes:
    try:
        response = client.get(url)
    except httpx.TransportError as exc:
        raise TemporaryError(f"GET {url}: {exc}") from exc
    if response.status_code in (429, 500, 502, 503, 504):
        raise TemporaryError(f"GET {url}: HTTP {response.status_code}")
    if response.status_code != 200:
        raise SourceError(f"GET {url}: HTTP {response.status_code}; no such dump?")
    return response.content


def download_dump(
    symbol: str,
    interval: str,
    period: str,
    dest: Path,
    *,
    client: httpx.Client | None = None,
    market: str = "spot",
) -> Path:
    """Download one dump into ``dest`` and verify it against its published ``.CHECKSUM``.

    The file appears in ``dest`` only after the SHA-256 matches; a mismatch raises and leaves
    nothing behind.

    Raises:
        SourceError: missing dump or checksum mismatch.
        TemporaryError: the network failed after retries.
    """
    url = dump_url(symbol, interval, period, market=market)
    own_client = client is None
    http = client or httpx.Client(timeout=60.0, follow_redirects=True)
    try:
        blob = _get(http, url)
        checksum_line = _get(http, url + ".CHECKSUM").decode().strip()
    finally:
        if own_client:
            http.close()
    verify_checksum(blob, checksum_line, source=url)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / url.rsplit("/", 1)[1]
    tmp = target.with_suffix(".zip.part")
    tmp.write_bytes(blob)
    tmp.replace(target)
    log.info("downloaded %s (%d bytes, sha256 verified)", target, len(blob))
    return target


def verify_checksum(blob: bytes, checksum_line: str, *, source: str) -> None:
    """Check ``blob`` against a ``<sha256>  <file name>`` line as Binance publishes it."""
    expected = checksum_line.split()[0].lower() if checksum_line else ""
    actual = hashlib.sha256(blob).hexdigest()
    if expected != actual:
        raise SourceError(f"{source}: SHA-256 {actual} does not match the published {expected or '(empty)'}")
