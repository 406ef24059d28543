"""The HTML report in a real browser: Debian's Chromium, headless (``make system-deps``).

It renders; script planted in captured content (a body, a header, the request path) does not
run, even with the page's Content-Security-Policy taken out, and shows as text; and the README's
screenshot (docs/report-screenshot.png) is taken from the report of the bundled sample window.
Outside CI a machine without Chromium skips these tests; in CI (``CI`` set) they fail.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from shadowdiff import report
from shadowdiff.cli import main

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "report-screenshot.png"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
PNG = b"\x89PNG\r\n\x1a\n"


def rundirs() -> ModuleType:
    """tests/report/rundirs.py, the hand-built run directories with planted payloads."""
    spec = importlib.util.spec_from_file_location(
        "report_rundirs", ROOT / "tests" / "report" / "rundirs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium is not installed: `make system-deps` installs Debian's package"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def browse(
    chromium: str, page: Path, profile: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    profile.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=60,  # an escaping bug can leave a modal alert() that never returns
        check=False,
    )


def dump_dom(chromium: str, page: Path, profile: Path) -> str:
    # virtual time lets timers and error events (an <img onerror>) fire before the dump
    done = browse(chromium, page, profile, "--virtual-time-budget=3000", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_planted_script_does_not_run_and_shows_as_text(chromium: str, tmp_path: Path) -> None:
    module = rundirs()
    run = module.write_run(tmp_path / "run", module.hostile_specs(), rejects=1)
    page = report.write(run).html
    # Also without the Content-Security-Policy: escaping alone must keep the payload inert.
    bare = tmp_path / "no-csp.html"
    text = page.read_text(encoding="utf-8")
    bare.write_text(re.sub(r"<meta http-equiv=\"Content-Security-Policy\"[^>]*>", "", text))
    assert "Content-Security-Policy" not in bare.read_text(encoding="utf-8")
    for n, variant in enumerate((page, bare)):
        dom = dump_dom(chromium, variant, tmp_path / f"profile{n}")
        title = re.search(r"<title>(.*?)</title>", dom, re.S)
        assert title is not None and title.group(1).startswith("shadowdiff report:"), title
        assert "PWNED</title>" not in dom
        assert not re.search(r"<body[^>]*data-pwned", dom), "a planted payload ran"
        assert "<script" not in dom and "<img" not in dom and "<svg onload" not in dom
        # the payloads are on the page, as text
        assert (
            "&lt;script&gt;document.title='PWNED';document.body.setAttribute('data-pwned','1')"
            "&lt;/script&gt;" in dom
        )
        assert (
            "&lt;img src=x onerror=\"document.title='PWNED';document.body.dataset.pwned='img'\"&gt;"
            in dom
        )
        assert "GET /api/echo/&lt;svg onload=alert(1)&gt;" in dom
        assert "Example diverged pairs" in dom


def test_the_sample_report_renders_and_is_the_readme_screenshot(
    chromium: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # From the repository root with relative paths, so the screenshot shows what a user sees.
    monkeypatch.chdir(ROOT)
    out = Path("out") / "report-screenshot"
    ran = CliRunner().invoke(
        main, ["run", "pipelines/sample.toml", "--out", str(out), "-q"], catch_exceptions=False
    )
    # The sample's check fails on purpose: v2 of the sample API really does answer differently.
    assert ran.exit_code == 1, ran.output
    assert "check FAILED" in ran.output
    page = report.write(out).html
    shot = tmp_path / "report.png"
    done = browse(
        chromium, page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(PNG) and len(data) > 50_000  # a rendered page, not a blank one
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2000)
    dom = dump_dom(chromium, page, tmp_path / "profile-dom")
    assert "GET /api/orders/{id}" in dom and "$.tier" in dom and "E_ORDER_LOOKUP" in dom
    assert dom.count("<svg") >= 5  # the latency CDFs are drawn inline
    if os.environ.get("SHADOWDIFF_UPDATE_SCREENSHOT"):  # the README's picture, refreshed on demand
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
    shutil.rmtree(out)
