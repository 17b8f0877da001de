"""The one run configuration: a YAML file validated into typed models.

Every field is documented where it is declared; unknown keys and bad values
are errors that name the key and what is allowed. The same model drives both
engines (`engine: local | ray`), the evaluation and the launch scripts.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from riskpo_mm.algo import ESTIMATORS, RiskPOConfig

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
}


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TinyModelSpec(_Section):
    """Build a random-weight tiny model offline at `model.path` when it is missing."""

    family: Family = "qwen2_5_vl"
    size: Literal["xs", "s", "m"] = "s"
    tokenizer: Literal["compact", "qwen"] = "compact"
    seed: int = 0


class ModelConfig(_Section):
    path: str = Field(description="Model folder (or hub id on machines that can reach a hub).")
    family: Optional[Family] = Field(None, description="Qwen family; inferred from the model config when None.")
    tiny: Optional[TinyModelSpec] = Field(None, description="Create a tiny offline model at `path` if absent.")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    gradient_checkpointing: bool = False


class DataSource(_Section):
    path: str = Field(description="JSONL file, parquet file or HF dataset folder of records.")
    weight: float = Field(1.0, gt=0, description="Relative sampling weight in a mixture.")


class SyntheticSpec(_Section):
    """Render the synthetic geometry VQA set into `dir` when it is missing."""

    dir: str
    n: int = Field(2000, gt=0)
    seed: int = 0
    test_fraction: float = Field(0.1, gt=0, lt=1)
    size: int = Field(112, ge=28, description="Image side in pixels.")
    levels: list[int] = Field(default_factory=lambda: [1, 2, 3])


class DataConfig(_Section):
    train: list[DataSource] = Field(default_factory=list)
    test: list[DataSource] = Field(default_factory=list, description="Held-out records for evaluation.")
    synthetic: Optional[SyntheticSpec] = None
    on_bad_record: Literal["error", "skip"] = "error"
    min_pixels: int = Field(3136, gt=0)
    max_pixels: int = Field(401408, gt=0)
    image_root: Optional[str] = Field(
        None,
        description="Folder that image paths may point into besides the data file's own folder; "
        "paths that leave both are rejected.",
    )
    system_prompt: Optional[str] = None
    max_prompt_len: int = Field(1024, gt=0)
    shuffle: bool = True

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
    prompts_per_step: int = Field(10, gt=0, description="Prompts per RL step (OpenRLHF rollout.batch_size).")
    n_samples_per_prompt: int = Field(8, gt=0)
    max_new_tokens: int = Field(256, gt=0)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    backend: Optional[Literal["vllm", "hf"]] = Field(
        None, description="Local engine's sampler: a vLLM engine colocated in the training process (weights "
        "synced after every optimizer step), or HF generate. Default: vllm wherever vllm imports. The Ray "
        "engine always samples with its vLLM rollout actors.")
    vllm_dtype: Optional[Literal["float32", "bfloat16", "float16"]] = Field(
        None, description="dtype of the local engine's vLLM sampler (None: model.dtype). Weights are cast at each "
        "sync; the training forward recomputes the old log-probs, so only the rollout log-probs (IS correction) "
        "carry the sampler's precision.")
    vllm_kv_cache_gib: float = Field(1.0, gt=0, description="vLLM on a CPU: KV cache size (VLLM_CPU_KVCACHE_SPACE).")
    vllm_gpu_memory_utilization: float = Field(
        0.4, gt=0, le=1, description="vLLM on a GPU (local engine): its share of the GPU; the rest trains.")

    @model_validator(mode="after")
    def _default_backend(self) -> "RolloutConfig":
        if self.backend is None:
            import importlib.util

            self.backend = "vllm" if importlib.util.find_spec("vllm") is not None else "hf"
        return self


class LossConfig(_Section):
    """The clipped surrogate: OpenRLHF's ``PolicyLoss`` on both engines (``actor.*`` flags)."""

    ratio: Literal["token", "sequence"] = Field(
        "token", description="Importance ratio: per token (PPO, the authors' recipes) or per response, the "
        "geometric mean of its token ratios (GSPO; the paper's sequence ratio). The sequence ratio averages "
        "per response (agg seq_mean).")
    clip_low: float = Field(0.2, ge=0, description="Lower clip: the ratio is clipped at 1 - clip_low.")
    clip_high: float = Field(0.2, ge=0, description="Upper clip, 1 + clip_high (clip-higher: DAPO uses 0.28).")
    dual_clip: Optional[float] = Field(None, gt=1, description="Dual-clip constant c (3.0 in the paper's recipe).")
    agg: Optional[Literal["token_mean", "seq_mean"]] = Field(
        None, description="Loss aggregation: mean over all response tokens, or over responses of their token "
        "mean. Default: token_mean for the token ratio, seq_mean for the sequence ratio.")
    is_correction: Literal["off", "token", "seq"] = Field(
        "off", description="Train/rollout importance-sampling correction (OpenRLHF's, with the rollout "
        "engine's log-probs): off, per token, or per sequence.")
    kl_coef: float = Field(0.0, ge=0, description="KL-to-reference loss weight (0: no reference model).")
    entropy_coef: float = Field(0.0, ge=0, description="Entropy bonus weight.")

    @model_validator(mode="after")
    def _agg_for_ratio(self) -> "LossConfig":
        if self.agg is None:
            self.agg = "seq_mean" if self.ratio == "sequence" else "token_mean"
        elif self.ratio == "sequence" and self.agg == "token_mean":
            raise ValueError("algorithm.loss.agg: the sequence ratio averages per response (OpenRLHF's GSPO); "
                             "use agg: seq_mean or leave agg unset")
        return self


class AlgorithmConfig(_Section):
    estimator: str = Field("riskpo", description="Advantage estimator: riskpo | grpo | dr_grpo | dapo.")
    preset: str = Field("riskpo", description="RiskPO preset (docs/method.md section 8) that `riskpo` overrides.")
    riskpo: RiskPOConfig = Field(default_factory=RiskPOConfig)
    loss: LossConfig = Field(default_factory=LossConfig)

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
        if v not in ESTIMATORS:
            raise ValueError(f"unknown estimator {v!r}; allowed: {sorted(ESTIMATORS)}")
        return v


class TaskRewardWeights(_Section):
    accuracy: float = 1.0
    format: float = 0.0


class RewardConfig(_Section):
    weights: dict[str, TaskRewardWeights] = Field(
        default_factory=dict, description="Per-task accuracy/format weights; unset tasks use the router's defaults."
    )
    binary_form: Literal["01", "pm1"] = Field("01", description="Accuracy reward as 0/1 or -1/+1 (hard-math recipe).")
    task_weights: dict[str, float] = Field(
        default_factory=dict, description="Multiplier on the reward of each task in mixed runs."
    )
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
        "auto", description="Sandbox isolation for model-written code: bubblewrap (auto refuses to run code "
        "without it), or none (trusted code only; see docs/sandbox.md).")
    workers: int = Field(2, gt=0, description="Code answers graded at once per process (sandboxes in parallel).")


class TrainConfig(_Section):
    steps: int = Field(20, gt=0, description="RL steps (one rollout batch each).")
    batch_size: Optional[int] = Field(
        None, gt=0, description="Sequences per optimizer step (all ranks); default prompts_per_step * n, one update per step."
    )
    lr: float = Field(1e-6, gt=0)
    weight_decay: float = 0.0
    warmup_steps: int = Field(0, ge=0)
    micro_batch_size: int = Field(8, gt=0, description="Sequences per forward/backward.")
    ppo_epochs: int = Field(1, gt=0)
    max_grad_norm: float = Field(1.0, gt=0)
    zero_stage: Literal[0, 1, 2, 3] = 0


class SFTConfig(_Section):
    """Supervised warm start on the train split before RL (gold reasoning + answer)."""

    enabled: bool = False
    steps: int = Field(200, gt=0)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(16, gt=0)


class EvalConfig(_Section):
    every_steps: int = Field(0, ge=0, description="In-training validation every N RL steps (0: off).")
    n: int = Field(8, gt=0, description="Samples per problem.")
    k: list[int] = Field(default_factory=lambda: [1, 2, 4, 8])
    temperature: float = Field(1.0, gt=0)
    max_new_tokens: Optional[int] = Field(None, gt=0, description="Defaults to rollout.max_new_tokens.")
    max_problems: Optional[int] = Field(None, gt=0)
    best_metric: str = Field("pass@1", description="Metric that selects the kept best checkpoint.")
    before_and_after: bool = Field(True, description="Evaluate before and after RL into report.json.")

    @model_validator(mode="after")
    def _k_within_n(self) -> "EvalConfig":
        bad = [k for k in self.k if k < 1 or k > self.n]
        if bad:
            raise ValueError(f"eval.k values {bad} must lie in [1, eval.n={self.n}]")
        return self


class CheckpointConfig(_Section):
    every_steps: int = Field(10, ge=0, description="Checkpoint every N RL steps (0: only at the end).")
    keep_last: int = Field(2, gt=0)


class LoggingConfig(_Section):
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "riskpo-mm"


class RayConfig(_Section):
    """Scale-out engine: OpenRLHF's Ray PPO trainer with vLLM rollouts."""

    num_nodes: int = Field(1, gt=0)
    gpus_per_node: int = Field(8, gt=0)
    vllm_num_engines: int = Field(4, gt=0)
    vllm_tensor_parallel_size: int = Field(1, gt=0)
    vllm_gpu_memory_utilization: float = Field(0.6, gt=0, le=1)
    colocate_all: bool = True
    extra_args: dict[str, Any] = Field(
        default_factory=dict, description="Raw OpenRLHF flags passed through, e.g. {'vllm.enable_sleep': true}."
    )


class RunConfig(_Section):
    name: str
    engine: Literal["local", "ray"] = "local"
    seed: int = 0
    output_dir: str = Field("runs/{name}", description="Run folder; '{name}' is replaced by the run name.")
    model: ModelConfig
    data: DataConfig = Field(default_factory=DataConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    ray: RayConfig = Field(default_factory=RayConfig)

    @model_validator(mode="after")
    def _consistent(self) -> "RunConfig":
        if self.algorithm.estimator == "riskpo":
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
            close = difflib.get_close_matches(str(loc[-1]), known, n=1) or [k for k in known if k.startswith(str(loc[-1]))]
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
