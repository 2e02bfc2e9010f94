"""Training: a few debug steps write a loadable checkpoint with provenance; resume is exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from bag_factory import contract, write_bag

from vla_eqm_ros.checkpoint import load_config
from vla_eqm_ros.policy import Policy
from vla_eqm_train.data.bags import read_episode
from vla_eqm_train.data.dataset import write_cache
from vla_eqm_train.training.config import TrainConfig
from vla_eqm_train.training.trainer import Trainer, lr_factor


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    c = contract()
    eps = [read_episode(write_bag(root / f"b{i}", 6 + i, goal=f"goal {i % 2}", task=f"t{i % 2}"),
                        c) for i in range(4)]
    write_cache(root / "cache", eps, c, val_fraction=0.25)
    return root


def _cfg(root, name: str, **kw) -> TrainConfig:
    base = dict(dataset=str(root / "cache"), out=str(root / name / "ckpt"),
                run_dir=str(root / name / "run"), preset="debug", steps=4, batch_size=4,
                repeats=2, warmup_steps=1, val_every=2, val_batches=1, ckpt_every=2,
                ema_decay=0.9, threads=1, device="cpu", shift_pad=1)
    base.update(kw)
    return TrainConfig(**base)


def test_a_few_steps_write_a_checkpoint_the_policy_loads_with_provenance_and_curves(cache):
    cfg = _cfg(cache, "plain")
    trainer = Trainer(cfg, progress=False)
    out = trainer.fit()
    policy = Policy.from_checkpoint(out, seed=0)
    prov = load_config(out).provenance
    assert prov["dataset_hash"] == trainer.train_data.hash
    assert prov["train_config"]["steps"] == 4 and prov["weights"] == "ema"
    assert prov["commit"] and prov["dataset_tasks"] == ["t0", "t1"]
    assert policy.config.contract == contract().to_dict()
    assert policy.config.control_period == contract().control_period
    assert (cache / "plain" / "run" / "loss_curves.png").stat().st_size > 1000
    assert len(trainer.history["train_loss"]) == 4
    assert [s for s, _ in trainer.history["val_loss"]] == [2, 4]
    assert all(math.isfinite(v) for _, v in trainer.history["train_loss"])


def test_resuming_from_the_saved_state_continues_exactly_as_an_uninterrupted_run(cache):
    straight = Trainer(_cfg(cache, "straight"), progress=False)
    straight.fit()
    first = Trainer(_cfg(cache, "resumed", steps=4, time_limit_min=1e-9), progress=False)
    first.fit()  # the time limit stops it after one step, after saving its state
    assert first.step == 1
    resumed = Trainer(_cfg(cache, "resumed"), resume=True, progress=False)
    assert resumed.step == 1
    resumed.fit()
    for (name, a), b in zip(straight.model.state_dict().items(),
                            resumed.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=f"weights differ at {name}")
    for a, b in zip(straight.ema.state_dict().values(), resumed.ema.state_dict().values(),
                    strict=True):
        torch.testing.assert_close(a, b)
    np.testing.assert_allclose([v for _, v in straight.history["train_loss"]],
                               [v for _, v in resumed.history["train_loss"]], rtol=1e-6)


def test_resuming_with_a_different_decoder_is_refused(cache):
    Trainer(_cfg(cache, "guard", steps=1), progress=False).fit()
    with pytest.raises(ValueError, match="decoder"):
        Trainer(_cfg(cache, "guard", steps=2, decoder="fm"), resume=True, progress=False)


def test_the_fm_baseline_trains_through_the_same_path(cache):
    trainer = Trainer(_cfg(cache, "fm", decoder="fm", steps=2), progress=False)
    out = trainer.fit()
    assert Policy.from_checkpoint(out).config.decoder == "fm"


def test_the_schedule_warms_up_linearly_then_decays_by_cosine_to_the_floor():
    assert lr_factor(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100, 0.1) == pytest.approx(0.55)
    assert lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1)


def test_a_typo_in_the_training_config_names_the_closest_key():
    with pytest.raises(ValueError, match="did you mean 'batch_size'"):
        TrainConfig.from_dict({"dataset": "d", "out": "o", "batch_sise": 3})
