"""Record scripted-expert episodes through the real topics: bridge + expert + recorder nodes.

The three nodes run in one process and one executor over DDS (loopback), exactly as they would as
separate processes. The bridge runs in lockstep: the expert answers each observation with one
command and the bridge steps once per command, so a recording is deterministic and faster than real
time. Each episode is reset through the bridge's reset service, like any other client would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from vla_eqm_msgs.srv import ResetEpisode
from vla_eqm_ros.waiting import spin_until
from vla_eqm_sim.bag_writer import write_episode_bag
from vla_eqm_sim.nodes.bag_recorder_node import RecorderNode
from vla_eqm_sim.nodes.expert_node import ExpertNode
from vla_eqm_sim.nodes.sim_bridge import SimBridge


@dataclass(frozen=True)
class EpisodePlan:
    task: str
    variation: int
    seed: int

    @property
    def bag_name(self) -> str:
        return f"{self.task}__var{self.variation:02d}__seed{self.seed}"


@dataclass
class EpisodeOutcome:
    plan: EpisodePlan
    bag: Path
    success: bool
    steps: int
    complete: bool
    seconds: float


class RecordingError(RuntimeError):
    """The pipeline stalled (no progress): a node died or messages were lost."""


class RecordingSession:
    """Owns an rclpy context with the three nodes; use as a context manager."""

    def __init__(
        self,
        first_task: str,
        cameras: list[str],
        image_size: int = 96,
        max_steps: int = 500,
        control_mode: str = "cartesian",
        stall_timeout_s: float = 20.0,
        image_transport: str = "raw",
        jpeg_quality: int = 90,
        log_level: str = "info",
    ) -> None:
        """``log_level``: the nodes' rclpy log level (workers pass ``warn``: one line per reset
        from N processes would bury the progress bar)."""
        self.cameras = list(cameras)
        self.image_size = image_size
        self.max_steps = max_steps
        self.control_mode = control_mode
        self.image_transport = image_transport
        self.jpeg_quality = jpeg_quality
        self.stall_timeout_s = stall_timeout_s
        self.context = Context()
        rclpy.init(args=["--ros-args", "--log-level", log_level], context=self.context)
        try:
            self.bridge = SimBridge(
                context=self.context,
                parameter_overrides=[
                    Parameter("task", value=first_task),
                    Parameter("cameras", value=self.cameras),
                    Parameter("image_size", value=image_size),
                    Parameter("clock_mode", value="lockstep"),
                    Parameter("max_steps", value=max_steps),
                    Parameter("control_mode", value=control_mode),
                    Parameter("reliable_images", value=True),
                    Parameter("image_transport", value=image_transport),
                    Parameter("jpeg_quality", value=jpeg_quality),
                ],
            )
            self.expert = ExpertNode(
                context=self.context,
                parameter_overrides=[Parameter("control_mode", value=control_mode)],
            )
            self.recorder = RecorderNode(self.cameras, image_transport, context=self.context)
            self._reset_client = self.recorder.create_client(ResetEpisode, "/sim/reset")
            self.executor = SingleThreadedExecutor(context=self.context)
            for node in (self.bridge, self.expert, self.recorder):
                self.executor.add_node(node)
            self._wait_for_graph()
        except BaseException:
            self.close()
            raise

    def _spin_until(self, predicate, timeout_s: float, what: str) -> None:
        if not spin_until(self.executor, predicate, timeout_s, poll=0.05):
            raise RecordingError(f"timed out after {timeout_s:.0f} s waiting for {what}")

    def _wait_for_graph(self) -> None:
        """Lockstep loses nothing only once every publisher sees its subscribers."""

        def matched() -> bool:
            return (
                self.bridge.outputs_matched()
                and self.expert.command_subscribers() >= 2  # bridge + recorder
                and self._reset_client.service_is_ready()
            )

        self._spin_until(matched, 30.0, "the bridge, expert and recorder to discover each other")

    def record(self, plan: EpisodePlan, bag_path: Path) -> EpisodeOutcome:
        """Run one expert episode and write it to ``bag_path`` (a new directory)."""
        t_start = time.monotonic()
        self.recorder.start_episode()
        request = ResetEpisode.Request(task=plan.task, variation=plan.variation, seed=plan.seed)
        future = self._reset_client.call_async(request)
        self._spin_until(future.done, 60.0, f"reset to {plan}")
        response = future.result()
        if not response.success:
            raise RecordingError(response.message)
        # Stall detection: the step count must keep moving.
        last_step, last_progress = -1, time.monotonic()
        while not self.recorder.is_complete():
            self.executor.spin_once(timeout_sec=0.05)
            step = self.bridge.backend.step_count
            if step != last_step:
                last_step, last_progress = step, time.monotonic()
            elif self.bridge.backend.done and time.monotonic() - last_progress > 5.0:
                break  # the episode ended but a message never arrived: label it incomplete
            elif time.monotonic() - last_progress > self.stall_timeout_s:
                raise RecordingError(f"no progress for {self.stall_timeout_s:.0f} s at {plan}")
        complete = self.recorder.is_complete()
        messages = self.recorder.take_episode()
        backend = self.bridge.backend
        metadata = {
            "task": plan.task,
            "variation": plan.variation,
            "seed": plan.seed,
            "instruction": backend.instruction,
            "success": bool(backend.success),
            "label": "success" if backend.success else "failure",
            "steps": int(backend.step_count),
            "episode_return": float(self.bridge.episode_return),
            "max_steps": int(backend.max_steps),
            "control_mode": backend.action_spec.control_mode,
            "action_names": list(backend.action_spec.names),
            "control_period_s": float(backend.dt),
            "cameras": self.cameras,
            "image_size": self.image_size,
            "image_transport": self.image_transport,
            **({"jpeg_quality": self.jpeg_quality} if self.image_transport == "compressed"
               else {}),
            "backend": self.bridge.params.backend,
            "expert": "metaworld.policies scripted expert"
            + (" through damped-least-squares IK" if self.control_mode == "joint" else ""),
            "clock_mode": "lockstep",
            "complete": complete,
            "topics": sorted({m.topic for m in messages}),
        }
        write_episode_bag(bag_path, messages, metadata)
        return EpisodeOutcome(
            plan, bag_path, bool(backend.success), int(backend.step_count), complete,
            time.monotonic() - t_start,
        )

    def close(self) -> None:
        for name in ("bridge", "expert", "recorder"):
            node = getattr(self, name, None)
            if node is not None:
                if name == "bridge":
                    node.backend.close()
                node.destroy_node()
        if getattr(self, "executor", None) is not None:
            self.executor.shutdown()
        if self.context.ok():
            rclpy.shutdown(context=self.context)

    def __enter__(self) -> RecordingSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
