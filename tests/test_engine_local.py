"""The local engine end to end on tiny models: one RL step, log-prob agreement, checkpoint and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine_helpers import run_config
from riskpo_mm.algo import build_estimator
from riskpo_mm.engine.checkpoint import latest_checkpoint, load_trainer_state


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("engine")


def _trainer(cfg, **kw):
    from riskpo_mm.engine.local import LocalTrainer

    return LocalTrainer(cfg, **kw)


def _params(trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.hf_model.named_parameters()}


@pytest.mark.parametrize("backend", ["hf", "vllm"])
@pytest.mark.parametrize("text_model", [False, True], ids=["qwen2_5_vl_mixed_images", "text_model"])
def test_one_rl_step_uses_the_estimators_advantages_and_updates_the_policy(root, text_model, backend):
    cfg = run_config(root, f"step_{text_model}_{backend}", text_model=text_model, images=not text_model, n=4,
                     backend=backend)
    trainer = _trainer(cfg)
    records = [trainer.train_records[i] for i in trainer.order.take(cfg.rollout.prompts_per_step)]
    if not text_model:
        assert any(r.images for r in records) and any(not r.images for r in records)
    batch = trainer.rollout(records)
    assert batch.rewards.shape == (5, 4) and 0 < batch.rewards.mean() < 1

    reference = build_estimator("riskpo", cfg.algorithm.riskpo, seed=cfg.seed)
    expected = reference.advantages(batch.rewards.clone(), groups=batch.tasks).float()  # [P, n]
    adv = trainer.advantages(batch)
    torch.testing.assert_close(adv, expected, rtol=0, atol=0)
    assert adv.abs().sum() > 0

    exp = trainer.make_experience(batch, adv)
    per_sample = expected.reshape(-1)  # samples p*n + j
    mask = exp.action_mask.float()
    torch.testing.assert_close(exp.advantages, per_sample[:, None] * mask)
    assert 0 < batch.metrics["entropy"] <= torch.log(torch.tensor(float(trainer.hf_model.config.get_text_config().vocab_size)))

    before = _params(trainer)
    metrics = trainer.policy.train(exp, epochs=1, seed=0)
    assert torch.isfinite(torch.tensor(metrics["policy_loss"]))
    assert 0 < metrics["actor_grad_norm"] < float("inf")  # float32 ZeRO-0 reports the norm it clips at
    after = _params(trainer)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    from openrlhf.models import PolicyLoss

    assert type(trainer.policy.trainer.actor_loss_fn) is PolicyLoss  # OpenRLHF's own, as on the Ray engine
    if backend == "vllm":  # the colocated engine samples from the updated policy now
        trainer.sync_rollout_weights()
        seq = exp.sequences[0][exp.attention_mask[0].bool()].tolist()
        plen = len(batch.prompt_ids[0])
        if not batch.mm[0]:
            vllm_lp = trainer.vllm.score(seq[:plen], seq[plen:])
            from riskpo_mm.models.vlm import sequence_logprobs

            ids = torch.tensor([seq])
            act = torch.zeros(1, len(seq) - 1, dtype=torch.bool)
            act[0, plen - 1:] = True
            hf_lp = sequence_logprobs(trainer.hf_model.eval(), ids, torch.ones_like(ids), act, None)[0][act[0]]
            assert (vllm_lp - hf_lp).abs().max() < 1e-3
        assert trainer.vllm.weight_syncs == 1
    trainer.close()


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_5"])
def test_actor_training_forward_reproduces_rollout_logprobs(root, family):
    cfg = run_config(root, f"lp_{family}", family=family, estimator="grpo", prompts=4, n=2)
    trainer = _trainer(cfg, log=False)
    records = trainer.train_records[:4]  # two with images of different sizes, two text-only
    batch = trainer.rollout(records)
    exp = trainer.make_experience(batch, torch.zeros(4, 2))
    assert batch.metrics["logprob/rollout_train_max_abs_diff"] < 1e-5
    mask = exp.action_mask
    assert mask.sum() == sum(len(r) for r in batch.response_ids)
    image_token = trainer.hf_model.config.image_token_id
    assert (exp.sequences == image_token).any()  # the image prompts really carry image tokens
    trainer.close()


def test_resume_continues_tracker_data_order_and_step_exactly(root):
    straight = _trainer(run_config(root, "straight", steps=2))
    straight.fit()
    ref_state = straight.trainer_state()

    cfg = run_config(root, "interrupted", steps=2)
    first = _trainer(cfg)
    first.train_step()
    first.save()
    del first
    resumed = _trainer(cfg)
    assert resumed.resume() and resumed.step == 1
    resumed.fit()
    state = resumed.trainer_state()

    assert state["step"] == ref_state["step"] == 2
    assert state["data_order"] == ref_state["data_order"]
    est, ref_est = state["advantage_step"]["estimator"], ref_state["advantage_step"]["estimator"]
    assert est["trackers"].keys() == ref_est["trackers"].keys()
    for key, tracker in ref_est["trackers"].items():
        got = est["trackers"][key]
        assert got["count"] == tracker["count"] == 2
        assert torch.equal(got["estimates"], tracker["estimates"])
    assert torch.equal(est["generator"], ref_est["generator"])
    torch.testing.assert_close(state["torch_rng"], ref_state["torch_rng"], rtol=0, atol=0)


def test_killed_run_keeps_its_last_checkpoint_and_resumes(root, tmp_path):
    cfg_path = tmp_path / "run.yaml"
    helpers = Path(__file__).with_name("engine_helpers.py")  # the parity grader, for the child process
    cfg = run_config(root, "killed", steps=30, reward={"functions": {"parity": f"{helpers}:parity_grade"}})
    cfg_path.write_text(cfg.to_yaml())
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1", "MASTER_PORT": "29733"}
    proc = subprocess.Popen([sys.executable, "-m", "riskpo_mm.cli", "train", "--config", str(cfg_path)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ckpt_root = cfg.run_dir / "checkpoints"
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not (ckpt_root / "step_000002").exists():
            assert proc.poll() is None, "the training run ended before it was killed"
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    ckpt = latest_checkpoint(ckpt_root)
    assert ckpt is not None
    state = load_trainer_state(ckpt)
    assert state["step"] >= 2
    resumed = _trainer(cfg)
    assert resumed.resume() and resumed.step == state["step"]
    assert resumed.order.state_dict() == state["data_order"]
    resumed.train_step()
    assert resumed.step == state["step"] + 1
