"""Inputs named by ``s3://`` URLs, fetched from a real S3 endpoint: moto's server on a free
loopback port, spoken to by pyarrow's S3 client. A run over URLs writes what a run over the
same files on disk writes (its names aside), with the local engine and on a real Dask
``LocalCluster``; a URL that names nothing, or an endpoint that does not answer, is the
run's input error."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

import shadowdiff
from benchmarks import noise as noise_corpus
from shadowdiff.errors import InputError
from shadowdiff.testing.compare import differences

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "envoy"
BUCKET = "mirroring"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "shadowdiff-test",
    "AWS_SECRET_ACCESS_KEY": "shadowdiff-test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def window(endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bucket's objects, as files on disk: the sample window and a noise corpus."""
    root = tmp_path_factory.mktemp("window")
    noise_corpus.generate(root / "noise", 400, corpus="hard")
    client = boto3.client("s3", endpoint_url=endpoint, **_boto(CREDENTIALS))
    client.create_bucket(Bucket=BUCKET)
    for folder, prefix in ((SAMPLE, "sample"), (root / "noise", "noise")):
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                client.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(folder)}")
    return root


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setattr("shadowdiff.redact.secrets.token_bytes", lambda n: b"k" * n)
    return f"s3://{BUCKET}"


def _boto(credentials: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": credentials["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": credentials["AWS_SECRET_ACCESS_KEY"],
        "region_name": credentials["AWS_DEFAULT_REGION"],
    }


@pytest.mark.parametrize(
    ("primary", "mirror", "pairs"),
    [
        # Envoy's JSON logs, one object each.
        ("primary/istio_json.log", "mirror/istio_json.log", 280),
        # Tap directories as prefixes (a file per request), the mirror's by a glob.
        ("taps/primary/", "taps/*rror/*.json", 280),
    ],
)
def test_a_run_over_urls_writes_what_a_run_over_the_files_writes(
    s3: str, window: Path, tmp_path: Path, primary: str, mirror: str, pairs: int
) -> None:
    on_disk = shadowdiff.run(
        out=tmp_path / "disk", primary=[str(SAMPLE / primary)], mirror=[str(SAMPLE / mirror)]
    )
    by_url = shadowdiff.run(
        out=tmp_path / "url", primary=[f"{s3}/sample/{primary}"], mirror=[f"{s3}/sample/{mirror}"]
    )
    assert by_url.manifest["pairs"] == on_disk.manifest["pairs"] == pairs
    assert "fetch" in by_url.manifest["timings_s"]
    assert "fetch" not in on_disk.manifest["timings_s"]
    assert differences(on_disk.out, by_url.out, renamed=(str(SAMPLE), f"{s3}/sample")) == []
    names = [entry["path"] for entry in by_url.manifest["inputs"]]
    assert all(name.startswith(f"{s3}/sample/") for name in names)
    # The copies went with the working area: the run holds its tables and nothing else.
    assert sorted(p.name for p in by_url.out.iterdir()) == sorted(
        p.name for p in on_disk.out.iterdir()
    )


def test_a_dask_cluster_reads_what_the_run_fetched(
    s3: str, window: Path, tmp_path: Path, cluster: Any
) -> None:
    sides = ("primary", "mirror", "secondary")
    on_disk = shadowdiff.run(
        out=tmp_path / "disk",
        buckets=4,
        **{side: [str(window / "noise" / f"{side}.json")] for side in sides},
    )
    on_dask = shadowdiff.run(
        out=tmp_path / "dask",
        engine="dask",
        scheduler=cluster.scheduler_address,
        buckets=4,
        **{side: [f"{s3}/noise/{side}.json"] for side in sides},
    )
    assert on_dask.manifest["pairs"] == 400
    renamed = (str(window / "noise"), f"{s3}/noise")
    assert differences(on_disk.out, on_dask.out, renamed=renamed) == []


def test_a_url_that_names_nothing_ends_the_run_and_keeps_the_last(
    s3: str, window: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    shadowdiff.run(out=out, primary=[str(SAMPLE / "primary")], mirror=[str(SAMPLE / "mirror")])
    before = json.loads((out / "manifest.json").read_text())
    with pytest.raises(InputError, match=rf"{s3}/sample/nothing/: no such object or prefix"):
        shadowdiff.run(out=out, primary=[f"{s3}/sample/nothing/"], mirror=[str(SAMPLE / "mirror")])
    assert json.loads((out / "manifest.json").read_text()) == before
    assert [p.name for p in tmp_path.iterdir() if ".run-" in p.name] == []  # no copies left


def test_an_endpoint_that_does_not_answer_is_an_input_error_with_exit_2(
    s3: str, tmp_path: Path
) -> None:
    # A port held bound but not listening, so nothing answers on it (and nothing else can
    # take it meanwhile): the client's retries end, and the run says why.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{held.getsockname()[1]}"
        done = _run_with(closed, s3, tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"{s3}/sample/primary/istio_json.log: cannot be listed" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


def _run_with(endpoint: str, s3: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "PATH": "/usr/bin:/bin"}
    command = [
        sys.executable,
        "-m",
        "shadowdiff",
        "run",
        "--primary",
        f"{s3}/sample/primary/istio_json.log",
        "--mirror",
        str(SAMPLE / "mirror" / "istio_json.log"),
        "--out",
        str(tmp_path / "run"),
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
