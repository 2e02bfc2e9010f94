"""The robot-side episode recorder over real DDS: a teleoperated take becomes one MCAP bag with the
contract and the instruction in its metadata, and that bag converts with no further input.

A publisher node plays the robot (640x480 JPEG wrist camera at 15 Hz, a 7-joint JointState at
50 Hz, position commands at 10 Hz); the test calls ``~/start_episode`` and ``~/stop_episode`` as a
teleoperation UI would.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from rclpy.parameter import Parameter
from robot_bags import JOINTS, WRIST, _frame

from vla_eqm_ros.contract import Contract
from vla_eqm_ros.nodes.runtime import InProcess
from vla_eqm_train.data.bags import bag_custom_data, read_episodes

COMMAND = "/arm_controller/commands"
CONTRACT = {
    "cameras": [{"name": "wrist", "topic": WRIST, "height": 32, "width": 32, "max_age": 0.2,
                 "transport": "compressed", "resize": True}],
    "state": [{"topic": "/joint_states", "type": "joint_state", "names": JOINTS,
               "max_age": 0.1}],
    "goal": {"topic": "/instruction"},
    "action": {"names": [f"q{i}" for i in range(7)], "topic": COMMAND, "kind": "joint",
               "type": "float64_multi_array", "low": [-3.0] * 7, "high": [3.0] * 7},
    "control_period": 0.1,
    "alignment": {"mode": "asof", "max_skew": 0.1},
}


class Robot:
    """Publishes the contract's topics from a thread until ``close``."""

    def __init__(self, node) -> None:
        from sensor_msgs.msg import CompressedImage, JointState
        from std_msgs.msg import Float64MultiArray

        self.node, self._stop = node, threading.Event()
        self.cam = node.create_publisher(CompressedImage, WRIST, 50)
        self.joints = node.create_publisher(JointState, "/joint_states", 50)
        self.cmd = node.create_publisher(Float64MultiArray, COMMAND, 50)
        self._types = (CompressedImage, JointState, Float64MultiArray)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(_frame(0.0, 1), cv2.COLOR_RGB2BGR))
        assert ok
        self.jpeg = jpeg.tobytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        CompressedImage, JointState, Float64MultiArray = self._types
        k = 0
        while not self._stop.is_set():
            stamp = self.node.get_clock().now().to_msg()
            self.joints.publish(JointState(name=JOINTS, position=[0.01 * k] * 7,
                                           header=_header(stamp)))
            if k % 3 == 0:
                self.cam.publish(CompressedImage(header=_header(stamp),
                                                 format="rgb8; jpeg compressed bgr8",
                                                 data=self.jpeg))
            if k % 5 == 0:
                self.cmd.publish(Float64MultiArray(data=[float(np.sin(k / 10))] * 7))
            k += 1
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _header(stamp):
    from std_msgs.msg import Header

    return Header(stamp=stamp, frame_id="robot")


def _call(node, srv_type, name: str, **fields):
    client = node.create_client(srv_type, name)
    try:
        assert client.wait_for_service(timeout_sec=10.0), f"{name} never appeared"
        future = client.call_async(srv_type.Request(**fields))
        deadline = time.monotonic() + 20.0
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert future.done(), f"{name} never answered"
        return future.result()
    finally:
        node.destroy_client(client)


@pytest.fixture()
def recorder(tmp_path):
    from rclpy.node import Node

    from vla_eqm_train.episode_recorder_node import EpisodeRecorderNode

    contract = tmp_path / "contract.yaml"
    contract.write_text(yaml.safe_dump(CONTRACT))
    params = [Parameter("contract", value=str(contract)),
              Parameter("out", value=str(tmp_path / "bags"))]
    with InProcess(lambda ctx: [EpisodeRecorderNode(context=ctx, parameter_overrides=params),
                                Node("teleop", context=ctx)], threads=3) as run:
        robot = Robot(run.nodes[1])
        try:
            yield {"ui": run.nodes[1], "out": tmp_path / "bags", "contract": contract}
        finally:
            robot.close()


def test_a_take_becomes_one_bag_that_converts_with_its_instruction(recorder):
    from vla_eqm_msgs.srv import StartEpisode, StopEpisode

    ui = recorder["ui"]
    time.sleep(1.0)  # discovery: the recorder's subscriptions match the robot's publishers
    started = _call(ui, StartEpisode, "/episode_recorder/start_episode",
                    instruction="stack the cups")
    assert started.success and started.message.endswith("episode_0000")
    time.sleep(2.0)
    stopped = _call(ui, StopEpisode, "/episode_recorder/stop_episode", success=True)
    assert stopped.written and stopped.messages > 100, stopped.message
    bag = Path(stopped.message.split(" ")[0])
    (episode,) = read_episodes(bag, Contract.from_yaml(recorder["contract"]))
    assert episode.goal == "stack the cups" and episode.info["success"] is True
    assert 15 <= episode.length <= 21  # 2 s of 10 Hz commands
    assert episode.images["wrist"].shape[1:] == (32, 32, 3)
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:
        custom = bag_custom_data(reader)
        assert reader.connections[0].msgtype  # an ordinary MCAP bag
    assert yaml.safe_load(custom["vla_eqm.contract"]) == CONTRACT
    assert custom["instruction"] == "stack the cups"


def test_bad_requests_are_refused_with_the_reason_and_discard_writes_nothing(recorder):
    from vla_eqm_msgs.srv import StartEpisode, StopEpisode

    ui = recorder["ui"]
    idle = _call(ui, StopEpisode, "/episode_recorder/stop_episode", success=True)
    assert not idle.written and "no episode is recording" in idle.message
    assert _call(ui, StartEpisode, "/episode_recorder/start_episode", instruction="a").success
    twice = _call(ui, StartEpisode, "/episode_recorder/start_episode", instruction="b")
    assert not twice.success and "is recording" in twice.message
    time.sleep(0.5)
    dropped = _call(ui, StopEpisode, "/episode_recorder/stop_episode", discard=True)
    assert not dropped.written and "discarded" in dropped.message
    assert not any(recorder["out"].glob("episode_*"))
    # the recorder is still alive and numbering starts where the folder stands
    assert _call(ui, StartEpisode, "/episode_recorder/start_episode",
                 instruction="c").message.endswith("episode_0000")


def test_a_missing_contract_is_one_line_and_exit_code_2(ros_env, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", "from vla_eqm_train.episode_recorder_node import main; main()",
         "--ros-args", "-p", f"contract:={tmp_path / 'nope.yaml'}"],
        env=ros_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "cannot read contract" in proc.stderr and "Traceback" not in proc.stderr


def test_extra_topics_name_a_known_type_or_the_start_says_why() -> None:
    from vla_eqm_ros.contract import ContractError
    from vla_eqm_train.episode_recorder_node import contract_topics

    contract = Contract.from_dict(CONTRACT)
    topics = contract_topics(contract, ["/diagnostics=diagnostic_msgs/msg/DiagnosticArray"])
    assert topics["/diagnostics"] == "diagnostic_msgs/msg/DiagnosticArray"
    assert topics[COMMAND] == "std_msgs/msg/Float64MultiArray" and WRIST in topics
    with pytest.raises(ContractError, match="expected 'topic=pkg/msg/Type'"):
        contract_topics(contract, ["/tf"])
    with pytest.raises(ContractError, match="not a ROS 2 Jazzy or vla_eqm_msgs type"):
        contract_topics(contract, ["/x=acme_msgs/msg/Gripper"])
