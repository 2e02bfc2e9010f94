"""The RL head in the policy: a fresh head changes nothing, its mean acts where config.rl says,
exploration is a seeded Gaussian whose log probability is reported, and it round-trips through a
checkpoint (the node and eval-sim load RL checkpoints like any other)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vla_eqm_ros.checkpoint import load_checkpoint, save_checkpoint
from vla_eqm_ros.config import PolicyConfig, RLConfig, get_preset
from vla_eqm_ros.model import PI0EqMModel
from vla_eqm_ros.observation import Observation
from vla_eqm_ros.policy import Policy
from vla_eqm_ros.rl_head import attach_rl_head


def _model(method: str | None = None) -> PI0EqMModel:
    torch.manual_seed(0)
    model = PI0EqMModel(get_preset("debug"))
    if method:
        cfg = model.config
        rows = cfg.execute_steps if method == "residual" else cfg.model.horizon
        attach_rl_head(model, RLConfig(method=method, rows=rows))
    return model


def _obs(model: PI0EqMModel, t: float) -> Observation:
    cam = model.config.model.cameras[0]
    img = np.full((cam.height, cam.width, 3), int(100 + 50 * np.sin(t)), dtype=np.uint8)
    return Observation(images={cam.name: img}, state=np.array([np.cos(t), np.sin(t), 0, 1]),
                       goal="press the button", stamp=t)


def _chunks(policy: Policy, n: int = 3) -> list[np.ndarray]:
    policy.reset()
    return [policy.predict_action_chunk(_obs(policy.model, 0.1 * i))[0] for i in range(n)]


@pytest.mark.parametrize("method", ["residual", "steer"])
def test_a_fresh_head_decodes_exactly_as_its_parent(method):
    parent = Policy(_model(), seed=0)
    child_model = _model()
    child_model.load_state_dict(parent.model.state_dict())
    child = Policy(attach_rl_head(child_model, RLConfig(
        method=method, rows=2 if method == "residual" else 8)), seed=0)
    for a, b in zip(_chunks(parent), _chunks(child), strict=True):
        np.testing.assert_array_equal(a, b)
    assert child.last_rl is not None
    assert child.last_rl.action.shape == (child.model.rl_head.out_dim,)
    assert not child.last_rl.action.any()  # the mean of a fresh head is zero


def _biased(method: str, bias: float) -> tuple[PI0EqMModel, PI0EqMModel]:
    """A head whose mean is ``bias`` everywhere, and the same model without a head."""
    model = _model(method)
    torch.nn.init.constant_(model.rl_head.actor[-1].bias, bias)
    ref = _model()
    ref.load_state_dict({k: v for k, v in model.state_dict().items()
                         if not k.startswith("rl_head.")})
    return model, ref


def test_the_residual_corrects_only_the_executed_rows_and_leaves_the_warm_start_alone():
    model, ref = _biased("residual", 0.5)
    with_head, without = Policy(model, seed=0), Policy(ref, seed=0)
    a, b = _chunks(with_head, 1)[0], _chunks(without, 1)[0]
    rows = model.config.rl.rows
    assert np.abs(a[:rows] - b[:rows]).min() > 0  # the executed rows moved
    np.testing.assert_array_equal(a[rows:], b[rows:])  # the rest is the solver's
    # the warm start reuses the solver's own chunk, not the corrected one
    torch.testing.assert_close(with_head.warm_start.previous, without.warm_start.previous)


def test_steering_moves_the_initial_iterate_and_so_the_solution():
    model, ref = _biased("steer", 1.0)
    a, b = _chunks(Policy(model, seed=0), 1)[0], _chunks(Policy(ref, seed=0), 1)[0]
    assert np.abs(a - b).max() > 1e-4


def _gated(method: str, goals: tuple[str, ...]) -> tuple[PI0EqMModel, PI0EqMModel]:
    model, ref = _biased(method, 0.5)
    model.config = model.config.replace(rl=dataclasses.replace(model.config.rl, goals=goals))
    return model, ref


@pytest.mark.parametrize("method", ["residual", "steer"])
def test_a_head_acts_only_on_its_goals_and_elsewhere_decodes_exactly_as_its_parent(method):
    """An offset learned on one task hurt another (docs/rl.md: drawer-open 10/10 -> 0/10 after
    shelf-place RL), so rl.goals confines the head to the tasks it was trained on."""
    trained = "press the button"  # _obs's goal
    model, ref = _gated(method, (trained,))
    a, b = _chunks(Policy(model, seed=0), 1)[0], _chunks(Policy(ref, seed=0), 1)[0]
    assert np.abs(a - b).max() > 1e-4  # its own goal: the head acts
    off, base = Policy(model, seed=0), Policy(ref, seed=0)
    other = dataclasses.replace(_obs(model, 0.0), goal="open the drawer")
    chunk, _ = off.predict_action_chunk(other)
    np.testing.assert_array_equal(chunk, base.predict_action_chunk(other)[0])
    assert off.last_rl is None  # no decision to learn from: the head did not act
    # a batch mixes goals: each sample follows its own
    batch, _ = Policy(model, seed=0).predict_batch([_obs(model, 0.0), other],
                                                  noise=torch.zeros(2, *a.shape))
    ref_batch, _ = Policy(ref, seed=0).predict_batch([_obs(model, 0.0), other],
                                                    noise=torch.zeros(2, *a.shape))
    np.testing.assert_array_equal(batch[1], ref_batch[1])
    assert np.abs(batch[0] - ref_batch[0]).max() > 1e-4


def test_rl_goals_are_stripped_round_trip_and_empty_means_every_goal(tmp_path):
    rl = RLConfig(method="residual", rows=2, goals=[" press the button "])
    assert rl.goals == ("press the button",)
    assert rl.acts_on("press the button ") and not rl.acts_on("open the drawer")
    assert not rl.acts_on(None)
    assert RLConfig(method="residual", rows=2).acts_on("anything")
    assert not RLConfig().acts_on("anything")  # no head
    model, _ = _gated("residual", ("press the button",))
    save_checkpoint(tmp_path / "ck", model)
    assert load_checkpoint(tmp_path / "ck")[0].rl.goals == ("press the button",)


def test_exploration_draws_around_the_mean_and_reports_the_draws_log_probability():
    policy = Policy(_model("residual"), seed=0)
    gen = torch.Generator()
    gen.manual_seed(3)
    policy.exploration = gen
    policy.reset()
    policy.predict_action_chunk(_obs(policy.model, 0.0))
    step = policy.last_rl
    head = policy.model.rl_head
    assert step is not None and np.abs(step.action).max() > 0  # a draw, not the zero mean
    with torch.no_grad():
        logp = head.log_prob(torch.as_tensor(step.features)[None],
                             torch.as_tensor(step.action)[None])
    assert float(logp[0]) == pytest.approx(step.log_prob, rel=1e-5)
    policy.exploration = None  # deployment: the mean again
    policy.predict_action_chunk(_obs(policy.model, 0.1))
    assert not policy.last_rl.action.any()


def test_an_rl_checkpoint_round_trips_bit_exactly(tmp_path):
    model = _model("residual")
    torch.nn.init.normal_(model.rl_head.actor[-1].weight)
    save_checkpoint(tmp_path / "ck", model)
    cfg, loaded = load_checkpoint(tmp_path / "ck")
    assert cfg.rl == model.config.rl and loaded.rl_head is not None
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_bad_rl_settings_are_refused_with_the_key_named():
    with pytest.raises(ValueError, match="rl.method"):
        RLConfig(method="dsrl")
    with pytest.raises(ValueError, match="rl.rows"):
        PolicyConfig(rl=RLConfig(method="residual", rows=0))
    with pytest.raises(ValueError, match="rl.init_std"):
        RLConfig(method="steer", rows=4, init_std=0.0)
    with pytest.raises(ValueError, match="needs rl.method"):
        attach_rl_head(_model(), RLConfig())
