"""Sim bridge rate in real-time mode: simulate + render + publish, with a live subscriber.

Runs the real ``sim_bridge`` node (realtime clock mode) and a subscriber node counting the images
it receives, both over loopback DDS, for ``--seconds``. Prints one JSON object:
``rate_hz`` (achieved ticks per second), ``received_hz`` (images the subscriber got per second),
``step_ms_p50``, ``render_ms_p50``, ``publish_ms_p50``, the camera/size and ``seconds``.

    python bench/sim_rate.py --rate 20            # does it sustain the requested 20 Hz?
    python bench/sim_rate.py --rate 200           # how fast can it go (CPU bound)?
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # checked in main()
os.environ.setdefault("ROS_DOMAIN_ID", "22")
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from vla_eqm_sim.nodes.sim_bridge import SimBridge


def main() -> int:
    from vla_eqm_ros.nodes.runtime import require_loopback

    require_loopback()  # refuses a non-loopback discovery range set by the caller
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="button-press-v3")
    parser.add_argument("--camera", default="corner")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--rate", type=float, default=20.0, help="requested control rate, Hz")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds excluded from stats")
    args = parser.parse_args()

    ctx = Context()
    rclpy.init(context=ctx)
    bridge = SimBridge(
        context=ctx,
        parameter_overrides=[
            Parameter("task", value=args.task),
            Parameter("cameras", value=[args.camera]),
            Parameter("image_size", value=args.image_size),
            Parameter("control_rate_hz", value=args.rate),
            Parameter("clock_mode", value="realtime"),
            Parameter("max_steps", value=500),
            Parameter("end_on_success", value=False),
        ],
    )
    listener = rclpy.create_node("sim_rate_listener", context=ctx)
    received: list[float] = []
    listener.create_subscription(
        Image,
        f"/camera/{args.camera}/image_raw",
        lambda _msg: received.append(time.perf_counter()),
        qos_profile_sensor_data,
    )
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(bridge)
    executor.add_node(listener)
    t_start = time.perf_counter()
    t_measure = t_start + args.warmup
    t_end = t_measure + args.seconds
    episodes = 0
    try:
        while time.perf_counter() < t_end:
            executor.spin_once(timeout_sec=0.01)
            if bridge.backend.done:  # keep ticking across the 500-step limit
                bridge.reset_episode(args.task, episodes % 50, 0)
                episodes += 1
    finally:
        ticks = [t for t in bridge.tick_times if t_measure <= t <= t_end]
        got = [t for t in received if t_measure <= t <= t_end]
        n_recent = max(len(ticks), 1)
        result = {
            "rate_hz": round(len(ticks) / args.seconds, 2),
            "received_hz": round(len(got) / args.seconds, 2),
            "requested_rate_hz": args.rate,
            "step_ms_p50": round(float(np.median(list(bridge.timings["step_ms"])[-n_recent:])), 3),
            "render_ms_p50": round(
                float(np.median(list(bridge.timings["render_ms"])[-n_recent:])), 3
            ),
            "publish_ms_p50": round(
                float(np.median(list(bridge.timings["publish_ms"])[-n_recent:])), 3
            ),
            "camera": args.camera,
            "image_size": args.image_size,
            "task": args.task,
            "seconds": args.seconds,
            "note": "2-core machine shared with other jobs; numbers vary with load",
        }
        executor.shutdown()
        bridge.backend.close()
        bridge.destroy_node()
        listener.destroy_node()
        rclpy.shutdown(context=ctx)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
