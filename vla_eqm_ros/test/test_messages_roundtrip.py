"""Every custom interface of vla_eqm_msgs survives a trip through real DDS between two nodes.

The publisher and the subscriber are separate rclpy nodes (intra-process delivery is off in rclpy),
so each message is serialized by the generated type support, sent over loopback DDS and
deserialized: the proof that the CMake-built messages work at run time, not only at import.
"""

from __future__ import annotations

import threading
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy comes with `make test`'s setup")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy  # noqa: E402

from vla_eqm_msgs.msg import ActionChunk, DecoderStatus, EpisodeStatus  # noqa: E402
from vla_eqm_msgs.srv import ResetEpisode  # noqa: E402

QOS = QoSProfile(
    depth=10,
    reliability=QoSReliabilityPolicy.RELIABLE,
    durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
)


def _decoder_status() -> DecoderStatus:
    m = DecoderStatus()
    m.header.stamp.sec, m.header.stamp.nanosec = 12, 345
    m.decoder = DecoderStatus.DECODER_EQM
    m.tau, m.k_max, m.step_size, m.momentum = 0.05, 50, 0.05, 0.3
    m.deadline_ms, m.fm_steps = 30.0, 10
    m.iterations, m.residual = 7, 0.04
    m.residual_trace = [0.9, 0.5, 0.2, 0.1, 0.07, 0.05, 0.04]
    m.stop_reason = DecoderStatus.STOP_THRESHOLD
    m.warm_start, m.warm_start_fraction, m.warm_start_tail = "shifted", 0.75, "hold"
    m.warm_start_used = True
    m.prefix_ms, m.solve_ms = 3.5, 9.25
    return m


def _action_chunk() -> ActionChunk:
    m = ActionChunk()
    m.header.frame_id = "world"
    m.action_names = ["dx", "dy", "dz", "gripper"]
    m.horizon, m.action_dim, m.control_period = 3, 4, 0.05
    m.data = [float(i) / 7.0 for i in range(12)]
    m.first_step = 1
    return m


def _episode_status() -> EpisodeStatus:
    m = EpisodeStatus()
    m.task, m.variation, m.seed = "button-press-v3", 3, 42
    m.instruction = "press the button from the top"
    m.step, m.reward, m.episode_return = 17, 0.5, 4.25
    m.success, m.done = True, False
    return m


def _fields(msg) -> dict:
    out = {}
    for name in msg.get_fields_and_field_types():
        v = getattr(msg, name)
        if hasattr(v, "get_fields_and_field_types"):
            v = _fields(v)
        elif hasattr(v, "tolist"):
            v = v.tolist()
        elif isinstance(v, list | tuple):
            v = list(v)
        out[name] = v
    return out


@pytest.mark.parametrize(
    "msg_type, make",
    [
        (DecoderStatus, _decoder_status),
        (ActionChunk, _action_chunk),
        (EpisodeStatus, _episode_status),
    ],
    ids=["DecoderStatus", "ActionChunk", "EpisodeStatus"],
)
def test_custom_message_round_trips_between_two_nodes_over_dds(rclpy_context, msg_type, make):
    sent = make()
    pub_node = rclpy.create_node("roundtrip_pub", context=rclpy_context)
    sub_node = rclpy.create_node("roundtrip_sub", context=rclpy_context)
    received: list = []
    got = threading.Event()
    topic = f"roundtrip_{msg_type.__name__.lower()}"
    sub_node.create_subscription(msg_type, topic, lambda m: (received.append(m), got.set()), QOS)
    pub = pub_node.create_publisher(msg_type, topic, QOS)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(pub_node)
    ex.add_node(sub_node)
    try:
        deadline = time.monotonic() + 15.0
        while not got.is_set() and time.monotonic() < deadline:
            pub.publish(sent)
            ex.spin_once(timeout_sec=0.1)
        assert received, f"{msg_type.__name__} never arrived over DDS within 15 s"
        assert _fields(received[0]) == _fields(sent)  # bit-exact: floats travel as IEEE bytes
    finally:
        ex.shutdown()
        pub_node.destroy_node()
        sub_node.destroy_node()


def test_reset_episode_service_round_trips_between_two_nodes_over_dds(rclpy_context):
    server = rclpy.create_node("reset_server", context=rclpy_context)
    client_node = rclpy.create_node("reset_client", context=rclpy_context)
    seen: list[ResetEpisode.Request] = []

    def handle(req, resp):
        seen.append(req)
        resp.success = True
        resp.message = f"{req.task}/{req.variation}/{req.seed}"
        return resp

    server.create_service(ResetEpisode, "sim_reset_roundtrip", handle)
    client = client_node.create_client(ResetEpisode, "sim_reset_roundtrip")
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(server)
    ex.add_node(client_node)
    try:
        deadline = time.monotonic() + 15.0
        while not client.service_is_ready() and time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.1)
        assert client.service_is_ready(), "ResetEpisode service never became ready"
        req = ResetEpisode.Request(task="drawer-open-v3", variation=2, seed=7)
        fut = client.call_async(req)
        ex.spin_until_future_complete(fut, timeout_sec=15.0)
        assert fut.done(), "no ResetEpisode response within 15 s"
        assert fut.result().success is True
        assert fut.result().message == "drawer-open-v3/2/7"
        assert (seen[0].task, seen[0].variation, seen[0].seed) == ("drawer-open-v3", 2, 7)
    finally:
        ex.shutdown()
        server.destroy_node()
        client_node.destroy_node()
