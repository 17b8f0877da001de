"""Every notebook runs headless (nbclient) on small inputs without a cell error; outputs are not committed."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from eval_helpers import geometry_test_file, tiny_model_dir, write_fake_run

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute(name: str) -> nbformat.NotebookNode:
    """Run a notebook in a fresh python3 kernel from notebooks/; any cell error raises CellExecutionError.
    Plots use the kernel's inline backend (MPLBACKEND must not be forced to a non-inline one)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def outputs_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts += [str(v) for k, v in out.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_committed_notebooks_carry_no_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_geometry_vqa_eval_notebook_runs_on_two_tiny_runs(tmp_path_factory, tmp_path, monkeypatch):
    model = tiny_model_dir(tmp_path_factory)
    data = geometry_test_file(tmp_path_factory)
    runs = [write_fake_run(tmp_path, "tiny_riskpo", model, "riskpo"), write_fake_run(tmp_path, "tiny_grpo", model, "grpo")]
    env = {"RISKPO_NB_RUNS": ",".join(map(str, runs)), "RISKPO_NB_DATA": str(data), "RISKPO_NB_N": "2",
           "RISKPO_NB_K": "1,2", "RISKPO_NB_MAX_PROBLEMS": "4", "RISKPO_NB_MAX_NEW_TOKENS": "8",
           "RISKPO_NB_BUNDLE_SIZE": "2", "RISKPO_NB_GALLERY": "2", "OMP_NUM_THREADS": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # keep the kernel's inline backend: plots become outputs
    nb = execute("geometry_vqa_eval.ipynb")
    text = outputs_text(nb)
    assert "4 problems from" in text and "tiny_riskpo (riskpo)" in text and "cvar0.2(eval)" in text
    riskpo_row = next(line for line in text.splitlines() if line.startswith("tiny_riskpo (riskpo) "))
    assert riskpo_row.split()[-4:-1] == ["0.600", "0.900", "0.000"]  # last entropy, last training CVaR, held-out CVaR
    assert "<table>" in text and "gold:" in text  # the gallery
    images = sum("image/png" in out.get("data", {}) for c in nb.cells for out in c.get("outputs", []))
    assert images >= 4  # pass@k, levels, bundle scores, entropy


def test_riskpo_advantage_explained_notebook_runs(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = execute("riskpo_advantage_explained.ipynb")
    images = sum("image/png" in out.get("data", {}) for c in nb.cells for out in c.get("outputs", []))
    assert images == 3
