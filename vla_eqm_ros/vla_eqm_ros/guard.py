"""The last gate before an action reaches a robot: no NaN, no inf, nothing outside the limits.

Part of the ROS-free core (``execution.RecedingHorizon`` owns one), tested on plain arrays. Every
intervention comes back with a reason the node logs (throttled) and counts in /diagnostics,
because a silently clamped action is a bug report nobody can write.

"Hold position" for vector (Float64MultiArray) actions is the contract's ``action.hold``: a number
per dimension, or None to repeat the last commanded value (Meta-World: zero motion, gripper kept).
For joint trajectories the node holds at the measured joint positions instead (see policy_node).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class GuardResult:
    """The action that may be published and why it differs from the proposal (empty = as is)."""

    action: np.ndarray
    reasons: list[str]
    held: bool = False


class ActionGuard:
    """Clamp, rate-limit or replace proposed actions; remembers the last published one."""

    def __init__(
        self,
        low: np.ndarray,
        high: np.ndarray,
        hold: tuple[float | None, ...],
        max_delta: float = 0.0,
    ) -> None:
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        self.hold_spec = tuple(hold) if hold else (None,) * self.low.size
        self.max_delta = float(max_delta)  # per dim per step; 0 disables rate limiting
        self.last: np.ndarray | None = None

    def set_limits(self, low: np.ndarray, high: np.ndarray, max_delta: float) -> None:
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        self.max_delta = float(max_delta)

    def hold_action(self) -> np.ndarray:
        """The contract's hold action; None dims repeat the last command (else mid-range)."""
        mid = np.where(
            np.isfinite(self.low) & np.isfinite(self.high), (self.low + self.high) / 2, 0.0
        )
        ref = self.last if self.last is not None else mid
        out = np.array([ref[i] if v is None else v for i, v in enumerate(self.hold_spec)], float)
        return np.clip(out, self.low, self.high)

    def hold(self) -> np.ndarray:
        """The hold action, recorded as the last command; never rate-limited (stopping wins)."""
        self.last = self.hold_action()
        return self.last.copy()

    def check(self, proposal: np.ndarray, commit: bool = True) -> GuardResult:
        """Make ``proposal`` publishable; ``commit`` records it as the last published action."""
        action = np.asarray(proposal, dtype=np.float64).reshape(-1)
        reasons: list[str] = []
        held = False
        if action.size != self.low.size:
            reasons.append(f"action has {action.size} dims, expected {self.low.size}; held")
            action, held = self.hold_action(), True
        elif not np.all(np.isfinite(action)):
            bad = np.flatnonzero(~np.isfinite(action)).tolist()
            reasons.append(f"non-finite action in dims {bad}; held")
            action, held = self.hold_action(), True
        else:
            clipped = np.clip(action, self.low, self.high)
            if not np.array_equal(clipped, action):
                dims = np.flatnonzero(clipped != action).tolist()
                reasons.append(f"action outside limits in dims {dims}; clamped")
                action = clipped
            if self.max_delta > 0 and self.last is not None:
                step = np.clip(action - self.last, -self.max_delta, self.max_delta)
                if not np.allclose(step, action - self.last):
                    dims = np.flatnonzero(~np.isclose(step, action - self.last)).tolist()
                    reasons.append(f"change above max_action_delta in dims {dims}; limited")
                    action = np.clip(self.last + step, self.low, self.high)
        if commit:
            self.last = action.copy()
        return GuardResult(action=action, reasons=reasons, held=held)

    def check_chunk(self, chunk: np.ndarray, start: np.ndarray | None) -> GuardResult:
        """Guard every row of a trajectory in order, rate-limited from ``start`` (measured state).

        A non-finite row anywhere rejects the whole chunk (held at ``start``): executing half of a
        corrupted plan is not safer than holding.
        """
        chunk = np.asarray(chunk, dtype=np.float64)
        if not np.all(np.isfinite(chunk)):
            ref = start if start is not None else self.hold_action()
            return GuardResult(np.asarray(ref, float)[None, :], ["non-finite chunk; held"], True)
        self.last = None if start is None else np.asarray(start, dtype=np.float64)
        rows, reasons = [], []
        for row in chunk:
            res = self.check(row)
            rows.append(res.action)
            reasons += [r for r in res.reasons if r not in reasons]
        return GuardResult(np.stack(rows), reasons)
