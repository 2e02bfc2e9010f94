"""When a cycle runs under ``trigger: observation``: once per new, complete observation.

Why a second trigger besides the control timer:
- lockstep simulation advances its clock only when a command arrives, so a timer on sim time
  would wait for a clock that waits for it (deadlock); the observation itself must drive the cycle;
- the honest sensor-to-command latency is measured from the frame that caused the command, which
  only exists when the frame starts the cycle.

"New" means the reference input (the contract's first camera, else its first state source) has a
sample newer than the last one a cycle consumed. "Complete" means every other input has a sample
stamped at or after that frame, so a sim step's image is not paired with the previous step's joint
state just because the image arrived first (DDS does not order topics). When a partner never
catches up (a sensor stamped slightly earlier on every frame), the frame is used anyway after
``max_wait`` seconds of receipt time, and the usual as-of alignment with bounded skew decides.

Frames that arrive while a cycle runs are coalesced: the next cycle takes the newest one and the
skipped ones count as dropped cycles. Kept free of rclpy (a lock and floats) for plain tests.
"""

from __future__ import annotations

import math
import threading

STAMP_TOLERANCE = 1e-6  # s: stamps converted from integer nanoseconds compare equal within this


class ObservationTrigger:
    """Tracks input arrivals; ``ready`` says whether a cycle should run, ``consume`` takes it."""

    def __init__(self, reference: str, partners: list[str], max_wait: float) -> None:
        self.reference = reference
        self.partners = list(partners)
        self.max_wait = float(max_wait)  # s of receipt time a frame waits for its partners
        self._lock = threading.Lock()
        self._newest: dict[str, float] = {}  # input name -> newest stamp
        self._ref_received = -math.inf  # receipt time of the newest reference frame
        self._consumed_stamp = -math.inf
        self._frames = 0  # reference frames seen
        self._frames_consumed = 0
        self._episode_start = -1  # frames seen when the episode was reset (-1: no reset pending)

    def arrived(self, name: str, stamp: float, received: float) -> None:
        """Record a decoded input sample (name as the assembler names it)."""
        with self._lock:
            if stamp < self._newest.get(name, -math.inf):
                return  # out-of-order sample: not newer, changes nothing
            self._newest[name] = stamp
            if name == self.reference:
                self._frames += 1
                self._ref_received = received

    def ready(self, now: float) -> bool:
        """A new reference frame exists and its partners caught up (or waited long enough)."""
        with self._lock:
            ref = self._newest.get(self.reference)
            if ref is None:
                return False
            if self._episode_start >= 0:  # after an episode reset: any frame that came later
                if self._frames <= self._episode_start:
                    return False
            elif ref <= self._consumed_stamp:
                return False
            complete = all(self._newest.get(p, -math.inf) >= ref - STAMP_TOLERANCE
                           for p in self.partners)
            return complete or now - self._ref_received >= self.max_wait

    def latest(self) -> tuple[float, float]:
        """(stamp, receipt time) of the newest reference frame: the transport and dispatch delays
        a cycle started from it can report."""
        with self._lock:
            return self._newest.get(self.reference, -math.inf), self._ref_received

    def consume(self) -> int:
        """Mark the newest frame as used; returns how many frames arrived since the last cycle."""
        with self._lock:
            self._consumed_stamp = self._newest.get(self.reference, -math.inf)
            self._episode_start = -1
            new = self._frames - self._frames_consumed
            self._frames_consumed = self._frames
            return max(new, 1)

    def new_episode(self) -> None:
        """The next reference frame starts an episode: it triggers even at an already-answered
        stamp (a simulator reset does not advance sim time, so its first frame may carry the
        stamp of the previous episode's last one). Frames that arrived before this call do not,
        neither as the reference nor as partners.
        """
        with self._lock:
            self._episode_start = self._frames
            # partners must arrive anew too: the previous episode's last samples carry the stamp
            # of this episode's first frame, and the input history was cleared with the reset
            self._newest.clear()

    def reset(self) -> None:
        """Forget history (activation): frames seen while inactive do not count as dropped."""
        with self._lock:
            self._frames_consumed = self._frames
            self._consumed_stamp = self._newest.get(self.reference, -math.inf)
