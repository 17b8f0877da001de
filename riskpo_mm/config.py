"""The one run configuration: a YAML file validated into typed models.

Every field is documented where it is declared (its `description`), and
`riskpo-mm config --explain [KEY]` prints those descriptions (`explain`); unknown
keys and bad values are errors that name the key and what is allowed. The same
model drives both engines (`engine: local | ray`), the evaluation and the launch
scripts.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from riskpo_mm.algo import ESTIMATORS, RiskPOConfig, build_options, resolve_estimator
from riskpo_mm.algo.registry import is_file_spec, takes_riskpo_options

Family = Literal["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_5", "qwen2"]


# OpenRLHF flags that config keys own: set through ray.extra_args they would act on one engine only.
OPENRLHF_FLAGS_OWNED = {
    "reward.clip_range": "reward.clip_range",
    "reward.overlong_buffer_len": "reward.overlong_buffer_len",
    "reward.overlong_penalty_factor": "reward.overlong_penalty_factor",
    "reward.stop_properly_penalty_coef": "a reward weight (it has no local-engine equivalent)",
    "algo.advantage.is_correction_level": "algorithm.loss.is_correction",
    "rollout.batch_size": "rollout.prompts_per_step",
    "rollout.n_samples_per_prompt": "rollout.n_samples_per_prompt",
    "ds.param_dtype": "model.dtype",
    "actor.lr_scheduler": "train.lr_scheduler",
}


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TinyModelSpec(_Section):
    """`model.tiny`: a random-weight tiny model built offline at `model.path` when that folder has no
    config.json (tests and CPU demos); an existing folder is used as it is."""

    family: Family = Field("qwen2_5_vl", description="Architecture of the tiny model (qwen2: a text-only model).")
    size: Literal["xs", "s", "m"] = Field(
        "s", description="Model size: xs ~1M, s ~4.5M, m ~12M non-embedding parameters.")
    tokenizer: Literal["compact", "qwen"] = Field(
        "compact", description="compact = a 2k-token BPE vocabulary (small embeddings); qwen = the family's real "
        "Qwen vocabulary.")
    seed: int = Field(0, description="Seed of the random weights.")


class ModelConfig(_Section):
    """`model`: the policy model that is trained (both engines)."""

    path: str = Field(description="Model folder (or hub id on machines that can reach a hub); built there from "
                      "`tiny` when it is missing.")
    family: Optional[Family] = Field(
        None, description="Qwen family, which selects the chat template and image resizing of riskpo-mm's own "
        "prompt encoding (local engine, SFT, evaluation); None: inferred from the model config's model_type.")
    tiny: Optional[TinyModelSpec] = Field(
        None, description="Build a tiny random-weight model at `path` when it has no config.json; None: the "
        "folder (or hub id) must exist.")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = Field(
        "sdpa", description="Attention kernel of the trained model (--ds.attn_implementation; also SFT): sdpa = "
        "PyTorch's fused attention, eager = plain matmuls, flash_attention_2 = the flash-attn package (GPU).")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Training dtype (--ds.param_dtype; float32, riskpo-mm's addition to OpenRLHF, "
        "is the CPU default), also of SFT, the Ray driver's evaluation and, unless rollout.vllm_dtype, vLLM.")
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: less memory, more compute (both engines).")


class DataSource(_Section):
    """One record file of `data.train` / `data.test`: a path string or `{path, weight}`."""

    path: str = Field(description="JSONL file, parquet file or HF dataset folder of records.")
    weight: float = Field(
        1.0, gt=0, description="Relative sampling weight in the train mixture: each slot picks a source with "
        "probability proportional to it (small sources are over-sampled); unused for data.test.")


class SyntheticSpec(_Section):
    """`data.synthetic`: render the synthetic geometry VQA set (`riskpo-mm make-geometry`) into `dir` when
    its train.jsonl / test.jsonl are missing (existing files are used as they are); its splits fill
    `data.train` / `data.test` where those are empty."""

    dir: str = Field(description="Output folder (train.jsonl, test.jsonl, images/).")
    n: int = Field(2000, gt=0, description="Records in total, train + test.")
    seed: int = Field(0, description="Generator seed: the same seed renders the same set.")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="Share of the records written to test.jsonl.")
    size: int = Field(112, ge=28, description="Image side in pixels.")
    levels: list[int] = Field(
        default_factory=lambda: [1, 2, 3], description="Difficulty levels drawn from: 0 shape colour (the CPU "
        "demo's warm-up), 1 shapes and counts, 2 angles, 3 multi-step geometry (areas, triangles, parallels).")


class DataConfig(_Section):
    """`data`: the records to train and evaluate on, and how prompts and images are prepared."""

    train: list[DataSource] = Field(
        default_factory=list, description="Training records: a path, or a list of paths / {path, weight} "
        "sources mixed by weight; empty: data.synthetic's train split.")
    test: list[DataSource] = Field(
        default_factory=list, description="Held-out records for evaluation, each used once in order; empty: "
        "data.synthetic's test split, or no evaluation.")
    synthetic: Optional[SyntheticSpec] = Field(
        None, description="Generate the synthetic geometry VQA set and use its splits where data.train / "
        "data.test are empty; None: off.")
    on_bad_record: Literal["error", "skip"] = Field(
        "error", description="A record failing validation (schema, task, images): error = stop, naming file, "
        "line and field; skip = leave it out and list it.")
    min_pixels: int = Field(
        3136, gt=0, description="Smallest image area in pixels after Qwen-VL resizing, on both engines (Ray's "
        "actors and vLLM read it from <run>/ray_model, the model folder with its processor config set to it).")
    max_pixels: int = Field(
        401408, gt=0, description="Largest image area in pixels after resizing (both engines, as min_pixels); "
        "loading (both engines) also rejects images whose header declares over 64x this.")
    image_root: Optional[str] = Field(
        None,
        description="Folder that image paths may point into besides the data file's own folder; "
        "paths that leave both are rejected.",
    )
    system_prompt: Optional[str] = Field(
        None, description="System message put before every prompt whose record has no system turn (both "
        "engines, SFT and evaluation); None: none.")
    max_prompt_len: int = Field(
        1024, gt=0, description="Prompt budget in tokens: sequences are limited to it plus the max new tokens "
        "(vLLM's max_model_len; OpenRLHF's --data.max_len on Ray); the local HF sampler does not apply it.")
    shuffle: bool = Field(
        True, description="A fresh seeded permutation of the train records every epoch; false: the mixture's "
        "fixed order (local engine only: OpenRLHF's dataloader on Ray always shuffles, so engine: ray rejects false).")

    @field_validator("train", "test", mode="before")
    @classmethod
    def _paths_as_sources(cls, v: Any) -> Any:
        if isinstance(v, (str, dict)):
            v = [v]
        return [{"path": x} if isinstance(x, str) else x for x in (v or [])]

    @model_validator(mode="after")
    def _pixels_ordered(self) -> "DataConfig":
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"data.min_pixels ({self.min_pixels}) must be <= data.max_pixels ({self.max_pixels})")
        return self


class RolloutConfig(_Section):
    """`rollout`: how the RL responses are sampled."""

    prompts_per_step: int = Field(
        10, gt=0, description="Prompts per RL step, P (OpenRLHF --rollout.batch_size); a multiple of "
        "algorithm.riskpo.bundle_size under estimator riskpo; also the evaluation harness's prompt batch.")
    n_samples_per_prompt: int = Field(
        8, gt=0, description="Responses sampled per prompt, n: the group of grpo/dapo, the papers of a RiskPO "
        "bundle; needs >= 2 for any signal (the Ray engine refuses fewer).")
    max_new_tokens: int = Field(
        256, gt=0, description="Token limit of an RL response (longer ones are cut and count as truncated); "
        "the default of eval.max_new_tokens and the end of reward.overlong_buffer_len's window.")
    temperature: float = Field(
        1.0, gt=0, description="Sampling temperature of RL rollouts; the training log-probs use the same "
        "temperature (OpenRLHF --rollout.temperature).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus-sampling threshold of RL rollouts (1: off).")
    backend: Optional[Literal["vllm", "hf"]] = Field(
        None, description="Local engine's sampler: a vLLM engine colocated in the training process (weights "
        "synced after every optimizer step), or HF generate. Default: vllm wherever vllm imports. The Ray "
        "engine always samples with its vLLM rollout actors (hf is rejected there); its driver's before/after "
        "evaluation uses this sampler.")
    vllm_dtype: Optional[Literal["float32", "bfloat16", "float16"]] = Field(
        None, description="dtype of the local engine's vLLM sampler (None: model.dtype). Weights are cast at each "
        "sync; the training forward recomputes the old log-probs, so only the rollout log-probs (IS correction) "
        "carry the sampler's precision.")
    vllm_kv_cache_gib: float = Field(
        1.0, gt=0, description="vLLM on a CPU (local engine, Ray driver's evaluation): KV cache size in GiB "
        "(VLLM_CPU_KVCACHE_SPACE).")
    vllm_gpu_memory_utilization: float = Field(
        0.4, gt=0, le=1, description="vLLM on a GPU (local engine, Ray driver's evaluation): its share of the "
        "GPU; the rest trains. ray.vllm_gpu_memory_utilization is the Ray rollout actors'.")

    @model_validator(mode="after")
    def _default_backend(self) -> "RolloutConfig":
        if self.backend is None:
            import importlib.util

            self.backend = "vllm" if importlib.util.find_spec("vllm") is not None else "hf"
        return self


class LossConfig(_Section):
    """`algorithm.loss`: the clipped surrogate, OpenRLHF's ``PolicyLoss`` on both engines (``actor.*`` flags)."""

    ratio: Literal["token", "sequence"] = Field(
        "token", description="Importance ratio: per token (PPO, the authors' recipes) or per response, the "
        "geometric mean of its token ratios (GSPO; the paper's sequence ratio). The sequence ratio averages "
        "per response (agg seq_mean).")
    clip_low: float = Field(0.2, ge=0, description="Lower clip: the ratio is clipped at 1 - clip_low.")
    clip_high: float = Field(0.2, ge=0, description="Upper clip, 1 + clip_high (clip-higher: DAPO uses 0.28).")
    dual_clip: Optional[float] = Field(
        None, gt=1, description="Dual-clip constant c > 1 bounding the loss of negative advantages (3.0 in the "
        "paper's recipe); None: off.")
    agg: Optional[Literal["token_mean", "seq_mean"]] = Field(
        None, description="Loss aggregation: token_mean = mean over all response tokens; seq_mean = mean over "
        "responses of their token mean. Default: token_mean for the token ratio, seq_mean for the sequence ratio.")
    is_correction: Literal["off", "token", "seq"] = Field(
        "off", description="Train/rollout importance-sampling correction with the rollout engine's log-probs "
        "(OpenRLHF's --algo.advantage.is_correction_level): off; token = per token; seq = per sequence "
        "(geometric-mean ratio, masking only).")
    kl_coef: float = Field(
        0.0, ge=0, description="KL-to-reference loss weight (0: no reference model is loaded).")
    entropy_coef: float = Field(
        0.0, ge=0, description="Entropy bonus weight (0: entropy is logged, not rewarded).")

    @model_validator(mode="after")
    def _agg_for_ratio(self) -> "LossConfig":
        if self.agg is None:
            self.agg = "seq_mean" if self.ratio == "sequence" else "token_mean"
        elif self.ratio == "sequence" and self.agg == "token_mean":
            raise ValueError("algorithm.loss.agg: the sequence ratio averages per response (OpenRLHF's GSPO); "
                             "use agg: seq_mean or leave agg unset")
        return self


class AlgorithmConfig(_Section):
    """`algorithm`: the advantage estimator, its RiskPO options and the policy loss."""

    estimator: str = Field(
        "riskpo", description="Advantage estimator (one AdvantageStep on both engines): riskpo = bundle MVaR "
        "advantages (algorithm.riskpo); grpo = (r - group mean) / group std; dr_grpo = r - group mean; dapo = "
        "GRPO's, dropping prompts whose rewards all tie (dynamic sampling); or 'path/to/file.py:Class', an "
        "estimator outside the package (riskpo_mm.algo.Estimator), loaded on both engines (Ray's controller too).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Options of the estimator, checked against its Options dataclass "
        "(unknown keys are errors); riskpo and its variants take theirs from algorithm.riskpo instead.")
    preset: str = Field(
        "riskpo", description="RiskPO preset that fills algorithm.riskpo before its keys apply: riskpo = the "
        "paper's defaults; riskpo_authors_easy_math / riskpo_authors_hard_math = the authors' recipes; "
        "riskpo_seeking = the risk-seeking ablation (docs/method.md section 8). It sets no rollout or reward key.")
    riskpo: RiskPOConfig = Field(
        default_factory=RiskPOConfig, description="RiskPO estimator options (the preset's values unless given); "
        "with another estimator they still drive the bundle/* risk metrics.")
    loss: LossConfig = Field(default_factory=LossConfig, description="The policy loss.")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        preset = data.get("preset", "riskpo")
        if preset not in RiskPOConfig.PRESETS:
            raise ValueError(f"algorithm.preset: unknown preset {preset!r}; allowed: {sorted(RiskPOConfig.PRESETS)}")
        overrides = data.get("riskpo") or {}
        if isinstance(overrides, RiskPOConfig):
            return data
        if not isinstance(overrides, dict):
            raise ValueError("algorithm.riskpo must be a mapping of RiskPOConfig fields")
        known = {f.name for f in dataclasses.fields(RiskPOConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            hints = "".join(f"; did you mean {close[0]!r} for {u!r}?" for u in unknown
                            if (close := difflib.get_close_matches(u, known, n=1)))
            raise ValueError(f"algorithm.riskpo: unknown key(s) {unknown}{hints} (allowed: {sorted(known)})")
        data["riskpo"] = {**dataclasses.asdict(RiskPOConfig.preset(preset)), **overrides}
        return data

    @field_validator("estimator")
    @classmethod
    def _known_estimator(cls, v: str) -> str:
        if is_file_spec(v):
            v = os.path.abspath(v.rpartition(":")[0]) + ":" + v.rpartition(":")[2]  # every process reads the same file
        resolve_estimator(v)  # unknown names, missing files and bad classes are errors naming them
        return v

    @model_validator(mode="after")
    def _estimator_options(self) -> "AlgorithmConfig":
        if self.uses_riskpo_options:
            if self.options:
                raise ValueError(f"algorithm.options: estimator {self.estimator!r} takes its options from "
                                 "algorithm.riskpo")
        else:
            build_options(self.estimator, self.options)
        return self

    @property
    def uses_riskpo_options(self) -> bool:
        """True for riskpo and its variants (their options are algorithm.riskpo)."""
        return takes_riskpo_options(self.estimator)


class TaskRewardWeights(_Section):
    """`reward.weights.<task>`: how accuracy and format mix into one task's reward."""

    accuracy: float = Field(1.0, description="Weight of the accuracy component (a grader's score in [0, 1]).")
    format: float = Field(
        0.0, description="Weight of the format component (1 when the response follows the task's answer "
        "format); a task listed without it gets 0, not the router's default.")


class RewardConfig(_Section):
    """`reward`: how responses are graded and shaped into the scalar reward (both engines; Ray's reward
    workers get the same settings)."""

    weights: dict[str, TaskRewardWeights] = Field(
        default_factory=dict, description="Per-task accuracy/format weights; unset tasks use the router's defaults "
        "(e.g. geometry, numeric, mcq: 0.9 / 0.1; math, code: 1.0 / 0.0).")
    binary_form: Literal["01", "pm1"] = Field(
        "01", description="Components as 0/1, or pm1: each mapped to 2x - 1, the +-1 reward of the authors' "
        "hard-math recipe.")
    task_weights: dict[str, float] = Field(
        default_factory=dict, description="Multiplier on the reward of each task in mixed runs (unlisted: 1), "
        "applied before clip_range.")
    clip_range: Optional[tuple[float, float]] = Field(
        None, description="Clip every reward to [low, high] before the estimator (both engines); None: no clip.")
    overlong_buffer_len: Optional[int] = Field(
        None, gt=0, description="DAPO's soft overlong penalty: responses longer than rollout.max_new_tokens minus "
        "this many tokens lose up to overlong_penalty_factor, linearly; None: off.")
    overlong_penalty_factor: float = Field(1.0, ge=0, description="Largest overlong penalty (DAPO: 1.0).")
    functions: dict[str, str] = Field(
        default_factory=dict, description="User graders by task: {my_task: 'path/to/file.py:fn'}, fn(record, "
        "response) -> GradeOutcome or an accuracy in [0, 1]; used by both engines (paths are made absolute).")
    code_timeout_s: float = Field(5.0, gt=0, description="Wall-clock limit of one code answer's whole test set.")
    code_memory_mb: int = Field(512, gt=0, description="Memory limit of one code answer's sandbox.")
    code_isolation: Literal["auto", "bwrap", "none"] = Field(
        "auto", description="Sandbox isolation for model-written code: auto or bwrap = bubblewrap, refusing to "
        "run code without it (the two are the same); none = no namespaces (trusted code only; docs/sandbox.md).")
    workers: int = Field(2, gt=0, description="Code answers graded at once per process (sandboxes in parallel).")


class TrainConfig(_Section):
    """`train`: the RL optimisation (OpenRLHF's actor, DeepSpeed, on both engines)."""

    steps: int = Field(
        20, gt=0, description="RL steps, one rollout batch each (Ray: rounded up to whole passes when the "
        "train set holds fewer than steps x prompts_per_step prompts).")
    batch_size: Optional[int] = Field(
        None, gt=0, description="Sequences per optimizer step (all ranks); default prompts_per_step * n, one update per step."
    )
    lr: float = Field(
        1e-6, gt=0, description="Peak actor learning rate (Adam): constant after warmup on the local engine; "
        "OpenRLHF's default cosine decay to 0.1 x lr on the Ray engine.")
    weight_decay: float = Field(0.0, description="Actor Adam weight decay (RL only).")
    warmup_steps: int = Field(0, ge=0, description="Linear learning-rate warmup over the first N RL steps.")
    lr_scheduler: Literal["constant_with_warmup", "cosine_with_min_lr"] = Field(
        "constant_with_warmup", description="Learning rate after the warmup, on both engines: constant_with_warmup "
        "= train.lr throughout; cosine_with_min_lr = cosine decay to 0.1 x train.lr at the last step (OpenRLHF's "
        "own default).")
    micro_batch_size: int = Field(
        8, gt=0, description="Sequences per forward/backward on each rank (training and log-prob passes).")
    ppo_epochs: int = Field(
        1, gt=0, description="Passes over each step's batch (OpenRLHF --train.max_epochs): updates per step = "
        "ppo_epochs x prompts_per_step x n / batch_size.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient-norm clip (RL and the SFT warm start).")
    zero_stage: Literal[0, 1, 2, 3] = Field(
        0, description="DeepSpeed ZeRO stage: 0 off, 1 optimizer states, 2 + gradients, 3 + parameters "
        "sharded across ranks; the local engine's vLLM backend needs <= 2.")


class SFTConfig(_Section):
    """`sft`: supervised warm start on the train split's gold responses (reasoning + answer), run in one
    process before RL starts (both engines); cached in `<run>/sft_model`."""

    enabled: bool = Field(
        False, description="Warm-start before RL; the cached model is reused while model, data, sft, seed and "
        "train.max_grad_norm are unchanged.")
    steps: int = Field(
        200, gt=0, description="Optimizer steps (warmup over the first 5%, then cosine down to 0.1 x lr).")
    lr: float = Field(
        1e-3, gt=0, description="Peak AdamW learning rate; the default suits tiny random-weight models (warm-start "
        "real models with OpenRLHF's train_sft).")
    batch_size: int = Field(16, gt=0, description="Records per step.")
    seed: Optional[int] = Field(
        None, description="Seed of the warm start (its init order and batches); None: the run's seed. Fix it to "
        "compare RL seeds from one warm start.")

class EvalConfig(_Section):
    """`eval`: the pass@k evaluation on data.test, before and after RL and every `every_steps` (the same
    harness and settings on both engines)."""

    every_steps: int = Field(
        0, ge=0, description="In-training validation every N RL steps (0: off); it also keeps the best "
        "model by best_metric.")
    n: int = Field(8, gt=0, description="Samples per problem (avg@n and maj@n use all of them).")
    k: list[int] = Field(
        default_factory=lambda: [1, 2, 4, 8], description="k values of the unbiased pass@k, each in [1, n].")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of evaluation.")
    max_new_tokens: Optional[int] = Field(
        None, gt=0, description="Token limit of an evaluation response; defaults to rollout.max_new_tokens.")
    max_problems: Optional[int] = Field(
        None, gt=0, description="Evaluate only the first N test records (None: all).")
    best_metric: str = Field(
        "pass@1", description="Metric that selects the kept best checkpoint (pass@<k>, avg@<n>, maj@<n>, "
        "format_rate, reward_mean; with every_steps > 0).")
    before_and_after: bool = Field(
        True, description="Evaluate before and after RL into report.json (eval_before.json, eval_after.json).")

    @model_validator(mode="after")
    def _k_within_n(self) -> "EvalConfig":
        bad = [k for k in self.k if k < 1 or k > self.n]
        if bad:
            raise ValueError(f"eval.k values {bad} must lie in [1, eval.n={self.n}]")
        return self


class CheckpointConfig(_Section):
    """`checkpoint`: resumable checkpoints under `<run>/checkpoints` (`riskpo-mm train --resume`)."""

    every_steps: int = Field(
        10, ge=0, description="Checkpoint every N RL steps; 0: none during training (the local engine still "
        "writes one at the last step; final_model is always saved).")
    keep_last: int = Field(2, gt=0, description="Checkpoints kept; older ones are deleted.")


class LoggingConfig(_Section):
    """`logging`: where step metrics go besides `<run>/metrics.jsonl`."""

    tensorboard: bool = Field(True, description="Write TensorBoard events to <run>/tensorboard.")
    wandb: bool = Field(False, description="Also log to Weights & Biases.")
    wandb_project: str = Field("riskpo-mm", description="W&B project (used when wandb is true).")


class RayConfig(_Section):
    """`ray`: the scale-out engine, OpenRLHF's Ray PPO trainer with vLLM rollouts (engine: ray only)."""

    num_nodes: int = Field(1, gt=0, description="Nodes of the actor (and reference model).")
    gpus_per_node: int = Field(
        8, gt=0, description="GPUs per node of the actor; a local cluster on a CPU-only machine declares them.")
    vllm_num_engines: int = Field(4, gt=0, description="vLLM rollout engines.")
    vllm_tensor_parallel_size: int = Field(1, gt=0, description="GPUs per vLLM engine (tensor parallel).")
    vllm_gpu_memory_utilization: float = Field(
        0.6, gt=0, le=1, description="Share of each GPU the vLLM rollout engines take.")
    colocate_all: bool = Field(
        True, description="Actor, reference and vLLM engines share GPUs (num_nodes x gpus_per_node in all); "
        "false: the vLLM engines need vllm_num_engines x vllm_tensor_parallel_size more.")
    extra_args: dict[str, Any] = Field(
        default_factory=dict, description="Raw OpenRLHF flags passed through, e.g. {'vllm.enable_sleep': true}; "
        "flags a config key owns are rejected (set that key).")


class RunConfig(_Section):
    """A run: the whole YAML file (`riskpo-mm config --explain` lists every key)."""

    name: str = Field(description="Run name: fills '{name}' in output_dir and names the run in reports.")
    engine: Literal["local", "ray"] = Field(
        "local", description="local = this process (or one node under the deepspeed launcher); ray = "
        "OpenRLHF's Ray PPO trainer with vLLM rollout actors (section ray).")
    seed: int = Field(
        0, description="Seed of the data mixture and order, sampling, the estimator's pairing RNG and SFT "
        "(OpenRLHF --train.seed).")
    output_dir: str = Field("runs/{name}", description="Run folder; '{name}' is replaced by the run name.")
    model: ModelConfig = Field(description="The policy model.")
    data: DataConfig = Field(default_factory=DataConfig, description="Records and prompt/image preparation.")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="Sampling of RL responses.")
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig, description="Estimator and loss.")
    reward: RewardConfig = Field(default_factory=RewardConfig, description="Grading and reward shaping.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="RL optimisation.")
    sft: SFTConfig = Field(default_factory=SFTConfig, description="Supervised warm start before RL.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="pass@k evaluation on data.test.")
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig, description="Resumable checkpoints.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Metric sinks.")
    ray: RayConfig = Field(default_factory=RayConfig, description="The Ray engine's cluster layout.")

    @model_validator(mode="after")
    def _consistent(self) -> "RunConfig":
        if self.algorithm.uses_riskpo_options:
            p, b = self.rollout.prompts_per_step, self.algorithm.riskpo.bundle_size
            if p % b:
                raise ValueError(
                    f"rollout.prompts_per_step ({p}) must be a multiple of algorithm.riskpo.bundle_size ({b}) "
                    "so every bundle is complete"
                )
        P, n = self.rollout.prompts_per_step, self.rollout.n_samples_per_prompt
        samples = P * n
        batch = self.train.batch_size or samples
        if samples % batch:
            raise ValueError(f"train.batch_size ({batch}) must divide rollout.prompts_per_step * "
                             f"rollout.n_samples_per_prompt ({P} * {n} = {samples})")
        if batch % self.train.micro_batch_size:
            if self.train.batch_size is None:
                raise ValueError(
                    f"train.batch_size is not set, so it is rollout.prompts_per_step * rollout.n_samples_per_prompt "
                    f"({P} * {n} = {batch}), which is not a multiple of train.micro_batch_size "
                    f"({self.train.micro_batch_size}); set train.micro_batch_size to a divisor of {batch}, or set "
                    "train.batch_size")
            raise ValueError(f"train.batch_size ({batch}) must be a multiple of train.micro_batch_size "
                             f"({self.train.micro_batch_size})")
        if self.engine == "ray" and not self.data.shuffle:
            raise ValueError("data.shuffle: false keeps the records' order on the local engine only; OpenRLHF's "
                             "dataloader on engine: ray always shuffles (drop data.shuffle or use engine: local)")
        if self.engine == "ray" and self.rollout.backend == "hf":
            raise ValueError("rollout.backend: hf is the local engine's sampler; engine: ray samples with its "
                             "vLLM rollout actors (drop rollout.backend or use engine: local)")
        if self.rollout.backend == "vllm" and self.engine == "local" and self.train.zero_stage == 3:
            raise ValueError("rollout.backend: vllm with train.zero_stage 3: the colocated engine takes full weights "
                             "after each step; use zero_stage <= 2 or rollout.backend: hf")
        for task, spec in list(self.reward.functions.items()):
            path, sep, name = spec.rpartition(":")
            if not sep or not path.endswith(".py") or not name:
                raise ValueError(f"reward.functions.{task}: expected 'path/to/file.py:function', got {spec!r}")
        clip = self.reward.clip_range
        if clip is not None and clip[0] >= clip[1]:
            raise ValueError(f"reward.clip_range {list(clip)}: low must be below high")
        buffer = self.reward.overlong_buffer_len
        if buffer is not None and buffer >= self.rollout.max_new_tokens:
            raise ValueError(f"reward.overlong_buffer_len ({buffer}) must be below rollout.max_new_tokens "
                             f"({self.rollout.max_new_tokens})")
        for key in self.ray.extra_args:
            if key.lstrip("-") in OPENRLHF_FLAGS_OWNED:
                raise ValueError(f"ray.extra_args.{key}: set {OPENRLHF_FLAGS_OWNED[key.lstrip('-')]} instead, "
                                 "which means the same on both engines")
        if not self.data.train and self.data.synthetic is None:
            raise ValueError("data.train is empty and data.synthetic is not set: nothing to train on")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir.format(name=self.name))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """`["algorithm.riskpo.alpha=0.1", ...]` applied to a raw config dict (values parsed as YAML)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. algorithm.riskpo.alpha=0.1")
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = _parse_value(value)
    return raw


def _section_at(loc: tuple) -> Any:
    """The pydantic model (or dataclass) that holds the key at `loc`, or None (inside a free dict)."""
    import typing

    node: Any = RunConfig
    skip = False  # the next part is a dict key or a list index, not a field
    for part in loc[:-1]:
        if skip or isinstance(part, int):
            skip = False
            continue
        fields = getattr(node, "model_fields", None)
        if fields is None or part not in fields:
            return None
        ann = fields[part].annotation
        origin = typing.get_origin(ann)
        if origin in (dict, typing.Union) and dict in [typing.get_origin(a) for a in typing.get_args(ann)] + [origin]:
            skip = True
            ann = typing.get_args(ann)[-1] if origin is dict else ann
        node = _unwrap(ann)
        if node is None:
            return None
    return node


def _unwrap(ann: Any) -> Any:
    """The model class inside Optional[...] / list[...] / dict[...] annotations, else None."""
    import typing

    if isinstance(ann, type) and (issubclass(ann, BaseModel) or dataclasses.is_dataclass(ann)):
        return ann
    for arg in typing.get_args(ann):
        found = _unwrap(arg)
        if found is not None:
            return found
    return None


def _known_keys(section: Any) -> list[str]:
    if section is None:
        return []
    if dataclasses.is_dataclass(section):
        return [f.name for f in dataclasses.fields(section)]
    return list(getattr(section, "model_fields", {}))


def _suggest(word: str, known: list[str], n: int = 1) -> list[str]:
    """The known names closest to `word` (difflib), else those it is a prefix of."""
    return difflib.get_close_matches(word, known, n=n) or [k for k in known if k.startswith(word)][:n]


_KEY_PREFIX = re.compile(r"^([a-z_]+(?:\.[a-z_0-9/]+)+)[ :(]")


def _tidy(msg: str) -> str:
    """No internal class names in messages: `RiskPOConfig.alpha` -> `algorithm.riskpo.alpha`."""
    msg = re.sub(r"RiskPOConfig\.(\w+)", r"algorithm.riskpo.\1", msg)
    msg = re.sub(r" or instance of \w+", "", msg)
    return re.sub(r"\b(\w+)Config\.(\w+)", lambda m: f"{m.group(1).lower()}.{m.group(2)}", msg)


def _error_lines(err: ValidationError) -> list[tuple[tuple, str]]:
    """(key path, message) for each error; the key path is the key the message is about."""
    out = []
    for e in err.errors():
        loc = tuple(e["loc"])
        key = ".".join(str(p) for p in loc)
        msg = _tidy(str(e["msg"]).removeprefix("Value error, "))
        if e["type"] == "extra_forbidden":
            known = _known_keys(_section_at(loc))
            close = _suggest(str(loc[-1]), known)
            where = ".".join(str(p) for p in loc[:-1]) or "the top level"
            msg = f"unknown key" + (f"; did you mean {'.'.join([*map(str, loc[:-1]), close[0]])}?" if close else "")
            if known:
                msg += f" (keys of {where}: {', '.join(known)})"
        elif e["type"] == "missing":
            msg = "missing (required)"
        m = _KEY_PREFIX.match(msg)
        if m and (not key or m.group(1).startswith(key)):  # the message names its own (more precise) key
            out.append((tuple(m.group(1).split(".")), msg))
        elif not key:
            out.append(((), msg))
        else:
            out.append((loc, f"{key}: {msg}"))
    return out


def _format_errors(err: ValidationError, source: str, overrides: list[str] | None = None,
                   file_ok: bool = False) -> str:
    """One line per problem naming the key; a problem that comes from `--set KEY=...` says so."""
    overrides = overrides or []
    keys = [(o.partition("=")[0].strip(), o) for o in overrides]
    lines = [f"invalid config {source}:"]
    for loc, msg in _error_lines(err):
        dotted = ".".join(map(str, loc))
        blamed = [o for k, o in keys if dotted and (dotted == k or dotted.startswith(k + ".") or k.startswith(dotted + "."))]
        if not blamed and file_ok:
            blamed = [o for k, o in keys if k in msg] or [o for _, o in keys]
        if blamed:
            msg += f"  (from --set {', --set '.join(blamed)})"
        lines.append(f"  {msg}")
    return "\n".join(lines)


def validate_config(raw: dict, source: str = "<dict>") -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config, apply `--set` overrides, validate. Raises ConfigError naming the key (and the
    `--set` it came from)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        with path.open() as f:  # a file stream: YAML errors name the file, not "<unicode string>"
            raw = yaml.safe_load(f) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    overrides = list(overrides or [])
    merged = apply_overrides(raw, overrides)
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as err:
        file_ok = False
        if overrides:
            try:
                RunConfig.model_validate(raw)
                file_ok = True
            except ValidationError:
                pass
        raise ConfigError(_format_errors(err, str(path), overrides, file_ok)) from None


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}` (lists and other values are leaves)."""
    if not isinstance(tree, dict) or (prefix and not tree):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


# ── the keys documented (`riskpo-mm config --explain [KEY]`) ──

# Keys typed `str` whose values are a fixed set (validated against these registries).
_CHOICES: dict[str, Any] = {"algorithm.estimator": lambda: [*(k for k in ESTIMATORS if not is_file_spec(k)),
                                                             "path/to/file.py:Class"],
                            "algorithm.preset": lambda: RiskPOConfig.preset_names()}


@dataclasses.dataclass
class KeyDoc:
    """One documented key: its dotted path (`data.train[*].path`, `reward.weights.<task>.accuracy` for
    list items and mapping values), the section it sits in, type, default and description."""

    key: str
    section: str
    type: str
    default: str
    description: str
    presets: dict[str, Any] = dataclasses.field(default_factory=dict)  # RiskPO fields: presets that change it
    is_section: bool = False


@dataclasses.dataclass
class SectionDoc:
    key: str  # "" for the top level
    doc: str


def _fields_of(section: Any) -> list[tuple[str, Any, Any, str, list]]:
    """(name, annotation, default, description, constraints) of each field of a pydantic section or a
    dataclass (RiskPOConfig, whose descriptions are field metadata)."""
    import typing

    from pydantic_core import PydanticUndefined

    out = []
    if dataclasses.is_dataclass(section):
        hints = typing.get_type_hints(section)
        for f in dataclasses.fields(section):
            if not f.init:
                continue
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else _REQUIRED)
            out.append((f.name, hints[f.name], default, f.metadata.get("description") or "", []))
        return out
    for name, f in section.model_fields.items():
        if f.default is not PydanticUndefined:
            default = f.default
        elif f.default_factory is not None:
            default = f.default_factory()
        else:
            default = _REQUIRED
        out.append((name, f.annotation, default, f.description or "", list(f.metadata)))
    return out


_REQUIRED = object()
_CONSTRAINT_OPS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def _type_text(ann: Any, constraints: list = ()) -> str:
    import types
    import typing

    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is Literal:
        text = " | ".join(str(a) for a in args)
    elif origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        text = " | ".join(_type_text(a) for a in rest) + (" | null" if len(rest) < len(args) else "")
    elif origin is list:
        text = f"list of {_type_text(args[0])}"
    elif origin is tuple:
        text = f"list of {_type_text(args[0])}" if len(args) == 2 and args[1] is Ellipsis else \
            "[" + ", ".join(_type_text(a) for a in args) + "]"
    elif origin is dict:
        text = f"mapping of {_type_text(args[0])} to {_type_text(args[1])}"
    elif _unwrap(ann) is not None:
        text = "section"
    elif ann is Any:
        text = "any"
    else:
        text = getattr(ann, "__name__", str(ann))
    bounds = [f"{op} {getattr(c, name)}" for c in constraints for name, op in _CONSTRAINT_OPS
              if getattr(c, name, None) is not None]
    return text + (f", {' and '.join(bounds)}" if bounds else "")


def _value_text(value: Any) -> str:
    if value is _REQUIRED:
        return "required"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def _section_doc(section: Any) -> str:
    doc = re.sub(r"^`[^`]+`: ", "", " ".join((section.__doc__ or "").split()))
    return doc[:1].upper() + doc[1:]


def config_docs() -> tuple[list[SectionDoc], list[KeyDoc]]:
    """Every section and every key of RunConfig, nested sections (RiskPOConfig included) after the key
    that holds them."""
    import typing

    sections: list[SectionDoc] = []
    keys: list[KeyDoc] = []

    def walk(model: Any, prefix: str) -> None:
        sections.append(SectionDoc(prefix, _section_doc(model)))
        nested = []
        for name, ann, default, description, constraints in _fields_of(model):
            key = f"{prefix}.{name}" if prefix else name
            sub = _unwrap(ann)
            type_text = _type_text(ann, constraints)
            if key in _CHOICES:
                type_text = " | ".join(_CHOICES[key]())
            presets = RiskPOConfig.preset_overrides(name) if model is RiskPOConfig else {}
            shown = "" if isinstance(default, BaseModel) or dataclasses.is_dataclass(default) else _value_text(default)
            if sub is not None:
                origin = typing.get_origin(ann)
                sub_prefix = key + ("[*]" if origin is list else ".<task>" if origin is dict else "")
                nested.append((sub, sub_prefix))
                type_text = type_text.replace("section", f"[{sub_prefix}]")
            keys.append(KeyDoc(key, prefix, type_text, shown, description, presets, is_section=sub is not None))
        for sub, sub_prefix in nested:
            walk(sub, sub_prefix)

    walk(RunConfig, "")
    return sections, keys


def _segments(key: str) -> list[str]:
    return [s for s in re.sub(r"\[[^\]]*\]", "", key).split(".") if s]


def _matches(pattern: str, query: list[str]) -> bool:
    """`reward.weights.<task>.accuracy` matches `reward.weights.math.accuracy`; `data.train[*].path`
    matches `data.train.path` and `data.train[0].path`."""
    parts = _segments(pattern)
    return len(parts) == len(query) and all(p == q or p.startswith("<") for p, q in zip(parts, query))


def _under(section: str, query: list[str]) -> bool:
    """Section `section` is the section `query` names or lies inside it."""
    parts = _segments(section)
    return bool(query) and len(parts) >= len(query) and _matches(".".join(parts[: len(query)]), query)


def _key_text(doc: KeyDoc, width: int = 100) -> str:
    import textwrap

    head = f"  {doc.key}  {doc.type}"
    if doc.default:
        head += f"  (default: {doc.default}"
        if doc.presets:
            head += "; " + ", ".join(f"{p}: {_value_text(v)}" for p, v in doc.presets.items())
        head += ")"
    body = textwrap.fill(doc.description or "(undocumented)", width=width, initial_indent=" " * 6,
                         subsequent_indent=" " * 6, break_on_hyphens=False, break_long_words=False)
    return f"{head}\n{body}"


def explain(key: Optional[str] = None) -> str:
    """The documentation of every key, grouped by section; or of one key or section (dotted). Raises
    ConfigError naming an unknown key, with the closest known ones."""
    import textwrap

    sections, keys = config_docs()
    if key is None or not key.strip():
        chosen_sections, chosen_keys = sections, []
    else:
        query = _segments(key.strip())
        chosen_sections = [s for s in sections if s.key and _under(s.key, query)]
        chosen_keys = [k for k in keys if _matches(k.key, query)]  # a section's own key first
        if not chosen_sections and not chosen_keys:
            siblings = {k.key.rsplit(".", 1)[-1]: k.key for k in keys
                        if k.section and _matches(k.section, query[:-1])} if len(query) > 1 else {}
            close = [siblings[c] for c in _suggest(query[-1], list(siblings), n=3)] if siblings else \
                _suggest(".".join(query), [k.key for k in keys], n=3)
            if not close and query:  # the last part alone: `credt` -> algorithm.riskpo.credit
                last = {k.key.rsplit(".", 1)[-1]: k.key for k in keys}
                close = [last[c] for c in _suggest(query[-1], list(last), n=3)]
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ConfigError(f"unknown config key {key.strip()!r}{hint} (`riskpo-mm config --explain` lists "
                              "every key)")
    blocks = []
    for k in chosen_keys:
        blocks.append(_key_text(k))
    for s in chosen_sections:
        lines = [textwrap.fill(f"[{s.key or 'top level'}] {s.doc}".rstrip(), width=100, subsequent_indent="    ",
                               break_on_hyphens=False, break_long_words=False)]
        lines += [_key_text(k) for k in keys if k.section == s.key]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def describe(key: str) -> str:
    """The description of one dotted key (e.g. `reward.clip_range`)."""
    _, keys = config_docs()
    found = [k for k in keys if _matches(k.key, _segments(key))]
    if not found:
        raise KeyError(key)
    return found[0].description


def main(argv: Optional[list[str]] = None) -> int:
    """`riskpo-mm config --config X.yaml [--set KEY=VALUE ...]` | `riskpo-mm config --explain [KEY]`."""
    import argparse
    import sys

    p = argparse.ArgumentParser(
        prog="riskpo-mm config",
        description="Print a run config resolved (defaults and preset filled in, as runs/<name>/config.yaml "
                    "will hold it), or document the config keys.")
    p.add_argument("--config", help="YAML run config to validate and print resolved")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set algorithm.riskpo.alpha=0.1 (repeatable)")
    p.add_argument("--explain", nargs="?", const="", default=None, metavar="KEY",
                   help="document every key (dotted path, type or allowed values, default, description), grouped "
                        "by section; or only KEY, a key such as algorithm.riskpo.credit or a section such as "
                        "algorithm.riskpo")
    args = p.parse_args(argv)
    if args.explain is not None:
        if args.config or args.overrides:
            p.error("--explain documents the keys; give it without --config / --set")
        try:
            print(explain(args.explain or None))
        except ConfigError as err:
            print(f"riskpo-mm config: {err}", file=sys.stderr)
            return 2
        return 0
    if not args.config:
        p.error("give --config FILE (print it resolved) or --explain [KEY] (document the keys)")
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"riskpo-mm config: {err}", file=sys.stderr)
        return 2
    print(cfg.to_yaml(), end="")
    return 0
