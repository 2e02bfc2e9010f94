"""The async mode's worker: one background thread that solves the next chunk while the control
loop keeps executing the current one (``vla_eqm_ros.execution.RecedingHorizon``).

Kept free of rclpy (threads only) so it is tested without DDS.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from vla_eqm_ros.execution import Plan


class SolveWorker:
    """One background thread, one job at a time; results are collected with ``poll``.

    The async control loop keeps executing the current plan while this thread solves.
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
            assert job is not None
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
