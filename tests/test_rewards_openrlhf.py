"""The OpenRLHF reward function, loaded the way OpenRLHF loads ``--reward.remote_url x.py``."""

from __future__ import annotations

import asyncio
import json
import os

import torch

from riskpo_mm.rewards import openrlhf_reward
from riskpo_mm.rewards.openrlhf_reward import label_to_record, response_from_query, reward_func

PROMPT = "<|im_start|>user\n<image>What is the angle?<|im_end|>\n<|im_start|>assistant\n"


def test_response_is_the_query_without_prompt_and_end_tokens():
    assert response_from_query(PROMPT + "<think>a</think>\\boxed{3}<|im_end|>", PROMPT) == "<think>a</think>\\boxed{3}"
    expanded = PROMPT.replace("<image>", "<|vision_start|>" + "<|image_pad|>" * 4 + "<|vision_end|>")
    assert response_from_query(expanded + "\\boxed{3}<|endoftext|>", PROMPT) == "\\boxed{3}"


def test_labels_may_be_dicts_json_or_bare_answers():
    assert label_to_record({"task": "mcq", "answer": "A"})["task"] == "mcq"
    assert label_to_record(json.dumps({"task": "geometry", "answer": "30"}))["answer"] == "30"
    assert label_to_record("42") == {"task": "math", "answer": "42"}


def test_reward_func_returns_tensors_with_accuracy_and_format_logged_apart():
    label = json.dumps({"id": "g1", "task": "geometry", "answer": "30"})
    out = reward_func([PROMPT + "<think>x</think>\\boxed{30^\\circ}<|im_end|>", PROMPT + "\\boxed{30}"],
                      [PROMPT, PROMPT], [label, label])
    assert torch.allclose(out["rewards"], torch.tensor([1.0, 0.9]))
    assert torch.equal(out["scores"], out["rewards"])
    assert out["extra_logs"]["accuracy"].tolist() == [1.0, 1.0]
    assert out["extra_logs"]["format_ok"].tolist() == [1.0, 0.0]


def test_reward_func_never_raises():
    out = reward_func([PROMPT], [PROMPT, PROMPT], ["1"])
    assert out["rewards"].tolist() == [0.0] and out["extra_logs"]["reward_error"].tolist() == [1.0]
    out = reward_func([PROMPT + "\\boxed{1}"], [PROMPT], [json.dumps({"task": "unknown"})])
    assert out["rewards"].tolist() == [0.0] and out["extra_logs"]["reward_error"].tolist() == [1.0]


def test_pm1_form_from_environment(monkeypatch):
    monkeypatch.setenv("RISKPO_REWARD_BINARY_FORM", "pm1")
    out = reward_func([PROMPT + "<think>x</think>\\boxed{2}"], [PROMPT], ["3"])
    assert out["rewards"].tolist() == [-1.0]


def test_openrlhf_loads_and_calls_it_from_the_file_path():
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    path = os.path.abspath(openrlhf_reward.__file__)
    executor = SingleTurnAgentExecutor(remote_rm_url=path)
    label = json.dumps({"task": "code", "tests": ["assert sq(3) == 9"]})
    query = PROMPT + "<think>square</think>```python\ndef sq(x):\n    return x * x\n```<|im_end|>"
    (info,) = asyncio.run(executor._fetch_rewards_via_func([query], [PROMPT], [label]))
    assert info["rewards"].tolist() == [1.0]
    # what OpenRLHF's sample generator does with the values
    assert torch.tensor([info["rewards"]]).shape == (1,)
    assert all(v.flatten()[0].item() in (0.0, 1.0) for v in info["extra_logs"].values())


def test_run_reward_settings_in_the_label_set_weights_form_and_task_scale():
    spec = {"binary_form": "pm1", "tasks": {"math": {"accuracy": 0.8, "format": 0.2}}, "task_weights": {"math": 2.0}}
    label = json.dumps({"uid": "q1", "task": "math", "answer": "4", "reward": spec})
    right = reward_func(["<think>2+2</think> \\boxed{4}"], [""], [label])
    wrong = reward_func(["no box at all"], [""], [label])
    assert right["rewards"].tolist() == [2.0 * (0.8 * 1 + 0.2 * 1)]
    assert wrong["rewards"].tolist() == [2.0 * (0.8 * -1 + 0.2 * -1)]
    assert right["extra_logs"]["accuracy"].tolist() == [1.0]
