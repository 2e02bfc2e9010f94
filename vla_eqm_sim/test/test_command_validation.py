"""commands.py: validation rules, without ROS."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_eqm_sim.commands import (
    CommandLimits,
    CommandRejected,
    reorder_columns,
    validate_action,
    validate_chunk,
)
from vla_eqm_sim.metaworld_backend import CARTESIAN_SPEC

LIMITS = CommandLimits(max_abs=10.0)


def test_a_valid_action_comes_back_as_float64_and_clipped_to_the_bounds():
    action = validate_action([0.5, -1.5, 2.0, 0.0], CARTESIAN_SPEC, LIMITS)
    assert action.dtype == np.float64
    assert action.tolist() == [0.5, -1.0, 1.0, 0.0]


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ([0.0] * 3, "wrong length: got 3 values, expected 4"),
        ([0.0, math.nan, 0.0, 0.0], "NaN in dy"),
        ([math.inf, 0.0, 0.0, 0.0], "inf in dx"),
        ([0.0, 0.0, 0.0, -10.5], "absurd magnitude -10.5 in gripper"),
    ],
)
def test_bad_actions_are_rejected_with_a_reason_naming_the_problem(values, reason):
    with pytest.raises(CommandRejected, match=reason):
        validate_action(values, CARTESIAN_SPEC, LIMITS)


def test_a_chunk_is_reshaped_row_major_and_its_bad_row_is_named():
    chunk = validate_chunk(list(range(8)), 2, CARTESIAN_SPEC, CommandLimits(max_abs=100))
    assert chunk.shape == (2, 4) and chunk[1].tolist() == [1.0, 1.0, 1.0, 1.0]
    bad = np.zeros((3, 4))
    bad[2, 3] = math.inf
    with pytest.raises(CommandRejected, match=r"inf in gripper \(row 2\)"):
        validate_chunk(bad.ravel(), 3, CARTESIAN_SPEC, LIMITS)
    with pytest.raises(CommandRejected, match="wrong length"):
        validate_chunk([0.0] * 7, 2, CARTESIAN_SPEC, LIMITS)
    with pytest.raises(CommandRejected, match="empty chunk"):
        validate_chunk([], 0, CARTESIAN_SPEC, LIMITS)


def test_named_columns_are_reordered_to_the_action_spec_and_foreign_names_rejected():
    assert reorder_columns([], CARTESIAN_SPEC) is None
    assert reorder_columns(["gripper", "dx", "dy", "dz"], CARTESIAN_SPEC) == [1, 2, 3, 0]
    with pytest.raises(CommandRejected, match="do not match"):
        reorder_columns(["a", "b", "c", "d"], CARTESIAN_SPEC)


def test_limits_refuse_a_non_positive_or_non_finite_threshold():
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="max_abs"):
            CommandLimits(max_abs=bad)
