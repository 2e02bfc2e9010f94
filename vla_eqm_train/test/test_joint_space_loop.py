"""Issue #5, last item: a policy trained on joint-space demos closes the loop through
``JointTrajectory`` commands.

Real components end to end: ``vla-eqm record --control joint`` records two short scripted-expert
episodes through the sim bridge (rosbag2), ``vla-eqm dataset build`` decodes them through the
shipped joint contract, ``vla-eqm train`` trains a few steps of the debug preset. The lifecycle
policy node then serves that checkpoint (``trigger: observation``, sim time) against the Meta-World
bridge in ``control_mode: joint`` / ``clock_mode: lockstep``: every chunk goes out as one
``JointTrajectory`` to the controller topic and the bridge executes it at its timestamps.

A debug model trained for three steps does not solve the task, so nothing here asserts success;
it asserts that the loop closes through ``JointTrajectory``: well-formed trajectories, all of them
accepted, the sim advancing on them, and the measured joints following the commanded ones.

Serving: the demos label actions from ``/command`` (``Float64MultiArray``, what the expert sent),
so the checkpoint's contract says ``float64_multi_array``; the node is told to publish
trajectories instead (``output_mode`` and ``command_topic``). In lockstep the bridge runs each
trajectory to its end before the sim waits again, so the node replans once per trajectory
(``execute_steps`` = H): see "Closing the loop" in docs/joint_control.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
import yaml
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

import vla_eqm_sim
from vla_eqm_ros.checkpoint import load_config
from vla_eqm_ros.nodes.policy_node import PolicyNode
from vla_eqm_ros.nodes.runtime import InProcess
from vla_eqm_ros.waiting import wait_until
from vla_eqm_sim.metaworld_backend import SAWYER_JOINTS
from vla_eqm_sim.nodes.sim_bridge import SIM_TIME_ORIGIN_NS, SimBridge
from vla_eqm_sim.sawyer_joint import ARM_JOINTS
from vla_eqm_train.cli import main as vla_eqm

TASK = "button-press-topdown-v3"
SIZE = 32  # px, one corner camera
DEMO_STEPS = 30  # per recorded episode
MIN_STEPS = 40  # sim steps the closed loop must run on the policy's trajectories
TRAJECTORY_TOPIC = "/joint_trajectory_controller/joint_trajectory"
JOINT_CONTRACT = Path(vla_eqm_sim.__file__).resolve().parents[1] / "config" / \
    "metaworld_joint_contract.yaml"
DEBUG_CONFIG = Path(__file__).resolve().parents[1] / "config" / "debug.yaml"


@pytest.fixture(scope="module")
def joint_checkpoint(tmp_path_factory) -> Path:
    """record (joint) -> dataset build (joint contract) -> train (debug preset, 3 steps)."""
    root = tmp_path_factory.mktemp("joint_loop")
    contract = yaml.safe_load(JOINT_CONTRACT.read_text())
    contract["cameras"] = [{**contract["cameras"][0], "height": SIZE, "width": SIZE}]
    (root / "contract.yaml").write_text(yaml.safe_dump(contract))
    assert vla_eqm(["record", "--control", "joint", "--tasks", TASK, "--episodes", "2",
                    "--max-attempts", "2", "--out", str(root / "bags"), "--cameras", "corner",
                    "--image-size", str(SIZE),
                    "--max-steps", str(DEMO_STEPS), "--no-progress"]) == 0
    assert vla_eqm(["dataset", "build", str(root / "bags"), "--out", str(root / "cache"),
                    "--contract", str(root / "contract.yaml"), "--include-failures",
                    "--val-fraction", "0.5", "--no-progress"]) == 0
    assert vla_eqm(["train", "--config", str(DEBUG_CONFIG), "--dataset", str(root / "cache"),
                    "--out", str(root / "ckpt"), "--run-dir", str(root / "run"),
                    "--steps", "3", "--no-progress"]) == 0
    return root / "ckpt"


@pytest.fixture(scope="module")
def closed_loop(joint_checkpoint) -> dict[str, Any]:
    """Bridge (joint, lockstep) + policy node (JointTrajectory out) + a probe, in one process.

    Runs until the bridge has stepped MIN_STEPS times on the policy's trajectories, deactivates
    the node (its last command is a one-point hold trajectory) and returns what was observed.
    """
    horizon = load_config(joint_checkpoint).model.horizon
    reliable = QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE)
    trajectories: list[JointTrajectory] = []
    joint_states: list[JointState] = []

    def make_nodes(context):
        bridge = SimBridge(context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in {
                "task": TASK, "seed": 1000, "cameras": ["corner"], "image_size": SIZE,
                "clock_mode": "lockstep", "control_mode": "joint", "max_steps": 500,
                "end_on_success": False, "reliable_images": True,
                "publish_task_state": False}.items()])
        node = PolicyNode("joint_loop_policy", context=context, parameter_overrides=[
            Parameter("checkpoint", value=str(joint_checkpoint)),
            Parameter("trigger", value="observation"),
            Parameter("use_sim_time", value=True),
            Parameter("output_mode", value="joint_trajectory"),
            Parameter("command_topic", value=TRAJECTORY_TOPIC),
            Parameter("execute_steps", value=horizon)])
        probe = rclpy.create_node("joint_loop_probe", context=context)
        probe.create_subscription(JointTrajectory, TRAJECTORY_TOPIC, trajectories.append, reliable)
        probe.create_subscription(JointState, "/joint_states", joint_states.append, reliable)
        return [node, probe, bridge]  # teardown order: the node's hold first

    bridge = None
    try:
        # the lockstep bridge runs a whole trajectory per command, advancing sim time by several
        # periods at once; on one thread the node's watchdog timer can run before the frames
        # queued behind it and hold (docs/policy_node.md, "Executor"): a pool keeps them apart
        with InProcess(make_nodes, policy_node=lambda nodes: nodes[0],
                       executor="multi_threaded") as run:
            node, probe, bridge = run.nodes
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
            assert wait_until(lambda: bridge._image_pubs["corner"].get_subscription_count() >= 1
                         and bridge._joint_pub.get_subscription_count() >= 2
                         and node.command_pub.get_subscription_count() >= 2, 30.0), "discovery"
            ok, why = bridge.reset_episode(TASK, 0, 1000)  # a held-out variation: demos used seed 0
            assert ok, why
            advanced = wait_until(lambda: bridge.backend.step_count >= MIN_STEPS, 90.0)
            assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
            # quiet: the hold trajectory reached the probe, the bridge stepped through every
            # point it was sent (a chunk sent while deactivating is still being executed), and
            # the last step's joint state arrived too
            ok = wait_until(lambda: len(trajectories) == node.stats.solves + 1 and joint_states
                              and bridge.backend.step_count
                              == sum(len(m.points) for m in trajectories)
                              and _step_of(joint_states[-1], bridge.backend.dt)
                              == bridge.backend.step_count, 10.0)
            assert ok, {"holds": node.stats.holds, "trajectories": len(trajectories),
                        "solves": node.stats.solves, "steps": bridge.backend.step_count}
            time.sleep(0.3)  # and nothing else arrives
            return {
                "advanced": advanced, "steps": bridge.backend.step_count,
                "dt": bridge.backend.dt, "horizon": horizon,
                "rejections": dict(bridge.rejections), "last_rejection": bridge.last_rejection,
                "trajectories": list(trajectories), "joint_states": list(joint_states),
                "holds": node.stats.holds, "solves": node.stats.solves,
            }
    finally:
        if bridge is not None:
            bridge.backend.close()


def _seconds(duration) -> float:
    return duration.sec + duration.nanosec * 1e-9


def _step_of(msg: JointState, dt: float) -> int:
    """The sim step a lockstep message belongs to: its stamp is sim time, one step = dt."""
    ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec - SIM_TIME_ORIGIN_NS
    return round(ns * 1e-9 / dt)


def _measured_by_step(loop: dict[str, Any]) -> dict[int, np.ndarray]:
    """Sim step -> measured arm joints (rad)."""
    arm = [SAWYER_JOINTS.index(j) for j in ARM_JOINTS]
    return {_step_of(m, loop["dt"]): np.asarray(m.position)[arm] for m in loop["joint_states"]}


def _commanded_by_step(loop: dict[str, Any]) -> tuple[dict[int, np.ndarray], list[int]]:
    """Sim step -> commanded arm targets, and the step each trajectory started at.

    Every trajectory is executed to its end before the next one (lockstep), and its point k lies
    at (k + 1) control periods = ticks, so point k is the target of tick start + k + 1.
    """
    commanded, starts, step = {}, [], 0
    for msg in loop["trajectories"]:
        starts.append(step)
        for k, point in enumerate(msg.points):
            commanded[step + k + 1] = np.asarray(point.positions[:len(ARM_JOINTS)])
        step += len(msg.points)
    return commanded, starts


def test_the_checkpoint_trained_on_joint_demos_commands_the_seven_joints_and_the_gripper(
        joint_checkpoint):
    cfg = load_config(joint_checkpoint)
    assert tuple(cfg.action_names) == (*ARM_JOINTS, "gripper")
    assert cfg.contract["action"]["kind"] == "joint"
    assert cfg.contract["action"]["topic"] == "/command"  # the labels' topic in the demos
    assert cfg.provenance["dataset_tasks"] == [TASK]
    assert [s.split(".")[0] for s in cfg.state_names] == SAWYER_JOINTS


def test_the_node_publishes_each_chunk_as_a_joint_trajectory_one_control_period_ahead(
        closed_loop):
    loop = closed_loop
    *chunks, hold = loop["trajectories"]
    assert len(chunks) == loop["solves"] >= MIN_STEPS // loop["horizon"]
    for msg in loop["trajectories"]:
        assert list(msg.joint_names) == [*ARM_JOINTS, "gripper"]
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (0, 0)  # start on receipt
        times = np.array([_seconds(p.time_from_start) for p in msg.points])
        assert times[0] == pytest.approx(loop["dt"], abs=1e-9)  # one control period ahead
        assert np.all(np.diff(times) > 0)
        assert all(len(p.positions) == len(p.velocities) == 8 for p in msg.points)
        assert not np.any(msg.points[-1].velocities)  # the trajectory ends at rest
    assert all(len(m.points) == loop["horizon"] for m in chunks)  # the whole chunk each time
    assert len(hold.points) == 1 and loop["holds"] == 1  # deactivation, nothing else


def test_the_lockstep_bridge_accepts_every_trajectory_and_steps_through_all_its_points(
        closed_loop):
    loop = closed_loop
    assert loop["advanced"], f"the loop stalled at step {loop['steps']}"
    assert loop["rejections"] == {}, loop["last_rejection"]
    # one tick per point, nothing queued behind, nothing lost
    assert loop["steps"] == sum(len(m.points) for m in loop["trajectories"])
    assert sorted(_measured_by_step(loop)) == list(range(loop["steps"] + 1))


def test_the_measured_joints_move_toward_each_commanded_trajectory(closed_loop):
    """A three-step debug model commands noisy chunks (the points jump by tenths of a radian from
    tick to tick), which a 30 rad/s servo smooths: so the checks are on direction, not on
    reaching each point. Over each trajectory the arm closes on where the trajectory leads (the
    mean of its points), moving in that direction; tick by tick, each joint moves the way its
    tracking error (commanded target minus measured position) points."""
    loop = closed_loop
    measured = _measured_by_step(loop)
    commanded, starts = _commanded_by_step(loop)
    for msg, start in zip(loop["trajectories"][:-1], starts, strict=False):  # not the hold
        lead = np.mean([p.positions[:len(ARM_JOINTS)] for p in msg.points], axis=0)
        before, after = measured[start], measured[start + len(msg.points)]
        toward, moved = lead - before, after - before
        assert np.linalg.norm(after - lead) < np.linalg.norm(toward), f"trajectory at {start}"
        cosine = moved @ toward / (np.linalg.norm(moved) * np.linalg.norm(toward))
        assert cosine > 0.5, f"trajectory at step {start}: cos {cosine:.2f}"
    steps = sorted(commanded)
    error = np.stack([commanded[s] - measured[s - 1] for s in steps])  # (T, 7) rad
    motion = np.stack([measured[s] - measured[s - 1] for s in steps])
    assert np.abs(motion).sum(axis=0).min() > 0.01  # every arm joint moved
    assert np.corrcoef(error.ravel(), motion.ravel())[0, 1] > 0.5


def test_the_deactivation_hold_is_where_the_arm_is_and_not_where_the_last_chunk_ended(
        closed_loop):
    # The contract's action names include the gripper, which /joint_states does not carry; the
    # hold must still take the seven arm joints from the measurement (the gripper keeps its last
    # command), or deactivating would keep the arm moving toward a stale plan.
    loop = closed_loop
    *chunks, hold = loop["trajectories"]
    held = np.asarray(hold.points[0].positions[:len(ARM_JOINTS)])
    measured = _measured_by_step(loop)
    gaps = {step: float(np.max(np.abs(held - q))) for step, q in measured.items()}
    step, gap = min(gaps.items(), key=lambda kv: kv[1])
    assert gap < 1e-6, f"hold is {gap:.3g} rad from every measured joint state"
    assert step >= loop["steps"] - loop["horizon"] - 1  # a recent measurement, not the start
    assert np.isfinite(hold.points[0].positions[-1])  # the gripper keeps a commanded value
