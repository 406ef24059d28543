from __future__ import annotations

import os
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import shadowdiff
from shadowdiff import schema, store
from shadowdiff.errors import InputError
from shadowdiff.testing.factories import texchange, ttable


def test_tables_carry_the_schema_version_and_contract_columns(tmp_path: Path) -> None:
    store.begin(tmp_path)
    path = store.write_table(tmp_path, "exchanges", ttable([texchange(route_name="r")]))
    parquet = pq.read_schema(path)
    assert parquet.metadata[store.METADATA_KEY] == schema.SCHEMA_VERSION.encode()
    assert parquet.names[: len(schema.EXCHANGE_COLUMNS)] == list(schema.EXCHANGE_COLUMNS)
    assert "route_name" in parquet.names


def test_missing_columns_are_filled_with_nulls(tmp_path: Path) -> None:
    store.begin(tmp_path)
    path = store.write_table(tmp_path, "rejects", pa.table({"reason": ["x"]}))
    assert pq.read_table(path).to_pylist() == [
        {"source": None, "side": None, "location": None, "reason": "x", "excerpt": None}
    ]


def test_a_directory_without_manifest_is_refused(tmp_path: Path) -> None:
    store.begin(tmp_path)
    store.write_table(tmp_path, "pairs", schema.empty(schema.PAIRS))
    with pytest.raises(InputError, match="not a shadowdiff run directory"):
        shadowdiff.open(tmp_path)
    store.finish(tmp_path, {"version": "x"})
    con = shadowdiff.open(tmp_path)
    assert con.sql("SELECT count(*) FROM pairs").fetchall() == [(0,)]


def test_a_failed_write_leaves_the_old_table_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.begin(tmp_path)
    good = store.write_table(tmp_path, "rejects", pa.table({"reason": ["old"]}))

    def disk_full(table: pa.Table, path: str, **_: object) -> None:
        Path(path).write_bytes(b"PAR1 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.pq, "write_table", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.write_table(tmp_path, "rejects", pa.table({"reason": ["new"]}))
    assert pq.read_table(good).column("reason").to_pylist() == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rejects.parquet"]


def test_begin_marks_the_directory_incomplete(tmp_path: Path) -> None:
    store.finish(tmp_path, {"version": "x"})
    store.begin(tmp_path)
    assert not (tmp_path / store.MANIFEST).exists()


def test_outputs_get_the_umask_permissions_not_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store.begin(tmp_path)
        table = store.write_table(tmp_path, "rejects", pa.table({"reason": ["x"]}))
        manifest = store.finish(tmp_path, {"version": "x"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(table.stat().st_mode) == 0o644
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o644


def test_high_cardinality_columns_are_written_without_dictionary(tmp_path: Path) -> None:
    store.begin(tmp_path)
    rows = [texchange(request_id=f"id-{n}", method="GET") for n in range(50)]
    path = store.write_table(tmp_path, "exchanges", ttable(rows))
    row_group = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {
        row_group.column(i).path_in_schema: row_group.column(i).encodings
        for i in range(row_group.num_columns)
    }
    assert not any("DICTIONARY" in e for e in encodings["request_id"])
    assert any("DICTIONARY" in e for e in encodings["method"])
    statistics = row_group.column(list(encodings).index("request_id")).statistics
    assert statistics is None or not statistics.has_min_max
    assert pq.read_table(path).column("request_id").to_pylist() == [r["request_id"] for r in rows]
