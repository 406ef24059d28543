"""Fixtures that run the real-Envoy mirroring lab (shadowdiff.testing.lab).

``lab_run`` (session): one finished run of ``LAB_REQUESTS`` seeded requests; Envoy has stopped,
so the logs and taps under ``lab_run.output_dir`` are complete. Use it for anything that only
reads the lab's output, e.g. running shadowdiff on it::

    def test_pairs(lab_run):
        out = lab_run.output_dir        # envoy/{primary,mirror}/istio_*.log, envoy/taps/<side>/
        ids = lab_run.record.ids        # what was sent, in order
        lab_run.primary.json_log, lab_run.mirror.taps_dir

``make_lab`` (per test): a factory for a lab of one's own (``make_lab(secondary=True)``), to
be used as a context manager; whatever it started is stopped at teardown at the latest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shadowdiff.testing import lab

LAB_REQUESTS = 100
LAB_SEED = 7


@pytest.fixture(scope="session")
def lab_run(tmp_path_factory: pytest.TempPathFactory) -> lab.Finished:
    return lab.run(tmp_path_factory.mktemp("lab"), LAB_REQUESTS, LAB_SEED)


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[Callable[..., lab.Lab]]:
    made: list[lab.Lab] = []

    def make(**options: Any) -> lab.Lab:
        instance = lab.Lab(tmp_path / f"lab{len(made)}", **options)
        made.append(instance)
        return instance

    yield make
    for instance in made:
        instance.stop()


@pytest.fixture
def cluster() -> Iterator[Any]:
    """A real Dask ``LocalCluster`` of two single-threaded worker processes, on loopback with
    ports the system picks; stopped at teardown."""
    pytest.importorskip("distributed")
    from shadowdiff.engine.dask import local_cluster

    with local_cluster(2) as local:
        yield local
