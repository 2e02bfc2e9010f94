"""The policy node's control loop on plain arrays: no DDS, no rclpy node.

``ControlLoop`` reaches ROS only through ``LoopPorts``; here a recording stand-in plays that part
and a scripted input source plays the robot, so the trigger, the queue and the guard are checked
cycle by cycle with exact counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_eqm_ros.contract import Contract
from vla_eqm_ros.decode import AssemblyResult
from vla_eqm_ros.execution import RecedingHorizon, guard_for
from vla_eqm_ros.nodes.control_loop import ControlLoop
from vla_eqm_ros.nodes.diagnostics import LoopStats
from vla_eqm_ros.nodes.trigger import ObservationTrigger
from vla_eqm_ros.observation import Observation

CONTRACT = Contract.from_dict({
    "cameras": [{"name": "cam", "topic": "/cam", "height": 4, "width": 4, "max_age": 1.0}],
    "state": [{"topic": "/joint_states", "type": "joint_state", "names": ["j0"], "max_age": 1.0}],
    "goal": {"topic": "/goal", "default": "go"},
    "action": {"names": ["a", "b"], "topic": "/command", "type": "float64_multi_array",
               "low": [-1, -1], "high": [1, 1], "hold": [0, None]},
    "control_period": 0.05,
})


@dataclass
class Ports:
    """A recording ``LoopPorts``."""

    params: dict[str, Any] = field(default_factory=lambda: {
        "control_rate_hz": 20.0, "execute_steps": 2, "execution": "sync"})
    t: float = 0.0
    commands: list[np.ndarray] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    woken: int = 0

    def now(self) -> float:
        return self.t

    def param(self, name: str) -> Any:
        return self.params[name]

    def max_ages(self) -> dict[str, float]:
        return {"cam": 1.0, "/joint_states": 1.0}

    def apply_pending(self) -> None:
        pass

    def publish_command(self, action: np.ndarray) -> None:
        self.commands.append(np.asarray(action, float).copy())

    def publish_trajectory(self, rows: np.ndarray, start: np.ndarray | None) -> None:
        raise AssertionError("vector contract")

    def publish_status(self, plan: Any) -> None:
        pass

    def publish_plan(self, plan: Any, first: int) -> None:
        pass

    def warn(self, key: str, text: str) -> None:
        self.warnings.append(text)

    def wake(self) -> None:
        self.woken += 1


class Inputs:
    """Scripted input source: ``fresh`` decides whether an observation assembles."""

    topic_of = {"cam": "/cam", "/joint_states": "/joint_states"}

    def __init__(self) -> None:
        self.fresh = True

    def assemble(self, max_ages: dict[str, float]) -> AssemblyResult:
        if not self.fresh:
            return AssemblyResult(None, "stale: cam (2.000 s > 1.000 s)", {"cam": 2.0})
        obs = Observation(images={"cam": np.zeros((4, 4, 3), np.uint8)},
                          state=np.zeros(1, np.float32), goal="go", stamp=0.0)
        return AssemblyResult(obs, "", {"cam": 0.0})

    def measured_joints(self, names, max_age, fallback=None):
        return None


class Policy:
    """Chunk k (from 1) holds 0.1 k + 0.01 row in every dimension, or ``values`` everywhere."""

    def __init__(self, values: float | None = None) -> None:
        self.calls: list[int] = []
        self.values = values

    def predict_action_chunk(self, obs, steps_executed=None):
        self.calls.append(int(steps_executed))
        k = len(self.calls)
        rows = np.array([[0.1 * k + 0.01 * r] * 2 for r in range(6)], np.float32)
        if self.values is not None:
            rows[:] = self.values
        rec = type("Rec", (), {"iterations": 3, "residual": 0.01, "prefix_ms": 1.0,
                               "solve_ms": 1.0, "warm_start_used": k > 1})()
        return rows, rec

    def reset(self) -> None:
        pass


def _loop(policy: Policy, trigger: ObservationTrigger | None = None):
    ports, inputs = Ports(), Inputs()
    loop = ControlLoop(policy, CONTRACT, inputs, RecedingHorizon(guard_for(CONTRACT), 2),
                       LoopStats(), ports, output_mode="float64_multi_array", trigger=trigger)
    loop.start()
    return loop, ports, inputs


def test_the_timer_loop_decodes_every_execute_steps_and_executes_each_row_once() -> None:
    policy = Policy()
    loop, ports, _ = _loop(policy)
    for i in range(6):
        ports.t = 0.05 * i
        loop.on_timer()
    assert policy.calls == [0, 2, 2], "decode at ticks 1, 3, 5; steps since the last decode"
    np.testing.assert_allclose([c[0] for c in ports.commands],
                               [0.10, 0.11, 0.20, 0.21, 0.30, 0.31], atol=1e-6)
    loop.close()


def test_stale_inputs_hold_and_drop_the_plan() -> None:
    policy = Policy()
    loop, ports, inputs = _loop(policy)
    loop.on_timer()
    inputs.fresh = False
    ports.t = 0.05
    loop.on_timer()
    np.testing.assert_allclose(ports.commands[-1], [0.0, 0.1], atol=1e-6,
                               err_msg="hold: zero motion, the second dimension kept")
    assert loop.holding.startswith("stale")
    assert loop.horizon.queue.plan is None
    inputs.fresh = True
    ports.t = 0.1
    loop.on_timer()
    assert policy.calls == [0, 0], "after a hold the next solve starts cold"
    summary = loop.stats.summary()
    assert summary["holds[stale]"] == "1", summary
    loop.close()


def test_holds_are_counted_by_kind_on_diagnostics() -> None:
    """A starved executor (stale) and inputs that never pair (skew) need different fixes."""
    stats = LoopStats()
    for reason in ("stale: corner (0.197 s > 0.150 s)", "stale: /joint_states (0.2 s > 0.15 s)",
                   "skew: /joint_states 0.080 s from corner", "missing: goal",
                   "no action ready (solve still running)"):
        stats.hold(reason)
    summary = stats.summary()
    assert summary["holds"] == "5"
    assert {k: v for k, v in summary.items() if k.startswith("holds[")} == {
        "holds[stale]": "2", "holds[skew]": "1", "holds[missing]": "1",
        "holds[no action ready]": "1"}


def test_out_of_limit_and_non_finite_actions_are_guarded() -> None:
    loop, ports, _ = _loop(Policy(values=5.0))
    loop.on_timer()
    assert ports.commands[-1].tolist() == [1.0, 1.0], "clamped to the contract's limits"
    loop.close()
    loop, ports, _ = _loop(Policy(values=float("nan")))
    loop.on_timer()
    assert np.all(np.isfinite(ports.commands[-1])), "a NaN is never published"
    assert loop.holding.startswith("non-finite")
    loop.close()


def test_observation_trigger_runs_one_cycle_per_complete_frame() -> None:
    policy = Policy()
    trigger = ObservationTrigger("cam", ["/joint_states"], max_wait=1.0)
    loop, ports, _ = _loop(policy, trigger)
    for k in range(1, 4):
        ports.t = 0.05 * k
        loop.on_input("cam", 0.05 * k, ports.t)
        assert len(ports.commands) == k - 1, "waits for the partner stamped at the frame"
        loop.on_input("/joint_states", 0.05 * k, ports.t)
        assert len(ports.commands) == k
    loop.on_input("/joint_states", 0.05 * 3, ports.t)  # a duplicate partner: no new cycle
    assert len(ports.commands) == 3
    loop.close()
