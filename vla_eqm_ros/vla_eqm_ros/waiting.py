"""Polling until something holds, with a deadline (ROS-free).

Bring-up code, the demo, benchmarks and tests all wait for DDS side effects (a service becoming
ready, a message arriving, an episode ending) that have no event to block on; one helper keeps the
deadline arithmetic in one place. ``spin_until`` is the same wait for code that owns a
single-threaded executor and must spin it while it waits (eval workers, recording, tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.02) -> bool:
    """True as soon as ``predicate()`` is; False once ``timeout`` seconds passed without it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


def spin_until(executor: Any, predicate: Callable[[], bool], timeout: float,
               poll: float = 0.02) -> bool:
    """``wait_until`` that spins ``executor`` (``spin_once(poll)``) instead of sleeping."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=poll)
    return True
