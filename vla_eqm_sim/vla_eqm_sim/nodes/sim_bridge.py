"""``sim_bridge``: a MuJoCo task on the topics a real robot uses.

Publishes camera images, joint states, the end-effector pose, the language goal and an episode
status; executes commands (one action per tick, or a whole chunk at the control rate); offers a
reset service. Two clock modes:

- ``realtime``: a wall-clock timer steps at ``control_rate_hz``; with no fresh command the robot
  holds. Stamps are wall-clock time.
- ``lockstep``: one step per command, and ``/clock`` carries sim time, so evaluation and recording
  are deterministic under ``use_sim_time`` and run as fast as the CPU allows.

All simulator access goes through ``SimBackend``; this file knows no MuJoCo.
"""

from __future__ import annotations

import collections
import sys
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from lifecycle_msgs.msg import State, TransitionEvent
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from vla_eqm_msgs.msg import ActionChunk, EpisodeStatus
from vla_eqm_msgs.srv import ResetEpisode
from vla_eqm_sim.backend import SimBackend, StepResult, make_backend
from vla_eqm_sim.commands import (
    CommandLimits,
    CommandRejected,
    clamped_dimensions,
    reorder_columns,
    validate_action,
    validate_chunk,
)
from vla_eqm_sim.instructions import wrong_instruction_for
from vla_eqm_sim.nodes import messages
from vla_eqm_sim.nodes.bridge_params import BridgeParams, declare_bridge_params
from vla_eqm_sim.probes import noisy_frames
from vla_eqm_sim.trajectory import TrajectoryPoints, sample_trajectory

SIM_TIME_ORIGIN_NS = messages.SIM_TIME_ORIGIN_NS


class SimBridge(Node):
    """The bridge node. ``backend`` may be injected (tests, benches); otherwise it is built from
    the ``backend`` parameter."""

    def __init__(self, backend: SimBackend | None = None, **node_kwargs) -> None:
        super().__init__("sim_bridge", **node_kwargs)
        self.params: BridgeParams = declare_bridge_params(self)
        p = self.params
        self.backend = backend or make_backend(
            p.backend,
            task=p.task,
            variation=p.variation,
            seed=p.seed,
            max_steps=p.max_steps,
            end_on_success=p.end_on_success,
            control_mode=p.control_mode,
        )
        self.limits = CommandLimits(max_abs=p.max_abs_action)
        self.lockstep = p.clock_mode == "lockstep"
        self._sim_steps_total = 0  # steps across episodes: keeps /clock monotonic over resets
        self._episode_return = 0.0
        self._last_result: StepResult | None = None
        self._pending_action: np.ndarray | None = None  # realtime: newest command, used once
        self._queue: collections.deque[np.ndarray] = collections.deque()  # chunk rows to execute
        self.rejections: collections.Counter[str] = collections.Counter()
        self.last_rejection = ""
        self.clamps: collections.Counter[str] = collections.Counter()  # joint-limit clamps
        self.last_clamp = ""
        self.timings: dict[str, collections.deque[float]] = {
            k: collections.deque(maxlen=2000) for k in ("step_ms", "render_ms", "publish_ms")
        }
        self.tick_times: collections.deque[float] = collections.deque(maxlen=2000)

        reliable = QoSProfile(depth=p.qos_depth, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        image_qos = reliable if p.reliable_images else qos_profile_sensor_data
        for cam in p.cameras:
            if cam not in self.backend.cameras:
                raise ValueError(f"unknown camera {cam!r}; known: {self.backend.cameras}")
        compressed = p.image_transport == "compressed"
        self._image_pubs = {
            cam: self.create_publisher(CompressedImage if compressed else Image,
                                       messages.camera_topic(cam, p.image_transport), image_qos)
            for cam in p.cameras
        }
        self._joint_pub = self.create_publisher(JointState, "joint_states", reliable)
        self._pose_pub = self.create_publisher(PoseStamped, "ee_pose", reliable)
        self._goal_pub = self.create_publisher(String, "language_goal", latched)
        self._status_pub = self.create_publisher(EpisodeStatus, "episode_status", reliable)
        self._state_pub = self.create_publisher(Float64MultiArray, "sim/task_state", reliable)
        self._clock_pub = (
            self.create_publisher(Clock, "/clock", reliable) if self.lockstep else None
        )

        self.create_subscription(Float64MultiArray, "command", self._on_command, reliable)
        self.create_subscription(ActionChunk, "command_chunk", self._on_action_chunk, reliable)
        self.create_subscription(
            JointTrajectory,
            "joint_trajectory_controller/joint_trajectory",
            self._on_trajectory,
            reliable,
        )
        self.create_service(ResetEpisode, "sim/reset", self._on_reset)
        if not self.lockstep:
            self.create_timer(1.0 / p.control_rate_hz, self._on_tick)
            if p.start_with_policy:
                self.create_subscription(TransitionEvent,
                                         transition_event_topic(p.start_with_policy),
                                         self._on_policy_transition, reliable)
        self._publish_goal()
        self._publish_observation()
        self.get_logger().info(
            f"{p.backend}:{self.backend.episode.task} variation {self.backend.episode.variation} "
            f"seed {self.backend.episode.seed}, {p.clock_mode} mode, cameras {p.cameras} "
            f"at {p.image_size}px ({p.image_transport})"
        )

    # --- introspection (recorder, tests, bench) -------------------------------------------------
    def outputs_matched(self) -> bool:
        """True once every observation publisher has a matched subscriber: in lockstep mode a
        message published before that is lost for good."""
        pubs = [*self._image_pubs.values(), self._joint_pub, self._pose_pub, self._status_pub]
        if self.params.publish_task_state:
            pubs.append(self._state_pub)
        return all(pub.get_subscription_count() >= 1 for pub in pubs)

    @property
    def episode_return(self) -> float:
        return self._episode_return

    # --- time ----------------------------------------------------------------------------------
    @property
    def sim_time_ns(self) -> int:
        return messages.sim_time_ns(self._sim_steps_total, self.backend.dt)

    def _stamp(self):
        if self.lockstep:
            return messages.stamp_from_ns(self.sim_time_ns)
        return self.get_clock().now().to_msg()

    # --- command inputs ------------------------------------------------------------------------
    def _reject(self, source: str, reason: str) -> None:
        self.rejections[source] += 1
        self.last_rejection = f"{source}: {reason}"
        self.get_logger().warning(
            f"rejected {source} command ({reason}); not sent to the simulator",
            throttle_duration_sec=1.0,
        )

    def _warn_clamped(self, source: str, rows: np.ndarray) -> None:
        """Joint targets beyond the joint limits are clamped (by validation); say so."""
        spec = self.backend.action_spec
        if spec.control_mode != "joint":
            return  # Cartesian actions saturate at +-1 by design: clipping is not news
        clamped = clamped_dimensions(rows, spec)
        if not clamped:
            return
        self.clamps[source] += 1
        detail = ", ".join(
            f"{name}={value:.4g} to [{spec.low[spec.names.index(name)]:.4g}, "
            f"{spec.high[spec.names.index(name)]:.4g}]"
            for name, value in clamped.items()
        )
        self.last_clamp = f"{source}: {detail}"
        self.get_logger().warning(
            f"clamped {source} targets to the joint limits: {detail}", throttle_duration_sec=1.0
        )

    def _on_command(self, msg: Float64MultiArray) -> None:
        try:
            action = validate_action(msg.data, self.backend.action_spec, self.limits)
        except CommandRejected as err:
            self._reject("command", str(err))
            return
        self._warn_clamped("command", np.asarray(msg.data, dtype=np.float64))
        self._accept([action], "command")

    @staticmethod
    def _spec_order(values, rows: int, dim: int, order: list[int] | None) -> np.ndarray:
        """Flat message values -> flat values in action-spec column order, so that validation
        clips each column to its own bounds (joint limits differ per joint)."""
        flat = np.asarray(values, dtype=np.float64).reshape(-1)
        if order is None or rows < 1 or flat.size != rows * dim:
            return flat  # validation reports the wrong length
        return flat.reshape(rows, dim)[:, order].reshape(-1)

    def _on_action_chunk(self, msg: ActionChunk) -> None:
        try:
            spec = self.backend.action_spec
            if msg.action_dim != spec.dim:
                raise CommandRejected(f"action_dim {msg.action_dim} != {spec.dim}")
            order = reorder_columns(msg.action_names, spec)
            values = self._spec_order(msg.data, int(msg.horizon), spec.dim, order)
            rows = validate_chunk(values, int(msg.horizon), spec, self.limits)
            if msg.first_step >= msg.horizon:
                raise CommandRejected(f"first_step {msg.first_step} >= horizon {msg.horizon}")
        except (CommandRejected, ValueError) as err:
            self._reject("chunk", str(err))
            return
        self._warn_clamped("chunk", values)
        self._accept(list(rows[msg.first_step :]), "chunk")

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        spec = self.backend.action_spec
        try:
            order = reorder_columns(msg.joint_names, spec)
            values = self._spec_order(
                [v for pt in msg.points for v in pt.positions], len(msg.points), spec.dim, order
            )
            rows = validate_chunk(values, len(msg.points), spec, self.limits)
            if spec.control_mode == "joint":  # timed waypoints: interpolate at the tick rate
                rows = self._sample_trajectory(msg, rows, order)
        except (CommandRejected, ValueError) as err:
            self._reject("trajectory", str(err))
            return
        self._warn_clamped("trajectory", values)
        self._accept(list(rows), "trajectory")

    def _sample_trajectory(
        self, msg: JointTrajectory, positions: np.ndarray, order: list[int] | None
    ) -> np.ndarray:
        """Joint mode: the (clamped) waypoints at their ``time_from_start``, sampled once per
        tick from the target in force now, as a joint_trajectory_controller executes them."""
        times = np.array([messages.duration_seconds(pt.time_from_start) for pt in msg.points])
        counts = {len(pt.velocities) for pt in msg.points}
        velocities = None
        if counts != {0}:
            if counts != {self.backend.action_spec.dim}:
                raise CommandRejected("velocities must be given for every point or for none")
            velocities = np.array([list(pt.velocities) for pt in msg.points], dtype=np.float64)
            if not np.all(np.isfinite(velocities)):
                raise CommandRejected("non-finite velocity in the trajectory")
            if order is not None:
                velocities = velocities[:, order]
        points = TrajectoryPoints(times, positions, velocities)  # ValueError: bad times
        # Lockstep: ROS time is sim time (/clock), one tick = dt; realtime: one timer period.
        period = self.backend.dt if self.lockstep else 1.0 / self.params.control_rate_hz
        if times[-1] / period > self.limits.max_chunk_rows:
            raise CommandRejected(
                f"trajectory too long: {times[-1]:.3g} s is more than "
                f"{self.limits.max_chunk_rows} ticks of {period:.4g} s"
            )
        return sample_trajectory(points, self.backend.hold_action(), period)

    def _accept(self, actions: list[np.ndarray], source: str) -> None:
        if self.backend.done:
            self._reject(source, "episode is done; call the reset service first")
            return
        if self.lockstep:  # one step per action, now; a chunk runs back to back in sim time
            for action in actions:
                if self.backend.done:
                    break
                self._step_and_publish(action)
            return
        if len(actions) == 1 and source == "command":
            self._pending_action = actions[0]
            self._queue.clear()  # a direct command overrides a chunk in flight
        else:
            self._queue = collections.deque(actions)  # receding horizon: newest chunk wins
            self._pending_action = None

    # --- stepping ------------------------------------------------------------------------------
    def _on_tick(self) -> None:
        self.tick_times.append(time.perf_counter())
        if self.backend.done:
            return
        if self._queue:
            action = self._queue.popleft()
        elif self._pending_action is not None:
            action, self._pending_action = self._pending_action, None
        else:
            action = self.backend.hold_action()
        self._step_and_publish(action)

    def _step_and_publish(self, action: np.ndarray) -> None:
        t0 = time.perf_counter()
        result = self.backend.step(action)
        self.timings["step_ms"].append((time.perf_counter() - t0) * 1e3)
        self._sim_steps_total += 1
        self._episode_return += result.reward
        self._last_result = result
        self._publish_observation()
        if result.done:
            self._queue.clear()
            self.get_logger().info(
                f"episode done after {self.backend.step_count} steps, success={result.success}"
            )

    # --- outputs -------------------------------------------------------------------------------
    @property
    def instruction(self) -> str:
        """The goal this bridge publishes: the task's own, or another's (``wrong_goal`` probe)."""
        if self.params.wrong_goal:
            try:
                return wrong_instruction_for(self.backend.episode.task)
            except KeyError as err:  # a backend without Meta-World's tasks: say so, keep its own
                self.get_logger().warning(f"wrong_goal ignored: {err}", once=True)
        return self.backend.instruction

    def _publish_goal(self) -> None:
        self._goal_pub.publish(String(data=self.instruction))

    def _publish_observation(self) -> None:
        """Everything a robot would publish for the current step; the privileged task state goes
        last because it triggers the scripted expert."""
        p = self.params
        stamp = self._stamp()
        if self._clock_pub is not None:
            self._clock_pub.publish(Clock(clock=stamp))
        t0 = time.perf_counter()
        frames = self.backend.render(p.cameras, (p.image_size, p.image_size))
        t1 = time.perf_counter()
        b = self.backend
        frames = noisy_frames(frames, p.image_noise_std, b.episode.variation, b.episode.seed,
                              b.step_count)
        msgs = messages.observation_msgs(self.backend, frames, p.image_transport, p.jpeg_quality,
                                         stamp)
        for cam, pub in self._image_pubs.items():
            pub.publish(msgs[messages.camera_topic(cam, p.image_transport)])
        self._joint_pub.publish(msgs["joint_states"])
        self._pose_pub.publish(msgs["ee_pose"])
        self._status_pub.publish(
            messages.episode_status_msg(
                b.episode, self.instruction, b.step_count, self._last_result, self._episode_return,
                stamp,
            )
        )
        if p.publish_task_state and not b.done:
            self._state_pub.publish(messages.task_state_msg(b.episode.task, b.task_state()))
        self.timings["render_ms"].append((t1 - t0) * 1e3)
        self.timings["publish_ms"].append((time.perf_counter() - t1) * 1e3)

    # --- reset ---------------------------------------------------------------------------------
    def reset_episode(self, task: str | None, variation: int, seed: int) -> tuple[bool, str]:
        """Reset the simulator and publish the new goal and first observation.

        Returns (success, instruction or reason). Never raises: a bad request must not kill the
        node.
        """
        try:
            self.backend.reset(task or None, int(variation), int(seed))
        except Exception as err:
            message = f"reset failed: {err}"
            self.get_logger().error(message)
            return False, message
        self._queue.clear()
        self._pending_action = None
        self._episode_return = 0.0
        self._last_result = None
        self._publish_goal()
        self._publish_observation()
        episode = self.backend.episode
        self.get_logger().info(
            f"reset to {episode.task} variation {episode.variation} seed {episode.seed}"
        )
        return True, self.instruction

    def _on_policy_transition(self, msg: TransitionEvent) -> None:
        """Start the episode over when the policy becomes active (``start_with_policy``).

        Listening to the policy's own lifecycle topic serves ``ros2 launch`` (separate
        processes) and bringup alike; a subscription callback runs in this node's callback
        group, so the reset is never concurrent with a tick.
        """
        if msg.goal_state.id != State.PRIMARY_STATE_ACTIVE:
            return
        episode = self.backend.episode
        self.get_logger().info(f"{self.params.start_with_policy} is active: episode starts over")
        self.reset_episode(episode.task, episode.variation, episode.seed)

    def _on_reset(self, request, response):
        response.success, response.message = self.reset_episode(
            request.task, request.variation, request.seed
        )
        return response


def transition_event_topic(node_name: str) -> str:
    """The lifecycle node's transition-event topic: ``policy_node`` -> /policy_node/transition_event
    (a fully qualified name such as /robot1/policy_node keeps its namespace)."""
    return "/" + node_name.strip("/") + "/transition_event"


def main(args: list[str] | None = None) -> int:
    """Entry point: ``ros2 run vla_eqm_sim sim_bridge --ros-args -p task:=drawer-open-v3``."""
    from vla_eqm_ros.nodes.runtime import run_single_node

    return run_single_node(SimBridge, args, release=lambda n: n.backend.close())


if __name__ == "__main__":
    sys.exit(main())
