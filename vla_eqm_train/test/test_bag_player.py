"""The rclpy + rosbags bag player, and live replay against the real policy node over DDS."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter

import numpy as np
import pytest
import rclpy
from eval_bag_support import debug_checkpoint, record_bags
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from vla_eqm_sim.bag_types import make_typestore
from vla_eqm_train.cli import main as vla_eqm
from vla_eqm_train.evaluation.live.player import BagPlayer, message_class

STEPS = 10
INPUTS = ["/camera/corner/image_raw", "/joint_states", "/ee_pose", "/language_goal"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("player")
    return {"bags": record_bags(root / "bags", episodes=1, steps=STEPS),
            "ckpt": debug_checkpoint(root / "ckpt")}


def test_the_player_publishes_the_inputs_at_recorded_timing_on_the_bags_clock(setup):
    bag = setup["bags"][0]
    context = Context()
    rclpy.init(context=context)
    joints: list[tuple[float, int]] = []
    clocks: list[int] = []
    commands: list[object] = []
    counts: Counter[str] = Counter()
    try:
        player = BagPlayer(bag, INPUTS, rate=0.5, context=context)
        probe = rclpy.create_node("probe", context=context)
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        probe.create_subscription(JointState, "/joint_states", lambda m: joints.append(
            (time.monotonic(), m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)), qos)
        probe.create_subscription(Clock, "/clock", lambda m: clocks.append(
            m.clock.sec * 10**9 + m.clock.nanosec), qos)
        probe.create_subscription(Float64MultiArray, "/command", commands.append, qos)
        others = {"/camera/corner/image_raw": "sensor_msgs/msg/Image",
                  "/ee_pose": "geometry_msgs/msg/PoseStamped",
                  "/language_goal": "std_msgs/msg/String"}
        for topic, msgtype in others.items():
            probe.create_subscription(message_class(msgtype), topic,
                                      lambda m, t=topic: counts.update([t]), qos)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(probe)
        threading.Thread(target=executor.spin, daemon=True).start()
        deadline = time.monotonic() + 10
        while not player.matched() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert player.matched()
        assert "/command" not in player.topics and "/episode_status" not in player.topics
        result = player.play()
        time.sleep(0.3)
    finally:
        executor.shutdown(timeout_sec=1.0)
        rclpy.shutdown(context=context)
    with Reader(bag) as reader:
        recorded = [t for c, t, _ in reader.messages(
            connections=[c for c in reader.connections if c.topic == "/joint_states"])]
    assert result.counts["/joint_states"] == len(recorded) == STEPS + 1
    assert [s for _, s in joints] == recorded  # every state message, in order, stamps intact
    gaps = np.diff([w for w, _ in joints])
    assert abs(np.median(gaps) - 0.0125 / 0.5) < 0.01  # 12.5 ms recorded, played at half speed
    assert clocks == recorded  # the clock steps through the bag's times
    assert commands == []  # recorded commands are never replayed
    assert counts == {"/camera/corner/image_raw": STEPS + 1, "/ee_pose": STEPS + 1,
                      "/language_goal": 1}
    assert set(result.stamp_wall) == set(recorded)


def test_live_mode_records_the_nodes_outputs_into_a_bag_that_rosbags_reads(setup, tmp_path):
    out = tmp_path / "report"
    rc = vla_eqm(["eval-bag", "--checkpoint", str(setup["ckpt"]), "--bags",
                  str(setup["bags"][0]), "--tau", "0.5", "--warm-start", "shifted", "--live",
                  "--rate", "0.2", "--probe-cycles", "0", "--out", str(out), "--no-progress"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    live = report["live"]
    assert live["node_parameters"]["tau"] == 0.5 and live["trigger"] == "observation"
    episode = live["episodes"][0]
    assert episode["status"] == "ok", episode["error"]
    assert episode["messages_played"]["/joint_states"] == STEPS + 1
    assert "/command" not in episode["messages_played"]
    store = make_typestore()
    topics: dict[str, list] = {}
    with Reader(episode["output_bag"]) as reader:
        for conn, _, raw in reader.messages():
            topics.setdefault(conn.topic, []).append(store.deserialize_cdr(raw, conn.msgtype))
    commands = topics["/command"]
    assert len(commands) == episode["commands"]["count"] >= 2
    assert all(len(c.data) == 4 and np.all(np.isfinite(c.data)) for c in commands)
    statuses = topics["/policy_node/decoder_status"]
    assert len(statuses) == episode["decoder_status"] >= 1
    assert all(s.tau == 0.5 and s.warm_start == "shifted" for s in statuses)
    assert len(topics["/policy_node/action_chunk"]) >= 1
    assert episode["commands"]["compared"] >= 1 and math.isfinite(episode["commands"]["l2"])
    assert episode["chunks"]["cycles"] >= 1
    latency = episode["latency_ms"]
    assert latency["n"] >= 1 and 0 < latency["p50"] < 5000
    assert "Live replay" in (out / "report.md").read_text()
