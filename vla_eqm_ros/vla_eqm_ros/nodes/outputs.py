"""numpy chunks and decode records -> the messages the node publishes.

The JointTrajectory follows what Jazzy's joint_trajectory_controller accepts: header stamp 0
(start on receipt), strictly increasing ``time_from_start`` with the first point one control period
ahead, positions plus finite-difference velocities, and zero velocity at the last point (the
controller rejects a non-zero final velocity unless ``allow_nonzero_velocity_at_trajectory_end``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_eqm_msgs.msg import ActionChunk, DecoderStatus


def _duration(seconds: float) -> Duration:
    sec = int(math.floor(seconds))
    return Duration(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def float_command(action: np.ndarray, names: tuple[str, ...]) -> Float64MultiArray:
    msg = Float64MultiArray()
    msg.layout.dim = [MultiArrayDimension(label="action", size=len(names), stride=len(names))]
    msg.data = [float(v) for v in action]
    return msg


def trajectory(
    rows: np.ndarray, names: tuple[str, ...], period: float, start: np.ndarray | None = None
) -> JointTrajectory:
    """(n, d) positions -> JointTrajectory; velocities by finite differences from ``start``."""
    rows = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    prev = np.vstack([rows[:1] if start is None else np.asarray(start, float)[None, :], rows])
    vel = np.diff(prev, axis=0) / period  # (n, d): backward difference into each point
    vel[-1] = 0.0  # controller requirement: the trajectory ends at rest
    msg = JointTrajectory(joint_names=list(names))  # header.stamp stays 0: start on receipt
    msg.points = [
        JointTrajectoryPoint(
            positions=[float(v) for v in rows[i]],
            velocities=[float(v) for v in vel[i]],
            time_from_start=_duration(period * (i + 1)),
        )
        for i in range(len(rows))
    ]
    return msg


def action_chunk(
    chunk: np.ndarray, names: tuple[str, ...], period: float, stamp: Any, first_step: int
) -> ActionChunk:
    h, d = chunk.shape
    msg = ActionChunk(action_names=list(names), horizon=h, action_dim=d,
                      control_period=float(period), first_step=int(first_step))
    msg.header.stamp = stamp
    msg.data = chunk.astype(np.float64).reshape(-1).tolist()
    return msg


def decoder_status(rec: Any, stamp: Any) -> DecoderStatus:
    """Republish the core's DecodeRecord field by field (same names as the message)."""
    msg = DecoderStatus()
    msg.header.stamp = stamp
    msg.decoder = str(rec.decoder)
    msg.tau = float(rec.tau)
    msg.k_max = int(rec.k_max)
    msg.step_size = float(rec.step_size)
    msg.momentum = float(rec.momentum)
    msg.deadline_ms = float(rec.deadline_ms)
    msg.fm_steps = int(rec.fm_steps)
    msg.iterations = int(rec.iterations)
    msg.residual = float(rec.residual)
    msg.residual_trace = [float(r) for r in rec.residual_trace]
    msg.stop_reason = str(rec.stop_reason)
    msg.warm_start = str(rec.warm_start)
    msg.warm_start_fraction = float(rec.warm_start_fraction)
    msg.warm_start_tail = str(rec.warm_start_tail)
    msg.warm_start_used = bool(rec.warm_start_used)
    msg.prefix_ms = float(rec.prefix_ms)
    msg.solve_ms = float(rec.solve_ms)
    return msg
