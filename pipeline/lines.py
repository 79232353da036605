"""Reader stage for delimited text files: frame lines, sniff the dialect, hand rows to DuckDB for validation.

Why lines are framed here and not by DuckDB's CSV reader: measured on the real CrowdFlowerAnnotations.txt with
DuckDB 2.0, ``read_csv(..., new_line='\\n', store_rejects=true)`` still breaks lines at the bare ``\\r`` bytes inside
the run of invalid bytes, so it reports 128 "lines" where the file has 65 and every later line number is off by
63. Framing on ``\\n`` in Python is exact and cheap (one decode, one split); all per-row validation still runs as
set-based SQL in DuckDB (db/validation.py), which keeps a million-row file well above 300,000 rows/s.

Fields are joined with ``FIELD_SEPARATOR`` (U+001F) for SQL when Python resolved their quoting, so a field that
holds that character itself is rejected here, by name; every other control character is judged in SQL.
"""

from __future__ import annotations

import bisect
import csv
import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from db.validation import INT_SYNTAX, FLOAT_SYNTAX, FileSpec

DELIMITER_CANDIDATES = ("\t", ",", "|", ";")
FIELD_SEPARATOR = "\x1f"  # ASCII unit separator: joins fields of lines whose quoting Python resolved
SNIFF_SAMPLE = 200
SNIFF_BYTES = 1 << 20  # the sample lines come from the first MiB
RAW_LIMIT = 2000  # characters of a rejected line kept in `rejects.raw`
_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass
class StagedRows:
    """Rows of one source ready for SQL validation, plus the lines rejected before SQL saw them."""

    file: str
    spec: FileSpec
    rows: pa.Table  # line_no BIGINT, raw VARCHAR, norm VARCHAR
    separator: str
    python_rejects: list[tuple[int | None, str | None, str]] = field(default_factory=list)  # (line, raw, reason)
    header: bool = False
    params: dict[str, str] = field(default_factory=dict)


def clip(text: str) -> str:
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + "…"


def _decode(data: bytes) -> tuple[str, bool]:
    """Text with ``\r\n`` made ``\n`` and invalid bytes kept as surrogates; True when all bytes were valid."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text, valid = data.decode("utf-8"), True
    except UnicodeDecodeError:
        text, valid = data.decode("utf-8", "surrogateescape"), False
    return (text.replace("\r\n", "\n") if "\r\n" in text else text), valid


def frame_lines(data: bytes) -> tuple[list[int], list[str], list[tuple[int, str, str]]]:
    """Split bytes into ``\\n``-terminated lines: (line numbers, texts) of valid UTF-8 lines, and rejects.

    A final newline does not start another line; ``\\r\\n`` endings are accepted; a bare ``\\r`` stays in the line.
    """
    text, valid = _decode(data)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if valid:
        return list(range(1, len(lines) + 1)), lines, []
    newlines = [m.start() for m in re.finditer("\n", text)]
    bad_indexes = {bisect.bisect_left(newlines, m.start()) for m in _SURROGATE.finditer(text)}
    numbers, good, rejects = [], [], []
    for index, line in enumerate(lines):
        if index in bad_indexes:
            shown = line.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            rejects.append((index + 1, clip(shown), "invalid UTF-8 bytes"))
        else:
            numbers.append(index + 1)
            good.append(line)
    return numbers, good, rejects


def _split(line: str, delimiter: str) -> list[str] | None:
    """Fields of one line; None when its quoting is malformed.

    Tab-separated files follow the TSV convention (Flickr8k's own files included): quotes are plain text, as in
    the caption `A sign that says " sale "`. Other delimiters follow CSV (RFC 4180) quoting.
    """
    if delimiter == "\t" or '"' not in line:
        return line.split(delimiter)
    try:
        return next(csv.reader([line], delimiter=delimiter, strict=True))
    except (csv.Error, StopIteration):
        return None


@dataclass(frozen=True)
class Dialect:
    delimiter: str
    header: bool
    index_column: bool  # a leading unnamed row-number column, as pandas' to_csv writes by default


def sniff(lines: list[str], spec: FileSpec) -> Dialect:
    """Pick the delimiter that gives the spec's column count most often, and say whether line 1 is a header.

    A file whose rows have one extra leading integer column (a saved pandas index) is read without it.
    """
    sample = [line for line in lines[:SNIFF_SAMPLE] if line.strip()]
    width = len(spec.columns)
    if not sample:
        return Dialect(DELIMITER_CANDIDATES[0], False, False)

    def fits(delimiter: str, extra: int) -> int:
        return sum(1 for line in sample if len(_split(line, delimiter) or ()) == width + extra)

    delimiter, extra = max(
        ((d, extra) for extra in (0, 1) for d in DELIMITER_CANDIDATES), key=lambda option: fits(*option)
    )  # max keeps the first of equals: no index column and tab win ties
    leading = [(_split(line, delimiter) or [""])[0].strip() for line in sample[1:]]
    index_column = extra == 1 and sum(1 for value in leading if value.isdigit()) * 5 >= len(leading) * 4
    if not index_column:
        delimiter = max(DELIMITER_CANDIDATES, key=lambda d: fits(d, 0))
    return Dialect(delimiter, _is_header(lines[0], delimiter, spec, sample[1:], index_column), index_column)


def _is_header(first: str, delimiter: str, spec: FileSpec, rest: list[str], index_column: bool) -> bool:
    fields = [f.strip().lower() for f in (_split(first, delimiter) or [])][int(index_column):]
    if len(fields) != len(spec.columns):
        return False
    named = sum(1 for value, column in zip(fields, spec.columns) if value in column.header_names)
    if named * 2 >= len(fields):
        return True
    # Every numeric column's first value is not a number while later values are: line 1 names the columns.
    # (Requiring all of them keeps a damaged first data row from being mistaken for a header.)
    numeric = [(i, {"int": INT_SYNTAX, "float": FLOAT_SYNTAX}[c.kind]) for i, c in enumerate(spec.columns)
               if c.kind in ("int", "float")]
    if not numeric or any(re.fullmatch(pattern, fields[i]) for i, pattern in numeric):
        return False
    later = [(_split(line, delimiter) or [])[int(index_column):] for line in rest[:50]]
    parsed = [f for f in later if len(f) == len(fields)]
    numbers = sum(1 for f in parsed if all(re.fullmatch(p, f[i].strip()) for i, p in numeric))
    return bool(parsed) and numbers * 5 >= len(parsed) * 4


def _arrow_lines(text: str, skip_header: bool) -> pa.Table:
    """Fast path for clean files: split and number lines in Arrow, no Python object per line."""
    lines = pc.split_pattern(pa.array([text], pa.large_string()), "\n").flatten()
    if len(lines) and lines[-1].as_py() == "":
        lines = lines.slice(0, len(lines) - 1)
    numbers = pa.array(np.arange(1, len(lines) + 1, dtype=np.int64))
    if skip_header:
        lines, numbers = lines.slice(1), numbers.slice(1)
    return pa.table({"line_no": numbers, "raw": lines, "norm": lines})


def _separator_in(values: list[str], spec: FileSpec) -> str | None:
    """The reject reason when a field holds ``FIELD_SEPARATOR`` (it would split the row for SQL), else None."""
    for index, value in enumerate(values):
        if FIELD_SEPARATOR in value:
            name = spec.columns[index].name if index < len(spec.columns) else f"field {index + 1}"
            return f"control character U+001F in {name}"
    return None


def unread_file(label: str, spec: FileSpec, reason: str) -> StagedRows:
    """A source file that could not be read (refused, unreadable): no rows, one reject for the whole file."""
    staged = stage_records(label, spec, [])
    staged.python_rejects.append((None, None, reason))
    return staged


def stage_text(data: bytes, label: str, spec: FileSpec, **params: str) -> StagedRows:
    """Stage the bytes of one delimited file as :class:`StagedRows`; nothing about its content is assumed but
    the spec. (The reader opened the file: pipeline/dataset_files.py says which files may be read.)"""
    text, valid = _decode(data)
    dialect = sniff(text[:SNIFF_BYTES].split("\n")[:SNIFF_SAMPLE], spec)
    quoting = dialect.delimiter != "\t" and '"' in text
    if valid and not dialect.index_column and not quoting:
        return StagedRows(label, spec, _arrow_lines(text, dialect.header), dialect.delimiter, [], dialect.header,
                          dict(params))
    numbers, lines, rejects = frame_lines(data)
    if dialect.header and numbers and numbers[0] == 1:
        numbers, lines = numbers[1:], lines[1:]
    separator, norm = dialect.delimiter, lines
    if dialect.index_column or quoting:
        separator, norm, keep = FIELD_SEPARATOR, [], []
        for number, line in zip(numbers, lines):
            fields = _split(line, dialect.delimiter)
            if fields is None:
                rejects.append((number, clip(line), "malformed quoting"))
                continue
            values = fields[int(dialect.index_column):]
            if reason := _separator_in(values, spec):
                rejects.append((number, clip(line), reason))
                continue
            keep.append((number, line))
            norm.append(FIELD_SEPARATOR.join(values))
        numbers = [n for n, _ in keep]
        lines = [line for _, line in keep]
    rows = pa.table(
        {
            "line_no": pa.array(numbers, pa.int64()),
            "raw": pa.array(lines, pa.string()),
            "norm": pa.array(norm, pa.string()),
        }
    )
    return StagedRows(label, spec, rows, separator, rejects, dialect.header, dict(params))


def stage_records(label: str, spec: FileSpec, records: list[tuple[int, str, list[str]]], **params: str) -> StagedRows:
    """Stage already-parsed records (JSON): (1-based record index, raw text, field values)."""
    rejects, kept = [], []
    for record in records:
        if reason := _separator_in(record[2], spec):
            rejects.append((record[0], clip(record[1]), reason))
        else:
            kept.append(record)
    records = kept
    rows = pa.table(
        {
            "line_no": pa.array([r[0] for r in records], pa.int64()),
            "raw": pa.array([clip(r[1]) for r in records], pa.string()),
            "norm": pa.array([FIELD_SEPARATOR.join(r[2]) for r in records], pa.string()),
        }
    )
    return StagedRows(label, spec, rows, FIELD_SEPARATOR, rejects, False, dict(params))
