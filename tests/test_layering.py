"""The package layering of riskpo_mm, read from the source with `ast` (module-level and function-level
imports alike, `importlib.import_module("...")` with a literal name included):

    tasks, metrics_log, algo  <-  config, data, rewards, models  <-  generation  <-  eval  <-  engine
                                                          openrlhf_ext (the only importer of openrlhf)  <-  engine

- algo is pure math: it imports nothing of riskpo_mm outside algo;
- data and rewards never import engine, eval or openrlhf_ext;
- generation (HF / vLLM sampling, RolloutBatch, the run's generation settings) never imports engine,
  eval or openrlhf_ext: it sits below all three;
- eval never imports engine (the engine runs evaluations, not the other way round);
- openrlhf_ext never imports engine (the engine drives OpenRLHF);
- tasks (the task-type registry) and metrics_log import nothing of riskpo_mm: every layer reads them;
- only riskpo_mm/openrlhf_ext imports openrlhf.

Each rule is checked on the direct imports (the failure names the file, line, module and import) and
through chains of imports (a package reaching a forbidden one through another: the chain is named).
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "riskpo_mm"

# package -> packages (top-level names under riskpo_mm) it must never import
ALL = "*"  # everything of riskpo_mm except the package itself
FORBIDDEN: dict[str, set[str] | str] = {
    "algo": ALL,
    "rewards": {"engine", "eval", "openrlhf_ext"},
    "data": {"engine", "eval", "openrlhf_ext"},
    "generation": {"engine", "eval", "openrlhf_ext"},
    "eval": {"engine"},
    "openrlhf_ext": {"engine"},  # the engine drives OpenRLHF, never the other way round
    "tasks": ALL,  # read by every layer
    "metrics_log": ALL,
}
OPENRLHF_HOME = "openrlhf_ext"


class Import(NamedTuple):
    module: str  # the importing module, e.g. riskpo_mm.eval.cli
    target: str  # the imported module, e.g. riskpo_mm.engine.rollout
    where: str  # the file, relative to the repository root
    line: int

    def __str__(self) -> str:
        return f"{self.where}:{self.line}: {self.module} imports {self.target}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str, where: str) -> Iterator[Import]:
    """Every import in a file, wherever it is (module level, functions, classes, try/if blocks)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, where, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield Import(module, target, where, node.lineno)
            for alias in node.names:  # `from pkg import submodule` imports pkg.submodule
                yield Import(module, f"{target}.{alias.name}", where, node.lineno)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__"):
                yield Import(module, node.args[0].value, where, node.lineno)


def scan(root: Path = ROOT, package: str = PACKAGE) -> tuple[set[str], list[Import]]:
    """(every module of the package, every import in it)."""
    modules, found = set(), []
    for path in sorted((root / package).rglob("*.py")):
        name = module_name(path, root)
        modules.add(name)
        found += imports_of(path, name, path.relative_to(root).as_posix())
    return modules, found


def layer(module: str, package: str = PACKAGE) -> str | None:
    """The top-level package under riskpo_mm a module belongs to (riskpo_mm.eval.cli -> eval), the
    module name for top-level modules (riskpo_mm.config -> config), "" for riskpo_mm itself, None outside."""
    parts = module.split(".")
    if parts[0] != package:
        return None
    return parts[1] if len(parts) > 1 else ""


def forbidden(src: str | None, dst: str | None) -> bool:
    if src is None or dst is None or src == dst or src not in FORBIDDEN:
        return False
    rule = FORBIDDEN[src]
    return rule == ALL or dst in rule


def internal(target: str, modules: set[str]) -> list[str]:
    """The riskpo_mm modules an import runs: the target (when it is a module) and its parent packages."""
    parts = target.split(".")
    return [m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if m in modules]


def direct_violations(modules: set[str], found: list[Import]) -> list[str]:
    out = []
    for imp in found:
        src, reached = layer(imp.module), internal(imp.target, modules)
        dst = layer(reached[-1]) if reached else None
        if dst and forbidden(src, dst):  # named by the deepest module it runs (not `from m import name`'s name)
            out.append(f"{imp._replace(target=reached[-1])}  ({src} -> {dst} is forbidden)")
    return sorted(set(out))


def chain_violations(modules: set[str], found: list[Import]) -> list[str]:
    """Forbidden packages reached through another package: src module -> ... -> forbidden module."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in found:
        graph[imp.module].update(internal(imp.target, modules))
    out = set()
    for start in sorted(modules):
        src = layer(start)
        if src not in FORBIDDEN:
            continue
        parent = {start: None}
        queue = deque([start])
        while queue:
            cur = queue.popleft()
            for nxt in sorted(graph[cur]):
                if nxt in parent:
                    continue
                parent[nxt] = cur
                dst = layer(nxt)
                if dst and forbidden(src, dst):
                    chain, node = [], nxt
                    while node is not None:
                        chain.append(node)
                        node = parent[node]
                    if any(layer(m) != src for m in chain[1:-1]):  # the direct ones are direct_violations'
                        out.add(f"{src} -> {dst} through: {' -> '.join(reversed(chain))}")
                    continue
                queue.append(nxt)
    return sorted(out)


def openrlhf_violations(found: list[Import]) -> list[str]:
    return sorted({f"{imp}  (only riskpo_mm/{OPENRLHF_HOME} may import openrlhf)" for imp in found
                   if imp.target.split(".")[0] == "openrlhf" and layer(imp.module) != OPENRLHF_HOME})


@pytest.fixture(scope="module")
def package():
    return scan()


def test_the_scan_sees_the_packages_and_the_lazy_imports(package):
    modules, found = package
    assert {layer(m) for m in modules} >= {"algo", "data", "rewards", "models", "generation", "eval", "engine",
                                           "openrlhf_ext"}
    # lazy imports inside functions are seen: the engine's evaluation imports the harness in a method
    assert any(i.module == "riskpo_mm.engine.local" and i.target == "riskpo_mm.eval.harness" for i in found)
    assert any(layer(i.module) == OPENRLHF_HOME and i.target.startswith("openrlhf") for i in found)


def test_no_forbidden_import_between_packages(package):
    bad = direct_violations(*package)
    assert not bad, "forbidden imports:\n" + "\n".join(bad)


def test_no_forbidden_package_reached_through_other_imports(package):
    bad = chain_violations(*package)
    assert not bad, "forbidden packages reached through chains of imports:\n" + "\n".join(bad)


def test_only_openrlhf_ext_imports_openrlhf(package):
    bad = openrlhf_violations(package[1])
    assert not bad, "openrlhf imported outside riskpo_mm/openrlhf_ext:\n" + "\n".join(bad)


def test_the_checks_catch_function_level_relative_and_dynamic_imports(tmp_path):
    pkg = tmp_path / PACKAGE
    for sub in ("eval", "engine", "algo", "generation", "models", "openrlhf_ext"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "config.py").write_text("")
    (pkg / "engine" / "rollout.py").write_text("")
    (pkg / "eval" / "harness.py").write_text("def f():\n    from riskpo_mm.engine.rollout import x\n")
    (pkg / "eval" / "cli.py").write_text("from ..engine import rollout\n")
    (pkg / "algo" / "loss.py").write_text("import importlib\nimportlib.import_module('riskpo_mm.config')\n")
    (pkg / "generation" / "hf.py").write_text("from riskpo_mm.eval import cli\n")
    (pkg / "generation" / "batch.py").write_text("import riskpo_mm.models\n")  # allowed, but models reaches engine
    (pkg / "models" / "__init__.py").write_text("def h():\n    from riskpo_mm.engine.rollout import y\n")
    (pkg / "generation" / "vllm.py").write_text("def g():\n    import openrlhf.models\n")
    modules, found = scan(tmp_path)
    direct = "\n".join(direct_violations(modules, found))
    assert "riskpo_mm.eval.harness imports riskpo_mm.engine.rollout" in direct and "harness.py:2" in direct
    assert "riskpo_mm.eval.cli imports riskpo_mm.engine" in direct
    assert "riskpo_mm.algo.loss imports riskpo_mm.config" in direct
    assert "riskpo_mm.generation.hf imports riskpo_mm.eval" in direct
    chains = "\n".join(chain_violations(modules, found))
    assert "generation -> engine through: riskpo_mm.generation.batch -> riskpo_mm.models -> riskpo_mm.engine" in chains
    assert "riskpo_mm.generation.batch" not in direct
    assert "riskpo_mm.generation.vllm imports openrlhf.models" in "\n".join(openrlhf_violations(found))
