"""Inputs named by URL (shadowdiff.collect.remote): what a URL names, the copies' names and
contents, and the errors. fsspec's in-memory filesystem stands in for a store here (the fetch
runs in the run's process); tests/integration/test_object_store.py runs real S3 requests."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import pytest

from shadowdiff.collect import inputs, remote
from shadowdiff.config import relative_to
from shadowdiff.errors import InputError


@pytest.fixture
def store() -> str:
    """A fresh bucket in fsspec's memory filesystem, with a small window in it."""
    memory = fsspec.filesystem("memory")
    bucket = f"/bucket-{uuid.uuid4().hex[:8]}"
    objects = {
        "window/primary/b.log": b"second\n",
        "window/primary/a.log": b"first\n",
        "window/primary/deep/c.log.gz": b"third",
        "window/primary/.hidden": b"skipped",
        "window/primary/.git/config": b"skipped too",
        "window/mirror/a.log": b"mirror\n",
        "window/mirror/notes.txt": b"not a log",
    }
    for key, data in objects.items():
        memory.pipe(f"{bucket}/{key}", data)
    yield f"memory://{bucket}"
    memory.rm(bucket, recursive=True)


def fetched(url: str, tmp_path: Path) -> list[tuple[str, bytes, str]]:
    found = remote.fetch(url, "primary", tmp_path, lambda _message: None)
    return [(s.name, s.path.read_bytes(), s.path.name) for s in found]


def test_a_prefix_is_read_like_a_directory_in_key_order_without_hidden_names(store, tmp_path):
    got = fetched(f"{store}/window/primary/", tmp_path)
    assert got == [
        (f"{store}/window/primary/a.log", b"first\n", "a.log"),
        (f"{store}/window/primary/b.log", b"second\n", "b.log"),
        (f"{store}/window/primary/deep/c.log.gz", b"third", "c.log.gz"),
    ]
    # A prefix without its slash names the same objects.
    assert fetched(f"{store}/window/primary", tmp_path) == got


def test_one_object_keeps_its_url_and_its_name(store, tmp_path):
    (source,) = remote.fetch(f"{store}/window/mirror/a.log", "mirror", tmp_path, print)
    assert source.name == f"{store}/window/mirror/a.log"
    assert source.side == "mirror"
    assert source.path.name == "a.log"  # the collectors go by suffixes (.gz, .pcap)
    assert source.path.read_bytes() == b"mirror\n"
    assert source.path.is_relative_to(tmp_path)


@pytest.mark.parametrize(
    ("pattern", "names"),
    [
        ("window/*/a.log", ["mirror/a.log", "primary/a.log"]),
        ("window/primary/*.log", ["primary/a.log", "primary/b.log"]),
        (
            "window/**/*.log*",
            ["mirror/a.log", "primary/a.log", "primary/b.log", "primary/deep/c.log.gz"],
        ),
        ("window/primary/**", ["primary/a.log", "primary/b.log", "primary/deep/c.log.gz"]),
        ("window/?irror/*", ["mirror/a.log", "mirror/notes.txt"]),
        ("window/[m]*/*.txt", ["mirror/notes.txt"]),
    ],
)
def test_globs_match_level_by_level(store, tmp_path, pattern, names):
    got = [name for name, _, _ in fetched(f"{store}/{pattern}", tmp_path)]
    assert got == [f"{store}/window/{n}" for n in names]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("window/nothing", "no such object or prefix"),
        ("window/*/nothing*", "the pattern matches no object"),
    ],
)
def test_a_url_that_names_nothing_is_an_input_error(store, tmp_path, pattern, message):
    with pytest.raises(InputError, match=message) as raised:
        remote.fetch(f"{store}/{pattern}", None, tmp_path, print)
    assert f"{store}/{pattern}" in str(raised.value)


def test_unknown_and_uninstalled_protocols_say_what_to_do(tmp_path):
    with pytest.raises(InputError, match="zzz://bucket/x: cannot be opened"):
        remote.fetch("zzz://bucket/x", None, tmp_path, print)
    with pytest.raises(InputError, match="(?i)install"):
        remote.fetch("az://container/x", None, tmp_path, print)


def test_an_object_that_changes_while_it_is_fetched_is_an_input_error(store, tmp_path, monkeypatch):
    listed = remote._listed

    def grown(*args):
        objects = listed(*args)
        fsspec.filesystem("memory").pipe(objects[0].key, b"longer than it was\n")
        return objects

    monkeypatch.setattr(remote, "_listed", grown)
    with pytest.raises(InputError, match="changed while it was fetched"):
        remote.fetch(f"{store}/window/mirror/a.log", None, tmp_path, print)


def test_urls_and_file_urls_beside_paths():
    assert remote.is_url("s3://bucket/key")
    assert remote.is_url("gs://bucket/taps/")
    assert not remote.is_url("logs/primary.log")
    assert not remote.is_url("C://logs")  # a drive letter, not a scheme
    assert not remote.is_url("file:///var/log/envoy.log")
    assert remote.local_path("file:///var/log/envoy%20a.log") == "/var/log/envoy a.log"
    assert remote.local_path("s3://bucket/key") == "s3://bucket/key"
    # A pipeline file's inputs are relative to it, a URL is not.
    assert relative_to(Path("/pipelines"), "s3://bucket/key") == "s3://bucket/key"
    assert relative_to(Path("/pipelines"), "logs/a.log") == "/pipelines/logs/a.log"


def test_expand_groups_fetches_urls_beside_local_paths(store, tmp_path):
    local = tmp_path / "local.log"
    local.write_bytes(b"local\n")
    into = tmp_path / "fetched"
    into.mkdir()
    groups = inputs.expand_groups([f"file://{local}", f"{store}/window/mirror/"], "mirror", into)
    assert [[s.name for s in group] for group in groups] == [
        [str(local)],
        [f"{store}/window/mirror/a.log", f"{store}/window/mirror/notes.txt"],
    ]
    with pytest.raises(InputError, match="by `shadowdiff run` only"):
        inputs.expand_groups([f"{store}/window/mirror/"], "mirror")
