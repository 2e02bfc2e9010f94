"""Policy on the debug preset: decode, queue, warm start, retuning and bad input."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from vla_eqm_ros.config import get_preset
from vla_eqm_ros.model import PI0EqMModel
from vla_eqm_ros.observation import Observation
from vla_eqm_ros.policy import DEFAULT_CHECKPOINT, DecodeRecord, Policy

GOAL = "press the button"


def _policy(decoder: str = "eqm", **solver) -> Policy:
    torch.manual_seed(0)
    cfg = get_preset("debug").replace(decoder=decoder)
    model = PI0EqMModel(cfg)
    model.action_normalizer.mean.fill_(5.0)  # physical units differ from normalized ones
    policy = Policy(model, seed=0)
    if solver:
        policy.update_solver(**solver)
    return policy


def _obs(policy: Policy, t: float = 0.0, goal: str = GOAL) -> Observation:
    cam = policy.config.model.cameras[0]
    img = np.full((cam.height, cam.width, 3), int(100 + 50 * np.sin(t)), dtype=np.uint8)
    state = np.array([np.cos(t), np.sin(t), 0.0, 1.0], dtype=np.float32)
    return Observation(images={cam.name: img}, state=state, goal=goal, stamp=t)


def test_a_decode_returns_a_physical_unit_chunk_and_its_record():
    policy = _policy()
    chunk, rec = policy.predict_action_chunk(_obs(policy))
    m = policy.config.model
    assert chunk.shape == (m.horizon, m.action_dim) and chunk.dtype == np.float32
    assert np.isfinite(chunk).all()
    assert abs(float(chunk.mean()) - 5.0) < 3.0  # unnormalized around the action mean
    assert rec.decoder == "eqm" and rec.iterations == len(rec.residual_trace) >= 1
    assert rec.residual == pytest.approx(rec.residual_trace[-1])
    assert rec.stop_reason in ("threshold", "k_max") and rec.prefix_ms > 0 and rec.solve_ms > 0
    assert not rec.warm_start_used


def test_the_decode_record_mirrors_the_decoder_status_message():
    msg = Path(__file__).resolve().parents[2] / "vla_eqm_msgs" / "msg" / "DecoderStatus.msg"
    fields = []
    for line in msg.read_text().splitlines():
        line = line.split("#")[0].strip()
        m = re.match(r"^[\w/\[\]]+\s+(\w+)$", line)  # "type name", not constants "type N=v"
        if m and m.group(1) != "header":
            fields.append(m.group(1))
    assert fields == [f.name for f in dataclasses.fields(DecodeRecord)]


def test_the_second_decode_is_warm_started_and_a_new_goal_or_reset_starts_cold():
    policy = _policy()
    policy.predict_action_chunk(_obs(policy, 0.0))
    _, rec = policy.predict_action_chunk(_obs(policy, 0.05), steps_executed=1)
    assert rec.warm_start_used and rec.warm_start == "shifted"
    _, rec = policy.predict_action_chunk(_obs(policy, 0.1, goal="open the drawer"), 1)
    assert not rec.warm_start_used
    policy.reset()
    _, rec = policy.predict_action_chunk(_obs(policy, 0.1, goal="open the drawer"), 1)
    assert not rec.warm_start_used


def test_select_action_pops_execute_steps_actions_per_decode():
    policy = _policy()
    k = policy.config.execute_steps
    decodes = []
    for i in range(3 * k):
        before = policy.last_record
        action = policy.select_action(_obs(policy, 0.05 * i))
        assert action.shape == (policy.config.model.action_dim,)
        decodes.append(policy.last_record is not before)
    assert decodes == ([True] + [False] * (k - 1)) * 3
    assert policy.last_record.warm_start_used  # later decodes reuse the shifted chunk


def test_update_solver_validates_and_applies_from_the_next_call():
    policy = _policy()
    with pytest.raises(ValueError, match="-0.5"):
        policy.update_solver(tau=-0.5)
    with pytest.raises(ValueError, match="did you mean 'k_max'"):
        policy.update_solver(kmax=3)
    policy.update_solver(tau=0.0, k_max=7, warm_start_tail="noise")
    _, rec = policy.predict_action_chunk(_obs(policy))
    assert rec.k_max == 7 and rec.iterations == 7 and rec.stop_reason == "k_max"
    assert rec.warm_start_tail == "noise"


def test_a_deadline_returns_a_finite_chunk_and_says_so():
    policy = _policy(tau=0.0, k_max=100_000, deadline_ms=5.0)
    chunk, rec = policy.predict_action_chunk(_obs(policy))
    assert rec.stop_reason == "deadline" and np.isfinite(chunk).all()
    assert rec.iterations < 100_000 and rec.solve_ms < 500


def test_fm_decodes_through_the_same_interface_with_fixed_steps():
    policy = _policy("fm")
    chunk, rec = policy.predict_action_chunk(_obs(policy))
    assert np.isfinite(chunk).all()
    assert rec.decoder == "fm" and rec.iterations == rec.fm_steps == 10
    assert rec.stop_reason == "fixed_steps" and np.isnan(rec.residual)
    assert rec.residual_trace == [] and not rec.warm_start_used


def test_a_batch_decode_stops_each_observation_on_its_own():
    policy = _policy(tau=0.5)
    obs = [_obs(policy, t) for t in (0.0, 1.0, 2.0)]
    chunks, recs = policy.predict_batch(obs)
    assert chunks.shape == (3, 8, 4) and len(recs) == 3
    assert all(r.iterations == len(r.residual_trace) for r in recs)
    assert policy.warm_start.previous is None


def test_bad_observations_raise_value_errors_that_say_what_is_wrong():
    policy = _policy()
    good = _obs(policy)
    with pytest.raises(ValueError, match="no image for camera 'corner'"):
        policy.predict_action_chunk(Observation(images={}, state=good.state, goal=GOAL))
    with pytest.raises(ValueError, match="state must have 4 values, got 3"):
        policy.predict_action_chunk(Observation(images=good.images, state=np.zeros(3), goal=GOAL))


def test_any_camera_resolution_is_resized_to_the_model_input():
    policy = _policy()
    big = Observation(images={"corner": np.zeros((120, 160, 3), np.uint8)},
                      state=np.zeros(4, np.float32), goal=GOAL)
    chunk, _ = policy.predict_action_chunk(big)
    assert np.isfinite(chunk).all()


def test_the_missing_default_checkpoint_error_names_the_path_and_how_to_create_it(
        tmp_path, monkeypatch):
    import vla_eqm_ros.policy as policy_module

    missing = tmp_path / "default_eqm"  # where a fresh clone without the shipped files would look
    monkeypatch.setattr(policy_module, "DEFAULT_CHECKPOINT", missing)
    with pytest.raises(FileNotFoundError, match="default_eqm.*vla-eqm train"):
        Policy.from_checkpoint(None)


def test_the_shipped_default_checkpoint_loads():
    assert (DEFAULT_CHECKPOINT / "model.safetensors").is_file()
    policy = Policy.from_checkpoint(None)
    assert policy.config.decoder == "eqm"


def test_from_checkpoint_serves_the_saved_model(tmp_path):
    from vla_eqm_ros.checkpoint import save_checkpoint

    policy = _policy()
    save_checkpoint(tmp_path / "ckpt", policy.model)
    loaded = Policy.from_checkpoint(tmp_path / "ckpt", seed=0)
    fresh = Policy(policy.model, seed=0)
    a, _ = loaded.predict_action_chunk(_obs(loaded))
    b, _ = fresh.predict_action_chunk(_obs(fresh))
    assert np.array_equal(a, b)


def test_model_forward_gives_a_training_loss():
    policy = _policy()
    batch = policy.observation_batch([_obs(policy), _obs(policy, 1.0)])
    batch["actions"] = torch.zeros(2, 8, 4)
    loss, metrics = policy.model_forward(batch)
    assert torch.isfinite(loss) and metrics["loss"] > 0


def test_the_frozen_warm_start_commits_to_the_previous_plan_for_its_frozen_rows():
    policy = _policy(warm_start="frozen", warm_start_frozen_rows=2, tau=0.0, k_max=5)
    first, _ = policy.predict_action_chunk(_obs(policy, 0.0))
    second, rec = policy.predict_action_chunk(_obs(policy, 0.3), steps_executed=2)
    assert rec.warm_start_used and rec.warm_start == "frozen"
    np.testing.assert_array_equal(second[:2], first[2:4])  # held fixed through the solve
    assert np.abs(second[2:4] - first[4:6]).max() > 0  # the free reused rows were solved


def test_a_tau_per_goal_applies_to_that_goal_and_the_global_tau_to_the_rest():
    policy = _policy(tau=0.05, tau_by_goal=[f"0.7={GOAL}", "0.2=open the drawer"])
    _, rec = policy.predict_action_chunk(_obs(policy, 0.0))
    assert rec.tau == pytest.approx(0.7)
    _, rec = policy.predict_action_chunk(_obs(policy, 0.0, goal="something else"))
    assert rec.tau == pytest.approx(0.05)
    _, recs = policy.predict_batch([_obs(policy, 0.0), _obs(policy, 0.0, goal="open the drawer")])
    assert [r.tau for r in recs] == pytest.approx([0.7, 0.2])
    with pytest.raises(ValueError, match="TAU=GOAL"):
        policy.update_solver(tau_by_goal=["press the button"])
