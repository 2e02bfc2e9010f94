"""The policy node's control cycle: newest observation in, one guarded command (or a hold) out.

What starts a cycle is the ``trigger`` parameter:
- ``timer``: the control timer at ``control_rate_hz`` (node clock, so ``use_sim_time`` works);
- ``observation``: each new complete observation (see ``trigger.py``); the timer then acts as a
  watchdog that holds when inputs go stale, because no frames also means no cycles.

A cycle: apply accepted parameter changes, honour a pending reset, assemble the newest consistent
observation (or hold, with the reason), solve when the executing chunk is used up (sync) or
collect the background solve (async), publish the command first (latency), then the debug
outputs. Float64MultiArray: one action per cycle from the tick-aligned queue. JointTrajectory: the
whole chunk once per solve; the queue only keeps time. Every action passes the ``ActionGuard``.

This is a mixin, the half of ``PolicyNode`` that runs per cycle; it uses the attributes that
``PolicyNode.on_setup`` creates (policy, contract, hub, queue, worker, guard, stats, publishers).
"""

from __future__ import annotations

import math
import time
import traceback
from typing import Any

import numpy as np

from vla_eqm_ros.execution import Plan
from vla_eqm_ros.nodes import outputs, parameters
from vla_eqm_ros.nodes.diagnostics import reason_kind
from vla_eqm_ros.nodes.markers import plan_markers
from vla_eqm_ros.observation import Observation


class ControlCycle:
    """Per-cycle behaviour of ``PolicyNode`` (a mixin; see the module docstring)."""

    _active: bool
    _quiet_since: float | None = None  # watchdog: node time since no cycle ran
    _cycle_lock: Any  # threading.RLock, created by PolicyNode
    enabled: bool
    stats: Any
    _trigger: Any

    # ------------------------------------------------------------------ entry points

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9  # type: ignore[attr-defined]

    def _period(self) -> float:
        return 1.0 / parameters.read(self, "control_rate_hz")  # type: ignore[arg-type]

    def _on_timer(self) -> None:
        """Control tick (trigger timer) or stale-input watchdog (trigger observation)."""
        with self._cycle_lock:  # deactivate/cleanup wait for a running cycle to finish
            if not self._active:
                return
            if self._trigger is None:
                self._run_cycle(from_timer=True)
            else:
                self._watchdog()

    def _on_input(self, name: str, stamp: float, received: float) -> None:
        """Hub hook (subscription threads): run the cycle when an observation is complete.

        The cycle runs right here, in the callback of the input that completed the observation,
        when no other cycle holds the lock: a hop through the executor (guard condition, wait
        set, thread pool) costs milliseconds of GIL time on a busy CPU. When the lock is taken
        (a cycle, a service or a transition holds it) the guard condition hands the frame to the
        timer's callback group instead, which waits for the lock.
        """
        self.stats.input_state(self.hub.topic_of[name], "ok", received)
        if self._trigger is None:
            return
        self._trigger.arrived(name, stamp, received)
        if not (self._active and self._trigger.ready(received)):
            return
        if self._cycle_lock.acquire(blocking=False):
            try:
                self._observation_cycle()
            finally:
                self._cycle_lock.release()
        else:
            self._trigger_gc.trigger()

    def _on_observation(self) -> None:
        """Guard-condition callback (the timer's callback group: never two cycles at once)."""
        with self._cycle_lock:
            self._observation_cycle()

    def _observation_cycle(self) -> None:
        """One cycle on the newest complete frame; the caller holds ``_cycle_lock``."""
        if not self._active or self._trigger is None or not self._trigger.ready(self._now()):
            return
        stamp, received = self._trigger.latest()
        if stamp > 0:
            self.stats.delays((received - stamp) * 1e3, (self._now() - received) * 1e3)
        for _ in range(self._trigger.consume() - 1):
            self.stats.drop()  # frames coalesced while the previous cycle ran
            if self.output_mode == "joint_trajectory":
                # the controller executed that point anyway: keep the queue on its clock, or a
                # lockstep simulator would wait for a trajectory the node never sends
                self.horizon.queue.pop()
        self._run_cycle(from_timer=False)

    def _watchdog(self) -> None:
        """Observation mode: hold within a control period once inputs are stale or missing."""
        now = self._now()
        if self._trigger.ready(now):  # a frame waited max_wait for its partners: run it now
            self._observation_cycle()
            return
        if self._last_cycle_t is not None and now - self._last_cycle_t < 2 * self._period():
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
        max_ages = self._max_ages()
        res = self.hub.assemble(max_ages)
        self.stats.ages = {k: v for k, v in res.ages.items() if math.isfinite(v)}
        now = self._now()
        for name, age in res.ages.items():
            if math.isfinite(age) and age > max_ages[name]:
                self.stats.input_stale(self.hub.topic_of[name],
                                       f"stale ({age:.3f} s > {max_ages[name]:.3f} s)", now,
                                       max_ages[name])
        if res.observation is None:
            self.horizon.reset()
            self._next_plan = None
            self._publish_hold(res.reason)
        return res.observation

    def _run_cycle(self, from_timer: bool) -> None:
        t0 = time.perf_counter()
        try:
            self._cycle(from_timer)
        except Exception:  # the loop must survive anything; hold and report
            self._throttled("cycle", f"control cycle failed; holding:\n{traceback.format_exc()}")
            self._publish_hold("cycle error")
        self.stats.tick(time.monotonic(), (time.perf_counter() - t0) * 1e3)

    # ------------------------------------------------------------------ the cycle

    def _cycle(self, from_timer: bool) -> None:
        period = self._period()
        now = self._now()
        last = self._last_cycle_t
        if from_timer and last is not None and now - last > 1.5 * period:
            for _ in range(int(round((now - last) / period)) - 1):
                self.stats.drop()  # ticks the executor could not serve in time
        self._last_cycle_t = now
        tick = self.horizon.begin_tick()
        self._apply_pending()
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
            self._publish_hold("reset in progress")
            return
        execute = parameters.read(self, "execute_steps")
        due = self.horizon.due(execute)
        installed = None
        if parameters.read(self, "execution") == "sync":
            if due:
                installed = self._solve(obs, self.horizon.steps_since_produced(), tick,
                                        self._epoch)
                self._install(installed, obs)
        else:
            installed = self._async_step(obs, tick, due, execute, period)
        self._execute(obs)
        if installed is not None and self.debug:
            if parameters.read(self, "execution") == "sync":
                self._publish_status(installed)
            self._publish_plan(installed, self.horizon.queue.first_row, period)

    def _async_step(self, obs: Observation, tick: int, due: bool, execute: int,
                    period: float) -> Plan | None:
        """Collect a finished background solve, install it when due, submit the next one."""
        installed = None
        result = self.worker.poll()
        if isinstance(result, BaseException):
            self._throttled("solve", f"background solve failed: {result}")
        elif result is not None:
            if self.debug:
                self._publish_status(result)  # every solve, installed or not
            if result.epoch == self._epoch:
                self._next_plan = result
        if self._next_plan is not None and due:
            plan, self._next_plan = self._next_plan, None
            if tick - plan.produced_tick < len(plan.chunk):
                self._install(plan, obs)
                installed = plan
            else:
                self.stats.intervene("stale plan discarded")
                self._throttled("stale-plan", (
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
        period = self._period()
        guard, first = self.horizon.guard, self.horizon.queue.first_row
        last = guard.last if guard.last is not None else plan.chunk[first]
        start = self.hub.measured_joints(self.contract.action.names, 2 * period, fallback=last)
        guarded = guard.check_chunk(plan.chunk[first:], start)
        for r in guarded.reasons:
            self.stats.intervene(r)
            self._throttled(f"safety:{r.split(' in dims')[0]}", f"trajectory guarded: {r}")
        self.command_pub.publish(outputs.trajectory(
            guarded.action, self.contract.action.names, period, start))
        self.stats.command((self._now() - obs.stamp) * 1e3 if obs.stamp > 0 else None)
        self._holding = ""

    def _execute(self, obs: Observation) -> None:
        if self.output_mode == "joint_trajectory":
            # the controller executes the published chunk; the queue only keeps time
            if self.horizon.queue.pop() is None:
                self.stats.drop()
                self._publish_hold("no action ready (solve still running)")
            return
        guarded = self.horizon.next_action()
        if guarded is None:
            self.stats.drop()
            self._publish_hold("no action ready (solve still running)")
            return
        for r in guarded.reasons:
            self.stats.intervene(r)
            self._throttled(f"safety:{r.split(' in dims')[0]}", f"action guarded: {r}")
        self.command_pub.publish(outputs.float_command(guarded.action, self.contract.action.names))
        self.stats.command((self._now() - obs.stamp) * 1e3 if obs.stamp > 0 else None)
        self._holding = "" if not guarded.held else "; ".join(guarded.reasons)

    # ------------------------------------------------------------------ outputs

    def _publish_hold(self, reason: str, force: bool = False) -> None:
        """Hold position: vector actions every cycle; a trajectory hold once per hold episode."""
        if self.contract is None or getattr(self, "command_pub", None) is None:
            return
        self.stats.hold(reason)
        # "first": a new kind of hold (the same stale inputs with older ages is not new)
        first = reason_kind(reason) != reason_kind(getattr(self, "_holding", ""))
        if first:
            self._throttled(f"hold:{reason[:60]}", f"holding position: {reason}")
        self._holding = reason
        names = self.contract.action.names
        if self.output_mode == "joint_trajectory":
            if not (first or force):
                return
            last = self.horizon.guard.last
            pos = (self.hub.measured_joints(names, 1.0, fallback=last)
                   if self.hub is not None else None)
            pos = pos if pos is not None else last
            if pos is not None:
                self.command_pub.publish(outputs.trajectory(pos[None, :], names, self._period(),
                                                            pos))
            return
        self.command_pub.publish(outputs.float_command(self.horizon.hold(), names))

    def _stamp(self, plan: Plan) -> Any:
        """The observation's stamp (debug outputs are dated by what they were decoded from)."""
        stamp = self.get_clock().now().to_msg()  # type: ignore[attr-defined]
        if plan.stamp > 0:
            stamp.sec, stamp.nanosec = divmod(int(round(plan.stamp * 1e9)), 10**9)
        return stamp

    def _publish_status(self, plan: Plan) -> None:
        self.status_pub.publish(outputs.decoder_status(plan.record, self._stamp(plan)))

    def _publish_plan(self, plan: Plan, first: int, period: float) -> None:
        """~/action_chunk and ~/plan_markers of the chunk just installed.

        Joint-space plans are drawn without forward kinematics (see ``markers.py``): anchored at
        the measured end-effector pose, one curve per joint over time.
        """
        stamp = self._stamp(plan)
        names = self.contract.action.names
        self.chunk_pub.publish(outputs.action_chunk(plan.chunk, names, period, stamp, first))
        rec, a = plan.record, self.contract.action
        label = f"k={rec.iterations} r={rec.residual:.3g} tau={rec.tau:.3g} ({rec.stop_reason})"
        self.marker_pub.publish(plan_markers(
            plan.chunk[first:], a.kind, self.hub.ee_position, a.delta_scale, rec.residual,
            rec.tau, "world", stamp, label))
