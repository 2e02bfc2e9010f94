"""``policy_node``: the EqM VLA policy as a ROS 2 lifecycle node (issue #7).

configure: load the checkpoint (parameter ``checkpoint``; empty = the shipped default), resolve the
contract, apply the solver parameters, warm the model up, create publishers, subscriptions,
services, the control timer and (``trigger: observation``) the observation trigger. activate:
start commanding. deactivate: send the hold command, then stop. cleanup / shutdown: release the
model. Nothing moves before activation.

This file is the shell: lifecycle, parameters (validated, applied at the start of the next cycle),
services (``~/enable``, ``~/reset``) and ``/diagnostics``. The per-cycle behaviour (assemble, solve,
execute, hold) is a ``control_loop.ControlLoop`` built at configure and dropped at cleanup; it
reaches ROS through ``ports.NodePorts``. The trigger rule is in ``trigger.py``.

Plans of joint-space actions are drawn in rviz without forward kinematics: anchored at the measured
end-effector pose (``ee_pose_topic``), one curve per joint over the chunk's time (``markers.py``).
Cartesian plans are drawn as end-effector paths.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.parameter import Parameter
from std_srvs.srv import SetBool, Trigger

from vla_eqm_ros.compat import check_compatible, resolve_contract
from vla_eqm_ros.contract import Contract
from vla_eqm_ros.execution import RecedingHorizon
from vla_eqm_ros.guard import ActionGuard
from vla_eqm_ros.nodes import parameters
from vla_eqm_ros.nodes.control_loop import ControlLoop
from vla_eqm_ros.nodes.diagnostics import LoopStats, bounded
from vla_eqm_ros.nodes.lifecycle_base import ManagedNode
from vla_eqm_ros.nodes.ports import NodePorts, node_now
from vla_eqm_ros.nodes.sync import InputHub
from vla_eqm_ros.nodes.trigger import ObservationTrigger
from vla_eqm_ros.observation import Observation


def trigger_max_wait(max_skew: float, control_rate_hz: float) -> float:
    """How long (s of receipt time) a frame waits for its partners before it runs without them.

    A quarter of a control period, and never less than the contract's stamp skew. The skew
    alone (1 ms for the Meta-World contract) was too short for a real feed: the messages of one
    frame reach the node over a few milliseconds, more when each camera is a JPEG to decode
    (1.5 ms at 640x480), so the cycle ran before the frame's joint state had arrived and acted on
    the previous frame, 50 ms old (bench/node_latency.py --compressed). A partner that never
    catches up costs at most this wait.
    """
    return max(float(max_skew), 0.25 / float(control_rate_hz))


class PolicyNode(ManagedNode):
    """Lifecycle shell around ``vla_eqm_ros.policy.Policy``; see the module docstring."""

    def __init__(self, node_name: str = "policy_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._overridden = parameters.declare_all(self)
        self.add_pre_set_parameters_callback(parameters.sync_tau_pair)
        self.add_on_set_parameters_callback(self._validate)
        self.add_post_set_parameters_callback(self._accepted)
        self._lock = threading.RLock()
        self._inputs_group = ReentrantCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self.stats = LoopStats(int(parameters.read(self, "diagnostics_window")))
        self.policy: Any = None
        self.contract: Contract | None = None
        self.loop: ControlLoop | None = None
        self.hub: InputHub | None = None
        self.ports: NodePorts | None = None
        self._pending: dict[str, Any] = {}
        self._entities: list[tuple[str, Any]] = []  # (kind, handle) created at configure
        self._rate_warned: set[str] = set()  # inputs already warned about (too slow a feed)

    @property
    def command_pub(self) -> Any:
        return None if self.ports is None else self.ports.command_pub

    # ------------------------------------------------------------------ parameters

    def _validate(self, params: list[Parameter]) -> SetParametersResult:
        with self._lock:
            cfg = None if self.policy is None else self.policy.config
            c_low = None if self.contract is None else np.asarray(self.contract.action.low)
            c_high = None if self.contract is None else np.asarray(self.contract.action.high)
        result = parameters.validate(
            params, None if cfg is None else cfg.model.horizon, c_low, c_high,
            parameters.snapshot(self))
        if result.successful and cfg is not None:
            reason = parameters.dry_run(cfg, {p.name: p.value for p in params})
            if reason:
                result.successful, result.reason = False, reason
        return result

    def _accepted(self, params: list[Parameter]) -> None:
        with self._lock:
            self._pending.update({p.name: p.value for p in params})

    def apply_pending(self) -> None:
        """Accepted changes take effect here, at the start of a cycle (never mid-solve)."""
        with self._lock:
            changes, self._pending = self._pending, {}
        if not changes or self.policy is None or self.loop is None:
            return
        solver = {parameters.POLICY_KEYS[k]: v for k, v in changes.items()
                  if k in parameters.POLICY_KEYS}
        if solver:
            self.policy.update_solver(**solver)
        if "control_rate_hz" in changes:
            self._timer.timer_period_ns = int(1e9 / changes["control_rate_hz"])
        if {"action_low", "action_high", "max_action_delta"} & set(changes):
            self.loop.horizon.guard.set_limits(*self._limits(),
                                               parameters.read(self, "max_action_delta"))

    def _limits(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.contract is not None
        a = self.contract.action
        low, high = parameters.read(self, "action_low"), parameters.read(self, "action_high")
        return (np.asarray(low or a.low, float), np.asarray(high or a.high, float))

    def max_ages(self) -> dict[str, float]:
        """Per input (camera name or state topic): the parameter, else the contract's."""
        assert self.contract is not None
        cam, st = parameters.read(self, "camera_max_age"), parameters.read(self, "state_max_age")
        out = {c.name: cam or c.max_age for c in self.contract.cameras}
        out.update({s.topic: st or s.max_age for s in self.contract.state})
        return out

    # ------------------------------------------------------------------ lifecycle hooks

    def on_setup(self) -> None:
        policy, contract = self._load()
        with self._lock:
            self.policy, self.contract = policy, contract
        self._adopt_checkpoint_values(policy, contract)
        output_mode = parameters.read(self, "output_mode") or contract.action.type
        low, high = self._limits()
        horizon = RecedingHorizon(
            ActionGuard(low, high, contract.action.hold, parameters.read(self, "max_action_delta")),
            int(parameters.read(self, "execute_steps")))
        self._warm_up(policy, contract)
        self.ports = NodePorts(self, contract, output_mode,
                               parameters.read(self, "command_topic") or contract.action.topic,
                               parameters.read(self, "diagnostics_topic"))
        self._rate_warned = set()
        self.hub = InputHub(self, contract, self._inputs_group, self._on_reject, self._on_goal,
                            self._on_input)
        self.ports.ee_position = lambda: None if self.hub is None else self.hub.ee_position
        trigger = None
        if parameters.read(self, "trigger") == "observation":
            names = self.hub.assembler.input_names
            trigger = ObservationTrigger(names[0], names[1:], trigger_max_wait(
                contract.alignment.max_skew, parameters.read(self, "control_rate_hz")))
        self.loop = ControlLoop(policy, contract, self.hub, horizon, self.stats, self.ports,
                                output_mode=output_mode, trigger=trigger,
                                debug=bool(parameters.read(self, "publish_debug")))
        self._create_entities(trigger is not None)
        self.apply_pending()

    def _load(self) -> tuple[Any, Contract]:
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
        return policy, contract

    def _adopt_checkpoint_values(self, policy: Any, contract: Contract) -> None:
        """Unset solver/control parameters take the checkpoint's values; set ones apply to it."""
        ckpt_values = parameters.checkpoint_values(policy.config, contract.control_period)
        adopt = [Parameter(n, value=v) for n, v in ckpt_values.items()
                 if n not in self._overridden]
        results = self.set_parameters(adopt)
        for p, r in zip(adopt, results, strict=True):
            if not r.successful:
                raise ValueError(f"checkpoint value {p.name}={p.value} rejected: {r.reason}")
        with self._lock:
            self._pending.update({n: parameters.read(self, n) for n in ckpt_values})

    def _warm_up(self, policy: Any, contract: Contract) -> None:
        """One decode on a blank observation so the first real cycle is not the slow one."""
        obs = Observation(
            images={c.name: np.zeros((c.height, c.width, 3), np.uint8) for c in contract.cameras},
            state=np.zeros(contract.state_dim, np.float32),
            goal=contract.goal.default or "warm up")
        t0 = time.perf_counter()
        policy.predict_action_chunk(obs, steps_executed=0)
        policy.reset()  # also restarts the seeded noise stream the warm-up drew from
        self.get_logger().info(f"warm-up decode took {(time.perf_counter() - t0) * 1e3:.0f} ms")

    def _create_entities(self, observation_trigger: bool) -> None:
        assert self.loop is not None and self.ports is not None
        loop = self.loop
        if observation_trigger:
            gc = self.create_guard_condition(loop.on_observation, self._timer_group)
            self.ports.wake = gc.trigger
            self._entities.append(("guard", gc))
        rate = parameters.read(self, "control_rate_hz")
        self._timer = self.create_timer(1.0 / rate, loop.on_timer, self._timer_group)
        self._entities += [
            ("timer", self._timer),
            ("timer", self.create_timer(1.0, self._publish_diagnostics, self._inputs_group)),
            ("service", self.create_service(SetBool, "~/enable", self._srv_enable,
                                            callback_group=self._inputs_group)),
            ("service", self.create_service(Trigger, "~/reset", self._srv_reset,
                                            callback_group=self._inputs_group)),
        ]

    def on_start(self) -> None:
        assert self.loop is not None
        self.loop.start()

    def on_stop(self) -> None:
        if self.loop is not None:  # a running cycle finishes first: the hold is the last command
            self.loop.stop("deactivated")
        if self.ports is not None and not self.ports.flush():
            self.get_logger().warning("the deactivation hold was not acknowledged within 0.5 s")

    def emergency_hold(self, reason: str, timeout: float = 1.0) -> None:
        """Hold now, without the executor (it died, or the process is going down)."""
        if self.loop is not None:
            self.loop.emergency_hold(reason, timeout)

    def on_teardown(self) -> None:
        self._release()

    def destroy_node(self) -> None:
        """Join the solver thread first: a process that exits while that thread is inside torch
        aborts ("terminate called without an active exception"), as async demo runs did."""
        if self.loop is not None:
            self.loop.close()
        super().destroy_node()

    def _release(self) -> None:
        if self.loop is not None:
            self.loop.close()
        destroy: dict[str, Callable[[Any], Any]] = {
            "timer": self.destroy_timer, "guard": self.destroy_guard_condition,
            "service": self.destroy_service}
        for kind, handle in self._entities:
            destroy[kind](handle)
        self._entities = []
        if self.hub is not None:
            self.hub.destroy()
        if self.ports is not None:
            self.ports.release()
        with self._lock:
            self.policy, self.contract, self.loop, self.hub = None, None, None, None

    # ------------------------------------------------------------------ callbacks

    def _now(self) -> float:
        return node_now(self)

    def _on_input(self, name: str, stamp: float, received: float) -> None:
        loop = self.loop
        if loop is not None:
            loop.on_input(name, stamp, received)

    def _on_reject(self, topic: str, reason: str) -> None:
        self.stats.reject(topic, reason, self._now())
        # throttled per topic and kind of problem, so each distinct reason reaches the log; the
        # reason may quote the message (an encoding, a goal), so its length is bounded
        if self.ports is not None:
            self.ports.warn(f"reject:{topic}:{reason[:48]}",
                            f"rejected message on {topic}: {bounded(reason)}")

    def _on_goal(self, goal: str, changed: bool) -> None:
        if self.contract is not None:
            self.stats.input_state(self.contract.goal.topic, "ok", self._now())
        if changed:
            self.get_logger().info(f"new goal: {bounded(goal)!r}; warm start reset")
            if self.loop is not None:
                self.loop.request_reset(new_episode=False)

    def _srv_enable(self, req: SetBool.Request, resp: SetBool.Response) -> SetBool.Response:
        if self.loop is not None:
            self.loop.set_enabled(bool(req.data))
        resp.success, resp.message = True, "enabled" if req.data else "disabled: holding"
        return resp

    def _srv_reset(self, req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        if self.loop is not None:
            self.loop.request_reset()
        # The previous episode's frames must not pair with the next one's: a simulator reset
        # keeps its clock, so they can carry the very stamps of the new episode's first frame.
        if self.hub is not None:
            self.hub.clear()
        resp.success, resp.message = True, "warm start, action queue and input history reset"
        return resp

    # ------------------------------------------------------------------ diagnostics

    def _check_input_rates(self) -> None:
        """Warn once per input (per configure) when its feed is too slow for its maximum age:
        every cycle between two frames would then hold on stale input."""
        hub = self.hub
        if hub is None:
            return
        ages = self.max_ages()
        for name, period in hub.input_periods(min_samples=10).items():
            if name in self._rate_warned or period <= ages[name]:
                continue
            self._rate_warned.add(name)
            param = "camera_max_age" if hub.topic_of[name] != name else "state_max_age"
            self.get_logger().warning(
                f"input {hub.topic_of[name]} arrives every {period * 1e3:.0f} ms "
                f"({1 / period:.1f} Hz) but its maximum age is {ages[name] * 1e3:.0f} ms: cycles "
                f"will hold on stale input between frames; set {param} >= {2 * period:.3f} "
                "(two input periods; see docs/policy_node.md, 'Rates and input ages')")

    def _publish_diagnostics(self) -> None:
        loop, ports = self.loop, self.ports
        if loop is None or ports is None:
            return
        self._check_input_rates()
        state, ok = loop.state_text()
        ports.publish_diagnostics(self.stats.message(self.get_name(), state,
                                                     self.get_clock().now().to_msg(), ok))
