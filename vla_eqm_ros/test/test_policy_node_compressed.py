"""A camera driver as robots run it: image_transport's CompressedImage at 640x480, over DDS.

The contract names the ``.../image_raw/compressed`` topic with ``transport: compressed`` and
``resize: true``; the node subscribes to ``sensor_msgs/CompressedImage``, decodes the JPEG, scales
it to the model's 32x32 and commands, with no frame rejected.
"""

from __future__ import annotations

import numpy as np
from policy_node_harness import CONTRACT, Harness, build_checkpoint, is_hold, joints, unique_name
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage

from vla_eqm_ros.images import encode_compressed
from vla_eqm_ros.waiting import wait_until

TOPIC = "/camera/corner/image_raw/compressed"
COMPRESSED = {**CONTRACT, "cameras": [{**CONTRACT["cameras"][0], "topic": TOPIC,
                                       "transport": "compressed", "resize": True}]}


def _jpeg(h: Harness) -> CompressedImage:
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    msg = CompressedImage(format="rgb8; jpeg compressed bgr8")
    msg.header.stamp = h.now()
    msg.data = encode_compressed(frame, "jpeg")
    return msg


def test_the_node_commands_from_a_640x480_jpeg_camera(tmp_path) -> None:
    h = Harness({"checkpoint": str(build_checkpoint(tmp_path / "ckpt", contract=COMPRESSED))},
                node_name=unique_name())
    pub = h.io.create_publisher(CompressedImage, TOPIC, qos_profile_sensor_data)
    try:
        assert h.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        h.publish_goal("press the button")
        assert h.node.trigger_activate() == TransitionCallbackReturn.SUCCESS

        def step() -> bool:
            pub.publish(_jpeg(h))
            h.joint_pub.publish(joints(h.now()))
            return sum(not is_hold(m) for m in h.commands_since(0.0)) >= 5

        assert wait_until(step, 30.0, poll=0.05), h.diagnostics_values()
        assert h.node.stats.rejected[TOPIC] == 0
    finally:
        h.close()
