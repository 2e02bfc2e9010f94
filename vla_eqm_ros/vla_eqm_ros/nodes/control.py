"""Receding-horizon execution: the executing chunk, and the worker that solves the next one.

Time is counted in control ticks. A chunk is produced from the observation of tick P; its row i is
the action for tick P + i. Installing it at tick T therefore starts at row ``T - P`` (rows before
are in the past): no re-anchoring of a stale plan, only a time-aligned hand-over. The boundary jump
is the distance between the new chunk's first executed row and the row the old chunk would have
executed at the same tick; it is measured at every hand-over (diagnostics, benchmarks).

Kept free of rclpy (threads and numpy only) so it is tested without DDS.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


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


class SolveWorker:
    """One background thread, one job at a time; results are collected with ``poll``.

    The async control timer keeps publishing from the ``ChunkQueue`` while this thread solves.
    """

    def __init__(self, solve: Callable[..., Plan]) -> None:
        self._solve = solve
        self._cv = threading.Condition()
        self._job: tuple[Any, ...] | None = None
        self._result: Plan | BaseException | None = None
        self._busy = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="policy-solver", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        with self._cv:
            return self._busy or self._job is not None

    def submit(self, *args: Any) -> bool:
        """Queue a solve unless one is pending or running; returns whether it was queued."""
        with self._cv:
            if self._busy or self._job is not None:
                return False
            self._job = args
            self._cv.notify()
            return True

    def poll(self) -> Plan | BaseException | None:
        """The finished result (a Plan or the exception it raised), once; None while running."""
        with self._cv:
            out, self._result = self._result, None
            return out

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._job is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                job, self._job, self._busy = self._job, None, True
            try:
                result: Plan | BaseException = self._solve(*job)
            except Exception as exc:  # reported to the control loop
                result = exc
            with self._cv:
                self._result, self._busy = result, False

    def close(self, timeout: float = 5.0) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout)
