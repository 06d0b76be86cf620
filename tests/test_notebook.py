"""docs/tutorial.ipynb runs from top to bottom in a fresh kernel and renders its figures (so it never rots)."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"


@pytest.mark.slow
def test_the_tutorial_notebook_runs_and_renders_its_figures(tmp_path: Path, monkeypatch) -> None:
    # the kernel runs in tmp_path and imports this checkout's difflab, whatever the environment has installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")  # kept without outputs
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                            ).execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert len(images) == 7  # data, forward, schedules, loss, samples, trajectories, field
    assert "W1 / floor" in text and " ± " in text and "ratio ± se" in text
    assert not [o for o in outputs if o.output_type == "error"]
