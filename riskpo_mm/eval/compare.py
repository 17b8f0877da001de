"""`riskpo-mm compare PATH [PATH ...]`: runs and results files side by side.

A PATH is a run folder (its report.json from `riskpo-mm train`: one row before RL, one after), a
report.json, or a results.json from `riskpo-mm eval` (one row), each followed by one row per task when it
has several. Columns: pass@1, pass@k, maj@n (with its n), format rate, token entropy at the end of training, lower-tail CVaR of bundle scores (from the
training log, and recomputed on the held-out outcomes with one bundle size and alpha for every row,
so methods compare on equal terms), wall time. A value a source does not have shows as "-", and a note
under the table says why a CVaR is missing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Optional

from riskpo_mm.eval.harness import SCHEMA
from riskpo_mm.eval.risk import problems_bundle_measures

MISSING = "-"


class CompareError(ValueError):
    """A path that is neither a run folder nor a results/report file."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CompareError(f"{path}: not valid JSON ({e})") from None


def last_metric(run_dir: Path, suffix: str) -> Optional[float]:
    """Last value in run_dir/metrics.jsonl of the first key equal to or ending with '/'+suffix."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    for line in reversed(path.read_text().splitlines()):
        if not line.strip():
            continue
        row = json.loads(line)
        for key, value in row.items():
            if key == suffix or key.endswith("/" + suffix):
                return value
    return None


def _eval_file(path: Path, bundle_size: int, alpha: float) -> tuple[Optional[float], Optional[str], dict]:
    """(CVaR_alpha of held-out bundle scores, why it is missing, the file's metric groups)."""
    if not path.is_file():
        return None, f"no {path.name} (per-problem outcomes)", {}
    data = _read_json(path)
    groups = data.get("metrics", {}) if isinstance(data, dict) else {}
    problems = data.get("problems") if isinstance(data, dict) else None
    if not problems:
        return None, f"{path.name} keeps no per-problem outcomes", groups
    if len(problems) < bundle_size:
        return None, f"{len(problems)} problems, fewer than --bundle-size {bundle_size}", groups
    return problems_bundle_measures(problems, bundle_size, alpha=alpha)["cvar"], None, groups


def _intervals(path: Path) -> dict[str, list[float]]:
    """The file's 95% bootstrap intervals of the "all" group (metric -> [low, high]); {} if it has none."""
    data = _read_json(path) if path.is_file() else {}
    ci = data.get("ci", {}).get("all", {}) if isinstance(data, dict) else {}
    return {k: v for k, v in ci.items() if isinstance(v, list) and len(v) == 2}


def _task_rows(name: str, groups: dict) -> list[dict[str, Any]]:
    tasks = sorted(k for k in groups if k.startswith("task/"))
    if len(tasks) < 2:
        return []
    return [{"name": f"  {name} [{k[5:]}]", "metrics": groups[k], "task_row": True} for k in tasks]


def load_rows(path: str | Path, *, bundle_size: int = 5, alpha: float = 0.2) -> list[dict[str, Any]]:
    """Table rows of one PATH: dicts with "name", "metrics" (eval metrics), and optional "entropy",
    "cvar_train", "cvar_eval", "wall_s", "why" (key -> why it is missing); per-task rows follow a row
    of several tasks."""
    p = Path(path)
    if p.is_dir():
        if (p / "report.json").is_file():
            return _report_rows(p / "report.json", bundle_size, alpha)
        if (p / "results.json").is_file():
            return _results_rows(p / "results.json", bundle_size, alpha, name=p.name)
        raise CompareError(f"{p}: a run folder needs report.json (riskpo-mm train) or results.json (riskpo-mm eval)")
    if not p.is_file():
        raise CompareError(f"{p}: no such file or folder")
    data = _read_json(p)
    if isinstance(data, dict) and data.get("schema") == SCHEMA:
        return _results_rows(p, bundle_size, alpha)
    if isinstance(data, dict) and ("before_rl" in data or "after_rl" in data):
        return _report_rows(p, bundle_size, alpha)
    raise CompareError(f"{p}: neither a results file (schema {SCHEMA!r}) nor a report.json (before_rl / after_rl)")


def _results_rows(path: Path, bundle_size: int, alpha: float, name: Optional[str] = None) -> list[dict[str, Any]]:
    data = _read_json(path)
    metrics = data.get("metrics", {}).get("all", {})
    cvar, why, groups = _eval_file(path, bundle_size, alpha)
    name = name or (path.stem if path.stem != "results" else path.parent.name)
    row = {"name": name, "metrics": metrics, "cvar_eval": cvar, "wall_s": data.get("wall_s"), "ci": _intervals(path),
           "why": {"cvar_train": "an evaluation results file has no training log"}}
    if why:
        row["why"]["cvar_eval"] = why
    return [row, *_task_rows(name, groups)]


def _report_rows(path: Path, bundle_size: int, alpha: float) -> list[dict[str, Any]]:
    report = _read_json(path)
    run_dir = path.parent
    name = report.get("name") or run_dir.name
    train = report.get("train") or {}
    rows = []
    if report.get("before_rl"):
        cvar, why, groups = _eval_file(run_dir / "eval_before.json", bundle_size, alpha)
        rows.append({"name": f"{name} (before RL)", "metrics": report["before_rl"], "cvar_eval": cvar,
                     "ci": _intervals(run_dir / "eval_before.json"),
                     "why": {"cvar_eval": why} if why else {}})
        rows += _task_rows(f"{name} (before RL)", groups)
    entropy = train.get("final_entropy")
    cvar_train = train.get("bundle_cvar")
    if cvar_train is None:
        cvar_train = last_metric(run_dir, "bundle_score/cvar")
    cvar, why, groups = _eval_file(run_dir / "eval_after.json", bundle_size, alpha)
    estimator = report.get("estimator") or (report.get("config") or {}).get("algorithm", {}).get("estimator")
    whys = {}
    if cvar_train is None:
        whys["cvar_train"] = ("no bundle CVaR in report.json or metrics.jsonl" +
                              (f" (estimator {estimator} forms no bundles)" if estimator and estimator != "riskpo" else ""))
    if why:
        whys["cvar_eval"] = why
    rows.append({
        "name": name, "metrics": report.get("after_rl") or {},
        "entropy": entropy if entropy is not None else last_metric(run_dir, "entropy"),
        "cvar_train": cvar_train, "cvar_eval": cvar, "wall_s": report.get("wall_s"), "why": whys,
        "ci": _intervals(run_dir / "eval_after.json"),
    })
    rows += _task_rows(name, groups)
    return rows


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return str(value)


def build_table(rows: list[dict[str, Any]], alpha: float = 0.2) -> list[list[str]]:
    """Header + one line per row; pass@k columns are the union over rows, maj@n one column per n."""
    ks = sorted({int(k[5:]) for r in rows for k in r["metrics"] if k.startswith("pass@") and k[5:].isdigit()} | {1})
    majs = sorted({int(k[4:]) for r in rows for k in r["metrics"] if k.startswith("maj@") and k[4:].isdigit()})
    top = ks[-1]
    header = ["run", *(f"pass@{k}" for k in ks), *(f"maj@{n}" for n in majs), "ci95(pass@1)", f"ci95(pass@{top})",
              "format", "entropy", "cvar(train)", f"cvar{alpha:g}(eval)", "wall"]
    table = [header]
    for r in rows:
        m = r["metrics"]
        wall = r.get("wall_s")
        ci = r.get("ci") or {}
        table.append([r["name"], *(_fmt(m.get(f"pass@{k}")) for k in ks), *(_fmt(m.get(f"maj@{n}")) for n in majs),
                      *(_interval(ci.get(f"pass@{k}")) for k in (1, top)), _fmt(m.get("format_rate")), _fmt(r.get("entropy")), _fmt(r.get("cvar_train")),
                      _fmt(r.get("cvar_eval")), MISSING if wall is None else f"{wall:.0f}s"])
    return table


def _interval(ci: Optional[list[float]]) -> str:
    return MISSING if not ci else f"[{ci[0]:.3f},{ci[1]:.3f}]"


def missing_notes(rows: list[dict[str, Any]], alpha: float = 0.2) -> list[str]:
    """Why a CVaR shows as "-": one line per row and column."""
    cols = {"cvar_train": "cvar(train)", "cvar_eval": f"cvar{alpha:g}(eval)"}
    return [f"  {r['name'].strip()}: {cols[key]} -: {why}" for r in rows if not r.get("task_row")
            for key, why in (r.get("why") or {}).items() if r.get(key) is None and key in cols]


def render(table: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="riskpo-mm compare", description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="+", metavar="PATH", help="run folders, report.json or results.json files")
    p.add_argument("--bundle-size", type=int, default=5, help="questions per bundle for the held-out CVaR")
    p.add_argument("--alpha", type=float, default=0.2, help="tail level of the held-out CVaR")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = p.parse_args(argv)
    if args.bundle_size < 1 or not 0 < args.alpha < 1:
        print("riskpo-mm compare: --bundle-size must be >= 1 and --alpha in (0, 1)", file=sys.stderr)
        return 2
    try:
        rows = [row for path in args.paths for row in load_rows(path, bundle_size=args.bundle_size, alpha=args.alpha)]
    except CompareError as err:
        print(f"riskpo-mm compare: {err}", file=sys.stderr)
        return 2
    if args.json:
        text = json.dumps(rows, indent=1)
    else:
        notes = missing_notes(rows, args.alpha)
        text = render(build_table(rows, args.alpha)) + ("\n\n" + "\n".join(["missing values:", *notes]) if notes else "")
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `riskpo-mm compare ... | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
