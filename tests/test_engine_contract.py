"""One config, one behaviour: each field means the same on the local and the Ray engine, or is
rejected where it cannot hold, naming the key."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from riskpo_mm.config import ConfigError, validate_config
from riskpo_mm.data.record import Record
from riskpo_mm.engine.flags import openrlhf_argv
from riskpo_mm.openrlhf_ext.data import openrlhf_row
from riskpo_mm.openrlhf_ext.train_ray import parse_ray_args
from riskpo_mm.rewards import GradeOutcome, register_task
from riskpo_mm.rewards.openrlhf_reward import reward_func

BASE = {"name": "c", "model": {"path": "m"}, "data": {"train": ["a.jsonl"]}}
SLOW_CODE = "<think>x</think>\n```python\nimport time\ntime.sleep(30)\n```"
CODE_RECORD = {"id": "c1", "task": "code", "prompt": "p", "answer": "", "tests": ["assert True"]}


def _cfg(**sections):
    return validate_config({**BASE, **sections})


def _ray_label(cfg, record: dict) -> str:
    from riskpo_mm.engine.ray_data import reward_spec

    return json.dumps({**record, "uid": record["id"], "reward": reward_spec(cfg)})


needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (make setup)")


@needs_bwrap
def test_code_timeout_is_the_configs_on_both_engines():
    from riskpo_mm.generation.batch import RolloutBatch

    cfg = _cfg(reward={"code_timeout_s": 1.0})
    t0 = time.monotonic()
    batch = RolloutBatch(records=[Record.from_dict(CODE_RECORD)], n=1, prompt_ids=[], response_ids=[],
                         rollout_logprobs=[], mm=[], responses=[SLOW_CODE], truncated=[False])
    batch.score(cfg.reward)
    local_s = time.monotonic() - t0
    t0 = time.monotonic()
    ray = reward_func([SLOW_CODE], [""], [_ray_label(cfg, CODE_RECORD)])
    ray_s = time.monotonic() - t0
    assert "timeout" in batch.results[0].reason and float(ray["rewards"][0]) == 0.0
    assert local_s < 5 and ray_s < 5  # the 1 s limit, not the 5 s default, on both


def test_reward_workers_bound_concurrent_code_grades_on_the_ray_reward_function():
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    class SlowCode:
        runs_code = True

        def __call__(self, record, response, deadline=None):
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
            time.sleep(0.2)
            with lock:
                state["now"] -= 1
            return GradeOutcome(1.0, True, "ok")

    register_task("slow_code_contract", SlowCode())
    cfg = _cfg(reward={"workers": 2})
    label = _ray_label(cfg, {"id": "s", "task": "slow_code_contract", "prompt": "p", "answer": ""})
    threads = [threading.Thread(target=reward_func, args=(["x"], [""], [label])) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state["peak"] == 2


def test_system_prompt_reaches_both_engines_prompts():
    record = Record.from_dict({"id": "q", "task": "math", "prompt": "What is 1+1?", "answer": "2"})
    row = openrlhf_row(record, system_prompt="Be brief.")
    assert row["prompt"][0] == {"role": "system", "content": "Be brief."}
    from riskpo_mm.data.templates import build_messages

    assert build_messages(record, "Be brief.")[0]["role"] == "system"  # the local engine's prompt builder


@pytest.mark.parametrize("dtype,flag", [("float32", "fp32"), ("bfloat16", "bf16")])
def test_model_dtype_is_the_training_dtype_on_both_engines(dtype, flag):
    args = parse_ray_args(openrlhf_argv(_cfg(model={"path": "m", "dtype": dtype})))
    assert args.ds.param_dtype == flag  # local and Ray actors both build from these flags; vLLM follows it


@pytest.mark.parametrize("key,owner", [("reward.clip_range", "reward.clip_range"),
                                       ("reward.overlong_buffer_len", "reward.overlong_buffer_len"),
                                       ("ds.param_dtype", "model.dtype"),
                                       ("algo.advantage.is_correction_level", "algorithm.loss.is_correction")])
def test_ray_extra_args_cannot_set_what_a_config_key_owns(key, owner):
    with pytest.raises(ConfigError, match=f"ray.extra_args.{key}: set {owner} instead"):
        _cfg(ray={"extra_args": {key: 1}})


def test_reward_shaping_reaches_the_ray_controller_through_riskpo_flags():
    cfg = _cfg(reward={"clip_range": [-1, 1], "overlong_buffer_len": 16}, rollout={"max_new_tokens": 64})
    args = parse_ray_args(openrlhf_argv(cfg))
    from riskpo_mm.engine.local import advantage_step
    from riskpo_mm.openrlhf_ext.trainer import build_step_from_args

    ray_step, local_step = build_step_from_args(args), advantage_step(cfg)
    for attr in ("clip_range", "overlong_buffer", "overlong_factor", "max_new_tokens"):
        assert getattr(ray_step, attr) == getattr(local_step, attr)
    assert ray_step.riskpo == local_step.riskpo and ray_step.name == local_step.name


def test_reward_functions_grade_a_users_task_on_both_engines(tmp_path):
    import subprocess
    import sys

    grader = tmp_path / "my_reward.py"
    grader.write_text("def grade(record, response):\n    return 1.0 if 'yes' in response else 0.0\n")
    cfg = _cfg(reward={"functions": {"yes_task": f"{grader}:grade"}})
    label = _ray_label(cfg, {"id": "y", "task": "yes_task", "prompt": "p", "answer": ""})
    # Ray: a fresh reward-worker process knows the task only from the label
    code = ("import json, sys; from riskpo_mm.rewards.openrlhf_reward import reward_func; "
            "out = reward_func(['yes', 'no'], ['', ''], [sys.argv[1]] * 2); print(json.dumps(out['rewards'].tolist()))")
    done = subprocess.run([sys.executable, "-c", code, label], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [1.0, 0.0]
    # local: riskpo-mm train registers the same mapping before loading data
    from riskpo_mm.rewards import score
    from riskpo_mm.rewards.user_functions import register_functions

    register_functions(cfg.reward.functions)
    assert score({"task": "yes_task", "answer": ""}, "yes").accuracy == 1.0


def test_a_bad_reward_function_entry_names_the_task():
    with pytest.raises(ConfigError, match="reward.functions.t: expected 'path/to/file.py:function'"):
        _cfg(reward={"functions": {"t": "nofile"}})
    from riskpo_mm.rewards.user_functions import UserFunctionError, load_function

    with pytest.raises(UserFunctionError, match="reward.functions.t: file not found"):
        load_function("t", "/nonexistent/x.py:f")


def test_ray_actors_see_the_configs_pixel_limits_through_a_processor_view(tmp_path):
    import json

    from riskpo_mm.config import validate_config
    from riskpo_mm.engine.ray_run import processor_view

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "processor_config.json").write_text(json.dumps(
        {"image_processor": {"size": {"shortest_edge": 3136, "longest_edge": 28224}}, "processor_class": "X"}))
    cfg = validate_config({"name": "v", "model": {"path": str(model)}, "data": {"train": ["t.jsonl"], "max_pixels": 12544}})
    view = Path(processor_view(cfg, str(model), tmp_path / "run"))
    assert view == tmp_path / "run" / "ray_model" and (view / "config.json").resolve() == model / "config.json"
    size = json.loads((view / "processor_config.json").read_text())["image_processor"]["size"]
    assert size == {"shortest_edge": 3136, "longest_edge": 12544}
    assert json.loads((model / "processor_config.json").read_text())["image_processor"]["size"]["longest_edge"] == 28224
    same = validate_config({"name": "v", "model": {"path": str(model)}, "data": {"train": ["t.jsonl"], "max_pixels": 28224}})
    assert processor_view(same, str(model), tmp_path / "run2") == str(model)  # nothing to change: the folder itself


def test_settings_an_engine_cannot_hold_are_rejected_and_the_lr_schedule_is_one_key():
    from riskpo_mm.config import validate_config
    from riskpo_mm.engine.flags import openrlhf_args

    base = {"name": "v", "model": {"path": "m"}, "data": {"train": ["t.jsonl"]}}
    with pytest.raises(ValueError, match="data.shuffle: false keeps the records' order on the local engine only"):
        validate_config({**base, "engine": "ray", "data": {"train": ["t.jsonl"], "shuffle": False}})
    for engine in ("local", "ray"):
        cfg = validate_config({**base, "engine": engine, "train": {"lr_scheduler": "cosine_with_min_lr"}})
        assert openrlhf_args(cfg, engine=engine).actor.lr_scheduler == "cosine_with_min_lr"
    assert openrlhf_args(validate_config(base), engine="local").actor.lr_scheduler == "constant_with_warmup"
