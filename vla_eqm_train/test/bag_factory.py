"""Synthetic episodes written as real rosbag2 (MCAP) bags with rosbags, for conversion tests.

The messages are the real ROS types (the sim's typestore) with known contents: image pixel
(0, 0, 0) holds the step index, the pose x holds step / 100, and command k is [k, -k, 0.5k, 1]. A
test can then check exactly which observation and which command ended up in each frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vla_eqm_ros.contract import Contract
from vla_eqm_sim.bag_types import make_typestore
from vla_eqm_sim.bag_writer import BufferedMessage, write_episode_bag

PERIOD_NS = 12_500_000
T0_NS = 1_000_000_000
SIZE = 8

CONTRACT = {
    "cameras": [{"name": "corner", "topic": "/camera/corner/image_raw", "height": SIZE,
                 "width": SIZE, "max_age": 0.05}],
    "state": [{"topic": "/ee_pose", "type": "pose", "fields": ["x", "y", "z"], "max_age": 0.05},
              {"topic": "/joint_states", "type": "joint_state", "names": ["r_close", "l_close"],
               "max_age": 0.05}],
    "goal": {"topic": "/language_goal"},
    "action": {"names": ["dx", "dy", "dz", "gripper"], "topic": "/command",
               "type": "float64_multi_array", "kind": "cartesian_delta",
               "low": [-100, -100, -100, -100], "high": [100, 100, 100, 100]},
    "control_period": 0.0125,
    "alignment": {"mode": "asof", "max_skew": 0.001},
}


def contract() -> Contract:
    return Contract.from_dict(CONTRACT)


def command_of(k: int) -> list[float]:
    return [float(k), float(-k), 0.5 * k, 1.0]


def write_bag(path: Path, steps: int, *, goal: str = "press the button", task: str = "t",
              image_size: int = SIZE, skip_topics: tuple[str, ...] = (),
              image_type: str = "sensor_msgs/msg/Image", success: bool = True,
              compressed_fill: bool = False, textured: bool = False) -> Path:
    """An episode of ``steps`` commands and ``steps + 1`` observations (lockstep layout).
    ``textured``: frames of seeded random pixels instead of black (gradients a conv can use)."""
    store = make_typestore()
    T = store.types
    msgs: list[BufferedMessage] = []

    def add(topic: str, msgtype: str, stamp: int, msg, latched: bool = False) -> None:
        if topic in skip_topics:
            return
        msgs.append(BufferedMessage(topic, msgtype, stamp,
                                    bytes(store.serialize_cdr(msg, msgtype)), latched))

    def header(ns: int):
        return T["std_msgs/msg/Header"](
            stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
            frame_id="f")

    add("/language_goal", "std_msgs/msg/String", T0_NS, T["std_msgs/msg/String"](data=goal), True)
    for k in range(steps + 1):
        ns = T0_NS + k * PERIOD_NS
        pixels = (np.random.default_rng(k).integers(0, 256, (image_size, image_size, 3),
                                                    dtype=np.uint8) if textured
                  else np.zeros((image_size, image_size, 3), np.uint8))
        pixels[0, 0, 0] = k
        if image_type == "sensor_msgs/msg/CompressedImage":  # as image_transport records it
            from vla_eqm_ros.images import encode_compressed

            pixels[...] = (pixels[0, 0, 0], 100, 200) if compressed_fill else pixels
            img = T["sensor_msgs/msg/CompressedImage"](
                header=header(ns), format="rgb8; png compressed bgr8",
                data=np.frombuffer(encode_compressed(pixels, "png"), np.uint8))
            add("/camera/corner/image_raw/compressed", image_type, ns, img)
        elif image_type == "sensor_msgs/msg/Image":
            img = T["sensor_msgs/msg/Image"](header=header(ns), height=image_size,
                                             width=image_size, encoding="rgb8", is_bigendian=0,
                                             step=image_size * 3, data=pixels.reshape(-1))
            add("/camera/corner/image_raw", image_type, ns, img)
        else:
            add("/camera/corner/image_raw", image_type, ns,
                T["std_msgs/msg/String"](data="not an image"))
        pose = T["geometry_msgs/msg/Pose"](
            position=T["geometry_msgs/msg/Point"](x=k / 100.0, y=0.5, z=0.1),
            orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))
        add("/ee_pose", "geometry_msgs/msg/PoseStamped", ns,
            T["geometry_msgs/msg/PoseStamped"](header=header(ns), pose=pose))
        js = T["sensor_msgs/msg/JointState"](
            header=header(ns), name=["right_j0", "r_close", "l_close"],
            position=np.array([0.0, 0.01 * k, -0.01 * k]), velocity=np.zeros(3),
            effort=np.zeros(0))
        add("/joint_states", "sensor_msgs/msg/JointState", ns, js)
        if k < steps:
            dim = T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
            add("/command", "std_msgs/msg/Float64MultiArray", ns,
                T["std_msgs/msg/Float64MultiArray"](layout=dim, data=np.array(command_of(k))))
    info = {"task": task, "variation": 0, "seed": 0, "success": success, "instruction": goal}
    return write_episode_bag(path, msgs, info)
