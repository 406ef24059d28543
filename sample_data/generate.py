"""Regenerate the committed sample corpus under sample_data/envoy/ from a real Envoy run.

    .venv/bin/python sample_data/generate.py [--requests 280] [--seed 20240301]

Runs the mirroring lab (shadowdiff.testing.lab), drives seeded traffic through the edge, waits
until both sides logged and tapped every request, stops everything and copies the primary's
and the mirror's Istio text log, Istio JSON log and tap files here, with expected.json: the
planted differences and every request sent. See sample_data/README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from shadowdiff.testing import backends, lab

HERE = Path(__file__).resolve().parent
OUT = HERE / "envoy"
SIDES = ("primary", "mirror")
MAX_BYTES = 2_000_000


def _expected(done: lab.Finished, version: str) -> dict[str, Any]:
    record = done.record
    files: dict[str, dict[str, str]] = {}
    for side in SIDES:
        out = done.sides[side]
        files[side] = {
            "text_log": f"{side}/{lab.TEXT_LOG_NAME}",
            "json_log": f"{side}/{lab.JSON_LOG_NAME}",
            "taps": f"taps/{side}/",
            "authority": record.authority if side == "primary" else _shadow(record.authority),
            "upstream_cluster": out.inbound_cluster,
            "inbound_port": str(out.inbound_port),
        }
    return {
        "generated_by": "sample_data/generate.py",
        "envoy_version": version,
        "seed": record.seed,
        "count": len(record.sent),
        "files": files,
        "formats": {
            "text": lab.ISTIO_TEXT_FORMAT,
            "json": lab.ISTIO_JSON_FORMAT,
            "tap": done.tap_format,
        },
        "planted": [p.to_json() for p in backends.PLANTED],
        "volatile": [v.to_json() for v in backends.VOLATILE],
        "non_differences": list(backends.NON_DIFFERENCES),
        "requests": [s.to_json() for s in record.sent],
    }


def _shadow(authority: str) -> str:
    host, sep, port = authority.partition(":")
    return f"{host}-shadow{sep}{port}"


def _dump(doc: dict[str, Any]) -> str:
    """Pretty JSON, but one line per request: readable and still small."""
    requests = doc.pop("requests")
    head = json.dumps(doc, indent=2)[:-2]
    lines = ",\n    ".join(json.dumps(r, separators=(",", ":")) for r in requests)
    return f'{head},\n  "requests": [\n    {lines}\n  ]\n}}\n'


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def generate(n: int, seed: int, out: Path = OUT) -> dict[str, Any]:
    started = time.monotonic()
    version = lab.envoy_version()
    if out.exists() and any(out.iterdir()) and not (out / "expected.json").exists():
        raise SystemExit(f"{out} is not a corpus made by this script; not replacing it.")
    with tempfile.TemporaryDirectory(prefix="shadowdiff-lab-") as tmp:
        done = lab.run(Path(tmp), n, seed)  # Envoy has stopped: its files are complete
        expected = _expected(done, version)
        if out.exists():
            shutil.rmtree(out)
        for side in SIDES:
            source = done.sides[side]
            (out / side).mkdir(parents=True)
            shutil.copy2(source.text_log, out / side / lab.TEXT_LOG_NAME)
            shutil.copy2(source.json_log, out / side / lab.JSON_LOG_NAME)
            shutil.copytree(source.taps_dir, out / "taps" / side)
    (out / "expected.json").write_text(_dump(expected))
    size = _size(HERE) if out.is_relative_to(HERE) else _size(out)
    print(
        f"{n} requests (seed {seed}) mirrored through Envoy {version} in "
        f"{time.monotonic() - started:.1f} s; sample_data is {size / 1000:.0f} kB."
    )
    if size > MAX_BYTES:
        raise SystemExit(f"sample_data is {size} bytes, over the {MAX_BYTES} byte budget.")
    return expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=280, help="requests to send (280)")
    parser.add_argument("--seed", type=int, default=20240301, help="traffic seed (20240301)")
    parser.add_argument("--out", type=Path, default=OUT, help="output directory")
    args = parser.parse_args(argv)
    generate(args.requests, args.seed, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
