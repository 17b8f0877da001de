"""Ray-engine pieces on CPU: flags through OpenRLHF's real parser, the trainer and actor subclasses
(constructed without starting Ray), the class swap of train_ray, and the estimator checkpoint hook."""

from __future__ import annotations

import json
from types import SimpleNamespace
from unittest.mock import MagicMock

import pytest
import ray
import torch

from riskpo_mm.data.record import Record
from riskpo_mm.openrlhf_ext import compat
from riskpo_mm.openrlhf_ext.data import write_openrlhf_jsonl
from riskpo_mm.openrlhf_ext.flags import RayArgsError, riskpo_config, to_openrlhf_args
from riskpo_mm.openrlhf_ext.train_ray import main, parse_ray_args

BASE = {
    "actor.model_name_or_path": "/models/tiny",
    "rollout.n_samples_per_prompt": 4,
    "rollout.batch_size": 10,
    "data.label_key": "label",
}


def _argv(**extra):
    flags = {**BASE, **{k.replace("__", "."): v for k, v in extra.items()}}
    return to_openrlhf_args(flags)


def test_openrlhf_and_riskpo_flags_parse_through_openrlhfs_own_parser():
    args = parse_ray_args(
        _argv(
            vllm__num_engines=2,
            actor__eps_clip_low_high=(0.2, 0.28),
            actor__dual_clip=3.0,
            train__colocate_all=True,
            riskpo__preset="riskpo_authors_easy_math",
            riskpo__alpha=0.1,
            riskpo__track_grid=(0.25, 0.5, 0.75),
        )
    )
    assert args.vllm.num_engines == 2 and args.train.colocate_all is True  # OpenRLHF's flags, hierarchized
    assert args.actor.eps_clip_low_high == [0.2, 0.28] and args.actor.dual_clip == 3.0
    config = riskpo_config(args)
    assert (config.alpha, config.beta, config.credit) == (0.1, 0.9, "question_std")  # flag over preset
    assert config.track_grid == (0.25, 0.5, 0.75)
    # With a riskpo_mm estimator: no critic, no in-reward KL, entropy logged.
    assert args.algo.advantage.estimator == "reinforce" and args.critic.model_name_or_path is None
    assert args.algo.kl.init_coef == 0.0 and args.actor.entropy_coef == 0.0
    assert args.riskpo.estimator == "riskpo" and args.actor.policy_loss_type == "ppo"


def test_estimator_off_restores_openrlhf_defaults():
    args = parse_ray_args(_argv(riskpo__estimator="off", reward__remote_url="reward.py"))
    assert args.algo.advantage.estimator == "gae" and args.algo.kl.init_coef == 0.01
    assert args.critic.model_name_or_path == "/models/tiny"  # OpenRLHF's own gae rule


def test_openrlhf_crashes_on_missing_flags_become_clear_errors():
    with pytest.raises(RayArgsError, match="OpenRLHF's flag validation failed"):
        parse_ray_args(_argv(riskpo__estimator="off"))  # gae without a reward model: OpenRLHF hits None.split


def test_openrlhfs_is_correction_is_allowed_with_riskpo_estimators():
    args = parse_ray_args(_argv(algo__advantage__is_correction_level="token"))
    assert args.algo.advantage.is_correction_level == "token"  # vLLM rollouts need it; OpenRLHF's PolicyLoss has it


@pytest.mark.parametrize(
    "extra,match",
    [
        ({"riskpo__pairing": "shuffled"}, "invalid choice: 'shuffled'"),
        ({"riskpo__alpha": 0.9}, r"--riskpo.alpha/beta: need 0 < alpha < beta < 1"),
        ({"riskpo__bundle_size": 3}, "--rollout.batch_size 10 is not a multiple of the bundle size 3"),
        ({"algo__advantage__estimator": "group_norm"}, "conflicts with --riskpo.estimator riskpo"),
        ({"rollout__n_samples_per_prompt": 1}, "needs --rollout.n_samples_per_prompt >= 2"),
        ({"data__label_key": None}, "--data.label_key is required"),
        ({"train__async_enable": True}, "--train.async_enable is not supported"),
        ({"algo__kl__init_coef": 0.01}, "add --algo.kl.use_loss"),
        ({"no_such__flag": 1}, "unrecognized arguments: --no_such.flag"),
        ({"riskpo__estimator": "off", "algo__advantage__estimator": "rloo", "rollout__n_samples_per_prompt": 1},
         "rloo requires n_samples_per_prompt > 1"),  # OpenRLHF's own validation
    ],
)
def test_bad_flags_are_rejected_with_a_clear_message(extra, match):
    with pytest.raises(RayArgsError, match=match):
        parse_ray_args(_argv(**extra))


def test_main_exits_2_with_the_message_on_bad_flags(capsys):
    with pytest.raises(SystemExit) as exc:
        main(_argv(riskpo__lr_q=0))
    assert exc.value.code == 2
    assert "--riskpo.lr_q: need a number > 0" in capsys.readouterr().err


def test_to_openrlhf_args_spells_bools_and_lists_like_argparse_expects():
    argv = to_openrlhf_args({"a.b": True, "c": False, "d": None, "e": (1, 2), "--f": 0.5})
    assert argv == ["--a.b", "--e", "1", "2", "--f", "0.5"]


# ── Ray classes, constructed without starting Ray ──


@pytest.fixture(scope="module")
def ext():
    compat.install()
    from riskpo_mm.openrlhf_ext import actor, trainer

    return SimpleNamespace(actor=actor, trainer=trainer)


def test_ray_classes_subclass_openrlhfs_and_stay_ray_actor_classes(ext):
    from openrlhf.trainer.ppo_trainer import PPOTrainer
    from openrlhf.trainer.ray.ppo_actor import PolicyModelActor

    assert issubclass(ext.trainer.RiskPOPPOTrainerImpl, PPOTrainer.__ray_actor_class__)
    assert issubclass(ext.actor.RiskPOPolicyModelActorImpl, PolicyModelActor.__ray_actor_class__)
    assert ext.trainer.RiskPOPPOTrainer.__ray_actor_class__ is ext.trainer.RiskPOPPOTrainerImpl
    assert ext.actor.RiskPOPolicyModelActor.__ray_actor_class__ is ext.actor.RiskPOPolicyModelActorImpl
    assert not ray.is_initialized()


def test_loss_options_reach_openrlhfs_policy_loss_flags():
    from riskpo_mm.config import validate_config
    from riskpo_mm.engine.flags import openrlhf_argv

    raw = {"name": "x", "model": {"path": "m"}, "data": {"train": ["a.jsonl"]},
           "algorithm": {"loss": {"ratio": "sequence", "clip_high": 0.28, "dual_clip": 3.0, "is_correction": "seq"}}}
    args = parse_ray_args(openrlhf_argv(validate_config(raw)))
    assert args.actor.policy_loss_type == "gspo" and args.actor.loss_agg_mode == "seq-mean-token-mean"
    assert args.actor.eps_clip_low_high == [0.2, 0.28] and args.actor.dual_clip == 3.0
    assert args.algo.advantage.is_correction_level == "seq"


def test_openrlhfs_policy_loss_clamps_the_log_ratio_so_a_stale_token_cannot_explode_the_loss(ext):
    from openrlhf.models import PolicyLoss

    logp, old = torch.tensor([[30.0, 0.0]]), torch.zeros(1, 2)
    adv, mask = torch.tensor([[1.0, 1.0]]), torch.ones(1, 2)
    loss = PolicyLoss(clip_eps_low=0.2, clip_eps_high=0.2, dual_clip=3.0)(logp, old, -adv, mask)[0]
    assert torch.isfinite(loss) and loss.abs() < 10  # exp(30) * A would be 1e13 without the +-20 clamp and dual clip


def test_train_ray_swaps_openrlhfs_trainer_and_policy_actor_only_while_launching(ext):
    from riskpo_mm.openrlhf_ext.train_ray import riskpo_ray_classes
    import openrlhf.trainer.ppo_trainer as ppo_trainer

    original = ppo_trainer.PPOTrainer
    with riskpo_ray_classes() as cli:
        assert cli.PolicyModelActor is ext.actor.RiskPOPolicyModelActor
        assert ppo_trainer.PPOTrainer is ext.trainer.RiskPOPPOTrainer
    assert ppo_trainer.PPOTrainer is original and cli.PolicyModelActor is not ext.actor.RiskPOPolicyModelActor


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from riskpo_mm.models.tiny import make_tiny_text_model

    root = tmp_path_factory.mktemp("ray_ext")
    model = make_tiny_text_model("xs", out_dir=root / "model")
    records = [Record(id=f"q{i}", task="math", prompt=f"What is {i} + 1?", answer=str(i + 1)) for i in range(10)]
    data_flags = write_openrlhf_jsonl(records, root / "train.jsonl")
    return SimpleNamespace(model=str(model), data_flags=data_flags, ckpt=root / "ckpt")


def _trainer(ext, tiny_run, monkeypatch, **extra):
    from openrlhf.utils import get_strategy

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)  # plain dataloader, rank 0
    flags = {**BASE, **tiny_run.data_flags, "actor.model_name_or_path": tiny_run.model, "ckpt.path": str(tiny_run.ckpt)}
    flags.update({k.replace("__", "."): v for k, v in extra.items()})
    args = parse_ray_args(to_openrlhf_args(flags))
    actor_group = MagicMock()
    actor_group.async_run_method.return_value = []
    trainer = ext.trainer.RiskPOPPOTrainerImpl(
        tiny_run.model, get_strategy(args), actor_group, None, None, None, None, max_new_tokens=8
    )
    return trainer, actor_group


def test_trainer_constructs_with_riskpo_experience_maker_and_order_recording_generator(ext, tiny_run, monkeypatch):
    from riskpo_mm.algo import RiskPOEstimator
    from riskpo_mm.openrlhf_ext.experience import RiskPOExperienceMaker
    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator

    trainer, _ = _trainer(ext, tiny_run, monkeypatch, riskpo__bundle_size=2)
    assert isinstance(trainer.experience_maker, RiskPOExperienceMaker)
    assert isinstance(trainer.step.estimator, RiskPOEstimator) and trainer.step.estimator.config.bundle_size == 2
    assert trainer.experience_maker.prompt_order is trainer.prompt_order
    assert trainer.samples_generator.prompt_order is trainer.prompt_order

    dispatched = []
    def fake_dispatch(self, prompts, labels, **kwargs):  # OpenRLHF's sends to vLLM engines
        dispatched.extend(labels)
        return []

    monkeypatch.setattr(SamplesGenerator, "_dispatch_prompts_to_vllm", fake_dispatch)
    trainer.samples_generator.generate_samples(max_new_tokens=8)
    uids = [json.loads(label)["uid"] for label in dispatched]
    assert sorted(uids) == [f"q{i}" for i in range(10)]
    assert [trainer.prompt_order.position(u, 0) for u in uids] == list(range(10))  # dataloader order recorded

    off, _ = _trainer(ext, tiny_run, monkeypatch, riskpo__estimator="off", algo__advantage__estimator="group_norm")
    assert off.step is None


def test_estimator_state_rides_in_openrlhf_checkpoints_and_comes_back_on_load(ext, tiny_run, monkeypatch, tmp_path):
    monkeypatch.setattr(ray, "get", lambda refs: refs)  # actor groups are mocks; nothing remote
    trainer, group = _trainer(ext, tiny_run, monkeypatch, ckpt__save_steps=1)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):  # tracker initialised and updated, pairing RNG advanced
        trainer.step((torch.rand(10, 4, generator=g) < 0.5).float(), ["math"] * 10)
    client_states = {"global_step": 3, "episode": 0, "total_consumed_prompts": 30, "data_loader_state_dict": {}}
    trainer.save_logs_and_checkpoints(3, {}, client_states)
    saved = group.async_run_method.call_args.kwargs["client_states"]
    assert "riskpo_estimator" in saved and client_states is saved  # same dict reaches best-checkpoint saves
    torch.save(saved, tmp_path / "client_state.pt")  # DeepSpeed stores client_state with torch.save

    (tiny_run.ckpt / "_actor").mkdir(parents=True, exist_ok=True)
    resumed, resumed_group = _trainer(ext, tiny_run, monkeypatch, ckpt__load_enable=True)
    resumed_group.async_run_method.return_value = [torch.load(tmp_path / "client_state.pt", weights_only=False)]
    states = resumed.init_checkpoint_states()
    assert states["global_step"] == 3
    rewards = (torch.rand(10, 4, generator=g) < 0.5).float()
    expected = trainer.step(rewards, ["math"] * 10).advantages
    assert torch.equal(resumed.step(rewards, ["math"] * 10).advantages, expected)
    assert resumed.step.estimator.tracker().count == trainer.step.estimator.tracker().count


def test_train_step_logs_the_advantage_step_metrics(ext, tiny_run, monkeypatch):
    from openrlhf.trainer.ppo_trainer import BasePPOTrainer

    trainer, _ = _trainer(ext, tiny_run, monkeypatch)
    monkeypatch.setattr(BasePPOTrainer, "train_step", lambda self, samples, step: ({"policy_loss": 1.0}, step + 1))
    trainer.experience_maker.step_metrics = {"riskpo/tracked/q_alpha": 1.5, "advantage/zero_fraction": 0.25}
    status, step = trainer.train_step([], 4)
    assert step == 5 and status == {"policy_loss": 1.0, "riskpo/tracked/q_alpha": 1.5, "advantage/zero_fraction": 0.25}


def test_ray_metrics_get_the_local_engines_names():
    from riskpo_mm.openrlhf_ext.trainer import local_metric_names

    names = local_metric_names({"policy_loss": 0.5, "entropy_loss": 2.0, "timing/generation": 1.0,
                                "timing/ppo_train": 2.0, "reward/mean": 0.3, "riskpo/adv/mean": 0.0})
    assert names == {"train/policy_loss": 0.5, "train/entropy_loss": 2.0, "entropy": 2.0, "time/generate": 1.0,
                     "time/train": 2.0, "reward/mean": 0.3, "riskpo/adv/mean": 0.0}


def test_ray_in_training_eval_reports_the_local_engines_unbiased_pass_at_k():
    from riskpo_mm.eval.passk import pass_at_k
    from riskpo_mm.openrlhf_ext.trainer import eval_metrics

    def sample(uid, task, acc):
        return SimpleNamespace(labels=[json.dumps({"uid": uid, "task": task})], rewards=torch.tensor([acc]),
                               info={"accuracy": torch.tensor([acc]), "format_ok": torch.tensor([1.0])})

    samples = [sample("a", "math", x) for x in (1, 0, 0, 1)] + [sample("b", "geometry", x) for x in (0, 0, 0, 0)]
    logs = eval_metrics(samples, 4, [1, 2, 4])
    assert logs["eval/pass@1"] == pytest.approx(0.25) and logs["eval/avg@4"] == pytest.approx(0.25)
    assert logs["eval/pass@2"] == pytest.approx(pass_at_k(4, 2, 2) / 2)
    assert logs["eval/math/pass@4"] == 1.0 and logs["eval/geometry/pass@4"] == 0.0
    assert logs["eval/format_rate"] == 1.0
