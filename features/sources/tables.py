"""Reading a file into a raw table of its columns, whatever its format, with each row's place.

The format comes from the content, not the name: gzip and single-member zip archives are
opened, then Parquet, Feather (Arrow IPC), JSON (a ccxt ``fetch_ohlcv`` dump or a list of
records) and delimited text are told apart by their first bytes. For text, a UTF-8 byte order
mark is dropped, leading URL/comment lines are skipped (CryptoDataDownload files start with
one), the delimiter is sniffed among ``, ; tab |``, and a header is recognised by having no
numeric field. Every row keeps its location: the 1-based line in the text (the header and
skipped lines count, as an editor shows them) or the 1-based row of a columnar file.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import lzma
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
from pandas.api.types import is_bool_dtype, is_complex_dtype, is_extension_array_dtype, is_numeric_dtype

from features.errors import SourceError

_DELIMITERS: Final = (",", ";", "\t", "|")
_PREAMBLE = re.compile(r"^\s*(?:https?://|www\.|#)", re.IGNORECASE)
# A number as text: decimal or scientific, or nan/inf (the spellings Arrow and Python agree on).
DECIMAL: Final = r"^(?i:[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|[-+]?inf(?:inity)?|nan)$"
_NUMBER = re.compile(r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$")
_NEWLINE = re.compile(r"\r\n|\r|\n")  # what pyarrow takes for a line end (str.splitlines takes more)
_SAMPLE_LINES: Final = 20
_SAMPLE_BYTES: Final = 1 << 16


@dataclass(frozen=True, slots=True)
class RawTable:
    """A file's columns as read, before any meaning is given to them.

    Attributes:
        frame: one column per source column, named by 0-based position ("0", "1", ...); text
            files give strings, columnar files their own types.
        names: the header names (empty strings when the file has no header).
        header: whether ``names`` come from the file.
        locations: per row, the 1-based line (text) or row (columnar) it came from.
        unit: ``line`` or ``row``: what ``locations`` count.
        format: what was read, e.g. ``csv``, ``csv in gzip``, ``parquet``, ``json``.
        skipped_lines: lines before the header that were not data (URLs, comments, blanks).
    """

    frame: pd.DataFrame
    names: tuple[str, ...]
    header: bool
    locations: np.ndarray
    unit: Literal["line", "row"]
    format: str
    skipped_lines: int = 0

    def where(self, row: int) -> str:
        """``line 12`` or ``row 12`` for the row at 0-based position ``row`` of ``frame``."""
        return f"{self.unit} {int(self.locations[row])}"

    def label(self, index: int) -> str:
        """How messages name source column ``index`` after the word "column": ``'close'``, ``4 (0-based)``."""
        return repr(self.names[index]) if self.names[index] else f"{index} (0-based)"


def as_numbers(column: pd.Series) -> np.ndarray | None:
    """The column as int64 (all whole numbers) or float64 when every value is a number, else None.

    Text is parsed by Arrow, which rounds correctly (pandas' ``to_numeric`` is one ulp off for
    some 17-digit decimals, as pandas itself writes them); missing values make it None.
    """
    if is_bool_dtype(column.dtype) or is_complex_dtype(column.dtype):
        return None
    if is_numeric_dtype(column.dtype):
        if is_extension_array_dtype(column.dtype):  # nullable Int64/Float64 from a typed file
            return column.to_numpy(dtype="float64", na_value=np.nan)
        return column.to_numpy()
    try:
        array = pa.array(column, type=pa.string(), from_pandas=True)
        if array.null_count or not pc.all(pc.match_substring_regex(array, DECIMAL)).as_py():
            return None  # Arrow would also take hex ("0x10") and other spellings
        for kind in (pa.int64(), pa.float64()):
            try:
                return np.asarray(pc.cast(array, kind).to_numpy(zero_copy_only=False))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    return None


def read_table(path: Path, *, header: bool | None = None) -> RawTable:
    """Read ``path`` into a :class:`RawTable`.

    Args:
        path: the file.
        header: whether a text file has a header row; None detects it.

    Raises:
        SourceError: the file is missing, empty, compressed badly, not UTF-8 text, not valid
            JSON/Parquet/Feather, or its rows do not have the same number of fields; the message
            names the file and the line or row.
    """
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    blob, wrapper = _unwrap(blob, path)
    if not blob.strip():
        raise SourceError(f"{path}: the file is empty{wrapper}")
    if blob.startswith(b"PAR1"):
        return _columnar(path, lambda: pq.read_table(io.BytesIO(blob)), "parquet" + wrapper)
    if blob.startswith((b"ARROW1", b"FEA1")):
        return _columnar(path, lambda: feather.read_table(io.BytesIO(blob)), "feather" + wrapper)
    body = blob.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark, as Excel writes
    text = _decode(body, path)
    if text.lstrip()[:1] in ("[", "{"):
        return _json(text, path, "json" + wrapper)
    return _csv(text, body, path, header=header, fmt="csv" + wrapper)


def as_text(column: pd.Series, label: str) -> pd.Series:
    """The column as stripped text; bytes that are not UTF-8 (a binary Parquet column) are refused."""
    try:
        return column.astype(str).str.strip()
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{label} holds bytes that are not UTF-8 text; map another column with --columns"
        ) from exc


def _unwrap(blob: bytes, path: Path) -> tuple[bytes, str]:
    if blob.startswith(b"\x1f\x8b"):
        try:
            return gzip.decompress(blob), " in gzip"
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(f"{path}: a truncated or corrupt gzip file ({exc})") from exc
    if blob.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(blob)) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                if len(members) != 1:
                    raise SourceError(
                        f"{path}: expected one file inside the zip, found {len(members)}; unzip it and pass one file"
                    )
                return archive.read(members[0]), f" in zip ({members[0].filename})"
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            EOFError,
            OSError,
            zlib.error,
            lzma.LZMAError,
        ) as exc:
            raise SourceError(f"{path}: a truncated or corrupt zip file ({exc})") from exc
        except (RuntimeError, NotImplementedError) as exc:  # encrypted, or a compression zipfile lacks
            raise SourceError(
                f"{path}: a zip that cannot be read here ({exc}); unzip it and pass the file"
            ) from exc
    return blob, ""


def _decode(blob: bytes, path: Path) -> str:
    if blob.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError(f"{path}: the text is UTF-16; save it as UTF-8")
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = blob.count(b"\n", 0, exc.start) + 1
        raise SourceError(
            f"{path}: line {line} is not UTF-8 text (byte {blob[exc.start]:#04x}); save the file as UTF-8 "
            "or check that it is not a binary file"
        ) from None


def _columnar(path: Path, read: Callable[[], pa.Table], fmt: str) -> RawTable:
    try:
        frame = read().to_pandas()
    except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
        raise SourceError(
            f"{path}: cannot read as {fmt.split()[0]} ({exc}); the file is truncated or corrupt"
        ) from exc
    if not isinstance(frame.index, pd.RangeIndex):  # pandas users often store the time as the index
        frame = frame.reset_index()
    return _positional(frame, [str(c) for c in frame.columns], header=True, fmt=fmt)


def _json(text: str, path: Path, fmt: str) -> RawTable:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"{path}: line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})"
        ) from None
    except RecursionError:
        raise SourceError(f"{path}: the JSON is nested too deeply to be a list of bars") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list) or not data:
        raise SourceError(
            f"{path}: expected a JSON list of rows ([[ms, o, h, l, c, v], ...] or [{{...}}, ...])"
        )
    first = data[0]
    if isinstance(first, list):
        for row, item in enumerate(data, start=1):
            if not isinstance(item, list) or len(item) != len(first):
                size = len(item) if isinstance(item, list) else type(item).__name__
                raise SourceError(f"{path}: row {row} has {size} fields, row 1 has {len(first)}")
        frame = pd.DataFrame(data, dtype=object)
        return _positional(frame, [""] * frame.shape[1], header=False, fmt=fmt)
    if isinstance(first, dict):
        for row, item in enumerate(data, start=1):
            if not isinstance(item, dict):
                raise SourceError(f"{path}: row {row} is a {type(item).__name__}, row 1 is an object")
        frame = pd.DataFrame.from_records(data).astype(object)
        return _positional(frame, [str(c) for c in frame.columns], header=True, fmt=fmt)
    raise SourceError(f"{path}: row 1 of the JSON is a {type(first).__name__}, not a list or an object")


def _positional(frame: pd.DataFrame, names: list[str], *, header: bool, fmt: str) -> RawTable:
    frame = frame.set_axis([str(i) for i in range(frame.shape[1])], axis=1).reset_index(drop=True)
    rows = np.arange(1, len(frame) + 1, dtype=np.int64)
    return RawTable(frame, tuple(names), header, rows, "row", fmt)


def _csv(text: str, body: bytes, path: Path, *, header: bool | None, fmt: str) -> RawTable:
    sample = _NEWLINE.split(text[:_SAMPLE_BYTES])
    skipped = 0
    while skipped < len(sample) and (not sample[skipped].strip() or _PREAMBLE.match(sample[skipped])):
        skipped += 1
    lines = [line for line in sample[skipped:] if line.strip()][:_SAMPLE_LINES]
    if not lines:
        raise SourceError(f"{path}: no rows after line {skipped}")
    delimiter = _sniff_delimiter(lines, path, first_line=skipped + 1)
    first = _fields(lines[0], delimiter)
    has_header = header if header is not None else not any(_NUMBER.match(f) for f in first if f.strip())
    data = lines[1:] if has_header else lines
    widths = Counter(len(_fields(line, delimiter)) for line in data[:-1] or data)  # the last may be cut
    width = widths.most_common(1)[0][0] if widths else len(first)
    names = _names(first if has_header else [""] * width, width)
    frame, locations = _read_rows(
        body, text, path, delimiter=delimiter, names=names, skip=skipped + has_header
    )
    keep = ~(frame == "").all(axis=1).to_numpy()  # blank lines
    frame, locations = frame[keep], locations[keep]
    while len(names) > 1 and not names[-1] and (frame[str(len(names) - 1)] == "").all():
        frame = frame.drop(columns=str(len(names) - 1))  # a trailing delimiter on every line
        names = names[:-1]
    return RawTable(frame.reset_index(drop=True), tuple(names), has_header, locations, "line", fmt, skipped)


def _sniff_delimiter(lines: list[str], path: Path, *, first_line: int) -> str:
    # the usual field count of the sampled lines: one damaged line must not hide the delimiter
    counts = {d: Counter(len(_fields(line, d)) for line in lines).most_common(1)[0][0] for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: (counts[d], -_DELIMITERS.index(d)))
    if counts[best] < 2:
        raise SourceError(
            f"{path}: line {first_line}: cannot find the field delimiter (tried comma, semicolon, tab, |) "
            f"in {lines[0][:80]!r}; is this a CSV file of bars?"
        )
    return best


def _fields(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter))
    except (csv.Error, StopIteration):
        return [line]


def _names(first: list[str], width: int) -> list[str]:
    names = [n.strip() for n in first]
    if len(names) > width and not any(names[width:]):
        names = names[:width]  # the header ends with a delimiter the rows do not have
    return names + [""] * (width - len(names))


def _read_rows(
    body: bytes, text: str, path: Path, *, delimiter: str, names: list[str], skip: int
) -> tuple[pd.DataFrame, np.ndarray]:
    bad: list[Any] = []  # pyarrow InvalidRow: rows with another number of fields
    blank: list[int] = []  # lines of whitespace only

    def invalid(row: Any) -> str:
        if row.text.strip():
            bad.append(row)
        else:
            blank.append(row.number)
        return "skip"

    columns = [str(i) for i in range(len(names))]
    try:
        table = pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(use_threads=False, skip_rows=skip, column_names=columns),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, invalid_row_handler=invalid, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(columns, pa.string()), strings_can_be_null=False
            ),
        )
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise SourceError(f"{path}: cannot parse as {delimiter!r}-delimited text ({exc})") from exc
    if bad:
        raise SourceError(_field_count_message(bad[0], text, path, header=any(names)))
    frame = table.to_pandas()
    physical = np.arange(skip + 1, skip + 1 + len(frame) + len(blank), dtype=np.int64)
    locations = physical[~np.isin(physical, blank)] if blank else physical
    return frame, locations


def _field_count_message(row: Any, text: str, path: Path, *, header: bool) -> str:
    line = f"line {row.number}" if row.number is not None else "a line"
    last = " (the last line: the file looks truncated)" if row.number and _is_last(text, row.number) else ""
    against = "the header has" if header else "the other rows have"
    fields = f"{row.actual_columns} field{'' if row.actual_columns == 1 else 's'}"
    return f"{path}: {line} has {fields}, {against} {row.expected_columns}{last}: {row.text[:100]!r}"


def _is_last(text: str, line: int) -> bool:
    return len(_NEWLINE.split(text.rstrip("\r\n"))) == line


__all__ = ["DECIMAL", "RawTable", "as_numbers", "read_table"]
