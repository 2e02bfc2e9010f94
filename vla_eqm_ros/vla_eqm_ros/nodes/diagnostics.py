"""Running statistics of the control loop and their /diagnostics form.

diagnostic_updater is not installable here, so this is the small part of it we need: one status
per publish with loop rate, cycle and sensor-to-command latency, solver depth and residual, input
ages, warm-start use, dropped cycles, rejected inputs (count per topic), the current state of each
input (``input[<topic>]``: ok, stale or rejected, with the reason and since when), safety
interventions and the chunk boundary jump.

A reason once seen is not a state: a camera that sent one bad frame and then recovered reads
``ok`` again, and every state carries the node time it began, so an operator sees how long a
problem has lasted, not only that it happened once.
"""

from __future__ import annotations

import re
import threading
from collections import Counter, deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
LOG_TEXT_MAX = 200  # characters of user-supplied text (goals, reasons quoting input) in a log line


def bounded(text: str, limit: int = LOG_TEXT_MAX) -> str:
    """``text`` cut to ``limit`` characters for a log line or a diagnostics value, saying how long
    it was: a 10 kB goal must not make a 10 kB log line. Never applied to what the model gets."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} chars)"


def reason_kind(reason: str) -> str:
    """A reason with its numbers blanked out: the key that throttles its log line.

    Reasons carry live values ("stale: corner (0.231 s > 0.200 s)"); keyed on the raw text, every
    cycle would be a new reason and the throttle would let a line through per cycle, which at
    80 Hz floods the log (and, with stderr on a pipe nobody drains, blocks the node).
    """
    return _NUMBER.sub("#", reason)


def hold_kind(reason: str) -> str:
    """The class of a hold reason, its text before the first colon or parenthesis ("stale",
    "missing", "no action ready"): a stale hold says the inputs (or the executor) fell behind,
    an alignment hold says the inputs never paired, and an operator needs to tell them apart."""
    return re.split(r"[:(;]", reason, maxsplit=1)[0].strip() or "unspecified"


class LoopStats:
    """Thread-safe counters and windows (last ``window`` samples) for the diagnostics message."""

    def __init__(self, window: int = 200) -> None:
        self._lock = threading.Lock()
        self.tick_times: deque[float] = deque(maxlen=window)
        self.cycle_ms: deque[float] = deque(maxlen=window)
        self.solve_ms: deque[float] = deque(maxlen=window)
        self.iterations: deque[int] = deque(maxlen=window)
        self.boundary_jump: deque[float] = deque(maxlen=window)
        self.e2e_ms: deque[float] = deque(maxlen=window)  # observation stamp -> command publish
        self.transport_ms: deque[float] = deque(maxlen=window)  # frame stamp -> its receipt
        self.dispatch_ms: deque[float] = deque(maxlen=window)  # frame receipt -> cycle start
        self.iterations_last = 0
        self.warm_used_last = False
        self.commands = 0
        self.residual = float("nan")
        self.warm_used = 0
        self.solves = 0
        self.dropped_cycles = 0
        self.holds = 0
        self.hold_kinds: Counter[str] = Counter()  # "stale", "missing", "no action ready", ...
        self.ages: dict[str, float] = {}
        self.rejected: Counter[str] = Counter()
        self.inputs: dict[str, tuple[str, float]] = {}  # topic -> (state text, since: node s)
        self._updated: dict[str, float] = {}  # topic -> node time its state was last set
        self.safety: Counter[str] = Counter()
        self.last_hold_reason = ""

    def tick(self, t: float, cycle_ms: float) -> None:
        with self._lock:
            self.tick_times.append(t)
            self.cycle_ms.append(cycle_ms)

    def solve(self, iterations: int, residual: float, solve_ms: float, warm_used: bool) -> None:
        with self._lock:
            self.solves += 1
            self.iterations.append(iterations)
            self.solve_ms.append(solve_ms)
            self.residual = residual
            self.warm_used += int(warm_used)
            self.iterations_last = iterations
            self.warm_used_last = bool(warm_used)

    def command(self, e2e_ms: float | None) -> None:
        """A policy action went out; ``e2e_ms``: its observation's stamp to now (node clock)."""
        with self._lock:
            self.commands += 1
            if e2e_ms is not None:
                self.e2e_ms.append(e2e_ms)

    def delays(self, transport_ms: float, dispatch_ms: float) -> None:
        """Where a triggering frame's time went before its cycle: the sensor-to-command budget
        split into DDS delivery (stamp -> subscription callback) and executor dispatch."""
        with self._lock:
            self.transport_ms.append(transport_ms)
            self.dispatch_ms.append(dispatch_ms)

    def reject(self, key: str, reason: str = "", now: float = 0.0) -> None:
        with self._lock:
            self.rejected[key] += 1
            self._set_input(key, f"rejected: {bounded(reason)}", now)

    def input_state(self, topic: str, state: str, now: float) -> None:
        """The current state of one input: ``ok`` or ``stale (...)``; see the module docstring."""
        with self._lock:
            self._set_input(topic, state, now)

    def input_stale(self, topic: str, state: str, now: float, max_age: float) -> None:
        """Mark an input stale, unless it is being rejected: a driver that sends only bad
        frames reads ``rejected: <why>`` (the cause), not ``stale`` (the symptom)."""
        with self._lock:
            old = self.inputs.get(topic)
            if old and old[0].startswith("rejected") and now - self._updated[topic] <= max_age:
                return
            self._set_input(topic, state, now)

    def _set_input(self, topic: str, state: str, now: float) -> None:
        old = self.inputs.get(topic)
        self._updated[topic] = now
        if old is None or reason_kind(old[0]) != reason_kind(state):
            self.inputs[topic] = (state, now)  # a new kind of state starts its clock
        else:
            self.inputs[topic] = (state, old[1])  # same kind, fresher numbers

    def intervene(self, reason: str) -> None:
        with self._lock:
            self.safety[reason.split(" in dims")[0].split(";")[0]] += 1

    def hold(self, reason: str) -> None:
        with self._lock:
            self.holds += 1
            self.hold_kinds[hold_kind(reason)] += 1
            self.last_hold_reason = reason

    def drop(self) -> None:
        with self._lock:
            self.dropped_cycles += 1

    def jump(self, value: float) -> None:
        with self._lock:
            self.boundary_jump.append(value)

    def rate_hz(self) -> float:
        with self._lock:
            t = list(self.tick_times)
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def summary(self) -> dict[str, str]:
        rate = self.rate_hz()
        with self._lock:
            def pct(xs: deque, q: float) -> str:
                return f"{np.percentile(list(xs), q):.2f}" if xs else "nan"

            out = {
                "loop_rate_hz": f"{rate:.2f}",
                "cycle_ms_p50": pct(self.cycle_ms, 50),
                "cycle_ms_p99": pct(self.cycle_ms, 99),
                "sensor_to_command_ms_p50": pct(self.e2e_ms, 50),
                "sensor_to_command_ms_p99": pct(self.e2e_ms, 99),
                "transport_ms_p50": pct(self.transport_ms, 50),
                "transport_ms_p99": pct(self.transport_ms, 99),
                "dispatch_ms_p50": pct(self.dispatch_ms, 50),
                "dispatch_ms_p99": pct(self.dispatch_ms, 99),
                "solve_ms_p50": pct(self.solve_ms, 50),
                "solve_ms_p99": pct(self.solve_ms, 99),
                "iterations_p50": pct(self.iterations, 50),
                "iterations_last": str(self.iterations_last),
                "residual_last": f"{self.residual:.4g}",
                "solves": str(self.solves),
                "commands": str(self.commands),
                "warm_start_used": str(self.warm_used),
                "warm_start_used_last": str(self.warm_used_last).lower(),
                "dropped_cycles": str(self.dropped_cycles),
                "holds": str(self.holds),
                "last_hold_reason": bounded(self.last_hold_reason),
                "boundary_jump_p50": pct(self.boundary_jump, 50),
                "boundary_jump_max": (f"{max(self.boundary_jump):.4g}"
                                      if self.boundary_jump else "nan"),
            }
            out.update({f"age_s[{k}]": f"{v:.3f}" for k, v in self.ages.items()})
            out.update({f"rejected[{k}]": str(v) for k, v in self.rejected.items()})
            out.update({f"input[{k}]": f"{state} (since {since:.3f} s)"
                        for k, (state, since) in self.inputs.items()})
            out.update({f"safety[{k}]": str(v) for k, v in self.safety.items()})
            out.update({f"holds[{k}]": str(v) for k, v in self.hold_kinds.items()})
        return out

    def message(self, node_name: str, state: str, stamp, ok: bool) -> DiagnosticArray:
        status = DiagnosticStatus(
            level=DiagnosticStatus.OK if ok else DiagnosticStatus.WARN,
            name=f"{node_name}: policy loop",
            message=state,
            hardware_id="vla_eqm_policy",
        )
        status.values = [KeyValue(key=k, value=v) for k, v in self.summary().items()]
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = stamp
        return arr
