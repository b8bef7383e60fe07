"""The analyst notebook and the HTML report, both on the shared demo's tables."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, portrait_here

SEGMENT_BLUE = (0x4C, 0x78, 0xA8)    # the report's segment bars
TAG_ORANGE = (0xF5, 0x85, 0x18)      # the report's tag bars


def test_analyst_notebook_executes_on_the_demo_tables(demo_run, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("PORTRAIT_WAREHOUSE", str(demo_run.warehouse))
    notebook = nbformat.read(ROOT / "notebooks" / "analyst.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(demo_run.directory)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    charts = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(charts) >= 3  # segments, tags, lookalike audience
    text = "".join(o.get("text", "") for o in outputs)
    assert "lookalikes of 10 seeds" in text


def _pixels_near(image: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 12) -> int:
    return int((np.abs(image[..., :3].astype(int) - np.array(rgb)).max(axis=-1) <= tolerance).sum())


def test_report_renders_in_headless_chromium_with_its_charts(spark, demo_run, tmp_path):
    from matplotlib.image import imread

    page = tmp_path / "report.html"
    done = portrait_here("report", "--out", str(page), cwd=demo_run.directory)
    assert done.returncode == 0, done.stderr[-2000:]
    text = page.read_text()
    for section in ("data-quality", "segments", "tags", "feature-distributions-per-segment", "model-metrics",
                    "run-history"):
        assert f'id="{section}"' in text
    assert text.count("data:image/png;base64,") >= 8 and "No segments" not in text
    assert "http://" not in text and "https://" not in text  # self-contained: opens offline

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is required for the report test: apt-get install chromium (see README, Setup)")
    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1200,2600", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    image = (imread(shot) * 255).astype(np.uint8)
    assert image.shape[0] >= 2000 and image.shape[1] >= 1100
    assert _pixels_near(image, SEGMENT_BLUE) > 2000, "segment bar chart not visible"
    assert _pixels_near(image, TAG_ORANGE) > 2000, "tag chart not visible"
    shutil.copy(shot, Path(demo_run.directory) / "report.png")  # kept beside the demo for a human look
