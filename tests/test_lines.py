"""Line framing and dialect sniffing, alone."""

from __future__ import annotations

import pytest

from db.validation import CROWD, EXPERT, SPLIT_LIST, WITHSENSE_TEST_QUERIES, WITHSENSE_TRAIN
from pipeline.lines import frame_lines, sniff


def test_frame_lines_counts_newline_terminated_lines() -> None:
    assert frame_lines(b"a\nb\n") == ([1, 2], ["a", "b"], [])
    assert frame_lines(b"a\nb") == ([1, 2], ["a", "b"], [])  # a last line without newline still counts
    assert frame_lines(b"") == ([], [], [])
    assert frame_lines(b"\xef\xbb\xbfa\r\nb\r\n") == ([1, 2], ["a", "b"], [])  # BOM and CRLF


def test_bare_carriage_return_does_not_split_a_line() -> None:
    numbers, lines, rejects = frame_lines(b"a\rb\nc\n")
    assert (numbers, lines, rejects) == ([1, 2], ["a\rb", "c"], [])


def test_invalid_bytes_reject_their_line_with_its_number() -> None:
    numbers, lines, rejects = frame_lines(b"ok\n\xff\xfe\r\xffbad\nfine \xc3\xa9\n")
    assert numbers == [1, 3] and lines == ["ok", "fine é"]
    assert rejects == [(2, "\\xff\\xfe\r\\xffbad", "invalid UTF-8 bytes")]


@pytest.mark.parametrize("delimiter", ["\t", ",", "|", ";"])
def test_sniff_delimiter(delimiter: str) -> None:
    lines = [delimiter.join(["a.jpg", "b.jpg#0", "1", "2", "3"])] * 5
    dialect = sniff(lines, EXPERT)
    assert (dialect.delimiter, dialect.header, dialect.index_column) == (delimiter, False, False)


def test_sniff_header_by_names_and_by_numbers() -> None:
    assert sniff(["image,query_id,query_text", "a.jpg,b.jpg#0,a dog"], WITHSENSE_TRAIN).header
    numbers = ["img\tcap\tpct\tyes\tno", "a.jpg\tb.jpg#0\t0.5\t1\t1", "a.jpg\tc.jpg#0\t1\t2\t0"]
    assert sniff(numbers, CROWD).header
    damaged_first_row = ["a.jpg\tb.jpg#0\tx\t1\t1", "a.jpg\tc.jpg#0\t1\t2\t0"]
    assert not sniff(damaged_first_row, CROWD).header  # a bad data row is rejected, not taken for a header
    assert sniff(["image", "a.jpg"], SPLIT_LIST).header
    assert not sniff(["a.jpg", "b.jpg"], SPLIT_LIST).header


def test_sniff_pandas_index_column() -> None:
    lines = ["|query_id|query_text|image", "0|a.jpg#0|A dog, running|a.jpg", "1|b.jpg#0|A cat|b.jpg"]
    dialect = sniff(lines, WITHSENSE_TEST_QUERIES)
    assert (dialect.delimiter, dialect.header, dialect.index_column) == ("|", True, True)


def test_tsv_quotes_are_text_csv_quotes_are_quoting(tmp_path) -> None:
    from db.validation import FLICKR_CAPTIONS
    from pipeline.lines import stage_text

    tsv = tmp_path / "captions.txt"
    tsv.write_text('a.jpg#0\t"Stop" sign on a corner .\na.jpg#1\tA sign that says " sale " .\n')
    staged = stage_text(tsv.read_bytes(), "captions.txt", FLICKR_CAPTIONS)
    assert staged.rows.column("norm").to_pylist() == [
        'a.jpg#0\t"Stop" sign on a corner .', 'a.jpg#1\tA sign that says " sale " .']
    assert staged.python_rejects == []
    csv_file = tmp_path / "train.csv"
    csv_file.write_text('a.jpg,b.jpg#0,"A dog, running"\na.jpg,c.jpg#0,"broken\n')
    staged = stage_text(csv_file.read_bytes(), "train.csv", WITHSENSE_TRAIN)
    assert staged.rows.column("norm").to_pylist() == ["a.jpg\x1fb.jpg#0\x1fA dog, running"]
    assert staged.python_rejects == [(2, 'a.jpg,c.jpg#0,"broken', "malformed quoting")]


def test_field_holding_the_unit_separator_is_rejected_by_name(tmp_path) -> None:
    """U+001F joins the fields of quoted lines for SQL, so a field holding it would shift every later column."""
    from pipeline.lines import stage_text

    path = tmp_path / "train.csv"
    path.write_text('a.jpg,a.jpg#0,"A dog, \x1frunning"\na.jpg,b.jpg#0,"A cat, sitting"\n')
    staged = stage_text(path.read_bytes(), "train.csv", WITHSENSE_TRAIN)
    assert staged.rows.column("line_no").to_pylist() == [2]
    reason = "control character U+001F in query_text"
    assert staged.python_rejects == [(1, 'a.jpg,a.jpg#0,"A dog, \x1frunning"', reason)]
