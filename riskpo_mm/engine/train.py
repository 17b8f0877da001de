"""`riskpo-mm train --config X.yaml [--set key=value ...] [--resume | --overwrite] [--dry-run]`.

The local engine runs here: optional supervised warm start, evaluation before
RL, RiskPO (or GRPO / Dr.GRPO / DAPO) RL with checkpoints, evaluation after
RL, and `report.json` + `summary.txt` in the run folder. The Ray engine
translates the same config to OpenRLHF flags and runs our Ray entry point.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Optional

from riskpo_mm.config import ConfigError, RunConfig, load_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="riskpo-mm train", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="YAML run config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set algorithm.riskpo.alpha=0.1 (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the run's latest checkpoint (a changed config is compared with the saved one; "
                        "changes that break the saved state are refused)")
    p.add_argument("--overwrite", action="store_true",
                   help="the run folder holds an earlier run: move it aside to <run>.old-<time> and start over")
    p.add_argument("--dry-run", action="store_true",
                   help="check the config, model folder, data (a sample of records) and run folder without training "
                        "or writing anything; report every problem; exit 2 on problems (engine: ray: then print "
                        "the commands)")
    p.add_argument("--print-command", action="store_true",
                   help="Ray engine: prepare the data files and print only the job command, one argument a line")
    p.add_argument("--launcher", choices=("direct", "submit"), default="direct",
                   help="engine: ray: run the job as a child process on the cluster (direct) or through "
                        "`ray job submit` (submit; needs the dashboard)")
    p.add_argument("--local_rank", type=int, default=-1, help=argparse.SUPPRESS)  # set by the deepspeed launcher
    return p


def ray_command(cfg: RunConfig, *, resume: bool = False, model_path: Optional[str] = None,
                write: bool = True) -> list[str]:
    """The Ray-engine job command for `cfg` (the prompt files are written into the run folder first,
    unless `write` is False); every path in it is absolute."""
    from riskpo_mm.engine.flags import openrlhf_argv
    from riskpo_mm.engine.ray_data import prepare_ray_data

    data_flags, eval_file, max_samples = prepare_ray_data(cfg, write=write)
    argv = openrlhf_argv(cfg, data_flags=data_flags, eval_dataset=eval_file, max_samples=max_samples, resume=resume,
                         model_path=model_path)
    return [sys.executable, "-m", "riskpo_mm.openrlhf_ext.train_ray", *argv]


def _report(cfg: RunConfig, before: Any, after: Any, last: dict[str, float], wall_s: float, phases: dict) -> dict:
    def overall(result):
        return None if result is None else result.overall

    return {
        "name": cfg.name,
        "estimator": cfg.algorithm.estimator,
        "before_rl": overall(before),
        "after_rl": overall(after),
        "train": {
            "steps": cfg.train.steps,
            "final_entropy": last.get("entropy"),
            "final_reward": last.get("reward/mean"),
            "final_accuracy": last.get("accuracy/mean"),
            "bundle_cvar": last.get("bundle/cvar"),
            "bundle_mean": last.get("bundle/mean"),
        },
        "phases_s": phases,
        "wall_s": wall_s,
        "config": cfg.model_dump(mode="json"),
    }


def _summary(report: dict) -> str:
    lines = [f"run {report['name']} ({report['estimator']}), wall {report['wall_s']:.0f} s"]
    for key in ("before_rl", "after_rl"):
        res = report.get(key)
        if res:
            shown = ", ".join(f"{k} {v:.3f}" for k, v in res.items() if isinstance(v, (int, float)) and ("@" in k or k.endswith("rate")))
            lines.append(f"  {key:<9} {shown}")
    tr = report["train"]
    if tr.get("final_entropy") is not None:
        lines.append(f"  final entropy {tr['final_entropy']:.3f}")
    return "\n".join(lines)


def run_local(cfg: RunConfig, resume: bool = False) -> dict:
    """Warm start, evaluate, RL, evaluate, report. Returns the report dict (main rank)."""
    from riskpo_mm.engine.local import LocalTrainer
    from riskpo_mm.engine.sft import ensure_sft

    t0 = time.time()
    phases: dict[str, float] = {}
    run_dir = cfg.run_dir
    model_path = cfg.model.path
    if cfg.sft.enabled:
        t = time.time()
        model_path = str(ensure_sft(cfg))
        phases["sft_s"] = time.time() - t
    trainer = LocalTrainer(cfg, model_path=model_path)
    resumed = trainer.resume() if resume else False
    if resume and not resumed and trainer.is_main:
        print(f"[riskpo-mm] --resume: no checkpoint under {run_dir / 'checkpoints'}, starting fresh")
    if not resumed and trainer.logger is not None:
        trainer.logger.truncate_after(0)  # a fresh run in an old run folder starts a fresh log
    before_file = run_dir / "eval_before.json"
    before = None
    if cfg.eval.before_and_after and trainer.test_records:
        t = time.time()
        if resumed and before_file.is_file():  # the interrupted run already measured its warm start
            from riskpo_mm.eval.harness import EvalResult

            before = EvalResult.from_json(before_file.read_text())
        else:
            before = trainer.evaluate()
            if before is not None:
                before_file.write_text(before.to_json())
        phases["eval_before_s"] = time.time() - t
    t = time.time()
    last = trainer.fit()
    phases["rl_s"] = time.time() - t
    trainer.save_final()
    after = None
    if cfg.eval.before_and_after and trainer.test_records:
        t = time.time()
        after = trainer.evaluate()
        if after is not None:
            (run_dir / "eval_after.json").write_text(after.to_json())
        phases["eval_after_s"] = time.time() - t
    trainer.close()
    if not trainer.is_main:
        return {}
    return write_report(cfg, before, after, last, time.time() - t0, phases)


def write_report(cfg: RunConfig, before: Any, after: Any, last: dict[str, float], wall_s: float,
                 phases: dict) -> dict:
    """`report.json` and `summary.txt` in the run folder (both engines); returns the report."""
    run_dir = cfg.run_dir
    from riskpo_mm.metrics_log import earlier_wall_s

    report = _report(cfg, before, after, last, wall_s, phases)
    earlier = earlier_wall_s(run_dir)  # the segments before a --resume
    if earlier:
        report["wall_s"] = earlier + wall_s
        report["wall_this_segment_s"] = wall_s
    (run_dir / "report.json").write_text(json.dumps(report, indent=2))
    summary = _summary(report)
    (run_dir / "summary.txt").write_text(summary + "\n")
    print(summary)
    print(f"[riskpo-mm] report: {run_dir / 'report.json'}\n[riskpo-mm] TensorBoard: tensorboard --logdir {run_dir / 'tensorboard'}"
          f"\n[riskpo-mm] checkpoints: {run_dir / 'checkpoints'}  final model: {run_dir / 'final_model'}")
    return report


def _err(msg: str) -> None:
    print(f"riskpo-mm train: {msg}", file=sys.stderr)


def dry_run(cfg: RunConfig, args) -> int:
    """Check everything a run needs without training or writing; every problem at once; 2 on problems."""
    from riskpo_mm.engine import preflight

    print(preflight.summary(cfg))
    found = preflight.check_run(cfg, deep=True)
    problems = list(found.problems)
    existing = preflight.existing_run(cfg.run_dir)
    if existing and not args.resume and not args.overwrite:
        problems.append(preflight.refuse_existing_run(cfg.run_dir, existing))
    elif existing and args.overwrite:
        found.notes.append(f"would move the earlier run aside: {cfg.run_dir} -> {cfg.run_dir}.old-<time>")
    if args.resume:
        lines, refused = preflight.resume_check(cfg)
        print("\n".join(lines)) if lines else None
        if refused:
            problems.append(preflight.refuse_resume(cfg, refused))
    for note in found.notes:
        print(f"  {note}")
    if problems:
        _err(f"--dry-run found {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))
        return 2
    if cfg.engine == "ray":
        if cfg.data.synthetic is not None and any(n.startswith("would be built: the synthetic") for n in found.notes):
            print("[riskpo-mm] dry run: the Ray job command needs the synthetic data files; it is printed by a dry "
                  "run once they exist (a real run builds them first)")
        else:
            from riskpo_mm.engine.ray_data import RayDataError
            from riskpo_mm.engine.ray_run import RayRunError, run_ray

            try:
                run_ray(cfg, resume=args.resume, launcher=args.launcher, dry_run=True)
            except (RayRunError, RayDataError) as err:
                _err(str(err))
                return 1
    print("[riskpo-mm] dry run: no problems found; nothing was written")
    return 0


def _quiet_progress(cfg: RunConfig) -> None:
    """Output that is not a terminal gets no progress bars (no carriage returns in log files), but one
    line every N steps instead."""
    from riskpo_mm.metrics_log import PROGRESS_ENV

    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault(PROGRESS_ENV, str(max(1, cfg.train.steps // 20)))


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        _err(str(err))
        return 2
    if args.resume and args.overwrite:
        _err("--resume continues the run in the folder, --overwrite moves it aside: give one of them")
        return 2
    if cfg.reward.functions:  # user graders: their tasks are known to the loaders and the reward router
        from riskpo_mm.rewards.user_functions import UserFunctionError, register_functions

        try:
            register_functions(cfg.reward.functions)
        except UserFunctionError as err:
            _err(str(err))
            return 2
    if args.print_command:
        if cfg.engine != "ray":
            _err("--print-command needs engine: ray")
            return 2
        print("\n".join(ray_command(cfg, resume=args.resume)))
        return 0
    if args.dry_run:
        return dry_run(cfg, args)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    if main_rank:  # before anything is written
        from riskpo_mm.engine import preflight

        existing = preflight.existing_run(cfg.run_dir)
        if existing and not args.resume and not args.overwrite:
            _err(preflight.refuse_existing_run(cfg.run_dir, existing))
            return 2
        if args.resume:
            lines, refused = preflight.resume_check(cfg)
            if lines:
                print("\n".join(lines), flush=True)
            if refused:
                _err(preflight.refuse_resume(cfg, refused))
                return 2
        found = preflight.check_run(cfg, deep=False)
        if found.problems:
            _err(f"{len(found.problems)} problem(s) before starting:\n" + "\n".join(f"  - {p}" for p in found.problems)
                 + "\n(riskpo-mm train --config ... --dry-run checks everything, records included)")
            return 2
        for note in found.notes:
            if note.startswith("model.path"):
                print(f"[riskpo-mm] {note}", flush=True)
        if existing and args.overwrite:
            moved = preflight.move_aside(cfg.run_dir)
            print(f"[riskpo-mm] --overwrite: moved the earlier run {cfg.run_dir} to {moved}", flush=True)
        print(preflight.summary(cfg), flush=True)
    _quiet_progress(cfg)
    from riskpo_mm.metrics_log import WallClock

    clock = WallClock(cfg.run_dir, resume=args.resume)
    if main_rank:
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        clock.start()
    try:
        return _run(cfg, args)
    finally:
        if main_rank:
            clock.stop()


def _run(cfg: RunConfig, args) -> int:
    if cfg.engine == "ray":
        from riskpo_mm.engine.ray_data import RayDataError
        from riskpo_mm.engine.ray_run import RayRunError, run_ray

        try:
            run_ray(cfg, resume=args.resume, launcher=args.launcher, dry_run=False)
        except (RayRunError, RayDataError) as err:
            _err(str(err))
            return 1
        except KeyboardInterrupt:
            print(f"\n[riskpo-mm] interrupted; continue with --resume", file=sys.stderr)
            return 130
        return 0
    try:
        run_local(cfg, resume=args.resume)
    except KeyboardInterrupt:
        print(f"\n[riskpo-mm] interrupted; the last complete checkpoint is intact under {cfg.run_dir / 'checkpoints'}; "
              f"continue with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
