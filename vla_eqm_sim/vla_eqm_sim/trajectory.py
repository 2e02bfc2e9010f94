"""Sampling a joint trajectory at the control rate, as a ``joint_trajectory_controller`` does.

A trajectory is waypoints at times ``time_from_start`` (s, after receipt). The controller
interpolates from where it currently is (its last commanded target) to the first point, then
between points, and samples the result at each control tick: a cubic Hermite spline where the
points carry velocities, straight lines where they carry positions only (Jazzy's
``joint_trajectory_controller`` splines: linear for positions, cubic with velocities). After the
last point the target stays there. ROS-free: numpy in, numpy out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TrajectoryPoints:
    """Waypoints in action-column order."""

    times: np.ndarray  # (n,) s after receipt, strictly increasing, > 0
    positions: np.ndarray  # (n, d)
    velocities: np.ndarray | None = None  # (n, d) units/s, or None for linear interpolation

    def __post_init__(self) -> None:
        times = np.asarray(self.times, dtype=np.float64)
        if times.ndim != 1 or times.size == 0:
            raise ValueError("a trajectory needs at least one point")
        if not np.all(np.isfinite(times)) or times[0] <= 0 or np.any(np.diff(times) <= 0):
            raise ValueError(
                f"time_from_start must be positive and strictly increasing, got {times.tolist()}"
            )
        if self.positions.shape[0] != times.size:
            raise ValueError(f"{times.size} times but {self.positions.shape[0]} points")
        if self.velocities is not None and self.velocities.shape != self.positions.shape:
            raise ValueError(
                f"velocities {self.velocities.shape} do not match positions {self.positions.shape}"
            )


def _hermite(p0, v0, p1, v1, t0: float, t1: float, t: float) -> np.ndarray:
    """Cubic Hermite segment from (p0, v0) at t0 to (p1, v1) at t1, evaluated at t."""
    h = t1 - t0
    s = (t - t0) / h
    h00, h10 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s
    h01, h11 = -2 * s**3 + 3 * s**2, s**3 - s**2
    return h00 * p0 + h10 * h * v0 + h01 * p1 + h11 * h * v1


def sample_trajectory(
    points: TrajectoryPoints,
    start: np.ndarray,
    period: float,
    start_velocity: np.ndarray | None = None,
) -> np.ndarray:
    """Targets for ticks 1..N at ``k * period`` s, N = ceil(last time / period): (N, d).

    ``start`` is the target in force at time 0 (the segment to the first point begins there, at
    ``start_velocity``, zero by default). A point whose time is a multiple of ``period`` is
    reproduced exactly at that tick.
    """
    if not (math.isfinite(period) and period > 0):
        raise ValueError(f"period must be positive, got {period!r}")
    times = np.concatenate([[0.0], np.asarray(points.times, dtype=np.float64)])  # (n+1,)
    positions = np.vstack([np.asarray(start, dtype=np.float64)[None, :], points.positions])
    velocities = None
    if points.velocities is not None:
        v0 = np.zeros(positions.shape[1]) if start_velocity is None else start_velocity
        velocities = np.vstack([np.asarray(v0, dtype=np.float64)[None, :], points.velocities])
    # A tick within a nanosecond of a point is that point (durations arrive in whole ns).
    n_ticks = max(1, math.ceil(times[-1] / period - 1e-6))
    rows = []
    for k in range(1, n_ticks + 1):
        t = min(k * period, times[-1])
        i = int(np.searchsorted(times, t - 1e-9, side="left"))  # segment (i-1, i]
        i = min(max(i, 1), len(times) - 1)
        if abs(t - times[i]) < 1e-9:
            rows.append(positions[i].copy())
        elif velocities is None:
            s = (t - times[i - 1]) / (times[i] - times[i - 1])
            rows.append((1 - s) * positions[i - 1] + s * positions[i])
        else:
            rows.append(_hermite(positions[i - 1], velocities[i - 1], positions[i],
                                 velocities[i], times[i - 1], times[i], t))
    return np.stack(rows)
