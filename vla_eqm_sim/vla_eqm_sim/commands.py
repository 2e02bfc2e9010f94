"""Validation of incoming commands, before anything reaches the simulator.

A command from the network can be the wrong length, NaN, inf or absurdly large (a unit mix-up, a
policy that diverged). None of those may reach the physics: the bridge rejects them with a reason
it can log, and keeps running. Values only slightly outside the action bounds are clipped, as the
simulator would do anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vla_eqm_sim.backend import ActionSpace


class CommandRejected(ValueError):
    """A command that must not reach the simulator; ``str(err)`` is the reason to log."""


@dataclass(frozen=True)
class CommandLimits:
    """How far outside the action bounds a value may be before the command is absurd.

    ``max_abs`` is in action units: with Cartesian actions in [-1, 1], a 1.3 is clipped to 1 but
    a 50 (50 cm per 12.5 ms step) is a bug upstream and is rejected outright.
    """

    max_abs: float = 10.0
    max_chunk_rows: int = 1000  # longest chunk accepted (rows); bounds memory and latency

    def __post_init__(self) -> None:
        if not np.isfinite(self.max_abs) or self.max_abs <= 0:
            raise ValueError(f"max_abs must be a positive finite number, got {self.max_abs!r}")
        if self.max_chunk_rows < 1:
            raise ValueError(f"max_chunk_rows must be >= 1, got {self.max_chunk_rows!r}")


def validate_action(values: Sequence[float], spec: ActionSpace,
                    limits: CommandLimits) -> np.ndarray:
    """One command vector -> a clipped float64 action of shape (spec.dim,), or CommandRejected."""
    action = np.asarray(values, dtype=np.float64).reshape(-1)
    if action.shape[0] != spec.dim:
        raise CommandRejected(
            f"wrong length: got {action.shape[0]} values, expected {spec.dim} {list(spec.names)}"
        )
    return _check_values(action[None, :], spec, limits)[0]


def validate_chunk(
    values: Sequence[float], rows: int, spec: ActionSpace, limits: CommandLimits
) -> np.ndarray:
    """A row-major chunk of ``rows`` actions -> clipped (rows, spec.dim), or CommandRejected."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    if rows < 1:
        raise CommandRejected("empty chunk: no actions to execute")
    if rows > limits.max_chunk_rows:
        raise CommandRejected(f"chunk too long: {rows} rows > {limits.max_chunk_rows}")
    if flat.shape[0] != rows * spec.dim:
        raise CommandRejected(
            f"wrong length: got {flat.shape[0]} values, expected {rows} rows x {spec.dim}"
        )
    return _check_values(flat.reshape(rows, spec.dim), spec, limits)


def reorder_columns(names: Sequence[str], spec: ActionSpace) -> list[int] | None:
    """Column index of each spec dimension in a message that names its columns.

    Empty ``names`` means "already in spec order" (returns None). Any mismatch is a rejection: a
    trajectory for other joints must never be executed as if it were ours.
    """
    if not names:
        return None
    names = list(names)
    missing = [n for n in spec.names if n not in names]
    if missing or len(names) != spec.dim:
        raise CommandRejected(f"names {names} do not match the action names {list(spec.names)}")
    return [names.index(n) for n in spec.names]


def clamped_dimensions(rows: np.ndarray, spec: ActionSpace) -> dict[str, float]:
    """Dimensions with a value outside the bounds -> the worst such value (finite rows only).

    For joint commands the bounds are the joint limits: the bridge clamps and warns, as a
    trajectory controller would refuse to drive a joint through its limit.
    """
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, spec.dim)
    excess = np.maximum(rows - spec.high, spec.low - rows)  # (rows, dim), > 0 outside
    out = {}
    for col in np.flatnonzero((excess > 0).any(axis=0)):
        row = int(np.argmax(excess[:, col]))
        out[spec.names[col]] = float(rows[row, col])
    return out


def _check_values(actions: np.ndarray, spec: ActionSpace, limits: CommandLimits) -> np.ndarray:
    # actions: (rows, dim)
    if np.isnan(actions).any():
        row, col = np.argwhere(np.isnan(actions))[0]
        raise CommandRejected(f"NaN in {spec.names[col]} (row {row})")
    if np.isinf(actions).any():
        row, col = np.argwhere(np.isinf(actions))[0]
        raise CommandRejected(f"inf in {spec.names[col]} (row {row})")
    too_big = np.abs(actions) > limits.max_abs
    if too_big.any():
        row, col = np.argwhere(too_big)[0]
        raise CommandRejected(
            f"absurd magnitude {actions[row, col]:.6g} in {spec.names[col]} (row {row}); "
            f"limit |a| <= {limits.max_abs:g}, bounds [{spec.low[col]:g}, {spec.high[col]:g}]"
        )
    return np.clip(actions, spec.low, spec.high)
