"""The policy node's ``control_loop.LoopPorts``: publishers, throttled log, clock, parameters.

Created at configure with the lifecycle publishers, released at cleanup; after release every
publish is a no-op, so a hold requested during teardown cannot touch a destroyed publisher.
Parameters, the clock and the pending-change hook are the node's (``PolicyNode.apply_pending``,
``PolicyNode.max_ages``); ``wake`` is the guard condition that hands a frame to the timer group.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from vla_eqm_msgs.msg import ActionChunk, DecoderStatus
from vla_eqm_ros.contract import Contract
from vla_eqm_ros.execution import Plan
from vla_eqm_ros.nodes import outputs, parameters
from vla_eqm_ros.nodes.diagnostics import reason_kind
from vla_eqm_ros.nodes.markers import plan_markers


class Throttle:
    """One warning per reason kind per ``period`` seconds (numbers blanked: see reason_kind)."""

    def __init__(self, logger: Any, period: float = 2.0) -> None:
        self.logger = logger
        self.period = period
        self._times: dict[str, float] = {}

    def __call__(self, key: str, text: str) -> None:
        now, key = time.monotonic(), reason_kind(key)
        if now - self._times.get(key, -math.inf) >= self.period:
            self._times[key] = now
            self.logger.warning(text)


class NodePorts:
    """Publishers of one configured policy node (see the module docstring)."""

    def __init__(self, node: Any, contract: Contract, output_mode: str, command_topic: str,
                 diagnostics_topic: str) -> None:
        self.node = node
        self.contract = contract
        self.output_mode = output_mode
        self.warn = Throttle(node.get_logger())
        self.ee_position: Callable[[], np.ndarray | None] = lambda: None
        self.wake: Callable[[], None] = lambda: None
        make = node.create_lifecycle_publisher
        msg_type = JointTrajectory if output_mode == "joint_trajectory" else Float64MultiArray
        self.command_pub: Any = make(msg_type, command_topic, 10)
        # Debug outputs without rclpy's default QoS-event handlers: each handler is a waitable
        # the Python executor rebuilds into its wait set on every wake-up (hundreds per second
        # here), GIL time taken from the solver. The command and the inputs keep theirs.
        quiet = {"event_callbacks": PublisherEventCallbacks(use_default_callbacks=False)}
        self.chunk_pub: Any = make(ActionChunk, "~/action_chunk", 10, **quiet)
        self.status_pub: Any = make(DecoderStatus, "~/decoder_status", 10, **quiet)
        self.marker_pub: Any = make(MarkerArray, "~/plan_markers", 10, **quiet)
        self.diag_pub: Any = make(DiagnosticArray, diagnostics_topic, 10, **quiet)

    # ------------------------------------------------------------------ node side

    def now(self) -> float:
        return node_now(self.node)

    def param(self, name: str) -> Any:
        return parameters.read(self.node, name)

    def _period(self) -> float:
        return 1.0 / float(self.param("control_rate_hz"))

    def max_ages(self) -> dict[str, float]:
        return dict(self.node.max_ages())

    def apply_pending(self) -> None:
        self.node.apply_pending()

    def flush(self, timeout_s: float = 0.5) -> bool:
        """Wait until every matched subscriber acknowledged the commands sent (reliable QoS):
        a process that exits right after its hold must not take the hold down with it."""
        from rclpy.duration import Duration

        if self.command_pub is None:
            return True
        try:
            return bool(self.command_pub.wait_for_all_acked(Duration(seconds=timeout_s)))
        except Exception:  # a shut-down context: nothing more can be delivered
            return False

    def release(self) -> None:
        for name in ("command_pub", "chunk_pub", "status_pub", "marker_pub", "diag_pub"):
            pub = getattr(self, name)
            if pub is not None:
                self.node.destroy_lifecycle_publisher(pub)
                setattr(self, name, None)

    # ------------------------------------------------------------------ commands

    def publish_command(self, action: np.ndarray) -> None:
        if self.command_pub is not None:
            self.command_pub.publish(outputs.float_command(action, self.contract.action.names))

    def publish_trajectory(self, rows: np.ndarray, start: np.ndarray | None) -> None:
        if self.command_pub is not None:
            self.command_pub.publish(outputs.trajectory(rows, self.contract.action.names,
                                                        self._period(), start))

    # ------------------------------------------------------------------ debug outputs

    def _stamp(self, plan: Plan) -> Any:
        """The observation's stamp (debug outputs are dated by what they were decoded from)."""
        stamp = self.node.get_clock().now().to_msg()
        if plan.stamp > 0:
            stamp.sec, stamp.nanosec = divmod(int(round(plan.stamp * 1e9)), 10**9)
        return stamp

    def publish_status(self, plan: Plan) -> None:
        if self.status_pub is not None:
            self.status_pub.publish(outputs.decoder_status(plan.record, self._stamp(plan)))

    def publish_plan(self, plan: Plan, first: int) -> None:
        """~/action_chunk and ~/plan_markers of the chunk just installed.

        Joint-space plans are drawn without forward kinematics (see ``markers.py``): anchored at
        the measured end-effector pose, one curve per joint over time.
        """
        if self.chunk_pub is None or self.marker_pub is None:
            return
        stamp, names, period = self._stamp(plan), self.contract.action.names, self._period()
        self.chunk_pub.publish(outputs.action_chunk(plan.chunk, names, period, stamp, first))
        rec, a = plan.record, self.contract.action
        label = f"k={rec.iterations} r={rec.residual:.3g} tau={rec.tau:.3g} ({rec.stop_reason})"
        self.marker_pub.publish(plan_markers(
            plan.chunk[first:], a.kind, self.ee_position(), a.delta_scale, rec.residual,
            rec.tau, "world", stamp, label))

    def publish_diagnostics(self, msg: DiagnosticArray) -> None:
        if self.diag_pub is not None:
            self.diag_pub.publish(msg)


def node_now(node: Node) -> float:
    """The node clock in seconds (sim time under ``use_sim_time``)."""
    return node.get_clock().now().nanoseconds * 1e-9
