"""Receding-horizon execution: the one executor behind the node, eval-sim, bag replay and
``Policy.select_action``.

Time is counted in control ticks. A chunk is produced from the observation of tick P; its row i is
the action for tick P + i. Installing it at tick T therefore starts at row ``T - P`` (rows before
are in the past): no re-anchoring of a stale plan, only a time-aligned hand-over. The boundary jump
is the distance between the new chunk's first executed row and the row the old chunk would have
executed at the same tick; it is measured at every hand-over (diagnostics, benchmarks).

``RecedingHorizon`` owns everything between a decoded chunk and the action that may leave: the
executing plan and its queue, ``execute_steps`` (when the next solve is due), the time-aligned
warm-start count (``steps_since_produced``: what the ``shifted`` warm start advances by), the
``ActionGuard`` (limits, maximum change per step, non-finite values), the hold and the boundary
jumps. Written once so that every success figure is a figure about the node's code path: before,
the eval client kept its own list queue and ``np.clip`` in place of the guard.

Kept free of rclpy (numpy only) so it is tested on plain arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_eqm_ros.guard import ActionGuard, GuardResult
from vla_eqm_ros.observation import Observation

Solve = Callable[[Observation, int], tuple[np.ndarray, Any]]  # (obs, steps_executed) -> chunk, rec


@dataclass
class Plan:
    """A decoded chunk with the tick its observation was taken at."""

    chunk: np.ndarray  # (H, d) physical units
    produced_tick: int
    record: Any  # DecodeRecord
    stamp: float = 0.0  # observation stamp, s
    epoch: int = 0  # goal/reset epoch it belongs to


class ChunkQueue:
    """The executing plan and the index of the next row (tick-aligned)."""

    def __init__(self) -> None:
        self.plan: Plan | None = None
        self.next_row = 0
        self.installed_tick = 0

    def clear(self) -> None:
        self.plan = None
        self.next_row = 0

    def install(self, plan: Plan, tick: int) -> float | None:
        """Make ``plan`` current at ``tick``; returns the boundary jump (None without a comparison).

        Raises ValueError when the plan is entirely in the past (nothing left to execute).
        """
        first = tick - plan.produced_tick
        if first >= len(plan.chunk):
            raise ValueError(f"plan from tick {plan.produced_tick} is stale at tick {tick}")
        jump = None
        if self.plan is not None and self.next_row < len(self.plan.chunk):
            new_row, old_row = plan.chunk[first], self.plan.chunk[self.next_row]
            # A poisoned chunk (NaN/inf; the guard never publishes it) has no meaningful jump.
            if np.all(np.isfinite(new_row)) and np.all(np.isfinite(old_row)):
                jump = float(np.linalg.norm(new_row - old_row))
        self.plan, self.next_row, self.installed_tick = plan, first, tick
        return jump

    @property
    def first_row(self) -> int:
        """Row the current plan started executing at."""
        return 0 if self.plan is None else self.installed_tick - self.plan.produced_tick

    def executed_since_install(self) -> int:
        return self.next_row - self.first_row

    def remaining(self) -> int:
        return 0 if self.plan is None else len(self.plan.chunk) - self.next_row

    def steps_since_produced(self, tick: int) -> int:
        """Actions of the current plan executed since it was produced, as of ``tick``."""
        return 0 if self.plan is None else tick - self.plan.produced_tick

    def pop(self) -> np.ndarray | None:
        if self.plan is None or self.next_row >= len(self.plan.chunk):
            return None
        row = self.plan.chunk[self.next_row]
        self.next_row += 1
        return row


@dataclass
class Step:
    """What one control tick produced: the guarded action (None: nothing executable, hold) and
    the plan installed at this tick, if any."""

    action: GuardResult | None
    installed: Plan | None = None
    jump: float | None = None  # boundary jump of the hand-over at this tick, if one happened


@dataclass
class RecedingHorizon:
    """Plan, queue, due rule, warm-start count, guard, hold and boundary jumps; see the module
    docstring. ``tick`` advances once per control cycle (``begin_tick``)."""

    guard: ActionGuard
    execute_steps: int
    queue: ChunkQueue = field(default_factory=ChunkQueue)
    tick: int = 0
    jumps: list[float] = field(default_factory=list)

    def reset(self) -> None:
        """A new episode or goal: nothing of the old plan executes any more."""
        self.queue.clear()

    def begin_tick(self) -> int:
        self.tick += 1
        return self.tick

    def due(self, execute_steps: int | None = None) -> bool:
        """A new chunk is needed: none, used up, or ``execute_steps`` of it executed."""
        execute = self.execute_steps if execute_steps is None else execute_steps
        q = self.queue
        return q.plan is None or q.remaining() == 0 or q.executed_since_install() >= execute

    def steps_since_produced(self) -> int:
        """What the ``shifted`` warm start advances the previous chunk by, as of this tick."""
        return self.queue.steps_since_produced(self.tick)

    def plan(self, chunk: np.ndarray, record: Any, stamp: float = 0.0, epoch: int = 0) -> Plan:
        """A chunk decoded from this tick's observation."""
        return Plan(chunk=chunk, produced_tick=self.tick, record=record, stamp=stamp, epoch=epoch)

    def install(self, plan: Plan) -> float | None:
        """Execute ``plan`` from this tick on; returns (and keeps) the boundary jump."""
        jump = self.queue.install(plan, self.tick)
        if jump is not None:
            self.jumps.append(jump)
        return jump

    def next_action(self) -> GuardResult | None:
        """This tick's row of the plan, through the guard; None when nothing is executable."""
        row = self.queue.pop()
        return None if row is None else self.guard.check(row)

    def hold(self) -> np.ndarray:
        """The hold action (recorded as the last command)."""
        return self.guard.hold()

    def step(self, obs: Observation, solve: Solve) -> Step:
        """One synchronous control tick: decode when due, then execute this tick's row."""
        self.begin_tick()
        installed = jump = None
        if self.due():
            chunk, record = solve(obs, self.steps_since_produced())
            installed = self.plan(np.asarray(chunk), record, obs.stamp)
            jump = self.install(installed)
        return Step(self.next_action(), installed, jump)


def guard_for(contract: Any | None, action_dim: int = 0, max_delta: float = 0.0) -> ActionGuard:
    """The guard a contract asks for (its action limits and hold values); without a contract,
    one that clamps nothing over ``action_dim`` dimensions (offline tools on bare models)."""
    if contract is None:
        inf = np.full(action_dim, np.inf)
        return ActionGuard(-inf, inf, (None,) * action_dim, max_delta)
    a = contract.action
    return ActionGuard(np.asarray(a.low, float), np.asarray(a.high, float), a.hold, max_delta)


def guard_for_config(cfg: Any) -> ActionGuard:
    """``guard_for`` the contract stored in a ``PolicyConfig`` (None: nothing clamped)."""
    from vla_eqm_ros.contract import Contract

    contract = Contract.from_dict(cfg.contract) if cfg.contract else None
    return guard_for(contract, cfg.model.action_dim)
