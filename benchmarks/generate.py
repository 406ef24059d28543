"""Generate the benchmark corpora with DuckDB (fast, reproducible: fixed seeds, no randomness
outside SQL's ``hash``): Istio-style JSON and text access logs, one file per side, and the
JSON lines again as a window of rotated ``.gz`` logs (``rotated``).

The mirror differs from the primary on purpose: 5% of requests answer 500 instead of 200, and
the mirror is a few milliseconds slower, so the run has real work to do.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import shutil
from pathlib import Path

import duckdb

# The requests the mirror answers 500 instead of 200: the planted status differences.
PLANTED = "hash(i) % 20 = 0"

# Istio's JSON access-log keys (all values strings, as Envoy's json_format writes them).
ROWS = """
SELECT
    strftime(TIMESTAMP '2026-11-28 10:00:00' + INTERVAL (i * 3) MILLISECOND,
             '%Y-%m-%dT%H:%M:%S.%gZ') AS start_time,
    CASE WHEN i % 5 = 0 THEN 'POST' ELSE 'GET' END AS method,
    CASE i % 4 WHEN 0 THEN '/api/users/' || (i % 100000)
               WHEN 1 THEN '/api/orders/' || (i % 50000) || '/items'
               WHEN 2 THEN '/api/search?q=term' || (i % 997)
               ELSE '/api/catalog' END AS path,
    'HTTP/1.1' AS protocol,
    CASE WHEN '{side}' = 'mirror' AND {planted} THEN '500' ELSE '200' END AS response_code,
    '-' AS response_flags,
    'via_upstream' AS response_code_details,
    '-' AS connection_termination_details,
    '-' AS upstream_transport_failure_reason,
    CAST(hash(i, 1) % 400 AS VARCHAR) AS bytes_received,
    CAST(200 + hash(i, 2) % 2000 AS VARCHAR) AS bytes_sent,
    CAST(2 + hash(i, 3) % 60 + CASE WHEN '{side}' = 'mirror' THEN 3 ELSE 0 END AS VARCHAR)
        AS duration,
    CAST(1 + hash(i, 3) % 58 AS VARCHAR) AS upstream_service_time,
    '-' AS x_forwarded_for,
    'benchmark-client/1.0' AS user_agent,
    uuid_from_int(i) AS request_id,
    CASE WHEN '{side}' = 'mirror' THEN 'app-shadow:8080' ELSE 'app:8080' END AS authority,
    '127.0.0.1:9080' AS upstream_host,
    'inbound|8080||' AS upstream_cluster,
    '127.0.0.6:40000' AS upstream_local_address,
    '10.0.0.5:8080' AS downstream_local_address,
    '10.0.0.9:' || (30000 + i % 20000) AS downstream_remote_address,
    '-' AS requested_server_name,
    'default' AS route_name
FROM range({n}) r(i)
"""

# Istio's default text format, field for field (see shadowdiff.collect.envoy_format).
TEXT_LINE = (
    "'[' || start_time || '] \"' || method || ' ' || path || ' ' || protocol || '\" ' || "
    "response_code || ' ' || response_flags || ' ' || response_code_details || ' ' || "
    "connection_termination_details || ' \"' || upstream_transport_failure_reason || '\" ' || "
    "bytes_received || ' ' || bytes_sent || ' ' || duration || ' ' || upstream_service_time || "
    "' \"' || x_forwarded_for || '\" \"' || user_agent || '\" \"' || request_id || '\" \"' || "
    "authority || '\" \"' || upstream_host || '\" ' || upstream_cluster || ' ' || "
    "upstream_local_address || ' ' || downstream_local_address || ' ' || "
    "downstream_remote_address || ' ' || requested_server_name || ' ' || route_name"
)


def generate(out: Path, n: int) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("CREATE MACRO uuid_from_int(i) AS md5(i::VARCHAR)::UUID::VARCHAR")
    files: dict[str, Path] = {}
    for side in ("primary", "mirror"):
        rows = ROWS.format(side=side, n=n, planted=PLANTED)
        json_path = out / f"{side}-{n}.json.log"
        text_path = out / f"{side}-{n}.text.log"
        if not json_path.exists():
            con.execute(f"COPY ({rows}) TO '{json_path}' (FORMAT json)")
        if not text_path.exists():
            con.execute(
                f"COPY (SELECT {TEXT_LINE} FROM ({rows})) TO '{text_path}' "
                "(FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\\x1f')"
            )
        files[f"{side}-json"] = json_path
        files[f"{side}-text"] = text_path
    return files


ROTATED_FILES = 4  # per side


def rotated(out: Path, files: dict[str, Path], n: int) -> dict[str, Path]:
    """The JSON logs as a window of rotated, gzip-compressed logs, as logrotate leaves them:
    ``ROTATED_FILES`` files per side of consecutive lines (``access.log.1.gz`` the newest),
    in a directory per side; each directory by its side's name (made only when missing)."""
    directories: dict[str, Path] = {}
    for side in ("primary", "mirror"):
        directory = out / f"rotated-{n}" / side
        directories[side] = directory
        if directory.is_dir():
            continue
        partial = directory.with_name(directory.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        per_file = -(-n // ROTATED_FILES)
        with open(files[f"{side}-json"], "rb") as log:
            for k in range(ROTATED_FILES):
                lines = list(itertools.islice(log, per_file))
                newest_last = ROTATED_FILES - k
                with gzip.open(partial / f"access.log.{newest_last}.gz", "wb", 6) as gz:
                    gz.writelines(lines)
        partial.rename(directory)
    return directories


def planted(n: int) -> int:
    """How many of ``n`` requests have a planted status difference (5%)."""
    query = f"SELECT count(*) FROM range({n}) r(i) WHERE {PLANTED}"
    row = duckdb.connect().execute(query).fetchone()
    assert row is not None
    return int(row[0])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/data"))
    parser.add_argument("-n", type=int, default=1_000_000)
    args = parser.parse_args()
    for name, path in generate(args.out, args.n).items():
        print(f"{name}: {path} ({path.stat().st_size / 1e6:.0f} MB)")
