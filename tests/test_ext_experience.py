"""The RiskPO experience maker's advantage step on OpenRLHF Experience batches (no Ray, no vLLM)."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest
import torch

from riskpo_mm.algo import AdvantageStep, RiskPOConfig, build_estimator
from riskpo_mm.openrlhf_ext import compat
from riskpo_mm.openrlhf_ext.advantages import PromptOrder, compute_riskpo_advantages, group_rollout, parse_label
from openrlhf.trainer.ppo_utils.experience import Experience

P, N = 10, 4  # prompts, samples per prompt
TASKS = ["math", "geometry"]


def _args(**rollout):
    return SimpleNamespace(
        rollout=SimpleNamespace(n_samples_per_prompt=N, micro_batch_size=3, **rollout),
        reward=SimpleNamespace(clip_range=(-10, 10)),
        algo=SimpleNamespace(
            kl=SimpleNamespace(use_loss=False),
            advantage=SimpleNamespace(estimator="group_norm", gamma=1.0, lambd=1.0, no_std_norm=False),
        ),
        train=SimpleNamespace(dynamic_batch_enable=False),
        data=SimpleNamespace(max_len=64),
    )


def _dataloader_batch(seed: int = 0):
    """Rewards [P, n] and labels of P prompts in dataloader order."""
    g = torch.Generator().manual_seed(seed)
    rewards = (torch.rand(P, N, generator=g) < 0.4).float()
    labels = [json.dumps({"uid": f"q{(7 * p) % 13:02d}", "task": TASKS[p % 2], "answer": "1"}) for p in range(P)]
    return rewards, labels


def _rollout_samples(rewards, labels, completion_order):
    """One Experience per sample, prompts in vLLM completion order, the n samples of a prompt contiguous."""
    samples = []
    for p in completion_order:
        for j in range(N):
            length = 2 + (p + j) % 4
            samples.append(
                Experience(
                    sequences=torch.ones(1, 3 + length, dtype=torch.long),
                    attention_mask=torch.ones(1, 3 + length, dtype=torch.long),
                    action_mask=torch.ones(1, length, dtype=torch.bool),
                    rewards=rewards[p, j].reshape(1),
                    labels=[labels[p]],
                    response_length=torch.tensor([length]),
                    truncated=torch.tensor([False]),
                    total_length=torch.tensor([3.0 + length]),
                    info={"reward": rewards[p, j].reshape(1)},
                )
            )
    return samples


def _micro_batches(samples, seed: int):
    """Split like OpenRLHF (index = rollout position), in a scrambled grouping as dynamic batching does."""
    for i, s in enumerate(samples):
        s.index = [i]
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    return [Experience.concat_experiences([samples[i] for i in order[k : k + 3]], 0) for k in range(0, len(order), 3)]


def _advantage_by_sample(experiences):
    """(uid, within-prompt position) -> advantage, read off the action-masked token advantages."""
    out = {}
    for e in experiences:
        for row, (label, idx) in enumerate(zip(e.labels, e.index)):
            tokens = e.advantages[row][e.action_mask[row]]
            assert torch.all(tokens == tokens[0]) and torch.all(e.advantages[row][~e.action_mask[row]] == 0)
            out[idx] = (json.loads(label)["uid"], float(tokens[0]))
    return out


def _expected(rewards, labels, completion_order, cfg, seed=3):
    estimator = build_estimator("riskpo", cfg, seed=seed)
    adv = estimator.advantages(rewards, groups=[json.loads(label)["task"] for label in labels])
    expected = {}
    for slot, p in enumerate(completion_order):
        for j in range(N):
            expected[slot * N + j] = (json.loads(labels[p])["uid"], float(adv[p, j]))
    return expected, {f"riskpo/{k}": v for k, v in estimator.metrics.items()}


@pytest.mark.parametrize("bundle_by", ["order", "task"])
def test_scrambled_rollout_gets_the_estimators_advantages_in_dataloader_order(bundle_by):
    rewards, labels = _dataloader_batch()
    cfg = RiskPOConfig(bundle_size=5, bundle_by=bundle_by)
    completion = [3, 7, 0, 9, 1, 5, 2, 8, 6, 4]
    order = PromptOrder()
    order.record(labels)
    experiences = _micro_batches(_rollout_samples(rewards, labels, completion), seed=1)
    experiences, metrics = compute_riskpo_advantages(experiences, AdvantageStep("riskpo", cfg, 3), _args(), order)
    expected, expected_metrics = _expected(rewards, labels, completion, cfg)
    got = _advantage_by_sample(experiences)
    assert got.keys() == expected.keys()
    for k in expected:
        assert got[k][0] == expected[k][0]
        assert got[k][1] == pytest.approx(expected[k][1], abs=1e-6)
    assert {k: metrics[k] for k in expected_metrics} == pytest.approx(expected_metrics)
    assert any(v[1] != 0 for v in got.values())


def test_two_completion_orders_give_identical_advantages():
    rewards, labels = _dataloader_batch(5)
    cfg = RiskPOConfig(bundle_size=5)
    results = []
    for completion, split_seed in (([9, 8, 7, 6, 5, 4, 3, 2, 1, 0], 2), ([0, 2, 4, 6, 8, 1, 3, 5, 7, 9], 7)):
        exps = _micro_batches(_rollout_samples(rewards, labels, completion), split_seed)
        exps, _ = compute_riskpo_advantages(exps, AdvantageStep("riskpo", cfg, 0), _args())  # no recorded order
        by_uid = {}
        for uid, a in _advantage_by_sample(exps).values():
            by_uid.setdefault(uid, []).append(a)
        results.append({k: sorted(v) for k, v in by_uid.items()})
    assert results[0] == results[1]


def test_group_rollout_orders_recorded_prompts_by_dispatch_and_others_by_uid():
    labels = [{"uid": u} for u in ("b", "b", "z", "z", "a", "a", "c", "c")]
    order = PromptOrder()
    order.record([{"uid": "z"}, {"uid": "c"}])
    perm, uids, tasks = group_rollout(labels, 2, order)
    assert uids == ["z", "c", "a", "b"] and tasks == ["default"] * 4
    assert perm.tolist() == [[2, 3], [6, 7], [4, 5], [0, 1]]


def test_interleaved_samples_of_two_prompts_are_rejected():
    with pytest.raises(ValueError, match="samples of one prompt"):
        group_rollout([{"uid": "a"}, {"uid": "b"}, {"uid": "a"}, {"uid": "b"}], 2)


@pytest.mark.parametrize(
    "label,match", [("", "not JSON"), ('{"task": "math"}', "no 'uid'"), ("[1]", "object"), (3, "dict or a JSON")]
)
def test_bad_labels_fail_with_a_message_that_says_what_is_needed(label, match):
    with pytest.raises(ValueError, match=match):
        parse_label(label)


def test_in_reward_kl_is_rejected_with_the_flags_to_use():
    rewards, labels = _dataloader_batch()
    exps = _micro_batches(_rollout_samples(rewards, labels, list(range(P))), 0)
    with pytest.raises(ValueError, match="--algo.kl.use_loss"):
        compute_riskpo_advantages(exps, AdvantageStep("grpo"), _args(), kl_coef=0.01)


@pytest.fixture(scope="module")
def maker_cls():
    from riskpo_mm.openrlhf_ext.experience import RiskPOExperienceMaker

    return RiskPOExperienceMaker


def _maker(cls, args, step, order=None):
    strategy = SimpleNamespace(args=args)
    kl_ctl = SimpleNamespace(value=0.0)
    tokenizer = SimpleNamespace(pad_token_id=0)
    return cls(None, None, None, None, kl_ctl, strategy, tokenizer, step=step, prompt_order=order)


def test_experience_maker_uses_the_advantage_step_on_openrlhfs_own_split(maker_cls):
    rewards, labels = _dataloader_batch(2)
    cfg = RiskPOConfig(bundle_size=5)
    completion = [4, 1, 8, 0, 6, 3, 9, 2, 7, 5]
    order = PromptOrder()
    order.record(labels)
    maker = _maker(maker_cls, _args(), AdvantageStep("riskpo", cfg, 3), order)
    experiences = maker.split_rollout_samples(_rollout_samples(rewards, labels, completion))
    experiences = maker.compute_advantages_and_returns(experiences)
    expected, expected_metrics = _expected(rewards, labels, completion, cfg)
    got = _advantage_by_sample(experiences)
    assert {k: v[1] for k, v in got.items()} == pytest.approx({k: v[1] for k, v in expected.items()}, abs=1e-6)
    assert {k: maker.step_metrics[k] for k in expected_metrics} == pytest.approx(expected_metrics)
    assert all(e.kl is None and torch.equal(e.returns, e.advantages) for e in experiences)


def test_experience_maker_without_a_step_is_openrlhfs(maker_cls):
    from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker

    rewards, labels = _dataloader_batch(4)
    results = []
    for cls, estimator in ((maker_cls, None), (RemoteExperienceMaker, None)):
        args = _args()
        strategy, tokenizer = SimpleNamespace(args=args), SimpleNamespace(pad_token_id=0)
        maker = cls(None, None, None, None, SimpleNamespace(value=0.0), strategy, tokenizer)
        if cls is maker_cls:
            assert maker.step is None
        exps = maker.split_rollout_samples(_rollout_samples(rewards, labels, list(range(P))))
        for e in exps:
            e.kl = torch.zeros_like(e.action_mask, dtype=torch.float32)
        results.append(torch.cat([e.advantages.flatten() for e in maker.compute_advantages_and_returns(exps)]))
    assert torch.equal(results[0], results[1])
