"""Every notebook runs headless (nbclient, through `riskpo_mm.eval.notebooks`, what `make notebooks` runs)
on small inputs without a cell error and without rewriting the committed file; the committed notebooks
are either unexecuted or executed cleanly by `make notebooks` (outputs in order, no errors, no stderr,
no path outside the repository)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from eval_helpers import geometry_test_file, tiny_model_dir, write_fake_run
from riskpo_mm.eval import notebooks

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
OUTSIDE = ("shared/spec", "/tmp/", "site-packages", "/home/", "/root/", "/work/", str(REPO))


def execute(name: str) -> nbformat.NotebookNode:
    """Run a notebook in a fresh python3 kernel from notebooks/ (a cell error raises NotebookError); the
    committed file is left byte for byte as it was. Plots use the kernel's inline backend."""
    before = (NOTEBOOKS / name).read_bytes()
    nb = notebooks.execute(NOTEBOOKS / name, timeout=120)
    assert (NOTEBOOKS / name).read_bytes() == before
    return nb


def outputs_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts += [str(v) for k, v in out.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_committed_notebooks_are_unexecuted_or_cleanly_executed(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert code and (counts == [None] * len(code) or counts == list(range(1, len(code) + 1))), \
        f"{name}: execution counts {counts}: store it unexecuted or as `make notebooks` writes it"
    outputs = [o for c in code for o in c.outputs]
    assert counts[0] is not None or not outputs, f"{name}: outputs without execution counts"
    assert not [o for o in outputs if o.output_type == "error"], f"{name}: stored with a cell error"
    assert not [o for o in outputs if o.get("name") == "stderr"], f"{name}: stored with stderr output"
    raw = (NOTEBOOKS / name).read_text()
    assert not [s for s in OUTSIDE if s in raw], f"{name} names paths outside the repository"


def test_make_notebooks_without_the_demo_says_run_make_demo_first(tmp_path, capsys):
    assert notebooks.main(["--run", str(tmp_path / "demo_geometry_riskpo")]) == 2
    assert "run `make demo` first" in capsys.readouterr().err
    (tmp_path / "run").mkdir()  # a run folder without a model
    assert notebooks.main(["--run", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "no trained model" in err and "run `make demo` first" in err


def test_a_failing_cell_names_the_notebook_and_the_cell(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_code_cell("raise ValueError('broken on purpose')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    before = path.read_bytes()
    with pytest.raises(notebooks.NotebookError) as err:
        notebooks.execute(path, timeout=60)
    text = str(err.value)
    assert "broken.ipynb: cell 2 (code cell 2) failed" in text and "broken on purpose" in text
    assert "raise ValueError" in text  # the cell's source
    assert path.read_bytes() == before


def test_clean_drops_stderr_and_the_repository_path():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print()")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stderr", text=f"{REPO}/.venv/x.py: Warning"),
                           nbformat.v4.new_output("stream", name="stdout", text=f"read {REPO}/runs/a/test.jsonl"),
                           nbformat.v4.new_output("display_data", data={"text/plain": f"{REPO}"})]
    notebooks.clean(nb)
    outputs = nb.cells[0].outputs
    assert [o.get("name") for o in outputs] == ["stdout", None]
    assert outputs[0].text == "read runs/a/test.jsonl" and outputs[1].data["text/plain"] == "."
    assert str(REPO) not in nbformat.writes(nb)


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
