"""Execute the notebooks of notebooks/ in place on a run's outputs: `make notebooks`.

    python -m riskpo_mm.eval.notebooks [--run RUN [RUN ...]] [--data FILE] [--out-dir DIR]
                                       [--timeout S] [NOTEBOOK ...]

Each notebook runs top to bottom in a fresh python3 kernel (nbclient) started in notebooks/, with
matplotlib's inline backend, and is written back executed: outputs and plots embedded, so it
renders on a code host. Before it is written, stderr streams (library warnings, which carry this
machine's paths) are dropped and the repository's absolute path is cut from every output, so the
stored notebook names only paths inside the repository.

The runs default to the demo's (`runs/demo_geometry_riskpo`, written by `make demo`, plus
`runs/demo_geometry_grpo` when `make demo-grpo` wrote it); the held-out data to the test split of
the first run's config.yaml (the demo's: runs/assets/geometry_112_l0/test.jsonl); the notebooks'
other parameters (RISKPO_NB_N, RISKPO_NB_MAX_PROBLEMS, ...) pass through from the environment. A missing run,
model or data file stops before anything runs ("run `make demo` first", exit 2). A cell error stops
with the notebook's name, the cell's number and source and the traceback (exit 1); that notebook is
left as it was.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
DEMO_RUN = "runs/demo_geometry_riskpo"
DEMO_BASELINE = "runs/demo_geometry_grpo"
FIX = "run `make demo` first"


class NotebookError(RuntimeError):
    """A notebook cell failed (or timed out, or the kernel died); the message names notebook and cell."""


class MissingOutputs(FileNotFoundError):
    """A run folder, its model or the data file the notebooks read does not exist."""


def repo_relative(path: str | Path) -> str:
    """`path` relative to the repository root when it lies inside it, else absolute."""
    p = Path(path)
    p = (Path.cwd() / p) if not p.is_absolute() else p
    p = Path(os.path.abspath(p))
    try:
        return p.relative_to(REPO).as_posix()
    except ValueError:
        return str(p)


def resolve(path: str | Path) -> Path:
    """A repository-relative path (as the notebooks read them) or an absolute one, as a real path."""
    p = Path(path)
    return p if p.is_absolute() else REPO / p


def run_model(run: Path) -> Optional[Path]:
    """The model a notebook evaluates for a run (the notebook's `find_model` order), else None."""
    candidates = [run / "final_model", run / "best_model",
                  *sorted(run.glob("checkpoints/*/model"), key=lambda p: p.stat().st_mtime, reverse=True), run]
    return next((c for c in candidates if (c / "config.json").is_file()), None)


def default_data(run: Path) -> Optional[str]:
    """The held-out records of a run: its config.yaml's first data.test file, else the test split of
    its synthetic data folder; None when the config names neither."""
    import yaml

    path = run / "config.yaml"
    if not path.is_file():
        return None
    try:
        data = (yaml.safe_load(path.read_text()) or {}).get("data") or {}
    except yaml.YAMLError:
        return None
    for src in data.get("test") or []:
        file = src.get("path") if isinstance(src, dict) else src
        if file:
            return str(file)
    synthetic = data.get("synthetic") or {}
    if isinstance(synthetic, dict) and synthetic.get("dir"):
        return f"{synthetic['dir']}/test.jsonl"
    return None


def check_inputs(runs: Sequence[str], data: Optional[str]) -> tuple[list[str], str]:
    """The runs and data file as the notebook gets them (repository-relative); MissingOutputs names
    what is missing."""
    if not runs:
        raise MissingOutputs(f"no run folder given; {FIX} (it writes {DEMO_RUN}) or pass RUN=<run folder>")
    for run in runs:
        folder = resolve(run)
        if not folder.is_dir():
            raise MissingOutputs(f"{run}: no such run folder; {FIX} (it writes {DEMO_RUN}) or pass RUN=<run folder>")
        if run_model(folder) is None:
            raise MissingOutputs(f"{run}: no trained model in it (final_model/, best_model/ or checkpoints/*/model/); "
                                 f"{FIX}, or let that run finish")
    data = data or default_data(resolve(runs[0])) or "runs/assets/geometry_112_l0/test.jsonl"
    if not resolve(data).is_file():
        raise MissingOutputs(f"{data}: held-out data file not found; {FIX} (it writes the demo's data) or pass DATA=<file>")
    return [repo_relative(resolve(r)) for r in runs], repo_relative(resolve(data))


def execute(path: Path, *, env: Optional[dict[str, str]] = None, timeout: Optional[int] = 1800):
    """Run a notebook in a fresh python3 kernel from notebooks/ and return it executed (nothing is
    written). `env` is added to this process's environment for the kernel (MPLBACKEND is unset: plots
    must come out inline). A failing cell raises NotebookError naming notebook, cell and error."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    kernel_env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    kernel_env.update(env or {})
    current: dict[str, int] = {}

    def on_cell_start(cell, cell_index, **_):
        current["index"] = cell_index

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(NOTEBOOKS)}}, on_cell_start=on_cell_start)
    try:
        client.execute(env=kernel_env)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
        index = current.get("index")
        where = "a cell" if index is None else \
            f"cell {index} (code cell {sum(c.cell_type == 'code' for c in nb.cells[: index + 1])})"
        source = nb.cells[index].source if index is not None else ""
        head = "\n".join("    " + line for line in source.splitlines()[:8])
        raise NotebookError(f"{repo_relative(path)}: {where} failed: {type(err).__name__}\n"
                            f"--- the cell ---\n{head}\n--- the error ---\n{err}") from None
    return nb


def clean(nb) -> None:
    """Keep what a reader needs: drop stderr streams, cut the repository's absolute path from outputs."""
    prefix = str(REPO) + os.sep

    def cut(text):
        return text.replace(prefix, "").replace(str(REPO), ".") if isinstance(text, str) else text

    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                if out.get("name") == "stderr":
                    continue
                out["text"] = cut(out["text"])
            for key, value in (out.get("data") or {}).items():
                if key.startswith("text/"):
                    out["data"][key] = [cut(v) for v in value] if isinstance(value, list) else cut(value)
            kept.append(out)
        cell["outputs"] = kept


def write(nb, path: Path) -> None:
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, path)


def notebook_env(runs: Sequence[str], data: str) -> dict[str, str]:
    """The parameters geometry_vqa_eval.ipynb reads from the environment (the others ignore them)."""
    return {"RISKPO_NB_RUNS": ",".join(runs), "RISKPO_NB_DATA": data}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m riskpo_mm.eval.notebooks", description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", help="notebook files or names in notebooks/ (default: all)")
    p.add_argument("--run", nargs="+", default=None,
                   help=f"run folders to evaluate (default: {DEMO_RUN}, plus {DEMO_BASELINE} when it exists)")
    p.add_argument("--data", default=None, help="held-out records (default: the first run's test split)")
    p.add_argument("--out-dir", default=None, help="write the executed notebooks here (default: in place)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default: 1800)")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    runs = args.run if args.run is not None else [DEMO_RUN] + ([DEMO_BASELINE] if resolve(DEMO_BASELINE).is_dir() else [])
    runs = [r for item in runs for r in item.replace(",", " ").split()]
    paths = [Path(n) if Path(n).is_file() else NOTEBOOKS / n for n in args.notebooks] or sorted(NOTEBOOKS.glob("*.ipynb"))
    try:
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise MissingOutputs(f"notebooks not found: {missing}")
        runs, data = check_inputs(runs, args.data)
    except MissingOutputs as err:
        print(f"riskpo-mm notebooks: {err}", file=sys.stderr)
        return 2
    env = notebook_env(runs, data)
    print(f"[notebooks] runs {runs}, data {data}", flush=True)
    for path in paths:
        out = Path(args.out_dir) / path.name if args.out_dir else path
        t0 = time.perf_counter()
        print(f"[notebooks] executing {repo_relative(path)} ...", flush=True)
        try:
            nb = execute(path, env=env, timeout=args.timeout)
        except NotebookError as err:
            print(f"riskpo-mm notebooks: {err}\n(left {repo_relative(path)} as it was)", file=sys.stderr)
            return 1
        clean(nb)
        write(nb, out)
        print(f"[notebooks] {repo_relative(path)}: executed in {time.perf_counter() - t0:.0f} s, "
              f"written to {repo_relative(out)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
