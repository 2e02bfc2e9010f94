"""``policy_node``: the EqM VLA policy as a ROS 2 lifecycle node (issue #7).

configure: load the checkpoint (parameter ``checkpoint``; empty = the shipped default), resolve the
contract, apply the solver parameters, warm the model up, create publishers, subscriptions,
services, the control timer and (``trigger: observation``) the observation trigger. activate:
start commanding. deactivate: send the hold command, then stop. cleanup / shutdown: release the
model. Nothing moves before activation.

This file is the shell: lifecycle, parameters (validated, applied at the start of the next cycle),
services (``~/enable``, ``~/reset``) and ``/diagnostics``. The per-cycle behaviour (assemble, solve,
execute, hold, debug outputs) lives in ``cycle.py``; the trigger rule in ``trigger.py``.

Plans of joint-space actions are drawn in rviz without forward kinematics: anchored at the measured
end-effector pose (``ee_pose_topic``), one curve per joint over the chunk's time (``markers.py``).
Cartesian plans are drawn as end-effector paths.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.parameter import Parameter
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from vla_eqm_msgs.msg import ActionChunk, DecoderStatus
from vla_eqm_ros.compat import check_compatible, resolve_contract
from vla_eqm_ros.contract import Contract
from vla_eqm_ros.execution import Plan, RecedingHorizon
from vla_eqm_ros.guard import ActionGuard
from vla_eqm_ros.nodes import parameters
from vla_eqm_ros.nodes.control import SolveWorker
from vla_eqm_ros.nodes.cycle import ControlCycle
from vla_eqm_ros.nodes.diagnostics import LoopStats, bounded, reason_kind
from vla_eqm_ros.nodes.lifecycle_base import ManagedNode
from vla_eqm_ros.nodes.sync import InputHub
from vla_eqm_ros.nodes.trigger import ObservationTrigger
from vla_eqm_ros.observation import Observation


class PolicyNode(ControlCycle, ManagedNode):
    """Lifecycle shell around ``vla_eqm_ros.policy.Policy``; see the module docstring."""

    def __init__(self, node_name: str = "policy_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._overridden = parameters.declare_all(self)
        self.add_pre_set_parameters_callback(parameters.sync_tau_pair)
        self.add_on_set_parameters_callback(self._validate)
        self.add_post_set_parameters_callback(self._accepted)
        self._lock = threading.RLock()
        self._cycle_lock = threading.RLock()  # held by a running cycle
        self._inputs_group = ReentrantCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self.stats = LoopStats(int(parameters.read(self, "diagnostics_window")))
        self.policy: Any = None
        self.contract: Contract | None = None
        self._pending: dict[str, Any] = {}
        self._active = False
        self.enabled = False
        self._reset_pending = False
        self._epoch = 0
        self._log_times: dict[str, float] = {}
        self._trigger: ObservationTrigger | None = None
        self._trigger_gc: Any = None
        self._last_cycle_t: float | None = None
        self._rate_warned: set[str] = set()  # inputs already warned about (too slow a feed)

    # ------------------------------------------------------------------ parameters

    def _validate(self, params: list[Parameter]):
        with self._lock:
            cfg = None if self.policy is None else self.policy.config
            c_low = None if self.contract is None else np.asarray(self.contract.action.low)
            c_high = None if self.contract is None else np.asarray(self.contract.action.high)
        result = parameters.validate(
            params, None if cfg is None else cfg.model.horizon, c_low, c_high,
            parameters.snapshot(self))
        if result.successful and cfg is not None:
            changes = {p.name: p.value for p in params}
            reason = parameters.dry_run(cfg, changes)
            if reason:
                result.successful, result.reason = False, reason
        return result

    def _accepted(self, params: list[Parameter]) -> None:
        with self._lock:
            self._pending.update({p.name: p.value for p in params})

    def _apply_pending(self) -> None:
        """Accepted changes take effect here, at the start of a cycle (never mid-solve)."""
        with self._lock:
            changes, self._pending = self._pending, {}
        if not changes or self.policy is None:
            return
        solver = {parameters.POLICY_KEYS[k]: v for k, v in changes.items()
                  if k in parameters.POLICY_KEYS}
        if solver:
            self.policy.update_solver(**solver)
        if "control_rate_hz" in changes:
            self._timer.timer_period_ns = int(1e9 / changes["control_rate_hz"])
        if {"action_low", "action_high", "max_action_delta"} & set(changes):
            self.horizon.guard.set_limits(*self._limits(),
                                          parameters.read(self, "max_action_delta"))

    def _limits(self) -> tuple[np.ndarray, np.ndarray]:
        a = self.contract.action
        low, high = parameters.read(self, "action_low"), parameters.read(self, "action_high")
        return (np.asarray(low or a.low, float), np.asarray(high or a.high, float))

    def _max_ages(self) -> dict[str, float]:
        cam, st = parameters.read(self, "camera_max_age"), parameters.read(self, "state_max_age")
        out = {c.name: cam or c.max_age for c in self.contract.cameras}
        out.update({s.topic: st or s.max_age for s in self.contract.state})
        return out

    # ------------------------------------------------------------------ lifecycle hooks

    def on_setup(self) -> None:
        import torch

        from vla_eqm_ros.policy import Policy

        threads = int(parameters.read(self, "torch_threads"))
        if threads > 0:
            torch.set_num_threads(threads)  # process-wide: the node owns its process
        switch_ms = float(parameters.read(self, "gil_switch_interval_ms"))
        if switch_ms > 0:
            sys.setswitchinterval(switch_ms / 1e3)  # process-wide, like the torch threads
        ckpt = parameters.read(self, "checkpoint") or None
        self.get_logger().info(f"loading checkpoint {ckpt or '(shipped default)'}")
        policy = Policy.from_checkpoint(ckpt, device=parameters.read(self, "device"),
                                        seed=int(parameters.read(self, "seed")))
        contract = resolve_contract(policy.config, parameters.read(self, "contract"))
        check_compatible(contract, policy.config)
        with self._lock:
            self.policy, self.contract = policy, contract
        # Unset solver/control parameters take the checkpoint's values; set ones apply to it.
        ckpt_values = parameters.checkpoint_values(policy.config, contract.control_period)
        adopt = [Parameter(n, value=v) for n, v in ckpt_values.items()
                 if n not in self._overridden]
        results = self.set_parameters(adopt)
        for p, r in zip(adopt, results, strict=True):
            if not r.successful:
                raise ValueError(f"checkpoint value {p.name}={p.value} rejected: {r.reason}")
        with self._lock:
            self._pending.update({n: parameters.read(self, n) for n in ckpt_values})
        mode = parameters.read(self, "output_mode") or contract.action.type
        self.output_mode = mode
        low, high = self._limits()
        self.horizon = RecedingHorizon(
            ActionGuard(low, high, contract.action.hold, parameters.read(self, "max_action_delta")),
            int(parameters.read(self, "execute_steps")))
        self.worker = SolveWorker(self._solve)
        self._warm_up()
        self._create_entities()
        self._apply_pending()

    def _warm_up(self) -> None:
        """One decode on a blank observation so the first real cycle is not the slow one."""
        c = self.contract
        obs = Observation(
            images={cam.name: np.zeros((cam.height, cam.width, 3), np.uint8) for cam in c.cameras},
            state=np.zeros(c.state_dim, np.float32), goal=c.goal.default or "warm up")
        t0 = time.perf_counter()
        self.policy.predict_action_chunk(obs, steps_executed=0)
        self.policy.reset()  # also restarts the seeded noise stream the warm-up drew from
        self.get_logger().info(f"warm-up decode took {(time.perf_counter() - t0) * 1e3:.0f} ms")

    def _create_entities(self) -> None:
        c = self.contract
        topic = parameters.read(self, "command_topic") or c.action.topic
        msg_type = JointTrajectory if self.output_mode == "joint_trajectory" else Float64MultiArray
        self.command_pub = self.create_lifecycle_publisher(msg_type, topic, 10)
        self.debug = bool(parameters.read(self, "publish_debug"))
        # Debug outputs without rclpy's default QoS-event handlers: each handler is a waitable
        # the Python executor rebuilds into its wait set on every wake-up (hundreds per second
        # here), GIL time taken from the solver. The command and the inputs keep theirs.
        quiet = {"event_callbacks": PublisherEventCallbacks(use_default_callbacks=False)}
        self.chunk_pub = self.create_lifecycle_publisher(ActionChunk, "~/action_chunk", 10,
                                                         **quiet)
        self.status_pub = self.create_lifecycle_publisher(DecoderStatus, "~/decoder_status", 10,
                                                          **quiet)
        self.marker_pub = self.create_lifecycle_publisher(MarkerArray, "~/plan_markers", 10,
                                                          **quiet)
        self.diag_pub = self.create_lifecycle_publisher(
            DiagnosticArray, parameters.read(self, "diagnostics_topic"), 10, **quiet)
        self._rate_warned = set()
        self.hub = InputHub(self, c, self._inputs_group, self._on_reject, self._on_goal,
                            self._on_input)
        if parameters.read(self, "trigger") == "observation":
            names = self.hub.assembler.input_names
            self._trigger = ObservationTrigger(names[0], names[1:], c.alignment.max_skew)
            self._trigger_gc = self.create_guard_condition(self._on_observation,
                                                           self._timer_group)
        rate = parameters.read(self, "control_rate_hz")
        self._timer = self.create_timer(1.0 / rate, self._on_timer, self._timer_group)
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics, self._inputs_group)
        self._node_services = [
            self.create_service(SetBool, "~/enable", self._srv_enable,
                                callback_group=self._inputs_group),
            self.create_service(Trigger, "~/reset", self._srv_reset,
                                callback_group=self._inputs_group),
        ]

    def on_start(self) -> None:
        with self._lock:
            self.horizon.reset()
            self.horizon.tick, self._last_cycle_t, self._holding = 0, None, ""
            self._quiet_since = None
            if self._trigger is not None:
                self._trigger.reset()
            self._next_plan: Plan | None = None
            self._reset_pending = True
            self.enabled, self._active = True, True

    def on_stop(self) -> None:
        with self._lock:
            self._active = False
        with self._cycle_lock:  # a running cycle finishes first: the hold is the last command
            self._publish_hold("deactivated", force=True)
            self.horizon.reset()

    def emergency_hold(self, reason: str, timeout: float = 1.0) -> None:
        """Hold now, without the executor (it died, or the process is going down).

        Stops commanding first, so that no cycle still running publishes after the hold; waits
        at most ``timeout`` for such a cycle, then publishes the hold regardless: a robot left
        on a stale policy command is worse than two threads publishing one hold.
        """
        with self._lock:
            self._active = False
        locked = self._cycle_lock.acquire(timeout=timeout)
        try:
            self._publish_hold(reason, force=True)
        finally:
            if locked:
                self._cycle_lock.release()

    def on_teardown(self) -> None:
        with self._lock:
            self._active = False
        with self._cycle_lock:
            self._release()

    def destroy_node(self) -> None:
        """Join the solver thread first: a process that exits while that thread is inside torch
        aborts ("terminate called without an active exception"), as async demo runs did."""
        self._close_worker()
        super().destroy_node()

    def _close_worker(self) -> None:
        if getattr(self, "worker", None) is not None:
            self.worker.close()
            self.worker = None

    def _release(self) -> None:
        self._close_worker()
        for t in ("_timer", "_diag_timer"):
            if getattr(self, t, None) is not None:
                self.destroy_timer(getattr(self, t))
                setattr(self, t, None)
        if self._trigger_gc is not None:
            self.destroy_guard_condition(self._trigger_gc)
        self._trigger, self._trigger_gc = None, None
        for srv in getattr(self, "_node_services", []):
            self.destroy_service(srv)
        self._node_services = []
        if getattr(self, "hub", None) is not None:
            self.hub.destroy()
            self.hub = None
        for name in ("command_pub", "chunk_pub", "status_pub", "marker_pub", "diag_pub"):
            if getattr(self, name, None) is not None:
                self.destroy_lifecycle_publisher(getattr(self, name))
                setattr(self, name, None)
        with self._lock:
            self.policy, self.contract = None, None

    # ------------------------------------------------------------------ callbacks

    def _throttled(self, key: str, text: str, period: float = 2.0) -> None:
        now = time.monotonic()
        key = reason_kind(key)
        if now - self._log_times.get(key, -math.inf) >= period:
            self._log_times[key] = now
            self.get_logger().warning(text)

    def _on_reject(self, topic: str, reason: str) -> None:
        self.stats.reject(topic, reason, self._now())
        # throttled per topic and kind of problem, so each distinct reason reaches the log; the
        # reason may quote the message (an encoding, a goal), so its length is bounded
        self._throttled(f"reject:{topic}:{reason[:48]}",
                        f"rejected message on {topic}: {bounded(reason)}")

    def _on_goal(self, goal: str, changed: bool) -> None:
        self.stats.input_state(self.contract.goal.topic, "ok", self._now())
        if changed:
            self.get_logger().info(f"new goal: {bounded(goal)!r}; warm start reset")
            with self._lock:
                self._reset_pending = True

    def _srv_enable(self, req: SetBool.Request, resp: SetBool.Response) -> SetBool.Response:
        with self._cycle_lock:  # after a running cycle: the hold is the last command
            with self._lock:
                self.enabled = bool(req.data)
            if not req.data:
                self._publish_hold("disabled by service", force=True)
        resp.success, resp.message = True, "enabled" if req.data else "disabled: holding"
        return resp

    def _srv_reset(self, req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self._reset_pending = True
            if self._trigger is not None:
                self._trigger.new_episode()
        # The previous episode's frames must not pair with the next one's: a simulator reset
        # keeps its clock, so they can carry the very stamps of the new episode's first frame.
        if getattr(self, "hub", None) is not None:
            self.hub.clear()
        resp.success, resp.message = True, "warm start, action queue and input history reset"
        return resp

    # ------------------------------------------------------------------ diagnostics

    def _check_input_rates(self) -> None:
        """Warn once per input (per configure) when its feed is too slow for its maximum age:
        every cycle between two frames would then hold on stale input."""
        if self.hub is None:
            return
        ages = self._max_ages()
        for name, period in self.hub.input_periods(min_samples=10).items():
            if name in self._rate_warned or period <= ages[name]:
                continue
            self._rate_warned.add(name)
            param = "camera_max_age" if name in self.hub.topic_of and \
                self.hub.topic_of[name] != name else "state_max_age"
            self.get_logger().warning(
                f"input {self.hub.topic_of[name]} arrives every {period * 1e3:.0f} ms "
                f"({1 / period:.1f} Hz) but its maximum age is {ages[name] * 1e3:.0f} ms: cycles "
                f"will hold on stale input between frames; set {param} >= {2 * period:.3f} "
                "(two input periods; see docs/policy_node.md, 'Rates and input ages')")

    def _publish_diagnostics(self) -> None:
        if getattr(self, "diag_pub", None) is None:
            return
        self._check_input_rates()
        state = ("active" if self._active else "inactive") + ("" if self.enabled else ", disabled")
        if getattr(self, "_holding", ""):
            state += f", holding: {self._holding}"
        ok = self._active and self.enabled and not getattr(self, "_holding", "")
        self.diag_pub.publish(self.stats.message(self.get_name(), state,
                                                 self.get_clock().now().to_msg(), ok))

