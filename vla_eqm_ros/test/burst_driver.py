"""A camera and joint-state driver in its own process, as on a robot.

    python burst_driver.py CAMERA_HZ JOINT_HZ

The burst test needs a 1 kHz publisher that does not share the node's process: in the same
process it competes with the node's executor for the GIL, and on a loaded CI machine that starves
the node into stale holds which say nothing about input alignment. The driver prints ``ready``
once both topics have a subscriber and publishes until its stdin closes.
"""

from __future__ import annotations

import sys
import threading
import time

import rclpy
from policy_node_harness import image, joints
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState


def main(camera_hz: float, joint_hz: float) -> None:
    rclpy.init()
    node = rclpy.create_node("burst_driver")
    cam = node.create_publisher(Image, "/camera/corner/image_raw", qos_profile_sensor_data)
    js = node.create_publisher(JointState, "/joint_states", 10)
    stop = threading.Event()

    def loop(hz: float, publish) -> None:
        period, t = 1.0 / hz, time.monotonic()
        while not stop.is_set():
            publish()
            t += period
            time.sleep(max(0.0, t - time.monotonic()))

    now = lambda: node.get_clock().now().to_msg()  # noqa: E731
    deadline = time.monotonic() + 30.0
    while (cam.get_subscription_count() == 0 or js.get_subscription_count() == 0) \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    threads = [threading.Thread(target=loop, args=(camera_hz, lambda: cam.publish(image(now()))),
                                daemon=True),
               threading.Thread(target=loop, args=(joint_hz, lambda: js.publish(joints(now()))),
                                daemon=True)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    sys.stdin.read()  # the test closes stdin to stop the driver
    stop.set()
    for t in threads:
        t.join()
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main(float(sys.argv[1]), float(sys.argv[2]))
