"""The Dask engine: a run's tasks on a ``dask.distributed`` cluster.

The same tasks as the local engine's (:mod:`~shadowdiff.engine.tasks`), submitted to a
cluster: every input (a chunk of a tap directory, a log read on its own) is read, normalized
and spilled into the buckets by a worker; every bucket is paired and diffed by a worker; the
window-wide stages then run here, over the parts the workers wrote. So the workers and this
process must see the same files: the inputs at the paths given, and the run's ``--out``
directory, on a filesystem that every worker mounts.

- **Cluster.** ``--scheduler ADDRESS`` connects to a running cluster; without one, a
  ``LocalCluster`` of one single-threaded worker process per core starts for the run, on the
  loopback address (its dashboard, when ``bokeh`` is installed, on a free port), and stops
  with it. Its workers are forked from this process when it runs no thread of its own yet
  (``FORKED_IMPORTS`` imported first, so each worker has them): spawned, each worker imported
  Python's share of the run again, about 1 s of a 4 s run on 2 cores. A worker that dies
  later is spawned again, since by then this process runs threads that a fork would copy
  mid-step.
- **Failures.** A task whose worker dies is run again by the scheduler (``RETRIES`` more times
  for a task that raises): a task writes only files named by its piece or bucket, so a second
  attempt replaces the first one's files and the figures still balance. An input a worker
  cannot read ends the run with the worker's own message (its ``InputError`` travels back),
  not a hang.
- **Progress.** A line per input and per bucket, as the tasks finish, and the dashboard's
  address when there is one.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import multiprocessing
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from shadowdiff import db
from shadowdiff.engine.collection import cores
from shadowdiff.errors import ConfigError

RETRIES = 2
# What the workers' tasks import, imported here before the workers are forked.
FORKED_IMPORTS = (
    "pandas",
    "shadowdiff.engine.tasks",
    "shadowdiff.engine.collection",
    "shadowdiff.collect.registry",
)
Progress = Callable[[str], None]


def local_cluster(workers: int, dashboard_address: str | None = None) -> Any:
    """A ``LocalCluster`` of ``workers`` single-threaded worker processes on the loopback
    address, with ports the system picks (and a dashboard at ``dashboard_address``, if given):
    the cluster a run starts for itself, and the one tests and benchmarks start to hand a run
    with ``--scheduler``. Use it as a context manager, or ``close`` it."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=dashboard_address,
        silence_logs=50,  # CRITICAL only: the run draws its own progress
    )


class Cluster:
    """A client of the run's cluster: the one at ``scheduler``, or a ``LocalCluster``."""

    def __init__(self, scheduler: str | None, say: Progress) -> None:
        try:
            from distributed import Client
        except ImportError as e:
            raise ConfigError(
                "--engine dask needs Dask's distributed scheduler: "
                "pip install 'dask[distributed]' (or shadowdiff[dask])."
            ) from e
        self._local: Any = None
        if scheduler is None:
            with _forking():
                self._local = local_cluster(cores(), dashboard_address="127.0.0.1:0")
            self.client = Client(self._local)
        else:
            try:
                self.client = Client(scheduler, timeout="30s")
            except OSError as e:
                raise ConfigError(
                    f"--scheduler {scheduler}: cannot reach the Dask scheduler ({e})."
                ) from e
        info = self.client.scheduler_info()
        self.address = str(info.get("address", scheduler or "a LocalCluster"))
        workers = info.get("workers", {})
        self.workers = max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))
        dashboard = self._local is None or importlib.util.find_spec("bokeh") is not None
        where = f"; dashboard {self.client.dashboard_link}" if dashboard else ""
        say(f"dask: {len(workers)} workers, {self.workers} threads at {self.address}{where}")

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` as a task: its future, whose ``result()`` raises what the task raised."""
        key = f"{fn.__name__}-{uuid.uuid4().hex}"  # named for the dashboard and logs
        return self.client.submit(_on_worker, fn, *args, key=key, retries=RETRIES)

    def map_in_order(self, fn: Callable[[Any], Any], items: list[Any]) -> Iterator[Any]:
        """``fn`` over ``items`` on the cluster, the results in the items' order."""
        futures = [self.submit(fn, item) for item in items]
        for future in futures:
            yield future.result()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self._local is not None:
            with contextlib.suppress(Exception):
                self._local.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _forking() -> Iterator[None]:
    """Workers started meanwhile are forked from this process, when it runs no other thread
    (a notebook's kernel does: then they are spawned, as Dask's default)."""
    if threading.active_count() > 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield
        return
    import dask

    for name in FORKED_IMPORTS:
        importlib.import_module(name)
    with dask.config.set({"distributed.worker.multiprocessing-method": "fork"}):
        yield


def _on_worker(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a worker, its DuckDB databases using the worker's threads only: the
    cluster already runs a worker per core, and DuckDB's default (every core, in every worker)
    oversubscribes the machine."""
    from distributed import get_worker

    db.threads = max(1, int(get_worker().state.nthreads))
    return fn(*args)
