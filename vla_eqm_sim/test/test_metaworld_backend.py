"""metaworld_backend.py, rendering.py, experts.py and instructions.py: the ROS-free sim layer."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from metaworld.env_dict import ALL_V3_ENVIRONMENTS

from vla_eqm_sim.backend import SimBackend, make_backend
from vla_eqm_sim.instructions import INSTRUCTIONS, instruction_for
from vla_eqm_sim.metaworld_backend import SAWYER_JOINTS, MetaWorldBackend
from vla_eqm_sim.scripted_experts import ScriptedExpert, expert_tasks


@pytest.fixture(scope="module")
def backend() -> MetaWorldBackend:
    b = make_backend("metaworld", task="button-press-v3", max_steps=150)
    assert isinstance(b, MetaWorldBackend) and isinstance(b, SimBackend)
    yield b
    b.close()


def _rollout(b: MetaWorldBackend, variation: int, seed: int, actions: np.ndarray) -> np.ndarray:
    b.reset("button-press-v3", variation, seed)
    states = [b.physics_state()]
    for a in actions:
        b.step(a)
        states.append(b.physics_state())
    return np.stack(states)


def test_same_variation_and_seed_give_bit_identical_physics_even_after_other_episodes(backend):
    actions = np.random.default_rng(1).uniform(-1, 1, size=(25, 4))
    first = _rollout(backend, 5, 3, actions)
    _rollout(backend, 9, 3, actions)  # something else in between
    assert np.array_equal(_rollout(backend, 5, 3, actions), first)
    fresh = MetaWorldBackend("button-press-v3", 5, 3)
    try:
        assert np.array_equal(_rollout(fresh, 5, 3, actions), first)
    finally:
        fresh.close()


def test_another_variation_or_seed_places_the_object_elsewhere(backend):
    backend.reset("button-press-v3", 5, 3)
    scene = backend.task_state()[4:7]  # the button's position
    backend.reset("button-press-v3", 6, 3)
    assert not np.allclose(backend.task_state()[4:7], scene)
    backend.reset("button-press-v3", 5, 4)
    assert not np.allclose(backend.task_state()[4:7], scene)


def test_frames_are_the_mujoco_frames_flipped_upright_at_the_requested_size(backend):
    backend.reset("button-press-v3", 0, 0)
    frames = backend.render(["corner", "gripperPOV"], (48, 64))
    assert set(frames) == {"corner", "gripperPOV"}
    for frame in frames.values():
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
    model = backend._env.model
    assert model.vis.quality.shadowsize == 0 and model.vis.quality.offsamples == 0
    raw = mujoco.Renderer(model, 48, 64)
    raw.update_scene(backend._env.data, camera="corner")
    assert np.array_equal(frames["corner"], raw.render()[::-1])
    raw.close()


def _red_arm_row(frame: np.ndarray) -> float:
    """Mean image row of the Sawyer's red arm pixels."""
    f = frame.astype(int)
    mask = (f[..., 0] > 100) & (f[..., 1] < 60) & (f[..., 2] < 60)
    return float(np.argwhere(mask)[:, 0].mean())


def test_frames_are_upright_so_raising_the_hand_moves_the_arm_up_in_the_image(backend):
    backend.reset("button-press-v3", 0, 0)
    for _ in range(12):
        backend.step(np.array([0.0, 0.0, -1.0, 0.0]))
    low = backend.render(["corner", "corner4"], (64, 64))
    for _ in range(30):
        backend.step(np.array([0.0, 0.0, 1.0, 0.0]))
    high = backend.render(["corner", "corner4"], (64, 64))
    for cam in low:  # row 0 is the top of an upright image
        assert _red_arm_row(high[cam]) < _red_arm_row(low[cam]) - 1.0, cam


def test_unknown_cameras_tasks_and_variations_fail_with_a_clear_error(backend):
    with pytest.raises(ValueError, match="unknown camera"):
        backend.render(["no_such_camera"], (32, 32))
    with pytest.raises(ValueError, match="not a V3 environment"):
        backend.reset("no-such-task-v3", 0, 0)
    with pytest.raises(ValueError, match="variation 50 out of range"):
        backend.reset("button-press-v3", 50, 0)


def test_a_cartesian_action_moves_the_tool_centre_along_that_axis(backend):
    backend.reset("button-press-v3", 0, 0)
    start, _ = backend.ee_pose()
    for _ in range(10):
        backend.step(np.array([0.0, 0.0, 1.0, 0.0]))
    end, quat = backend.ee_pose()
    assert end[2] - start[2] > 0.05
    assert abs(np.linalg.norm(quat) - 1.0) < 1e-6


def test_the_step_refuses_non_finite_or_misshapen_actions(backend):
    backend.reset("button-press-v3", 0, 0)
    for bad in (np.array([np.nan, 0, 0, 0]), np.zeros(3)):
        with pytest.raises(ValueError, match="invalid action"):
            backend.step(bad)
    assert backend.step_count == 0


def test_joint_state_uses_the_sawyer_joint_names(backend):
    backend.reset("button-press-v3", 0, 0)
    assert backend.joint_names == SAWYER_JOINTS
    assert backend.joint_positions().shape == backend.joint_velocities().shape == (9,)
    assert backend.action_spec.names == ("dx", "dy", "dz", "gripper")
    assert backend.dt == pytest.approx(0.0125)


def test_the_expert_succeeds_and_success_latches_and_ends_the_episode(backend):
    backend.reset("button-press-v3", 0, 0)
    expert = ScriptedExpert("button-press-v3")
    result = None
    while not backend.done:
        result = backend.step(expert.act(backend.task_state()))
    assert result.success and result.done and not result.truncated
    assert backend.step_count < backend.max_steps
    with pytest.raises(RuntimeError, match="reset"):
        backend.step(np.zeros(4))


def test_the_step_limit_truncates_an_unsuccessful_episode():
    b = MetaWorldBackend("button-press-v3", 0, 0, max_steps=5)
    try:
        results = [b.step(b.hold_action()) for _ in range(5)]
        assert [r.done for r in results] == [False] * 4 + [True]
        assert results[-1].truncated and not results[-1].success
    finally:
        b.close()


def test_every_meta_world_task_has_an_instruction_and_an_expert():
    assert set(INSTRUCTIONS) == set(ALL_V3_ENVIRONMENTS) == set(expert_tasks())
    assert len(INSTRUCTIONS) == 50
    assert len(set(INSTRUCTIONS.values())) == 50, "instructions must tell tasks apart"
    assert instruction_for("button-press-topdown-v3") == "press the button from the top"
    with pytest.raises(KeyError, match="no instruction"):
        instruction_for("nope-v3")
