"""trajectory.py: sampling timed waypoints at the control rate, as a trajectory controller."""

from __future__ import annotations

import numpy as np
import pytest

from vla_eqm_sim.trajectory import TrajectoryPoints, sample_trajectory

DT = 0.0125


def test_points_on_the_tick_grid_come_back_exactly_one_per_tick():
    positions = np.arange(12, dtype=float).reshape(4, 3)
    rows = sample_trajectory(TrajectoryPoints(DT * np.arange(1, 5), positions), np.zeros(3), DT)
    np.testing.assert_array_equal(rows, positions)


def test_positions_only_are_interpolated_linearly_from_the_current_target():
    points = TrajectoryPoints(np.array([4 * DT]), np.array([[4.0, -4.0]]))
    rows = sample_trajectory(points, np.zeros(2), DT)
    np.testing.assert_allclose(rows, [[1, -1], [2, -2], [3, -3], [4, -4]])


def test_with_velocities_the_spline_is_cubic_and_passes_the_points_with_their_velocity():
    times = np.array([0.1, 0.2])
    positions = np.array([[1.0], [2.0]])
    velocities = np.array([[10.0], [0.0]])
    fine = sample_trajectory(TrajectoryPoints(times, positions, velocities), np.zeros(1), 1e-4)
    assert fine[999, 0] == pytest.approx(1.0) and fine[-1, 0] == pytest.approx(2.0)
    slope = (fine[1000, 0] - fine[998, 0]) / 2e-4  # velocity at the first point
    assert slope == pytest.approx(10.0, rel=1e-3)
    linear = sample_trajectory(TrajectoryPoints(times, positions), np.zeros(1), 1e-4)
    assert not np.allclose(fine, linear)


def test_a_last_point_between_ticks_is_reached_on_the_next_tick():
    rows = sample_trajectory(TrajectoryPoints(np.array([2.5 * DT]), np.ones((1, 1))),
                             np.zeros(1), DT)
    assert rows.shape == (3, 1) and rows[-1, 0] == 1.0
    np.testing.assert_allclose(rows[:2, 0], [0.4, 0.8])


@pytest.mark.parametrize("times", [[0.0, 0.1], [0.1, 0.1], [0.2, 0.1], [np.nan]])
def test_times_that_are_not_positive_and_increasing_are_refused(times):
    positions = np.zeros((len(times), 2))
    with pytest.raises(ValueError, match="strictly increasing"):
        TrajectoryPoints(np.array(times), positions)
