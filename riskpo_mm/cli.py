"""The `riskpo-mm` command: one entry point, one sub-command per job.

Each sub-command lives with the code it drives and parses its own flags; this
module only dispatches, importing lazily so `riskpo-mm --help` stays instant.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("riskpo_mm.engine.train", "train with a YAML config (local or Ray engine)"),
    "config": ("riskpo_mm.config", "print a config resolved, or document every key (--explain [KEY])"),
    "eval": ("riskpo_mm.eval.cli", "pass@k / avg@k evaluation of a model on record files"),
    "compare": ("riskpo_mm.eval.compare", "side-by-side table of runs or results files"),
    "convert": ("riskpo_mm.data.convert", "convert a public dataset layout to riskpo-mm JSONL"),
    "make-geometry": ("riskpo_mm.data.synthetic", "render the synthetic geometry VQA set"),
    "make-tiny-model": ("riskpo_mm.models.tiny", "write a tiny random Qwen-VL model + processor folder"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items())
    return (f"usage: riskpo-mm COMMAND [ARGS...]  |  riskpo-mm --version\n\ncommands:\n{rows}\n\n"
            "`riskpo-mm COMMAND --help` for a command's flags.")


def version() -> str:
    from riskpo_mm import __version__

    try:
        from importlib.metadata import version as installed

        return installed("riskpo-mm")
    except Exception:  # not installed as a package (a source checkout on sys.path)
        return __version__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if argv[0] in {"--version", "-V", "version"}:
        print(f"riskpo-mm {version()}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"riskpo-mm: unknown command {name!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
