"""``vla-eqm record --control joint``: joint-space demos record, read back, and replay as
JointTrajectory chunks through the bridge to the same outcome."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from sim_bridge_harness import BridgeHarness
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_eqm_sim.bag_types import make_typestore
from vla_eqm_sim.bag_writer import sidecar_path
from vla_eqm_sim.sawyer_joint import ARM_JOINTS
from vla_eqm_train.cli import main as vla_eqm

BAG = "button-press-v3__var01__seed0"
JOINT_CONTRACT = Path(__file__).resolve().parents[1] / "config" / "metaworld_joint_contract.yaml"


@pytest.fixture(scope="module")
def bag_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("joint_bags")


@pytest.fixture(scope="module")
def joint_demo(bag_dir) -> tuple[dict, dict[str, list]]:
    out = bag_dir
    rc = vla_eqm([
        "record", "--control", "joint", "--tasks", "button-press-v3", "--episodes", "1",
        "--variation-start", "1", "--out", str(out), "--image-size", "32", "--max-steps", "150",
        "--no-progress",
    ])
    assert rc == 0
    store = make_typestore()
    topics: dict[str, list] = {}
    with Reader(out / BAG) as reader:
        for conn, _, raw in reader.messages():
            topics.setdefault(conn.topic, []).append(store.deserialize_cdr(raw, conn.msgtype))
    return json.loads(sidecar_path(out / BAG).read_text()), topics


def test_a_joint_space_demo_records_joint_commands_and_reads_back(joint_demo):
    meta, topics = joint_demo
    assert meta["success"] and meta["complete"] and meta["control_mode"] == "joint"
    assert meta["action_names"] == [*ARM_JOINTS, "gripper"]
    assert "IK" in meta["expert"]
    steps = meta["steps"]
    commands = np.array([m.data for m in topics["/command"]])
    assert commands.shape == (steps, 8)
    joints = np.array([m.position for m in topics["/joint_states"]])  # (steps + 1, 9)
    assert joints.shape == (steps + 1, 9)
    # The commands are joint targets that the arm follows (with the servo's lag): over all
    # joints, the measured motion is the commanded motion.
    assert np.ptp(joints[:, :7], axis=0).max() > 0.1  # the arm moved
    commanded = commands[:, :7] - commands[:, :7].mean(axis=0)
    measured = joints[1:, :7] - joints[1:, :7].mean(axis=0)
    assert np.corrcoef(commanded.ravel(), measured.ravel())[0, 1] > 0.9


def test_the_demo_replayed_as_joint_trajectory_chunks_reproduces_its_success(joint_demo):
    meta, topics = joint_demo
    commands = np.array([m.data for m in topics["/command"]])
    h = BridgeHarness("lockstep", control_mode="joint", cameras=["corner"], max_steps=150)
    try:
        pub = h.probe.create_publisher(
            JointTrajectory, "/joint_trajectory_controller/joint_trajectory", 10
        )
        h.spin_until(lambda: pub.get_subscription_count() >= 1, what="discovery")
        h.reset("button-press-v3", 1, 0)
        dt = h.bridge.backend.dt
        for start in range(0, len(commands), 10):  # receding-horizon chunks of 10 points
            chunk = commands[start:start + 10]
            msg = JointTrajectory(joint_names=[*ARM_JOINTS, "gripper"])
            for k, row in enumerate(chunk):
                point = JointTrajectoryPoint(positions=[float(v) for v in row])
                point.time_from_start.nanosec = int(round(dt * (k + 1) * 1e9))
                msg.points.append(point)
            pub.publish(msg)
            h.spin_until(lambda n=start + len(chunk): h.bridge.backend.step_count >= n
                         or h.bridge.backend.done, what="the chunk")
        assert h.bridge.backend.success
        assert h.bridge.backend.step_count == meta["steps"]
    finally:
        h.close()


def test_the_training_package_decodes_the_demo_through_the_joint_contract(joint_demo, bag_dir):
    import yaml

    from vla_eqm_ros.contract import Contract
    from vla_eqm_train.data.bags import read_episode

    meta, topics = joint_demo
    spec = yaml.safe_load(JOINT_CONTRACT.read_text())
    spec["cameras"] = [{"name": "corner", "topic": "/camera/corner/image_raw",
                        "height": 32, "width": 32, "max_age": 0.05}]  # as recorded above
    contract = Contract.from_dict(spec)
    episode = read_episode(bag_dir / BAG, contract)
    assert episode.actions.shape == (meta["steps"], 8)
    assert episode.state.shape == (meta["steps"], 9)
    recorded = np.array([m.data for m in topics["/command"]], dtype=np.float32)
    np.testing.assert_allclose(episode.actions, recorded, atol=1e-6)
