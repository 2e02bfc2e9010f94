"""The policy node over real rclpy/DDS on loopback: observation in, command out, lifecycle."""

from __future__ import annotations

import time

import numpy as np
import pytest
from policy_node_harness import Harness, build_checkpoint
from rclpy.lifecycle import TransitionCallbackReturn

SUCCESS = TransitionCallbackReturn.SUCCESS


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_checkpoint(tmp_path_factory.mktemp("ckpt") / "debug_eqm")


@pytest.fixture
def harness(checkpoint):
    h = Harness({"checkpoint": str(checkpoint), "execute_steps": 2})
    yield h
    h.close()


def test_nothing_is_commanded_before_activation_and_commands_flow_after(harness) -> None:
    assert harness.node.trigger_configure() == SUCCESS
    harness.publish_goal("press the button")
    harness.start_stream()
    time.sleep(0.6)
    assert harness.commands_since(0.0) == [], "a configured but inactive node commanded"
    t_active = time.monotonic()
    assert harness.node.trigger_activate() == SUCCESS
    assert harness.wait_for(lambda: len(harness.commands) >= 10, timeout=10)
    cmds = harness.commands_since(t_active)
    for msg in cmds:
        assert len(msg.data) == 4
        assert all(-1.0 <= v <= 1.0 for v in msg.data)
    assert harness.wait_for(lambda: len(harness.statuses) >= 1)
    status = harness.statuses[-1]
    assert status.decoder == "eqm"
    assert 1 <= status.iterations <= status.k_max
    assert status.stop_reason in ("threshold", "k_max", "deadline")


def test_deactivate_sends_a_hold_command_last_and_then_stays_silent(checkpoint) -> None:
    # Own node name: after a node of a name is finalized, rclpy's /rosout stops carrying later
    # same-named nodes of this process (seen with the Jazzy wheels), which the log tests read.
    harness = Harness({"checkpoint": str(checkpoint), "execute_steps": 2},
                      node_name="policy_node_finalized")
    try:
        _deactivate_then_cleanup_and_shutdown(harness)
    finally:
        harness.close()


def _deactivate_then_cleanup_and_shutdown(harness: Harness) -> None:
    assert harness.node.trigger_configure() == SUCCESS
    harness.publish_goal("open the drawer")
    harness.start_stream()
    assert harness.node.trigger_activate() == SUCCESS
    assert harness.wait_for(lambda: len(harness.commands) >= 5)
    assert harness.node.trigger_deactivate() == SUCCESS
    time.sleep(0.3)
    t_after = time.monotonic()
    last = harness.commands_since(0.0)[-1]
    np.testing.assert_array_equal(np.asarray(last.data)[:3], [0.0, 0.0, 0.0])
    time.sleep(0.5)
    assert harness.commands_since(t_after) == []
    assert harness.node.trigger_cleanup() == SUCCESS
    assert harness.node.policy is None
    assert harness.node.trigger_configure() == SUCCESS, "configure again after cleanup"
    assert harness.node.trigger_shutdown() == SUCCESS
    assert harness.node.policy is None


def test_a_missing_checkpoint_fails_configure_and_leaves_the_node_unconfigured(tmp_path) -> None:
    h = Harness({"checkpoint": str(tmp_path / "nope")})
    try:
        assert h.node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert h.node._state_machine.current_state[1] == "unconfigured"
        assert h.node.policy is None
    finally:
        h.close()


def test_a_contract_that_disagrees_with_the_model_fails_configure(checkpoint, tmp_path) -> None:
    import yaml
    from policy_node_harness import CONTRACT

    bad = {**CONTRACT, "state": [{**CONTRACT["state"][0], "names": ["j0", "j1"]}]}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    h = Harness({"checkpoint": str(checkpoint), "contract": str(tmp_path / "bad.yaml")})
    try:
        assert h.node.trigger_configure() == TransitionCallbackReturn.FAILURE
    finally:
        h.close()


def test_joint_trajectory_output_sends_the_chunk_the_controller_accepts(tmp_path) -> None:
    from policy_node_harness import JOINT_CONTRACT

    ckpt = build_checkpoint(tmp_path / "joint", JOINT_CONTRACT)
    h = Harness({"checkpoint": str(ckpt), "execute_steps": 4})
    try:
        assert h.node.trigger_configure() == SUCCESS
        h.publish_goal("reach")
        h.start_stream()
        assert h.node.trigger_activate() == SUCCESS
        assert h.wait_for(lambda: len(h.commands) >= 2)
        traj = h.commands_since(0.0)[-1]
        assert traj.header.stamp.sec == 0 and traj.header.stamp.nanosec == 0
        assert traj.joint_names == ["j0", "j1", "j2", "j3"]
        times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in traj.points]
        assert times[0] == pytest.approx(0.05)
        assert all(b > a for a, b in zip(times, times[1:], strict=False))
        assert list(traj.points[-1].velocities) == [0.0] * 4
        for p in traj.points:
            assert all(-3.0 <= v <= 3.0 for v in p.positions)
            assert len(p.velocities) == 4
    finally:
        h.close()
