"""notebooks/analysis.ipynb, executed cell by cell by a real Jupyter kernel on the sample data, so
the analyst's tour can never rot; and the committed notebook carries no outputs.

The kernel is this interpreter (``sys.executable``, the venv's), from a kernelspec written for
the test: a ``python3`` kernelspec elsewhere on the machine (in ``~/.local/share/jupyter``, say)
could otherwise start another Python without shadowdiff, or with an old one. Two runs:

- from ``notebooks/`` (where Jupyter starts a notebook's kernel) without ``SHADOWDIFF_RUN``: the
  notebook finds the checkout and runs ``pipelines/sample.toml`` into a temporary directory;
- from the repository root with ``SHADOWDIFF_RUN`` naming a run the test made: the notebook
  reads that run and makes none of its own.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

from shadowdiff.api import run_pipeline

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "analysis.ipynb"
SAMPLE = ROOT / "pipelines" / "sample.toml"
KERNEL = "shadowdiff-test-venv"
TIMEOUT_S = 300  # per cell; the whole notebook takes seconds


def execute(notebook: nbformat.NotebookNode, cwd: Path, scratch: Path) -> nbformat.NotebookNode:
    """Run every cell of ``notebook`` in a fresh kernel started in ``cwd``; raise on a cell error.

    The last cell added here reports the kernel's interpreter."""
    kernels = scratch / "kernels"
    spec = kernels / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec_json = {"argv": argv, "display_name": "shadowdiff tests", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(spec_json), encoding="utf-8")
    notebook.cells.append(
        nbformat.v4.new_code_cell("import sys\nprint(sys.executable)", id="test-interpreter")
    )
    manager = AsyncKernelManager(
        kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)])
    )
    client = NotebookClient(
        notebook,
        km=manager,
        kernel_name=KERNEL,
        timeout=TIMEOUT_S,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    return notebook


def kernel_environment(monkeypatch: pytest.MonkeyPatch, scratch: Path) -> Path:
    """Keep the kernel's files in ``scratch``; returns the kernel's temporary directory."""
    tmp = scratch / "tmp"
    for name, path in (
        ("TMPDIR", tmp),  # where the notebook's own sample run goes
        ("IPYTHONDIR", scratch / "ipython"),  # no user profile or startup scripts
        ("JUPYTER_RUNTIME_DIR", scratch / "runtime"),  # connection files
    ):
        path.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(name, str(path))
    # An inherited backend (Agg in some CI images) would swallow the inline plots.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.delenv("SHADOWDIFF_RUN", raising=False)
    return tmp


def cell(notebook: nbformat.NotebookNode, cell_id: str) -> Any:
    for found in notebook.cells:
        if found.get("id") == cell_id:
            return found
    raise AssertionError(f"the notebook has no cell with id {cell_id!r}")


def text(notebook: nbformat.NotebookNode, cell_id: str) -> str:
    """Everything a code cell showed as text: streams, and plain/HTML renderings."""
    parts = []
    for output in cell(notebook, cell_id).outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            for mime in ("text/plain", "text/html"):
                parts.append(output.data.get(mime, ""))
    return "\n".join(parts)


def images(notebook: nbformat.NotebookNode, cell_id: str) -> int:
    return sum(
        1
        for output in cell(notebook, cell_id).outputs
        if output.output_type in ("execute_result", "display_data") and "image/png" in output.data
    )


def assert_clean(notebook: nbformat.NotebookNode) -> None:
    """No cell failed (nbclient raises on the first) and none warned."""
    for found in notebook.cells:
        for output in found.get("outputs", ()):
            assert output.output_type != "error", (found.id, output)
            if output.output_type == "stream" and output.name == "stderr":
                assert "Warning" not in output.text, (found.id, output.text)


@pytest.fixture(scope="module")
def from_notebooks_folder(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[nbformat.NotebookNode, Path]]:
    """The notebook executed from notebooks/, making its own sample run; and its TMPDIR."""
    scratch = tmp_path_factory.mktemp("notebook")
    with pytest.MonkeyPatch.context() as monkeypatch:
        tmp = kernel_environment(monkeypatch, scratch)
        notebook = execute(nbformat.read(NOTEBOOK, as_version=4), NOTEBOOK.parent, scratch)
    yield notebook, tmp


@pytest.mark.integration
def test_runs_from_the_notebooks_folder_on_the_sample(
    from_notebooks_folder: tuple[nbformat.NotebookNode, Path],
) -> None:
    notebook, tmp = from_notebooks_folder
    assert_clean(notebook)
    ran = text(notebook, "get-run")
    assert f"Ran {SAMPLE}" in ran
    [run_dir] = tmp.glob("shadowdiff-notebook-*/sample")
    assert str(run_dir) in ran
    assert (run_dir / "manifest.json").is_file() and (run_dir / "report.html").is_file()
    assert "check FAILED" in ran  # the sample crosses its thresholds on purpose
    assert Path(text(notebook, "test-interpreter").strip()) == Path(sys.executable)


@pytest.mark.integration
def test_shows_the_evidence(from_notebooks_folder: tuple[nbformat.NotebookNode, Path]) -> None:
    notebook, _ = from_notebooks_folder
    endpoints = text(notebook, "divergence-by-endpoint")
    for endpoint in ("GET /api/orders/{id}", "GET /api/users/{id}", "POST /api/cart"):
        assert endpoint in endpoints
    assert "$.legacy_ref" in text(notebook, "top-patterns")
    # The drill-down: the pattern, its values and example requests.
    values = text(notebook, "pattern-values")
    assert "pattern $.tier" in values and '"gold"' in values and '"standard"' in values
    assert "/api/users/" in text(notebook, "pattern-examples")
    # The status changes: 200 → 500 on orders, with the error document behind them.
    assert "500" in text(notebook, "status-changes")
    assert "E_ORDER_LOOKUP" in text(notebook, "status-cooccurring")
    # One pair, both sides, bodies decoded; its fields marked in the side-by-side table.
    assert "GET app-shadow:8080/api/orders/" in text(notebook, "pair-exchanges")
    bodies = text(notebook, "pair-bodies")
    assert "--- primary: json" in bodies and '"code": "E_ORDER_LOOKUP"' in bodies
    assert "$.error" in text(notebook, "pair-diffs")
    # Noise: what, and why.
    noise = text(notebook, "noise-reasons")
    assert "rule: ignore $.served_at" in noise and "x-request-id" in noise
    assert "Verdicts:" in text(notebook, "noise-verdicts")
    # Latency: the planted slowdown, with its interval, and the plots.
    assert "GET /api/search" in text(notebook, "latency-stats")
    for plot in ("outcomes-plot", "latency-cdf", "latency-deltas"):
        assert images(notebook, plot) == 1, plot
    assert "max_divergence_rate" in text(notebook, "check")


@pytest.mark.integration
def test_reads_the_run_named_by_shadowdiff_run_from_the_repo_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "window-42"
    assert run_pipeline(SAMPLE, out=run_dir).exit_code == 1
    tmp = kernel_environment(monkeypatch, tmp_path / "scratch")
    monkeypatch.setenv("SHADOWDIFF_RUN", str(run_dir))

    notebook = execute(nbformat.read(NOTEBOOK, as_version=4), ROOT, tmp_path / "scratch")

    assert_clean(notebook)
    assert f"Reading the run in {run_dir} (from SHADOWDIFF_RUN)" in text(notebook, "get-run")
    assert not list(tmp.iterdir())  # it made no run of its own
    assert "GET /api/orders/{id}" in text(notebook, "divergence-by-endpoint")


def test_committed_without_outputs() -> None:
    raw = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    notebook = nbformat.from_dict(raw)
    nbformat.validate(notebook)
    assert raw["nbformat"] == 4
    assert raw["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in raw["cells"] if c["cell_type"] == "code"]
    assert code
    for found in code:
        assert found["outputs"] == [], found["id"]
        assert found["execution_count"] is None, found["id"]
        assert "execution" not in found.get("metadata", {}), found["id"]
    ids = [c["id"] for c in raw["cells"]]
    assert len(ids) == len(set(ids))
