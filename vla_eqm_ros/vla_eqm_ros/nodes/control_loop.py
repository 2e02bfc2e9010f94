"""The policy node's control loop: newest observation in, one guarded command (or a hold) out.

A typed object the node builds at configure and drops at cleanup (composition, not a mixin): it
owns the policy, the receding-horizon executor, the async solve worker, the trigger and the
loop's flags, and it reaches ROS only through ``LoopPorts`` (publish, log, clock, parameters). A
test can therefore drive it with plain arrays and a recording ``LoopPorts``, without DDS.

What starts a cycle is the ``trigger`` parameter:
- ``timer``: the control timer at ``control_rate_hz`` (node clock, so ``use_sim_time`` works);
- ``observation``: each new complete observation (see ``trigger.py``); the timer then acts as a
  watchdog that holds when inputs go stale, because no frames also means no cycles.

A cycle: apply accepted parameter changes, honour a pending reset, assemble the newest consistent
observation (or hold, with the reason), solve when the executing chunk is used up (sync) or
collect the background solve (async), publish the command first (latency), then the debug
outputs. Float64MultiArray: one action per cycle from the tick-aligned queue. JointTrajectory: the
whole chunk once per solve; the queue only keeps time. Every action passes the ``ActionGuard``.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from typing import Any, Protocol

import numpy as np

from vla_eqm_ros.contract import Contract
from vla_eqm_ros.execution import Plan, RecedingHorizon
from vla_eqm_ros.nodes.control import SolveWorker
from vla_eqm_ros.nodes.diagnostics import LoopStats, reason_kind
from vla_eqm_ros.nodes.trigger import ObservationTrigger
from vla_eqm_ros.observation import Observation


class LoopPorts(Protocol):
    """Everything the loop needs from ROS; the node implements it (``PolicyNode``)."""

    def now(self) -> float: ...  # node clock, s (sim time when use_sim_time)

    def param(self, name: str) -> Any: ...

    def max_ages(self) -> dict[str, float]: ...  # per input name, s

    def apply_pending(self) -> None: ...  # accepted parameter changes, at a cycle's start

    def publish_command(self, action: np.ndarray) -> None: ...

    def publish_trajectory(self, rows: np.ndarray, start: np.ndarray | None) -> None: ...

    def publish_status(self, plan: Plan) -> None: ...

    def publish_plan(self, plan: Plan, first: int) -> None: ...

    def warn(self, key: str, text: str) -> None: ...  # throttled per reason kind

    def wake(self) -> None: ...  # run ``on_observation`` from the serialized callback group


class InputSource(Protocol):
    """The input side (``sync.InputHub``): assembled observations and measured joints."""

    topic_of: dict[str, str]

    def assemble(self, max_ages: dict[str, float]) -> Any: ...

    def measured_joints(self, names: tuple[str, ...], max_age: float,
                        fallback: np.ndarray | None = None) -> np.ndarray | None: ...


class ControlLoop:
    """One control cycle per tick or frame; see the module docstring. Thread-safe: every entry
    point takes ``cycle_lock`` (a running cycle finishes before a hold, a reset or teardown)."""

    def __init__(self, policy: Any, contract: Contract, inputs: InputSource,
                 horizon: RecedingHorizon, stats: LoopStats, ports: LoopPorts, *,
                 output_mode: str, trigger: ObservationTrigger | None = None,
                 debug: bool = True) -> None:
        self.policy = policy
        self.contract = contract
        self.inputs = inputs
        self.horizon = horizon
        self.stats = stats
        self.ports = ports
        self.output_mode = output_mode
        self.trigger = trigger
        self.debug = debug
        self.worker = SolveWorker(self._solve)
        self.cycle_lock = threading.RLock()
        self._lock = threading.Lock()  # the flags below, across threads
        self.active = False
        self.enabled = False
        self.holding = ""  # reason of the current hold, "" while commanding
        self._reset_pending = False
        self._epoch = 0
        self._last_cycle_t: float | None = None
        self._quiet_since: float | None = None
        self._next_plan: Plan | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Activation: a fresh queue and tick count, and a reset before the first solve."""
        with self.cycle_lock:
            self.horizon.reset()
            self.horizon.tick, self._last_cycle_t, self.holding = 0, None, ""
            self._quiet_since, self._next_plan = None, None
            if self.trigger is not None:
                self.trigger.reset()
            self._reset_pending = True
            self.enabled, self.active = True, True

    def stop(self, reason: str = "deactivated") -> None:
        """Deactivation: after a running cycle, hold (the last command) and drop the plan."""
        self.active = False
        with self.cycle_lock:
            self.hold(reason, force=True)
            self.horizon.reset()

    def emergency_hold(self, reason: str, timeout: float = 1.0) -> None:
        """Hold now, without the executor (it died, or the process is going down).

        Stops commanding first, so that no cycle still running publishes after the hold; waits
        at most ``timeout`` for such a cycle, then publishes the hold regardless: a robot left
        on a stale policy command is worse than two threads publishing one hold.
        """
        self.active = False
        locked = self.cycle_lock.acquire(timeout=timeout)
        try:
            self.hold(reason, force=True)
        finally:
            if locked:
                self.cycle_lock.release()

    def close(self) -> None:
        """Teardown: after a running cycle, join the solver thread."""
        self.active = False
        with self.cycle_lock:
            self.worker.close()

    def set_enabled(self, on: bool) -> None:
        with self.cycle_lock:  # after a running cycle: the hold is the last command
            self.enabled = bool(on)
            if not on:
                self.hold("disabled by service", force=True)

    def request_reset(self, new_episode: bool = True) -> None:
        """The next cycle resets the warm start and the queue. ``new_episode`` (the reset
        service) also makes the trigger wait for the episode's first frame; a new goal alone
        does not, because in lockstep the frame it belongs to may already have arrived."""
        with self._lock:
            self._reset_pending = True
        if new_episode and self.trigger is not None:
            self.trigger.new_episode()

    def state_text(self) -> tuple[str, bool]:
        """The /diagnostics summary line and whether the loop is healthy."""
        text = ("active" if self.active else "inactive") + ("" if self.enabled else ", disabled")
        if self.holding:
            text += f", holding: {self.holding}"
        return text, self.active and self.enabled and not self.holding

    # ------------------------------------------------------------------ entry points

    def period(self) -> float:
        return 1.0 / float(self.ports.param("control_rate_hz"))

    def on_timer(self) -> None:
        """Control tick (trigger timer) or stale-input watchdog (trigger observation)."""
        with self.cycle_lock:  # deactivate/cleanup wait for a running cycle to finish
            if not self.active:
                return
            if self.trigger is None:
                self._run_cycle(from_timer=True)
            else:
                self._watchdog()

    def on_input(self, name: str, stamp: float, received: float) -> None:
        """Hub hook (subscription threads): run the cycle when an observation is complete.

        The cycle runs right here, in the callback of the input that completed the observation,
        when no other cycle holds the lock: a hop through the executor (guard condition, wait
        set, thread pool) costs milliseconds of GIL time on a busy CPU. When the lock is taken
        (a cycle, a service or a transition holds it) ``ports.wake`` hands the frame to the
        timer's callback group instead, which waits for the lock.
        """
        self.stats.input_state(self.inputs.topic_of[name], "ok", received)
        if self.trigger is None:
            return
        self.trigger.arrived(name, stamp, received)
        if not (self.active and self.trigger.ready(received)):
            return
        if self.cycle_lock.acquire(blocking=False):
            try:
                self._observation_cycle()
            finally:
                self.cycle_lock.release()
        else:
            self.ports.wake()

    def on_observation(self) -> None:
        """Woken callback (the timer's callback group: never two cycles at once)."""
        with self.cycle_lock:
            self._observation_cycle()

    def _observation_cycle(self) -> None:
        """One cycle on the newest complete frame; the caller holds ``cycle_lock``."""
        trigger = self.trigger
        if not self.active or trigger is None or not trigger.ready(self.ports.now()):
            return
        stamp, received = trigger.latest()
        if stamp > 0:
            self.stats.delays((received - stamp) * 1e3, (self.ports.now() - received) * 1e3)
        for _ in range(trigger.consume() - 1):
            self.stats.drop()  # frames coalesced while the previous cycle ran
            if self.output_mode == "joint_trajectory":
                # the controller executed that point anyway: keep the queue on its clock, or a
                # lockstep simulator would wait for a trajectory the node never sends
                self.horizon.queue.pop()
        self._run_cycle(from_timer=False)

    def _watchdog(self) -> None:
        """Observation mode: hold within a control period once inputs are stale or missing."""
        now = self.ports.now()
        assert self.trigger is not None
        if self.trigger.ready(now):  # a frame waited max_wait for its partners: run it now
            self._observation_cycle()
            return
        if self._last_cycle_t is not None and now - self._last_cycle_t < 2 * self.period():
            self._quiet_since = None
            return
        if self._quiet_since is None:
            # First quiet tick: under lockstep sim time the clock jump that fires this timer is
            # published just before its observation; holding now would step the sim. Hold from
            # the next quiet tick on (still within 2 periods of the inputs going stale).
            self._quiet_since = now
            return
        if self.enabled:
            self._observation_or_hold()

    def _observation_or_hold(self) -> Observation | None:
        """The newest consistent observation; without one (stale, missing, skewed inputs) drop
        the queued and pending plans and hold, with the assembler's reason."""
        max_ages = self.ports.max_ages()
        res = self.inputs.assemble(max_ages)
        self.stats.ages = {k: v for k, v in res.ages.items() if math.isfinite(v)}
        now = self.ports.now()
        for name, age in res.ages.items():
            if math.isfinite(age) and age > max_ages[name]:
                self.stats.input_stale(self.inputs.topic_of[name],
                                       f"stale ({age:.3f} s > {max_ages[name]:.3f} s)", now,
                                       max_ages[name])
        if res.observation is None:
            self.horizon.reset()
            self._next_plan = None
            self.hold(res.reason)
        return res.observation

    def _run_cycle(self, from_timer: bool) -> None:
        t0 = time.perf_counter()
        try:
            self._cycle(from_timer)
        except Exception:  # the loop must survive anything; hold and report
            self.ports.warn("cycle", f"control cycle failed; holding:\n{traceback.format_exc()}")
            self.hold("cycle error")
        self.stats.tick(time.monotonic(), (time.perf_counter() - t0) * 1e3)

    # ------------------------------------------------------------------ the cycle

    def _cycle(self, from_timer: bool) -> None:
        period = self.period()
        now = self.ports.now()
        last = self._last_cycle_t
        if from_timer and last is not None and now - last > 1.5 * period:
            for _ in range(int(round((now - last) / period)) - 1):
                self.stats.drop()  # ticks the executor could not serve in time
        self._last_cycle_t = now
        tick = self.horizon.begin_tick()
        self.ports.apply_pending()
        if self._reset_pending and not self.worker.busy:
            with self._lock:
                self._reset_pending = False
                self._epoch += 1
            self.policy.reset()
            self.horizon.reset()
            self._next_plan = None
        if not self.enabled:
            return
        obs = self._observation_or_hold()
        if obs is None:
            return
        if self._reset_pending:
            self.hold("reset in progress")
            return
        execute = int(self.ports.param("execute_steps"))
        due = self.horizon.due(execute)
        installed = None
        sync = self.ports.param("execution") == "sync"
        if sync:
            if due:
                installed = self._solve(obs, self.horizon.steps_since_produced(), tick,
                                        self._epoch)
                self._install(installed, obs)
        else:
            installed = self._async_step(obs, tick, due, execute, period)
        self._execute(obs)
        if installed is not None and self.debug:
            if sync:
                self.ports.publish_status(installed)
            self.ports.publish_plan(installed, self.horizon.queue.first_row)

    def _async_step(self, obs: Observation, tick: int, due: bool, execute: int,
                    period: float) -> Plan | None:
        """Collect a finished background solve, install it when due, submit the next one."""
        installed = None
        result = self.worker.poll()
        if isinstance(result, BaseException):
            self.ports.warn("solve", f"background solve failed: {result}")
        elif result is not None:
            if self.debug:
                self.ports.publish_status(result)  # every solve, installed or not
            if result.epoch == self._epoch:
                self._next_plan = result
        if self._next_plan is not None and due:
            plan, self._next_plan = self._next_plan, None
            if tick - plan.produced_tick < len(plan.chunk):
                self._install(plan, obs)
                installed = plan
            else:
                self.stats.intervene("stale plan discarded")
                self.ports.warn("stale-plan", (
                    f"plan from tick {plan.produced_tick} is entirely in the past at tick {tick} "
                    f"(solve {plan.record.solve_ms:.0f} ms > horizon); discarded"))
        if self._next_plan is None and not self.worker.busy:
            q = self.horizon.queue
            left = 0 if q.plan is None else execute - q.executed_since_install()
            solve_ticks = math.ceil(np.median(self.stats.solve_ms or [0.0]) / 1e3 / period)
            if left <= solve_ticks + 1:
                self.worker.submit(obs, self.horizon.steps_since_produced(), tick, self._epoch)
        return installed

    def _solve(self, obs: Observation, steps_executed: int, tick: int, epoch: int) -> Plan:
        chunk, rec = self.policy.predict_action_chunk(obs, steps_executed=steps_executed)
        self.stats.solve(rec.iterations, rec.residual, rec.prefix_ms + rec.solve_ms,
                         rec.warm_start_used)
        return Plan(chunk=chunk, produced_tick=tick, record=rec, stamp=obs.stamp, epoch=epoch)

    def _install(self, plan: Plan, obs: Observation) -> None:
        jump = self.horizon.install(plan)
        if jump is not None:
            self.stats.jump(jump)
        if self.output_mode != "joint_trajectory":
            return
        guard, first = self.horizon.guard, self.horizon.queue.first_row
        last = guard.last if guard.last is not None else plan.chunk[first]
        start = self.inputs.measured_joints(self.contract.action.names, 2 * self.period(),
                                            fallback=last)
        guarded = guard.check_chunk(plan.chunk[first:], start)
        for r in guarded.reasons:
            self.stats.intervene(r)
            self.ports.warn(f"safety:{r.split(' in dims')[0]}", f"trajectory guarded: {r}")
        self.ports.publish_trajectory(guarded.action, start)
        self.stats.command((self.ports.now() - obs.stamp) * 1e3 if obs.stamp > 0 else None)
        self.holding = ""

    def _execute(self, obs: Observation) -> None:
        if self.output_mode == "joint_trajectory":
            # the controller executes the published chunk; the queue only keeps time
            if self.horizon.queue.pop() is None:
                self.stats.drop()
                self.hold("no action ready (solve still running)")
            return
        guarded = self.horizon.next_action()
        if guarded is None:
            self.stats.drop()
            self.hold("no action ready (solve still running)")
            return
        for r in guarded.reasons:
            self.stats.intervene(r)
            self.ports.warn(f"safety:{r.split(' in dims')[0]}", f"action guarded: {r}")
        self.ports.publish_command(guarded.action)
        self.stats.command((self.ports.now() - obs.stamp) * 1e3 if obs.stamp > 0 else None)
        self.holding = "" if not guarded.held else "; ".join(guarded.reasons)

    # ------------------------------------------------------------------ holding

    def hold(self, reason: str, force: bool = False) -> None:
        """Hold position: vector actions every cycle; a trajectory hold once per hold episode."""
        self.stats.hold(reason)
        # "first": a new kind of hold (the same stale inputs with older ages is not new)
        first = reason_kind(reason) != reason_kind(self.holding)
        if first:
            self.ports.warn(f"hold:{reason[:60]}", f"holding position: {reason}")
        self.holding = reason
        if self.output_mode == "joint_trajectory":
            if not (first or force):
                return
            last = self.horizon.guard.last
            pos = self.inputs.measured_joints(self.contract.action.names, 1.0, fallback=last)
            pos = pos if pos is not None else last
            if pos is not None:
                self.ports.publish_trajectory(pos[None, :], pos)
            return
        self.ports.publish_command(self.horizon.hold())
