"""The notebook baseline of issue 10 for tap directories: what an analyst writes without shadowdiff.

    python benchmarks/taps_notebook.py PRIMARY_DIR MIRROR_DIR OUT.parquet

Reads two directories of Envoy ``file_per_tap`` traces (buffered, bodies as bytes) the plain
way: ``glob`` + ``json.load`` of each file, base64-decoded bodies parsed with ``json.loads``, a
``pandas.merge`` on the request id, and ``DeepDiff`` on each pair's response bodies with the
timestamp excluded (``exclude_paths``, as a user would). A pair is diverged when the statuses or
the bodies differ. Writes every pair with its verdict and DeepDiff's report to OUT.parquet and
prints ``{"pairs": …, "diverged": …}``. benchmarks/taps.py times this as a whole process.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import sys
from typing import Any

import pandas as pd
from deepdiff import DeepDiff

EXCLUDE = ["root['served_at']"]


def load(directory: str) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(path) as f:
            trace = json.load(f)["http_buffered_trace"]
        request = {h["key"]: h["value"] for h in trace["request"]["headers"]}
        response = {h["key"]: h["value"] for h in trace["response"]["headers"]}
        body = base64.b64decode(trace["response"]["body"]["as_bytes"])
        rows.append(
            {
                "request_id": request["x-request-id"],
                "method": request[":method"],
                "path": request[":path"],
                "status": int(response[":status"]),
                "body": json.loads(body),
            }
        )
    return pd.DataFrame(rows)


def compare(primary: pd.DataFrame, mirror: pd.DataFrame) -> pd.DataFrame:
    pairs = pd.merge(primary, mirror, on="request_id", suffixes=("_primary", "_mirror"))
    reports = [
        DeepDiff(a, b, exclude_paths=EXCLUDE)
        for a, b in zip(pairs["body_primary"], pairs["body_mirror"], strict=True)
    ]
    pairs["body_diverged"] = [bool(r) for r in reports]
    pairs["diverged"] = (pairs["status_primary"] != pairs["status_mirror"]) | pairs["body_diverged"]
    pairs["diff"] = [r.to_json() if r else None for r in reports]
    return pairs.drop(columns=["body_primary", "body_mirror"])


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        raise SystemExit(__doc__)
    primary_dir, mirror_dir, out = argv
    pairs = compare(load(primary_dir), load(mirror_dir))
    pairs.to_parquet(out)
    print(json.dumps({"pairs": len(pairs), "diverged": int(pairs["diverged"].sum())}))


if __name__ == "__main__":
    main(sys.argv[1:])
