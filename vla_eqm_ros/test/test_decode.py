"""One decode path for live rclpy messages and rosbags-deserialized messages, and time alignment."""

from __future__ import annotations

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.serialization import serialize_message
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_eqm_ros.contract import CameraSpec, Contract, StateSpec
from vla_eqm_ros.decode import (
    DecodeError,
    ObservationAssembler,
    decode_command,
    decode_image,
    decode_joint_state,
    decode_pose,
    stamp_of,
)

CAM = CameraSpec(name="corner", topic="/camera/corner/image_raw", height=4, width=5)
JOINTS = StateSpec(topic="/joint_states", type="joint_state", names=("b", "a"))
POSE = StateSpec(topic="/ee_pose", type="pose", fields=("x", "y", "z"))
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)


def contract(mode: str = "asof", cameras: bool = True) -> Contract:
    return Contract.from_dict({
        "cameras": [{"name": "corner", "topic": "/camera/corner/image_raw", "height": 4,
                     "width": 5, "max_age": 0.2}] if cameras else [],
        "state": [{"topic": "/joint_states", "type": "joint_state", "names": ["b", "a"],
                   "max_age": 0.2}],
        "action": {"names": ["dx", "dy", "dz", "gripper"], "low": [-1] * 4, "high": [1] * 4},
        "alignment": {"mode": mode, "max_skew": 0.05},
    })


def rgb_frame(h: int = 4, w: int = 5) -> np.ndarray:
    return np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)


def image_msg(rgb: np.ndarray, encoding: str = "rgb8", stamp: float = 0.0, pad: int = 0) -> Image:
    """An Image in the given encoding carrying ``rgb``, rows padded by ``pad`` bytes."""
    conv = {
        "rgb8": rgb, "bgr8": rgb[:, :, ::-1],
        "rgba8": np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2),
        "bgra8": np.concatenate([rgb[:, :, ::-1], np.zeros(rgb.shape[:2] + (1,), np.uint8)], 2),
        "mono8": rgb[:, :, :1],
    }[encoding]
    h, w, ch = conv.shape
    rows = np.concatenate([conv.reshape(h, w * ch), np.zeros((h, pad), np.uint8)], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, step=w * ch + pad)
    msg.data = rows.tobytes()
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), round(stamp % 1 * 1e9)
    return msg


def joint_msg(names, positions, stamp: float = 0.0) -> JointState:
    """A JointState; velocity/effort are filled because Fast CDR pads empty float64 sequences
    in a way rosbags' deserializer rejects (a real-bag caveat for bag conversion)."""
    msg = JointState(name=list(names), position=[float(p) for p in positions])
    msg.velocity = [0.0] * len(msg.position)
    msg.effort = [0.0] * len(msg.position)
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), round(stamp % 1 * 1e9)
    return msg


def as_bag_message(msg, typename: str):
    """The same message after a trip through CDR and the rosbags deserializer (bag replay)."""
    return TYPESTORE.deserialize_cdr(serialize_message(msg), typename)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_every_color_encoding_decodes_to_the_same_rgb_image(encoding: str) -> None:
    rgb = rgb_frame()
    np.testing.assert_array_equal(decode_image(image_msg(rgb, encoding), CAM), rgb)


def test_mono8_images_are_replicated_to_three_identical_channels() -> None:
    out = decode_image(image_msg(rgb_frame(), "mono8"), CAM)
    assert out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out[:, :, 0], rgb_frame()[:, :, 0])
    np.testing.assert_array_equal(out[:, :, 2], rgb_frame()[:, :, 0])


def test_row_padding_in_step_is_skipped_not_decoded_as_pixels() -> None:
    np.testing.assert_array_equal(decode_image(image_msg(rgb_frame(), pad=3), CAM), rgb_frame())


def test_a_bag_image_decodes_exactly_like_the_live_message() -> None:
    live = image_msg(rgb_frame(), "bgr8", stamp=12.25)
    bag = as_bag_message(live, "sensor_msgs/msg/Image")
    np.testing.assert_array_equal(decode_image(bag, CAM), decode_image(live, CAM))
    assert stamp_of(bag) == stamp_of(live) == 12.25


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: _with(image_msg(rgb_frame()), encoding="yuv422"), "unsupported encoding 'yuv422'"),
        (lambda: image_msg(rgb_frame(6, 5)), "size 6x5 != contract 4x5"),
        (lambda: image_msg(rgb_frame(4, 6)), "size 4x6 != contract 4x5"),
        (lambda: _with(image_msg(rgb_frame()), step=10), "step 10 < width\\*channels 15"),
        (lambda: _with(image_msg(rgb_frame()), data=bytes(59)), "truncated data, 59 bytes"),
        (lambda: _with(image_msg(rgb_frame()), data=bytes(61)), "oversized data"),
    ],
)
def test_malformed_images_are_rejected_with_a_reason(make, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_image(make(), CAM)


def _with(msg, **fields):
    for k, v in fields.items():
        setattr(msg, k, v)
    return msg


def test_joint_states_are_reordered_into_contract_order() -> None:
    out = decode_joint_state(joint_msg(["a", "c", "b"], [1.0, 2.0, 3.0]), JOINTS)
    np.testing.assert_array_equal(out, np.array([3.0, 1.0], np.float32))
    bag = as_bag_message(joint_msg(["a", "c", "b"], [1.0, 2.0, 3.0]), "sensor_msgs/msg/JointState")
    np.testing.assert_array_equal(decode_joint_state(bag, JOINTS), out)


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (joint_msg(["a"], [1.0]), r"missing joints \['b'\]"),
        (joint_msg(["a", "b"], [1.0, float("nan")]), r"non-finite position for joints \['b'\]"),
        (joint_msg(["a", "b"], [1.0, float("inf")]), "non-finite"),
        (JointState(name=["a", "b"], position=[1.0]), "2 names but 1 position values"),
    ],
)
def test_bad_joint_states_are_rejected_with_a_reason(msg, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_joint_state(msg, JOINTS)


def test_poses_decode_from_posestamped_live_and_from_the_bag() -> None:
    msg = PoseStamped()
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = 0.1, 0.2, 0.3
    np.testing.assert_allclose(decode_pose(msg, POSE), [0.1, 0.2, 0.3], rtol=1e-6)
    bag = as_bag_message(msg, "geometry_msgs/msg/PoseStamped")
    np.testing.assert_array_equal(decode_pose(bag, POSE), decode_pose(msg, POSE))
    msg.pose.position.x = float("nan")
    with pytest.raises(DecodeError, match="non-finite pose"):
        decode_pose(msg, POSE)


def test_recorded_commands_decode_to_the_action_vector_for_both_message_types() -> None:
    c = contract()
    np.testing.assert_array_equal(
        decode_command(Float64MultiArray(data=[0.1, 0.2, 0.3, 1.0]), c),
        np.array([0.1, 0.2, 0.3, 1.0], np.float32),
    )
    with pytest.raises(DecodeError, match="3 values, contract expects 4"):
        decode_command(Float64MultiArray(data=[0.1, 0.2, 0.3]), c)
    jc = Contract.from_dict({**c.to_dict(), "action": {
        "names": ["j2", "j1"], "type": "joint_trajectory", "topic": "/jt"}})
    full = {"velocities": [0.0, 0.0], "accelerations": [0.0, 0.0], "effort": [0.0, 0.0]}
    traj = JointTrajectory(joint_names=["j1", "j2"], points=[
        JointTrajectoryPoint(positions=[1.0, 2.0], **full),
        JointTrajectoryPoint(positions=[5.0, 6.0], **full)])
    np.testing.assert_array_equal(decode_command(traj, jc), np.array([2.0, 1.0], np.float32))
    bag = as_bag_message(traj, "trajectory_msgs/msg/JointTrajectory")
    np.testing.assert_array_equal(decode_command(bag, jc), decode_command(traj, jc))


def test_the_assembler_pairs_the_newest_image_with_the_closest_joint_state() -> None:
    asm = ObservationAssembler(contract())
    asm.feed("/language_goal", String(data="press the button"))
    for t in (10.00, 10.05, 10.10):
        asm.feed("/joint_states", joint_msg(["a", "b"], [t, -t], stamp=t))
    asm.feed("/camera/corner/image_raw", image_msg(rgb_frame(), stamp=10.06))
    res = asm.assemble(now=10.12)
    assert res.reason == ""
    obs = res.observation
    np.testing.assert_allclose(obs.state, [-10.05, 10.05], rtol=1e-6)
    assert obs.goal == "press the button"
    assert obs.stamp == pytest.approx(10.06)
    assert obs.ages["corner"] == pytest.approx(0.06)


def test_the_assembler_names_missing_stale_and_skewed_inputs() -> None:
    asm = ObservationAssembler(contract())
    assert asm.assemble(now=1.0).reason == "missing: corner, /joint_states, goal"
    asm.set_goal("open the drawer")
    asm.feed("/camera/corner/image_raw", image_msg(rgb_frame(), stamp=1.0))
    asm.feed("/joint_states", joint_msg(["a", "b"], [0, 0], stamp=1.1))
    res = asm.assemble(now=1.15)
    assert res.observation is None
    assert res.reason.startswith("skew: /joint_states is +0.100 s from corner")
    stale = asm.assemble(now=1.5)
    assert stale.reason.startswith("stale: corner (0.500 s > 0.200 s)")
    assert stale.ages["/joint_states"] == pytest.approx(0.4)


def test_hold_mode_ignores_skew_and_drop_mode_refuses_to_repeat_a_frame() -> None:
    hold = ObservationAssembler(contract("hold"))
    hold.set_goal("g")
    hold.feed("/camera/corner/image_raw", image_msg(rgb_frame(), stamp=1.0))
    hold.feed("/joint_states", joint_msg(["a", "b"], [0, 0], stamp=1.1))
    assert hold.assemble(now=1.15).observation is not None
    drop = ObservationAssembler(contract("drop"))
    drop.set_goal("g")
    drop.feed("/camera/corner/image_raw", image_msg(rgb_frame(), stamp=1.0))
    drop.feed("/joint_states", joint_msg(["a", "b"], [0, 0], stamp=1.01))
    assert drop.assemble(now=1.05).observation is not None
    assert drop.assemble(now=1.10).reason == "no new reference frame"


def test_unstamped_messages_are_dated_by_their_receipt_time() -> None:
    asm = ObservationAssembler(contract(cameras=False))
    asm.set_goal("g")
    asm.feed("/joint_states", joint_msg(["a", "b"], [1, 2]), recv_time=7.0)
    assert asm.newest("/joint_states")[0] == 7.0
    assert asm.assemble(now=7.1).observation is not None


def test_a_new_goal_is_reported_as_a_change_only_once() -> None:
    asm = ObservationAssembler(contract())
    assert asm.set_goal("a") is True
    assert asm.set_goal("a") is False
    assert asm.set_goal("b") is True


def test_a_topic_outside_the_contract_is_rejected() -> None:
    with pytest.raises(DecodeError, match="not in the contract"):
        ObservationAssembler(contract()).feed("/other", joint_msg(["a"], [1.0]))
