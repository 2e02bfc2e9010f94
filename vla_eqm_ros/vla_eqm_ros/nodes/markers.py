"""The planned chunk as an rviz MarkerArray, colored by the residual at stop.

Geometry follows the contract's action kind:
- cartesian_delta: the end-effector path, current pose + cumulative deltas * delta_scale (m);
- cartesian_absolute: the first three action dims are the path;
- joint: we have no forward kinematics here, so the plan is anchored at the current end-effector
  pose (contract ``ee_pose_topic``, else the frame origin) and drawn as one curve per joint:
  x = time along the chunk (0.02 m per step), z = joint value relative to step 0 (0.1 m/rad).
Color: green when the solver met tau, through yellow to red at 10x tau (log scale), so sliding tau
in rqt changes the plan and its color together.
"""

from __future__ import annotations

import math

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

STEP_X = 0.02  # m per step along the chunk (joint plans)
JOINT_SCALE = 0.1  # m per rad (joint plans)


def residual_color(residual: float, tau: float) -> ColorRGBA:
    """green (r <= tau) -> yellow -> red (r >= 10 tau); grey when there is no residual (FM)."""
    if not math.isfinite(residual):
        return ColorRGBA(r=0.6, g=0.6, b=0.6, a=1.0)
    ratio = residual / tau if tau > 0 else (0.0 if residual == 0 else 10.0)
    x = 0.0 if ratio <= 1 else min(1.0, math.log10(ratio))  # 0 at tau, 1 at 10 tau
    return ColorRGBA(r=min(1.0, 2 * x), g=min(1.0, 2 * (1 - x)), b=0.0, a=1.0)


def plan_curves(
    chunk: np.ndarray, kind: str, anchor: np.ndarray | None, delta_scale: float
) -> list[np.ndarray]:
    """One or more (n, 3) point arrays in the frame of ``anchor`` (world)."""
    base = np.zeros(3) if anchor is None else np.asarray(anchor, float)[:3]
    if kind == "cartesian_delta" and chunk.shape[1] >= 3:
        path = base + np.cumsum(chunk[:, :3] * delta_scale, axis=0)
        return [np.vstack([base, path])]
    if kind == "cartesian_absolute" and chunk.shape[1] >= 3:
        return [chunk[:, :3].astype(float)]
    steps = np.arange(chunk.shape[0]) * STEP_X
    curves = []
    for j in range(chunk.shape[1]):
        rel = (chunk[:, j] - chunk[0, j]) * JOINT_SCALE
        curves.append(base + np.stack([steps, np.full_like(steps, 0.01 * j), rel], axis=1))
    return curves


def plan_markers(
    chunk: np.ndarray, kind: str, anchor: np.ndarray | None, delta_scale: float,
    residual: float, tau: float, frame_id: str, stamp, label: str,
) -> MarkerArray:
    color = residual_color(residual, tau)
    out = MarkerArray()
    out.markers.append(Marker(action=Marker.DELETEALL))
    for i, pts in enumerate(plan_curves(chunk, kind, anchor, delta_scale)):
        m = Marker(ns="plan", id=i, type=Marker.LINE_STRIP, action=Marker.ADD)
        m.header.frame_id, m.header.stamp = frame_id, stamp
        m.pose.orientation.w = 1.0
        m.scale.x = 0.004
        m.color = color
        m.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in pts]
        out.markers.append(m)
    text = Marker(ns="status", id=0, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
    text.header.frame_id, text.header.stamp = frame_id, stamp
    base = np.zeros(3) if anchor is None else np.asarray(anchor, float)[:3]
    text.pose.position = Point(x=float(base[0]), y=float(base[1]), z=float(base[2]) + 0.08)
    text.pose.orientation.w = 1.0
    text.scale.z = 0.02
    text.color = color
    text.text = label
    out.markers.append(text)
    return out
