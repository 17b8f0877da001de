"""RiskPO controller for OpenRLHF's Ray engine: a subclass of OpenRLHF's ``PPOTrainer``.

It changes four things and keeps OpenRLHF's loop (``fit``) as is:

- ``experience_maker``: `RiskPOExperienceMaker` holding the engine-neutral `AdvantageStep`;
- ``samples_generator``: records the dataloader order of each rollout's prompts (`PromptOrder`),
  which the experience maker uses to bundle prompts independently of vLLM completion order;
- ``train_step``: adds the step's metrics to the step's logs, which also go to ``--riskpo.metrics_file``
  (the run folder's ``metrics.jsonl``) under the local engine's names (`local_metric_names`);
- checkpoints: the step's state (quantile trackers, pairing RNG) rides in OpenRLHF's DeepSpeed
  ``client_states`` under ``riskpo_estimator`` and is restored on ``--ckpt.load_enable``.

``RiskPOPPOTrainer`` is the Ray actor class (what ``train_ray`` passes to ``.remote``);
``RiskPOPPOTrainerImpl`` is the plain class, constructible without Ray for tests.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import ray

from riskpo_mm.openrlhf_ext import compat

compat.install()

from openrlhf.trainer.ppo_trainer import PPOTrainer  # noqa: E402
from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator  # noqa: E402

from riskpo_mm.algo import AdvantageStep  # noqa: E402
from riskpo_mm.openrlhf_ext.advantages import PromptOrder  # noqa: E402
from riskpo_mm.openrlhf_ext.experience import RiskPOExperienceMaker  # noqa: E402
from riskpo_mm.openrlhf_ext.flags import riskpo_config  # noqa: E402

ESTIMATOR_STATE_KEY = "riskpo_estimator"


class RecordingSamplesGenerator(SamplesGenerator):
    """OpenRLHF's samples generator that records the dataloader order of each rollout's prompts."""

    def __init__(self, *args: Any, prompt_order: PromptOrder, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prompt_order = prompt_order

    def generate_samples(self, **generate_kwargs: Any):
        self.prompt_order.reset()
        return super().generate_samples(**generate_kwargs)

    def _dispatch_prompts_to_vllm(self, prompts, labels, *, images=None, **generate_kwargs):
        self.prompt_order.record(labels)
        return super()._dispatch_prompts_to_vllm(prompts, labels, images=images, **generate_kwargs)


def build_step_from_args(args: Any) -> Optional[AdvantageStep]:
    """The engine-neutral advantage step selected by ``--riskpo.*`` (None for ``--riskpo.estimator off``)."""
    name = args.riskpo.estimator
    if name == "off":
        return None
    seed = args.riskpo.seed if args.riskpo.seed is not None else args.train.seed
    clip = tuple(args.riskpo.reward_clip) if args.riskpo.reward_clip else None
    options = json.loads(args.riskpo.estimator_options) if args.riskpo.estimator_options else None
    return AdvantageStep(name, riskpo_config(args), seed, options=options, clip_range=clip, overlong_buffer=args.riskpo.overlong_buffer,
                         overlong_factor=args.riskpo.overlong_factor, max_new_tokens=args.rollout.max_new_tokens)


def local_metric_names(status: dict) -> dict:
    """OpenRLHF's step status under the local engine's names: its training-step keys as ``train/<key>``
    (the local engine logs the same ``training_step`` keys so), its timings as ``time/...``, the true
    token entropy as ``entropy``; our step's metrics pass through."""
    out: dict = {}
    timing = {"timing/generation": "time/generate", "timing/make_experience": "time/experience",
              "timing/ppo_train": "time/train", "timing/broadcast": "time/weight_sync", "timing/step_total": "time/step"}
    for key, value in status.items():
        if key in timing:
            out[timing[key]] = value
        elif "/" in key:
            out[key] = value
        else:
            out[f"train/{key}"] = value
    if "train/entropy_loss" in out:
        out["entropy"] = out["train/entropy_loss"]
    return out


def eval_metrics(samples: list, n: int, ks: list[int]) -> dict[str, float]:
    """``eval/pass@k`` (unbiased, from each prompt's n graded samples), ``eval/avg@n``, ``eval/format_rate``,
    overall and as ``eval/<task>/...``; samples are OpenRLHF experiences, n per prompt in a row."""
    from collections import defaultdict

    from riskpo_mm.eval.passk import pass_at_k
    from riskpo_mm.openrlhf_ext.advantages import parse_label

    groups: dict[str, list[tuple[list[float], list[float]]]] = defaultdict(list)
    for p in range(len(samples) // n):
        run = samples[p * n:(p + 1) * n]
        task = str(parse_label(run[0].labels[0]).get("task", "default"))
        acc = [float(e.info["accuracy"].reshape(-1)[0]) if "accuracy" in e.info else float(e.rewards[0] > 0)
               for e in run]
        fmt = [float(e.info["format_ok"].reshape(-1)[0]) for e in run if "format_ok" in e.info]
        groups[task].append((acc, fmt))
    logs: dict[str, float] = {}
    for name, rows in [("", [r for v in groups.values() for r in v]), *[(f"{t}/", v) for t, v in sorted(groups.items())]]:
        if not rows:
            continue
        for k in ks:
            if k <= n:
                logs[f"eval/{name}pass@{k}"] = sum(pass_at_k(n, int(round(sum(a))), k) for a, _ in rows) / len(rows)
        logs[f"eval/{name}avg@{n}"] = sum(sum(a) / n for a, _ in rows) / len(rows)
        fmts = [x for _, f in rows for x in f]
        if fmts:
            logs[f"eval/{name}format_rate"] = sum(fmts) / len(fmts)
    return logs


class RiskPOTrainerMixin:
    """The RiskPO parts of the controller; mixed into OpenRLHF's ``PPOTrainer`` below."""

    def install_riskpo(self) -> None:
        """Swap in the RiskPO experience maker and the order-recording samples generator."""
        self.prompt_order = PromptOrder()
        self.experience_maker = RiskPOExperienceMaker(
            self.actor_model_group,
            self.critic_model_group,
            self.reward_model_group,
            self.reference_model_group,
            self.kl_ctl,
            self.strategy,
            self.tokenizer,
            step=build_step_from_args(self.args),
            prompt_order=self.prompt_order,
        )
        self.samples_generator = RecordingSamplesGenerator(
            strategy=self.strategy,
            prompts_dataloader=self.prompts_dataloader,
            eval_dataloader=self.eval_dataloader,
            tokenizer=self.tokenizer,
            vllm_engines=self.vllm_engines,
            prompt_order=self.prompt_order,
        )

    @property
    def step(self) -> Optional[AdvantageStep]:
        return self.experience_maker.step

    def train_step(self, rollout_samples, global_step: int):
        status, global_step = super().train_step(rollout_samples, global_step)
        status.update(self.experience_maker.step_metrics)
        return status, global_step

    @property
    def metrics_log(self):
        path = getattr(self.args.riskpo, "metrics_file", None)
        if not path:
            return None
        if getattr(self, "_metrics_log", None) is None:
            from pathlib import Path

            from riskpo_mm.metrics_log import MetricsLogger

            self._metrics_log = MetricsLogger(Path(path).parent, tensorboard=False)  # OpenRLHF writes TensorBoard
        return self._metrics_log

    def save_logs_and_checkpoints(self, global_step: int, logs_dict=None, client_states=None) -> None:
        client_states = {} if client_states is None else client_states  # same dict reaches the best-ckpt save
        if self.step is not None:
            client_states[ESTIMATOR_STATE_KEY] = self.step.state_dict()
        if self.metrics_log is not None and logs_dict:
            self.metrics_log.log(global_step, local_metric_names(logs_dict))
        super().save_logs_and_checkpoints(global_step, logs_dict, client_states)

    def evaluate(self, global_step, **generate_kwargs):
        """In-training evaluation with the local engine's metrics: unbiased pass@k for ``--riskpo.eval_k``,
        avg@n and format rate from the graded samples, overall and per task, logged as ``eval/...``."""
        import time

        t0 = time.time()
        if self.args.riskpo.eval_max_new_tokens:
            generate_kwargs = {**generate_kwargs, "max_new_tokens": self.args.riskpo.eval_max_new_tokens}
        samples = self.samples_generator.generate_eval_samples(**generate_kwargs)
        logs = eval_metrics(samples, generate_kwargs["n_samples_per_prompt"], self.args.riskpo.eval_k or [1])
        logs["eval/wall_s"] = time.time() - t0
        if self.tensorboard_logger:
            self.tensorboard_logger.log_eval(global_step, logs)
        if self.metrics_log is not None:
            self.metrics_log.log(global_step, logs)
        return logs

    def init_checkpoint_states(self) -> dict:
        states = super().init_checkpoint_states()
        self.restore_estimator_state(states)
        if self.metrics_log is not None:  # a resumed log keeps the steps up to its checkpoint; a fresh one starts empty
            self.metrics_log.truncate_after(int(states.get("global_step", 0)))
        return states

    def restore_estimator_state(self, checkpoint_states: dict) -> bool:
        """Load the advantage step's state (estimator, risk monitor) from checkpoint client states;
        False if there is none to load."""
        state = checkpoint_states.get(ESTIMATOR_STATE_KEY) if checkpoint_states else None
        if state is None or self.step is None:
            return False
        self.step.load_state_dict(state)
        return True


class RiskPOPPOTrainerImpl(RiskPOTrainerMixin, PPOTrainer.__ray_actor_class__):
    """OpenRLHF's ``PPOTrainer`` with the RiskPO estimator, ordering, metrics and checkpoint state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.install_riskpo()


RiskPOPPOTrainer = ray.remote(RiskPOPPOTrainerImpl)
