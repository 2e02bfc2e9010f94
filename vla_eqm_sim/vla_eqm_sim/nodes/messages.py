"""numpy -> ROS message builders for the sim bridge (no rclpy; message packages only).

Kept apart from the node so the recorder, the bench, the tests and the DDS-free rollouts of
``vla_eqm_sim.direct`` build byte-identical messages.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray, Header, MultiArrayDimension

from vla_eqm_ros.images import encode_compressed
from vla_eqm_sim.backend import EpisodeId, StepResult

WORLD_FRAME = "world"
SIM_TIME_ORIGIN_NS = 1_000_000_000  # lockstep sim time starts at 1 s: 0 means "no time yet" to ROS


def sim_time_ns(steps: int, dt: float) -> int:
    """Lockstep sim time after ``steps`` steps of ``dt`` s (the bridge and ``DirectSim``)."""
    return SIM_TIME_ORIGIN_NS + int(round(steps * dt * 1e9))


def stamp_from_ns(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def duration_seconds(duration) -> float:
    """builtin_interfaces/Duration -> seconds."""
    return int(duration.sec) + int(duration.nanosec) * 1e-9


def camera_frame_id(camera: str) -> str:
    """One optical frame per camera, following REP 103's ``*_optical_frame`` convention."""
    return f"{camera}_optical_frame"


def image_msg(frame: np.ndarray, stamp: Time, camera: str) -> Image:
    """An rgb8 Image from an upright (H, W, 3) uint8 frame."""
    height, width, channels = frame.shape
    if channels != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    msg = Image()
    msg.header = Header(stamp=stamp, frame_id=camera_frame_id(camera))
    msg.height, msg.width = height, width
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = width * 3
    msg.data = np.ascontiguousarray(frame).tobytes()
    return msg


def compressed_image_msg(frame: np.ndarray, stamp: Time, camera: str,
                         quality: int = 90) -> CompressedImage:
    """A JPEG CompressedImage as image_transport's compressed publisher sends it (format
    ``rgb8; jpeg compressed bgr8``), so sim bags and live topics look like a robot camera's."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    msg = CompressedImage()
    msg.header = Header(stamp=stamp, frame_id=camera_frame_id(camera))
    msg.format = "rgb8; jpeg compressed bgr8"
    msg.data = encode_compressed(frame, "jpeg", quality)
    return msg


def joint_state_msg(
    names: list[str], positions: np.ndarray, velocities: np.ndarray, stamp: Time
) -> JointState:
    msg = JointState()
    msg.header = Header(stamp=stamp, frame_id="")
    msg.name = list(names)
    msg.position = [float(v) for v in positions]
    msg.velocity = [float(v) for v in velocities]
    return msg


def pose_msg(position: np.ndarray, quat_xyzw: np.ndarray, stamp: Time) -> PoseStamped:
    msg = PoseStamped()
    msg.header = Header(stamp=stamp, frame_id=WORLD_FRAME)
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in position)
    o = msg.pose.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in quat_xyzw)
    return msg


def observation_msgs(backend, frames: dict[str, np.ndarray], transport: str, jpeg_quality: int,
                     stamp: Time) -> dict[str, object]:
    """What a robot publishes for the backend's current step, by topic (relative names, as the
    bridge advertises them): ``frames`` (the step's renders) on the transport, joint states, the
    ee pose. The sim bridge publishes exactly these; ``direct.DirectSim`` decodes them without
    DDS. Rendering stays with the caller, so the bridge can time it apart from encoding."""
    out: dict[str, object] = {}
    for cam, frame in frames.items():
        if transport == "compressed":
            msg: object = compressed_image_msg(frame, stamp, cam, jpeg_quality)
        else:
            msg = image_msg(frame, stamp, cam)
        out[camera_topic(cam, transport)] = msg
    out["joint_states"] = joint_state_msg(
        backend.joint_names, backend.joint_positions(), backend.joint_velocities(), stamp)
    out["ee_pose"] = pose_msg(*backend.ee_pose(), stamp)
    return out


def camera_topic(camera: str, transport: str) -> str:
    """The bridge's (relative) topic for ``camera`` on ``transport`` (image_transport naming)."""
    return f"camera/{camera}/image_raw" + ("/compressed" if transport == "compressed" else "")


def episode_status_msg(
    episode: EpisodeId,
    instruction: str,
    step: int,
    result: StepResult | None,
    episode_return: float,
    stamp: Time,
):
    """EpisodeStatus after ``step`` steps; ``result`` is None right after a reset."""
    from vla_eqm_msgs.msg import EpisodeStatus

    msg = EpisodeStatus()
    msg.header = Header(stamp=stamp, frame_id="")
    msg.task = episode.task
    msg.variation = int(episode.variation)
    msg.seed = int(episode.seed)
    msg.instruction = instruction
    msg.step = int(step)
    msg.reward = float(result.reward) if result else 0.0
    msg.episode_return = float(episode_return)
    msg.success = bool(result.success) if result else False
    msg.done = bool(result.done) if result else False
    return msg


def task_state_msg(task: str, state: np.ndarray) -> Float64MultiArray:
    """Privileged simulator state for scripted experts.

    The one dimension's label carries the task name, so an expert picks the matching scripted
    policy from the same message (no ordering race with a second topic).
    """
    msg = Float64MultiArray()
    msg.layout.dim = [MultiArrayDimension(label=task, size=int(state.size), stride=int(state.size))]
    msg.data = [float(v) for v in state]
    return msg


def command_msg(action: np.ndarray) -> Float64MultiArray:
    msg = Float64MultiArray()
    msg.data = [float(v) for v in action]
    return msg
