"""The replay metrics on hand-computed numbers: errors, masking at the episode end, boundary
jumps, pooling, and the live command alignment."""

from __future__ import annotations

import numpy as np
import pytest

from vla_eqm_train.evaluation.bag.metrics import (
    aggregate_cycles,
    boundary_jump,
    chunk_error,
    first_action_error,
)
from vla_eqm_train.evaluation.live.compare import _command_errors

RECORDED = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])  # T = 3 ticks, d = 2


def test_the_first_action_error_is_the_mean_abs_and_the_norm_of_the_difference():
    err = first_action_error(np.array([[3.0, -4.0], [9.0, 9.0]]), np.zeros(2))
    assert err == {"l1": 3.5, "l2": 5.0, "abs": [3.0, 4.0]}


def test_chunk_rows_past_the_episode_end_are_masked_not_compared():
    chunk = np.array([[1.0, 0.0], [2.0, 2.0], [100.0, 100.0], [100.0, 100.0]])  # H = 4
    err = chunk_error(chunk, RECORDED, tick=1)  # rows 0, 1 vs ticks 1, 2; rows 2, 3 masked
    assert err["rows"] == 2
    assert err["abs"] == [0.0, 1.0] and err["sq"] == [0.0, 2.0]  # errors (0, 0) and (0, 2)
    assert err["l1"] == pytest.approx(0.5) and err["l2"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="past the episode"):
        chunk_error(chunk, RECORDED, tick=3)


def test_the_boundary_jump_compares_with_what_the_previous_chunk_planned_for_that_tick():
    previous = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    new = np.array([[5.0, 5.0]])
    assert boundary_jump(previous, 4, new, 6) == pytest.approx(np.hypot(3.0, 3.0))  # row 2
    assert boundary_jump(previous, 4, new, 7) is None  # the previous chunk ended
    assert boundary_jump(None, None, new, 0) is None  # first decode of an episode


def test_pooled_per_dimension_l2_is_a_row_weighted_rms():
    def cycle(rows: int, sq: list[float]) -> dict:
        return {"first": {"l1": 1.0, "l2": 1.0, "abs": [1.0, 1.0]},
                "chunk": {"l1": 0.0, "l2": 0.0, "abs": [0.0, 0.0], "sq": sq, "rows": rows},
                "iterations": 3, "warm_start_used": rows == 1, "residual": 0.1,
                "stop_reason": "threshold", "jump": None, "decode_ms": 2.0}
    agg = aggregate_cycles([cycle(3, [4.0, 0.0]), cycle(1, [0.0, 4.0])])
    assert agg["chunk"]["l2_per_dim"] == pytest.approx([np.sqrt(3.0), 1.0])
    assert agg["iterations_cold_p50"] == 3 and agg["warm_cycles"] == 1
    assert agg["jump"]["n"] == 0 and agg["stop_reasons"] == {"threshold": 2}


def test_a_live_command_is_compared_with_the_recorded_command_in_force_at_its_receipt():
    times = np.array([0, 10, 20])  # ns, period 10
    rec = np.array([[0.0], [1.0], [2.0]])
    commands = [(0.0, np.array([1.0])), (1.0, np.array([1.0])), (2.0, np.array([1.0]))]
    at = {0.0: 15, 1.0: 29, 2.0: 30}  # receipt -> bag time; 30 is one period after the last
    out = _command_errors(commands, times, rec, 10, at.__getitem__)
    assert out["count"] == 3 and out["compared"] == 2  # tick 1 (error 0) and tick 2 (error 1)
    assert out["l1"] == pytest.approx(0.5) and out["l2_per_dim"] == pytest.approx([np.sqrt(0.5)])
    none = _command_errors([], times, rec, 10, at.__getitem__)
    assert none["compared"] == 0 and none["l2"] is None and none["l1_per_dim"] is None
