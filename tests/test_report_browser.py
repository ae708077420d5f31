"""report.html in a real browser: headless Chromium renders it without console errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from autocompress.report import write_report
from tests.report_run import finished_run  # noqa: F401

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium; "
                                                         ".ci/run installs it)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=10000"]
CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)")


def render(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and every console message they logged."""
    done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=180, check=True)
    return done.stdout, CONSOLE.findall(done.stderr)


def test_console_errors_are_caught(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>console.error('boom'); missingFunction();</script></body></html>")
    _, messages = render(page, tmp_path / "profile")
    assert any("boom" in m for m in messages)
    assert any("Uncaught ReferenceError" in m for m in messages)


def test_report_renders_the_front_without_console_errors(finished_run, tmp_path):  # noqa: F811
    dom, messages = render(write_report(finished_run), tmp_path / "profile")
    assert messages == []
    scatter = dom[dom.index('id="scatter"'):dom.index('id="hypervolume"')]
    assert 'class="main-svg"' in scatter
    legend = re.findall(r'class="legendtext"[^>]*>([^<]+)<', scatter)
    assert {"trials (darker: later)", "Pareto front", "baseline float", "baseline rank-0.5"} <= set(legend)
    assert dom.count('class="main-svg"') >= 3 * 2  # scatter, hypervolume, heat maps all drawn


def test_front_table_sorts_on_a_header_click(finished_run, tmp_path):  # noqa: F811
    text = write_report(finished_run).read_text()
    # The front comes sorted by latency, so also by accuracy: two clicks make it descending.
    header = "document.querySelectorAll('table.sortable th')[2]"  # accuracy
    click = f"<script>{header}.click(); {header}.click();</script>"
    page = tmp_path / "clicked.html"
    page.write_text(text.replace("</body>", click + "</body>"))
    dom, messages = render(page, tmp_path / "profile")
    assert messages == []
    table = dom[dom.index('<table class="sortable">'):]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr><td>(\d+)</td><td>[^<]*</td><td>([0-9.]+)</td>", table)
    accuracies = [float(accuracy) for _, accuracy in rows]
    assert len(accuracies) >= 2 and accuracies == sorted(accuracies, reverse=True)
    assert 'data-order="desc"' in table
