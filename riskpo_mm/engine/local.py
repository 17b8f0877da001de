"""The local engine: RiskPO RL in one process, or on one node of N GPUs under `deepspeed`.

Rollouts come from a vLLM engine colocated in this process (`rollout.backend:
vllm`, weights synced after every optimizer step) or HF `generate` (`hf`),
rewards from the reward router, advantages
from the engine-neutral step (`riskpo_mm.algo.AdvantageStep`, which the Ray
controller calls too), and updates from OpenRLHF's own pieces (`Actor`,
`DeepspeedStrategy`, `ActorPPOTrainer.training_step` with the RiskPO loss),
reached through `riskpo_mm.openrlhf_ext.policy.LocalPolicy`. Ranks split the
prompts of a step; rewards are gathered so bundles and quantiles span the
global batch.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from riskpo_mm.algo import AdvantageStep
from riskpo_mm.config import RunConfig
from riskpo_mm.data import ImageConfig, Record
from riskpo_mm.engine.assets import ensure_data, ensure_model, load_sources
from riskpo_mm.engine.checkpoint import latest_checkpoint, load_trainer_state, save_checkpoint
from riskpo_mm.engine.flags import openrlhf_args
from riskpo_mm.metrics_log import MetricsLogger
from riskpo_mm.generation.batch import RolloutBatch, model_family, tokenizer_of
from riskpo_mm.generation.hf import generate_rollouts


class StepTimer:
    """Wall time per phase of a step (generate / reward / advantage / experience / train)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] += time.perf_counter() - t0

    def pop(self) -> dict[str, float]:
        out = {f"time/{k}": v for k, v in self.times.items()}
        out["time/step"] = sum(self.times.values())
        self.times.clear()
        return out


class DataOrder:
    """Seeded epoch permutations of the train set; (epoch, offset) is the resumable position."""

    def __init__(self, size: int, seed: int, shuffle: bool = True) -> None:
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch, self.offset = 0, 0
        self._perm = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(self.size, generator=g).tolist()

    def take(self, count: int) -> list[int]:
        out: list[int] = []
        while len(out) < count:
            if self.offset >= self.size:
                self.epoch, self.offset = self.epoch + 1, 0
                self._perm = self._permutation(self.epoch)
            k = min(count - len(out), self.size - self.offset)
            out += self._perm[self.offset : self.offset + k]
            self.offset += k
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset, "size": self.size, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["size"] != self.size:
            raise ValueError(f"resume: the train set has {self.size} records, the checkpoint expects {state['size']}")
        self.epoch, self.offset = state["epoch"], state["offset"]
        self._perm = self._permutation(self.epoch)


class LocalTrainer:
    """One RL run on the local engine. `fit()` trains; `evaluate()` runs the pass@k harness."""

    def __init__(self, cfg: RunConfig, *, model_path: Optional[str] = None, log: bool = True) -> None:
        if not torch.cuda.is_available():
            os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
        from transformers import AutoProcessor

        from riskpo_mm.openrlhf_ext.policy import LocalPolicy

        self.cfg = cfg
        self.run_dir = cfg.run_dir
        self.timer = StepTimer()
        P, n = cfg.rollout.prompts_per_step, cfg.rollout.n_samples_per_prompt
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if P % world:
            raise ValueError(f"rollout.prompts_per_step ({P}) must be divisible by the number of ranks ({world})")
        batch = cfg.train.batch_size or P * n
        if batch % (cfg.train.micro_batch_size * world):
            raise ValueError(f"train.batch_size ({batch}) must be divisible by "
                             f"train.micro_batch_size * ranks ({cfg.train.micro_batch_size * world})")
        self.rank = int(os.environ.get("RANK", "0"))
        if self.is_main:
            ensure_model(cfg)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(cfg.to_yaml())
            ensure_data(cfg)

        args = openrlhf_args(cfg, engine="local")
        self.model_path = str(model_path or cfg.model.path)
        updates_per_step = cfg.train.ppo_epochs * (P * n) // args.train.batch_size
        self.policy = LocalPolicy(
            args, self.model_path, scheduler_steps=cfg.train.steps * updates_per_step,
            warmup_ratio=cfg.train.warmup_steps / cfg.train.steps, kl_coef=cfg.algorithm.loss.kl_coef,
            gradient_checkpointing=cfg.model.gradient_checkpointing,
        )
        self.rank, self.world = self.policy.rank, self.policy.world

        train_sources, test_sources = ensure_data(cfg)
        self.train_records = self._load(train_sources, "data.train", mix=True)
        self.test_records = self._load(test_sources, "data.test", mix=False) if test_sources else []
        self.processor = AutoProcessor.from_pretrained(self.model_path)
        self.image_config = ImageConfig(min_pixels=cfg.data.min_pixels, max_pixels=cfg.data.max_pixels)
        self.family = model_family(self.hf_model.config, cfg.model.family)

        self.step_fn = advantage_step(cfg)
        self.vllm = None
        if cfg.rollout.backend == "vllm":
            from riskpo_mm.generation.vllm import VLLMRollout

            self.vllm = VLLMRollout.from_config(
                cfg, self.model_path, seed=cfg.seed + 1_000_003 * self.rank, image_config=self.image_config,
                processor=self.processor,
                # under the deepspeed launcher every rank runs its own engine on the launcher's process group
                **({"distributed_executor_backend": "external_launcher"} if self.world > 1 else {}),
            )
        self.order = DataOrder(len(self.train_records), cfg.seed, cfg.data.shuffle)
        self.step = 0
        self.best: dict[str, Any] = {}
        self.logger = (
            MetricsLogger(self.run_dir, cfg.logging.tensorboard, cfg.logging.wandb_project if cfg.logging.wandb else None,
                          cfg.model_dump(mode="json"))
            if log and self.is_main else None
        )

    # ── plumbing ──

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def hf_model(self) -> torch.nn.Module:
        return self.policy.hf_model

    def _load(self, sources, key: str, *, mix: bool) -> list[Record]:
        recs = load_sources(self.cfg, sources, mix=mix)
        if recs.skipped and self.is_main:
            print(f"[riskpo-mm] {key}: skipped {recs.skipped} bad record(s):")
            for bad in recs.bad[:10]:
                print(f"  {bad}")
        if not recs:
            raise ValueError(f"{key}: no usable records in {[s.path for s in sources]}")
        return list(recs)

    # ── one RL step ──

    def rollout(self, records: list[Record]) -> RolloutBatch:
        cfg = self.cfg
        r = cfg.rollout
        with self.timer("generate"):
            if self.vllm is not None:  # per-request seeds: (run seed, rank, step) fix the samples given the weights
                batch = self.vllm.generate(records, n=r.n_samples_per_prompt, max_new_tokens=r.max_new_tokens,
                                           temperature=r.temperature, top_p=r.top_p,
                                           system_prompt=cfg.data.system_prompt,
                                           seed=(cfg.seed * 1_000_003 + self.rank) * 100_003 + self.step)
            else:
                batch = generate_rollouts(
                    self.hf_model, self.processor, records, family=self.family, image_config=self.image_config,
                    n=r.n_samples_per_prompt, max_new_tokens=r.max_new_tokens, temperature=r.temperature,
                    top_p=r.top_p, system_prompt=cfg.data.system_prompt,
                )
        with self.timer("reward"):
            batch.score(cfg.reward)
        return batch

    def _gather(self, fields: dict[str, torch.Tensor], tasks: list[str]) -> tuple[dict[str, torch.Tensor], list[str]]:
        """Every rank's [P_local, n] fields and tasks, concatenated in rank order ([P, n])."""
        if self.world == 1:
            return fields, tasks
        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, ({k: v.cpu() for k, v in fields.items()}, tasks))
        return ({k: torch.cat([g[0][k] for g in gathered]) for k in fields}, [t for g in gathered for t in g[1]])

    def advantages(self, batch: RolloutBatch) -> torch.Tensor:
        """Advantages [P_local, n] of this rank's prompts from the engine-neutral step over the global batch [P, n];
        the step's metrics go to `batch.metrics` and its keep mask to `batch.keep`."""
        rewards = batch.rewards  # [P_local, n]
        P, n = rewards.shape
        fields = {"rewards": rewards,
                  "lengths": torch.tensor([float(len(r)) for r in batch.response_ids]).view(P, n),
                  "accuracy": torch.tensor([float(r.accuracy) for r in batch.results]).view(P, n),
                  "format_ok": torch.tensor([float(r.format_ok) for r in batch.results]).view(P, n),
                  "truncated": torch.tensor(batch.truncated, dtype=torch.float64).view(P, n)}
        every, tasks = self._gather(fields, batch.tasks)
        rewards_all = every.pop("rewards")
        result = self.step_fn(rewards_all, tasks, **every)
        lo, hi = self.rank * P, (self.rank + 1) * P
        batch.keep_responses(result.keep[lo:hi])
        batch.metrics.update(result.metrics)
        return result.advantages[lo:hi].float()

    def make_experience(self, batch: RolloutBatch, adv: torch.Tensor):
        """OpenRLHF Experience with old log-probs and broadcast advantages; logs entropy and log-prob agreement."""
        from riskpo_mm.openrlhf_ext.policy import build_experience

        exp = build_experience(**batch.experience_fields(adv, pad_token_id=tokenizer_of(self.processor).pad_token_id))
        entropy = self.policy.score_experience(exp)  # [B, S-1]
        mask = exp.action_mask.float()
        tokens = mask.sum().clamp(min=1)
        batch.metrics["entropy"] = float((entropy * mask).sum() / tokens)
        diff = (exp.action_log_probs - exp.rollout_log_probs).abs() * mask
        batch.metrics["logprob/rollout_train_max_abs_diff"] = float(diff.max())
        batch.metrics["logprob/rollout_train_mean_abs_diff"] = float(diff.sum() / tokens)
        return exp

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        share = cfg.rollout.prompts_per_step // self.world
        idx = self.order.take(cfg.rollout.prompts_per_step)[self.rank * share : (self.rank + 1) * share]
        self.hf_model.eval()
        batch = self.rollout([self.train_records[i] for i in idx])
        with self.timer("advantage"):
            adv = self.advantages(batch)
        with self.timer("experience"):
            exp = self.make_experience(batch, adv)
        if self.vllm is not None:
            self.vllm.sleep()  # frees its KV cache while the policy trains (CUDA; a no-op on vLLM-CPU)
        with self.timer("train"):
            train_metrics = self.policy.train(exp, epochs=cfg.train.ppo_epochs,
                                              seed=cfg.seed * 7919 + self.step * 31)
        self.sync_rollout_weights()
        self.step += 1
        metrics = {**batch.metrics, **{f"train/{k}": v for k, v in train_metrics.items()}}
        metrics.update(self.timer.pop())
        return metrics

    def sync_rollout_weights(self) -> None:
        """Put the policy's current weights into the colocated vLLM engine (after every optimizer step)."""
        if self.vllm is not None:
            with self.timer("weight_sync"):
                self.vllm.sync_weights(self.hf_model)

    # ── checkpoints ──

    def trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "advantage_step": self.step_fn.state_dict(),
            "data_order": self.order.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "best": self.best,
            "config": self.cfg.model_dump(mode="json"),
        }

    def save(self) -> Path:
        def payload(tmp: Path) -> None:
            self.policy.save_model(str(tmp / "model"), self.processor)
            self.policy.save_state(str(tmp / "ds"))

        return save_checkpoint(self.run_dir / "checkpoints", self.step, self.trainer_state(), payload,
                               keep_last=self.cfg.checkpoint.keep_last, is_main=self.is_main,
                               barrier=self.policy.barrier)

    def resume(self) -> bool:
        """Continue from the latest complete checkpoint; False when there is none."""
        ckpt = latest_checkpoint(self.run_dir / "checkpoints")
        if ckpt is None:
            return False
        self.policy.load_state(str(ckpt / "ds"))
        self.sync_rollout_weights()
        self.timer.pop()
        state = load_trainer_state(ckpt)
        self.step = state["step"]
        self.step_fn.load_state_dict(state["advantage_step"])
        self.order.load_state_dict(state["data_order"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.best = state.get("best", {})
        if self.logger is not None:
            self.logger.truncate_after(self.step)
        if self.is_main:
            print(f"[riskpo-mm] resumed from {ckpt} at step {self.step}")
        return True

    # ── evaluation ──

    def evaluate(self, records: Optional[list[Record]] = None):
        """pass@k / avg@k / maj@n of the current policy on the main rank (None on the others)."""
        from riskpo_mm.eval.harness import evaluate, evaluate_with_vllm
        from riskpo_mm.generation.settings import eval_settings

        cfg = self.cfg.eval
        records = list(records if records is not None else self.test_records)[: cfg.max_problems]
        result = None
        if self.is_main and records:
            common = eval_settings(self.cfg)
            if self.vllm is not None:  # the colocated engine holds the current weights
                result = evaluate_with_vllm(self.vllm, records, **common)
            else:
                result = evaluate(self.hf_model, self.processor, records, family=self.family,
                                  image_config=self.image_config, **common)
        self.policy.barrier()
        return result

    def _maybe_keep_best(self, result) -> None:
        metric = self.cfg.eval.best_metric
        value = None if result is None else result.overall.get(metric)
        if value is None or (self.best and value <= self.best["value"]):
            return
        self.best = {"metric": metric, "value": value, "step": self.step}
        self.policy.save_model(str(self.run_dir / "best_model"), self.processor)
        if self.is_main:
            (self.run_dir / "best_model" / "best.json").write_text(json.dumps(self.best))

    # ── the loop ──

    def fit(self) -> dict[str, float]:
        """Train until `train.steps`; returns the last step's metrics."""
        cfg = self.cfg
        last: dict[str, float] = {}
        pbar = tqdm(total=cfg.train.steps, initial=self.step, desc=f"RL {cfg.algorithm.estimator}",
                    disable=not self.is_main, dynamic_ncols=True)
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            while self.step < cfg.train.steps:
                last = self.train_step()
                if cfg.eval.every_steps and self.step % cfg.eval.every_steps == 0 and self.test_records:
                    result = self.evaluate()
                    if result is not None:
                        last.update({f"eval/{k}": v for k, v in result.overall.items() if isinstance(v, (int, float))})
                    self._maybe_keep_best(result)
                if self.logger is not None:
                    self.logger.log(self.step, last)
                if cfg.checkpoint.every_steps and self.step % cfg.checkpoint.every_steps == 0:
                    self.save()
                pbar.update(1)
                pbar.set_postfix(reward=f"{last.get('reward/mean', math.nan):.3f}",
                                 acc=f"{last.get('accuracy/mean', math.nan):.3f}",
                                 ent=f"{last.get('entropy', math.nan):.3f}")
            if not cfg.checkpoint.every_steps or self.step % cfg.checkpoint.every_steps:
                self.save()
        finally:
            pbar.close()
            signal.signal(signal.SIGTERM, previous)
        return last

    def save_final(self) -> Path:
        out = self.run_dir / "final_model"
        self.policy.save_model(str(out), self.processor)
        return out

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()
        if self.vllm is not None:
            self.vllm.close()
            self.vllm = None


def advantage_step(cfg: RunConfig) -> AdvantageStep:
    """The run's engine-neutral advantage step (the Ray controller builds the same from its flags)."""
    r = cfg.reward
    return AdvantageStep(cfg.algorithm.estimator, cfg.algorithm.riskpo, cfg.seed, options=cfg.algorithm.options,
                         clip_range=r.clip_range,
                         overlong_buffer=r.overlong_buffer_len, overlong_factor=r.overlong_penalty_factor,
                         max_new_tokens=cfg.rollout.max_new_tokens)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
