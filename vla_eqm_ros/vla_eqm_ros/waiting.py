"""Polling until something holds, with a deadline (ROS-free).

Bring-up code, the demo, benchmarks and tests all wait for DDS side effects (a service becoming
ready, a message arriving, an episode ending) that have no event to block on; one helper keeps the
deadline arithmetic in one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.02) -> bool:
    """True as soon as ``predicate()`` is; False once ``timeout`` seconds passed without it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False
