"""The sim bridge's ROS parameters: one table with descriptors, ranges and read-only flags.

Structural settings (backend, clock mode, cameras, image size) are read-only: changing them live
would change the topics or the meaning of the stamps. ``config/sim_bridge.yaml`` mirrors this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from vla_eqm_sim.backend import CONTROL_MODES

CLOCK_MODES = ("realtime", "lockstep")
IMAGE_TRANSPORTS = ("raw", "compressed")


@dataclass(frozen=True)
class BridgeParams:
    backend: str
    task: str
    variation: int
    seed: int
    cameras: list[str]
    image_size: int
    image_transport: str
    jpeg_quality: int
    control_rate_hz: float
    clock_mode: str
    control_mode: str
    max_steps: int
    end_on_success: bool
    max_abs_action: float
    reliable_images: bool
    publish_task_state: bool
    qos_depth: int
    image_noise_std: float
    wrong_goal: bool
    start_with_policy: str


def _int_range(lo: int, hi: int) -> list[IntegerRange]:
    return [IntegerRange(from_value=lo, to_value=hi, step=1)]


def _float_range(lo: float, hi: float) -> list[FloatingPointRange]:
    return [FloatingPointRange(from_value=lo, to_value=hi, step=0.0)]


# name -> (default, description, read_only, integer range, float range)
_TABLE: dict[str, tuple] = {
    "backend": ("metaworld", "simulator backend (vla_eqm_sim.backend.BACKENDS)", True, None, None),
    "task": ("button-press-v3", "task loaded at start (reset service switches)", True, None, None),
    "variation": (0, "variation index in the task's seeded set of 50", True, (0, 49), None),
    "seed": (0, "seed of the variation set: metaworld.MT1(task, seed=seed)", True,
             (0, 2**31 - 1), None),
    "cameras": (["corner"], "cameras to publish on camera/<name>/image_raw", True, None, None),
    "image_size": (96, "square image side in pixels", True, (16, 480), None),
    "image_transport": ("raw", "raw (sensor_msgs/Image on camera/<name>/image_raw) | compressed "
                        "(JPEG CompressedImage on camera/<name>/image_raw/compressed, as "
                        "image_transport's compressed publisher)", True, None, None),
    "jpeg_quality": (90, "JPEG quality of the compressed transport", True, (1, 100), None),
    "control_rate_hz": (
        20.0, "realtime mode: steps per wall-clock second (one step = 12.5 ms sim for Meta-World)",
        True, None, (1.0, 200.0),
    ),
    "clock_mode": ("realtime", "realtime | lockstep (one step per command, publishes /clock)",
                   True, None, None),
    "control_mode": ("cartesian", "action space: cartesian (mocap deltas) | joint (7 joint "
                     "position targets + gripper; JointTrajectory executed at its timestamps)",
                     True, None, None),
    "max_steps": (500, "episode step limit (Meta-World caps at 500)", True, (1, 500), None),
    "end_on_success": (True, "episode is done once success is latched", True, None, None),
    "max_abs_action": (10.0, "reject commands with any |value| above this (absurd magnitude)",
                       True, None, (1.0, 1000.0)),
    "reliable_images": (False, "reliable image QoS (recording); default sensor-data QoS",
                        True, None, None),
    "publish_task_state": (True, "publish the privileged state on sim/task_state for experts",
                           True, None, None),
    "qos_depth": (50, "history depth of the reliable topics", True, (1, 1000), None),
    # out-of-distribution probes (bench/eqm_claims.py): what a policy sees when a camera degrades
    # or an operator types the wrong goal; both off by default
    "image_noise_std": (0.0, "std of Gaussian pixel noise added to every camera frame (0-255 "
                        "units, seeded per episode and step); 0 = off", True, None, (0.0, 255.0)),
    "wrong_goal": (False, "publish another task's instruction instead of the task's own "
                   "(instructions.wrong_instruction_for)", True, None, None),
    # realtime episodes step from the bridge's start; a policy that loads for longer than
    # max_steps ticks would meet an episode that is already over
    "start_with_policy": ("", "realtime mode: restart the episode whenever this lifecycle node "
                          "(e.g. policy_node) becomes active, as its transition_event reports; "
                          "empty = off", True, None, None),
}


def declare_bridge_params(node: Node) -> BridgeParams:
    """Declare every parameter with its descriptor and return the validated values."""
    values = {}
    for name, (default, description, read_only, int_range, float_range) in _TABLE.items():
        descriptor = ParameterDescriptor(description=description, read_only=read_only)
        if int_range:
            descriptor.integer_range = _int_range(*int_range)
        if float_range:
            descriptor.floating_point_range = _float_range(*float_range)
        values[name] = node.declare_parameter(name, default, descriptor).value
    params = BridgeParams(**values)
    if params.clock_mode not in CLOCK_MODES:
        raise ValueError(f"clock_mode {params.clock_mode!r} not in {CLOCK_MODES}")
    if params.control_mode not in CONTROL_MODES:
        raise ValueError(f"control_mode {params.control_mode!r} not in {CONTROL_MODES}")
    if params.image_transport not in IMAGE_TRANSPORTS:
        raise ValueError(f"image_transport {params.image_transport!r} not in {IMAGE_TRANSPORTS}")
    if not params.cameras:
        raise ValueError("cameras must name at least one camera")
    return params
