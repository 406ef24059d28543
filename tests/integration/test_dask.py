"""The Dask engine on a real ``LocalCluster`` of two worker processes (loopback only, ports
chosen by the system): its tables are the local engine's, a worker killed in the middle of a
bucket costs a retry and nothing else, and an input a worker cannot read ends the run with the
worker's message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pcapgen
import pytest
from click.testing import CliRunner

import shadowdiff
from benchmarks import noise as noise_corpus
from shadowdiff.cli import main
from shadowdiff.engine import captureshares
from shadowdiff.errors import InputError
from shadowdiff.testing.compare import differences

distributed = pytest.importorskip("distributed")

# The plugins below travel to the workers by value: this module is not importable there.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(autouse=True)
def one_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same redaction key in every run here (the workers get it with their tasks)."""
    monkeypatch.setattr("shadowdiff.redact.secrets.token_bytes", lambda n: b"k" * n)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    noise_corpus.generate(root, 1500, corpus="hard")
    return root


def inputs(corpus: Path) -> dict[str, list[str]]:
    return {side: [str(corpus / f"{side}.json")] for side in ("primary", "mirror", "secondary")}


def test_the_dask_engine_writes_what_the_local_engine_writes(
    corpus: Path, cluster: distributed.LocalCluster, tmp_path: Path
) -> None:
    local = shadowdiff.run(out=tmp_path / "local", buckets=8, **inputs(corpus))
    on_dask = shadowdiff.run(
        out=tmp_path / "dask",
        engine="dask",
        scheduler=cluster.scheduler_address,
        buckets=8,
        **inputs(corpus),
    )
    assert on_dask.manifest["engine"] == {
        "name": "dask",
        "buckets": 8,
        "scheduler": cluster.scheduler_address,
    }
    assert differences(local.out, on_dask.out) == []
    assert local.manifest["pairs"] == 1500


def test_a_capture_read_in_shares_by_the_cluster_writes_what_the_local_engine_writes(
    cluster: distributed.LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(captureshares, "MIN_SHARED_BYTES", 1)
    packets = pcapgen.keepalive_traffic(connections=120, exchanges=3, seed=6)
    capture = pcapgen.write_pcap(tmp_path / "busy.pcap", pcapgen.frames(packets))
    rules = tmp_path / "rules.toml"
    rules.write_text('[sides]\nprimary = "server_port = 8080"\nmirror = "server_port = 8081"\n')
    run = {"inputs": [str(capture)], "rules": str(rules), "buckets": 4}
    local = shadowdiff.run(out=tmp_path / "local", **run)  # type: ignore[arg-type]
    address = cluster.scheduler_address
    on_dask = shadowdiff.run(out=tmp_path / "dask", engine="dask", scheduler=address, **run)  # type: ignore[arg-type]
    # The cluster's two workers each read a share: a part per share.
    parts = sorted(p.name for p in (on_dask.out / "exchanges").iterdir())
    assert parts == [f"part-0000000-00000{n}-000000.parquet" for n in (0, 1)]
    assert differences(local.out, on_dask.out) == []
    assert local.manifest["pairs"] == 180


class KillOnce(distributed.WorkerPlugin):  # type: ignore[misc]
    """Kills its worker process the first time any worker starts a bucket's task (a marker
    file tells the others it happened)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def setup(self, worker: distributed.Worker) -> None:
        self.worker = worker

    def transition(self, key: object, start: str, finish: str, **kwargs: object) -> None:
        if finish == "executing" and "run_bucket" in str(key):
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.close(fd)
            os._exit(1)


def test_a_worker_killed_during_a_bucket_costs_a_retry(
    corpus: Path, cluster: distributed.LocalCluster, tmp_path: Path
) -> None:
    marker = tmp_path / "killed"
    with distributed.Client(cluster) as client:
        client.register_plugin(KillOnce(str(marker)), name="kill-once")
        on_dask = shadowdiff.run(
            out=tmp_path / "dask",
            engine="dask",
            scheduler=cluster.scheduler_address,
            buckets=6,
            **inputs(corpus),
        )
    assert marker.exists()  # a worker did die in a bucket task
    local = shadowdiff.run(out=tmp_path / "local", buckets=6, **inputs(corpus))
    assert differences(local.out, on_dask.out) == []
    figures = on_dask.manifest["conservation"]
    assert figures["primary"]["read"] == 1500 == figures["primary"]["paired"]


class ElsewhereCwd(distributed.WorkerPlugin):  # type: ignore[misc]
    """Runs the worker in another directory: a relative input path names nothing there, as
    a path on a disk the workers do not mount."""

    def __init__(self, where: str) -> None:
        self.where = where

    def setup(self, worker: distributed.Worker) -> None:
        os.chdir(self.where)


def test_an_input_a_worker_cannot_read_fails_the_run_with_its_message(
    corpus: Path,
    cluster: distributed.LocalCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with distributed.Client(cluster) as client:
        client.register_plugin(ElsewhereCwd(str(elsewhere)), name="elsewhere")
        monkeypatch.chdir(corpus)
        with pytest.raises(InputError, match=r"primary\.json: cannot open \(No such file"):
            shadowdiff.run(
                out=tmp_path / "dask",
                engine="dask",
                scheduler=cluster.scheduler_address,
                primary=["primary.json"],
                mirror=["mirror.json"],
            )
    assert not (tmp_path / "dask").exists()  # nothing half-written in its place


def test_engine_dask_starts_a_local_cluster_when_given_no_scheduler(
    corpus: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--engine",
            "dask",
            "--buckets",
            "4",
            "--primary",
            str(corpus / "primary.json"),
            "--mirror",
            str(corpus / "mirror.json"),
            "--out",
            str(tmp_path / "dask"),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = shadowdiff.store.read_manifest(tmp_path / "dask")
    assert manifest["engine"]["name"] == "dask"
    assert manifest["engine"]["scheduler"].startswith("tcp://127.0.0.1:")
    local = shadowdiff.run(
        out=tmp_path / "local",
        buckets=4,
        primary=[str(corpus / "primary.json")],
        mirror=[str(corpus / "mirror.json")],
    )
    assert differences(local.out, tmp_path / "dask") == []


FORKED_RUN = """
import json, os, sys
import shadowdiff
from shadowdiff.engine import local, tasks

corpus, out, marker, seen = sys.argv[1:5]
tasks.set_in_this_process = True  # a forked worker has it; a spawned one does not

def killing_once(task, *args):  # sent to the workers by value (it is __main__'s)
    with open(seen, "a") as log:
        log.write(f"{getattr(tasks, 'set_in_this_process', False)}\\n")
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return tasks.run_bucket(task, *args)
    os._exit(1)  # the first bucket's worker dies

local.run_bucket = killing_once
result = shadowdiff.run(
    out=out, engine="dask", buckets=6,
    primary=[corpus + "/primary.json"], mirror=[corpus + "/mirror.json"],
)
print(json.dumps(result.manifest["engine"]))
"""


def test_a_local_cluster_forks_its_workers_and_a_dead_one_costs_a_retry(
    corpus: Path, tmp_path: Path
) -> None:
    """In a fresh process (as the ``shadowdiff`` command runs), the LocalCluster's workers are
    forked from it (what it imported, they have); a worker that dies in a bucket costs a
    retry of its task (its replacement is spawned: the fork is only for the cluster's start)."""
    marker, seen = tmp_path / "killed", tmp_path / "seen"
    command = [sys.executable, "-c", FORKED_RUN, str(corpus), str(tmp_path / "dask")]
    done = subprocess.run(
        [*command, str(marker), str(seen)], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1])["name"] == "dask"
    assert marker.exists()
    # The first bucket task ran in a forked worker (it saw what the parent set).
    assert seen.read_text().splitlines()[0] == "True"
    sides = {side: [str(corpus / f"{side}.json")] for side in ("primary", "mirror")}
    local = shadowdiff.run(out=tmp_path / "local", buckets=6, **sides)  # type: ignore[arg-type]
    assert differences(local.out, tmp_path / "dask") == []
