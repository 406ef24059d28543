"""Regression tests for what fuzzing found in the line reader both log collectors share
(``shadowdiff/collect/lines.py``, ``scan``): a ``\\r`` that is not part of a CRLF split a line.

DuckDB's ``read_csv`` ends a line at a lone ``\\r`` whatever ``new_line`` says; with
``new_line='\\r\\n'`` (then chosen when the first 64 KB held a CRLF) it also dropped the byte
after it. The books showed more records than the file has lines, every later line got the number
of the line before it, and a value could change (``203`` read as status ``3``). A file that holds
a carriage return is now cut into lines by ``collect/splitlines.py``: only a newline ends a line.
(``lines.scan`` also decided CRLF from the first 64 KB only: CRLF lines after them each counted
one phantom blank line.)
"""

from __future__ import annotations

from pathlib import Path

from fuzzkit import Read, assert_every_line_accounted, read, write

from shadowdiff.collect import envoy_json, envoy_text
from shadowdiff.collect.base import Options

STATUS_ONLY = Options(log_format="%RESPONSE_CODE%")


def statuses(got: Read) -> list[int]:
    return [s for b in got.batches for s in b.exchanges.column("status").to_pylist()]


def test_a_lone_cr_in_a_crlf_file_neither_splits_the_line_nor_eats_a_byte(
    tmp_path: Path,
) -> None:
    data = b"200\r\n201\r203\n"  # two lines; the second holds a stray CR
    got = read(envoy_text.COLLECTOR, write(tmp_path, data), STATUS_ONLY)
    assert isinstance(got, Read)
    assert 3 not in statuses(got)  # was: [200, 201, 3] at lines 1, 2, 3
    assert got.records + got.blank == 2


def test_a_lone_cr_in_an_lf_file_does_not_make_a_line_of_its_own(tmp_path: Path) -> None:
    data = b"200\n201\r203\n"
    got = read(envoy_text.COLLECTOR, write(tmp_path, data), STATUS_ONLY)
    assert isinstance(got, Read)
    assert got.records + got.blank == 2  # was: 3 exchanges, the last at line 3 of 2


def test_a_lone_cr_between_json_objects_makes_no_extra_record(tmp_path: Path) -> None:
    data = b'{"response_code":200}\r\n{"response_code":201}\r{"response_code":203}\n'
    got = read(envoy_json.COLLECTOR, write(tmp_path, data, ".jsonl"))
    assert isinstance(got, Read)
    assert got.records + got.blank == 2  # was: 2 exchanges and a "not JSON" line 3


def test_crlf_lines_after_the_sniffed_head_count_no_phantom_blank_lines(tmp_path: Path) -> None:
    data = b"200\n" * 20_000 + b"201\r\n" * 3  # 80 KB of LF lines, then CRLF ones
    got = read(envoy_text.COLLECTOR, write(tmp_path, data), STATUS_ONLY)
    assert isinstance(got, Read)
    assert (got.records, got.blank) == (20_003, 0)  # was: blank == 3


def test_crlf_and_lf_lines_mixed_in_the_head_are_read_line_for_line(tmp_path: Path) -> None:
    # A CRLF/LF mix without lone CRs, blank CRLF lines among them.
    data = b"200\n201\r\n\r\n202\n203\r\n"
    got = read(envoy_text.COLLECTOR, write(tmp_path, data), STATUS_ONLY)
    assert isinstance(got, Read)
    assert_every_line_accounted(got, data)
    assert statuses(got) == [200, 201, 202, 203]
    assert got.blank == 1
