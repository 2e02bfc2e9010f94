"""The demo run behind ``vla-eqm demo`` / ``make demo``: the policy node closing the loop on the sim
bridge (the command line is ``commands/demo.py``).

Everything goes over real ROS 2 topics on loopback DDS: the Meta-World sim bridge publishes images,
joint states and the language goal; the lifecycle policy node (the one users launch on a robot,
``trigger: observation``, ``use_sim_time``) decodes action chunks by equilibrium solving and
publishes commands; the bridge steps once per command (lockstep), so the run is deterministic and
as fast as the CPU allows. A monitor node reads ``/episode_status`` and the node's
``~/decoder_status`` to print one line per episode (stderr, under a progress bar) and a final JSON
summary (the last stdout line). A recorder node buffers the run; afterwards ``demo.artifacts``
writes it to ``--out`` as a rosbag2, an annotated GIF, a contact sheet and plots.

Episodes use held-out variations (seed 1000; the shipped demos come from seed 0).

Summary keys beyond the decoder cost: ``boundary_jump_p50`` / ``boundary_jump_max`` (distance
between a new chunk's first executed action and what the previous chunk would have executed then,
recomputed from every ``~/action_chunk`` of the run: the node's own window keeps only the last 200),
``holds`` (hold commands the node sent during the episodes: reset hand-overs, stale inputs) and
``dropped_cycles`` (observations the node coalesced or cycles without an action), both read from the
node's ``LoopStats``; ``settings`` are read back from the node after configure, so they are the
values in force (checkpoint values, ``--param`` and ``--execution`` overrides); ``artifacts`` holds
the written paths (absent with ``--no-artifacts``).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_eqm_ros import settings
from vla_eqm_ros.waiting import wait_until

DEFAULT_SEED = 1000  # held out: vla-eqm record uses seed 0 for the training demos
# Reported in settings (read back from the node) besides any --param name.
REPORTED_PARAMS = (*settings.FIELDS, "execution", "control_rate_hz", "seed", "torch_threads")
STATUS_TOPIC = "/policy_node/decoder_status"


@dataclass
class EpisodeResult:
    task: str
    variation: int
    success: bool
    steps: int
    iterations: list[int] = field(default_factory=list)
    decode_ms: list[float] = field(default_factory=list)
    warm: list[bool] = field(default_factory=list)

    def line(self) -> str:
        it = np.median(self.iterations) if self.iterations else float("nan")
        ms = np.median(self.decode_ms) if self.decode_ms else float("nan")
        return (f"{self.task:<28} var {self.variation:>2}  success={int(self.success)}  "
                f"steps={self.steps:>3}  iters_p50={it:5.1f}  decode_ms_p50={ms:6.1f}")


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if values else None


def summarize(results: list[EpisodeResult], settings: dict[str, Any],
              loop: dict[str, Any] | None = None) -> dict[str, Any]:
    """The final JSON: success and decoder cost over all episodes; ``loop`` adds the node-side
    keys (boundary_jump_p50, boundary_jump_max, holds, dropped_cycles)."""
    iters = [i for r in results for i in r.iterations]
    ms = [m for r in results for m in r.decode_ms]
    cold = [i for r in results for i, w in zip(r.iterations, r.warm, strict=True) if not w]
    warm = [i for r in results for i, w in zip(r.iterations, r.warm, strict=True) if w]

    def pct(values: list[float], q: float) -> float | None:
        return round(float(np.percentile(values, q)), 2) if values else None

    loop = loop or {}
    jumps = loop.get("boundary_jumps") or []
    return {
        "success_rate": round(float(np.mean([r.success for r in results])), 3) if results else 0.0,
        "episodes": len(results),
        "iters_p50": pct(iters, 50),
        "iters_p95": pct(iters, 95),
        "decode_ms_p50": pct(ms, 50),
        "decode_ms_p99": pct(ms, 99),
        # median iterations of solves that started cold (first solve of an episode) minus those
        # that started from the previous chunk; a closed-loop indication, not a matched ablation
        # (bench/decoder.py measures that on identical observations).
        "warm_start_iteration_saving": (round(float(np.median(cold) - np.median(warm)), 2)
                                        if cold and warm else None),
        "boundary_jump_p50": _pct(jumps, 50),
        "boundary_jump_max": round(float(max(jumps)), 4) if jumps else None,
        "holds": loop.get("holds"),
        "dropped_cycles": loop.get("dropped_cycles"),
        "per_task": {
            t: round(float(np.mean([r.success for r in results if r.task == t])), 3)
            for t in dict.fromkeys(r.task for r in results)
        },
        "settings": settings,
    }


def demo_env() -> None:
    """Loopback DDS on a domain of this run's own, offscreen rendering, no hub downloads."""
    import os

    from vla_eqm_ros.nodes.runtime import private_domain, require_loopback

    require_loopback()
    private_domain()
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _stderr_line(text: str) -> None:
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)


@dataclass
class DemoSetup:
    """What the checkpoint decides: its contract, tasks, camera size and the recorded topics."""

    checkpoint: Path
    contract: Any
    tasks: list[str]
    bridge: dict[str, Any]  # cameras, image_size, image_transport (bringup.contract_bridge_params)
    command_topic: str
    command_type: str
    camera_topic: str
    camera_type: str


def demo_setup(checkpoint: Path | None, tasks: list[str] | None,
               params: dict[str, Any]) -> DemoSetup:
    from vla_eqm_ros.checkpoint import load_config
    from vla_eqm_ros.contract import Contract
    from vla_eqm_ros.policy import DEFAULT_CHECKPOINT
    from vla_eqm_sim.bringup import contract_bridge_params

    ckpt = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
    cfg = load_config(ckpt)  # raises CheckpointError naming the file when it is missing
    contract = Contract.from_dict(cfg.contract)
    tasks = tasks or list(cfg.provenance.get("dataset_tasks") or [])
    if not tasks:
        raise SystemExit(f"{ckpt}: the checkpoint names no training tasks; pass --tasks")
    try:
        bridge = contract_bridge_params(contract)
    except ValueError as exc:
        raise SystemExit(f"{ckpt}: {exc}") from None
    output_mode = params.get("output_mode") or contract.action.type
    return DemoSetup(
        checkpoint=ckpt, contract=contract, tasks=tasks, bridge=bridge,
        command_topic=params.get("command_topic") or contract.action.topic,
        command_type=("trajectory_msgs/msg/JointTrajectory" if output_mode == "joint_trajectory"
                      else "std_msgs/msg/Float64MultiArray"),
        camera_topic=contract.cameras[0].topic, camera_type=contract.cameras[0].ros_type)


class Monitor:
    """The demo's listener: the newest /episode_status and every ~/decoder_status."""

    def __init__(self, node: Any) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from std_srvs.srv import Trigger

        from vla_eqm_msgs.msg import DecoderStatus, EpisodeStatus

        self.node = node
        self.last: Any = None
        self.lock = threading.Lock()
        self.statuses: list[Any] = []
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(EpisodeStatus, "/episode_status", self._on_status, reliable)
        node.create_subscription(DecoderStatus, STATUS_TOPIC, self._on_decoder, reliable)
        self.reset_client = node.create_client(Trigger, "/policy_node/reset")

    def _on_status(self, msg: Any) -> None:
        self.last = msg

    def _on_decoder(self, msg: Any) -> None:
        with self.lock:
            self.statuses.append(msg)

    def begin(self) -> None:
        with self.lock:
            self.statuses.clear()
        self.last = None

    def heard(self) -> list[Any]:
        with self.lock:
            return list(self.statuses)


def _make_nodes(context: Any, setup: DemoSetup, seed: int, max_steps: int,
                params: dict[str, Any], recorder: Any) -> list[Any]:
    """Recorder, monitor, policy node and bridge (the order ``shut_down`` destroys them)."""
    import rclpy
    from rclpy.parameter import Parameter

    from vla_eqm_ros.nodes.policy_node import PolicyNode
    from vla_eqm_sim.nodes.sim_bridge import SimBridge

    bridge = SimBridge(context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in {
            "task": setup.tasks[0], "seed": seed, **setup.bridge,
            "clock_mode": "lockstep", "max_steps": max_steps,
            "end_on_success": True, "reliable_images": True,
            "publish_task_state": False}.items()])
    overrides = {"checkpoint": str(setup.checkpoint), "trigger": "observation",
                 "use_sim_time": True, **params}
    try:
        node = PolicyNode(context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in overrides.items()])
    except Exception as exc:  # wrong type or out of range: rclpy says which
        bridge.backend.close()
        bridge.destroy_node()
        raise SystemExit(f"policy_node refused the parameters {params}: {exc}") from exc
    recorder_node = rclpy.create_node("demo_recorder", context=context)
    recorder.subscribe(recorder_node)
    # in teardown order: listeners first, the policy node (after its hold), the bridge last
    return [recorder_node, rclpy.create_node("demo_monitor", context=context), node, bridge]


def _start_policy(node: Any, params: dict[str, Any], setup: DemoSetup, seed: int,
                  episodes: int, max_steps: int) -> dict[str, Any]:
    """configure, read back the settings in force, activate."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from vla_eqm_ros.nodes import parameters

    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        raise SystemExit("policy node failed to configure (see its log above)")
    settings_in_force = {
        "checkpoint": str(setup.checkpoint), "tasks": setup.tasks,
        "episodes_per_task": episodes, "seed": seed, "max_steps": max_steps,
        **{n: _plain(parameters.read(node, n))
           for n in dict.fromkeys([*REPORTED_PARAMS, *params]) if n != "seed"},
        "policy_seed": node.get_parameter("seed").value, "param_overrides": params}
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        raise SystemExit("policy node failed to activate (see its log above)")
    return settings_in_force


def _episode(task: str, variation: int, seed: int, max_steps: int, bridge: Any, node: Any,
             monitor: Monitor, recorder: Any, setup: DemoSetup, sync: bool,
             emit: Callable[[str], None]) -> EpisodeResult:
    """One episode: reset the node (warm start, queue, input history), then the sim."""
    from std_srvs.srv import Trigger

    future = monitor.reset_client.call_async(Trigger.Request())
    if not wait_until(future.done, 10.0):
        raise SystemExit("the policy node did not answer ~/reset")
    monitor.begin()
    solves0 = node.stats.solves
    recorder.begin_episode(task, variation)
    ok, why = bridge.reset_episode(task, variation, seed)
    if not ok:
        raise SystemExit(f"sim reset to {task}/{variation} failed: {why}")
    done = wait_until(lambda: monitor.last is not None and monitor.last.done,
                      timeout=max_steps * 2.0)

    def drained() -> bool:
        """The node answered the last observation and every solve reached both listeners:
        only then may the next episode's messages start (see RunRecorder)."""
        n_status = recorder.count(STATUS_TOPIC)
        ok = len(monitor.heard()) == n_status
        if setup.command_type.endswith("Float64MultiArray"):  # one command per observation
            ok = ok and recorder.count(setup.command_topic) >= recorder.count("/episode_status")
        if sync:  # async: a solve still in the worker is published next episode (stamped)
            ok = ok and n_status >= node.stats.solves - solves0
        return ok

    if done and not wait_until(drained, 5.0):
        emit(f"# {task} var {variation}: late messages may count to the next episode")
    last, got = monitor.last, monitor.heard()
    if not done:
        emit(f"# {task} var {variation}: episode did not finish in time")
    return EpisodeResult(task, variation, bool(last and last.success),
                         int(last.step if last else 0), [int(s.iterations) for s in got],
                         [float(s.prefix_ms + s.solve_ms) for s in got],
                         [bool(s.warm_start_used) for s in got])


def run_demo(checkpoint: Path | None, tasks: list[str] | None, episodes: int, max_steps: int,
             seed: int, emit: Callable[[str], None] | None = None, *,
             params: dict[str, Any] | None = None, out: Path | None = None,
             progress: bool = False, gif_every: int = 4) -> dict[str, Any]:
    """Bring up bridge + node + monitor (+ recorder) in one process, run the episodes, return the
    summary; with ``out``, also write the artifacts there (``summary["artifacts"]``)."""
    from tqdm import tqdm

    from vla_eqm_ros.nodes.runtime import InProcess
    from vla_eqm_train.demo import artifacts as art

    demo_env()
    emit = emit or _stderr_line
    params = dict(params or {})
    setup = demo_setup(checkpoint, tasks, params)
    topics = art.demo_topics(setup.camera_topic, setup.command_topic, setup.command_type,
                             camera_type=setup.camera_type)
    if out is None:  # the summary needs the chunks, status and commands; images only for files
        topics = {t: m for t, m in topics.items()
                  if m in (art.ACTION_CHUNK, art.DECODER_STATUS, art.EPISODE_STATUS)
                  or t == setup.command_topic}
    recorder = art.RunRecorder(topics)
    results: list[EpisodeResult] = []
    bar = tqdm(total=len(setup.tasks) * episodes, desc="demo", unit="ep", disable=not progress,
               file=sys.stderr)
    run = InProcess(lambda ctx: _make_nodes(ctx, setup, seed, max_steps, params, recorder),
                    policy_node=lambda nodes: nodes[2])
    try:
        with run:
            _, monitor_node, node, bridge = run.nodes
            monitor = Monitor(monitor_node)
            settings_in_force = _start_policy(node, params, setup, seed, episodes, max_steps)
            wait_until(lambda: monitor.reset_client.service_is_ready(), 30.0)
            if not wait_until(recorder.matched, 10.0):
                emit("# recorder: not every topic matched a publisher in 10 s; the bag may miss "
                     "the first messages")
            sync = settings_in_force["execution"] == "sync"
            for task in setup.tasks:
                for variation in range(episodes):
                    results.append(_episode(task, variation, seed, max_steps, bridge, node,
                                            monitor, recorder, setup, sync, emit))
                    emit(results[-1].line())
                    bar.update(1)
                    ok_count = sum(r.success for r in results)
                    bar.set_postfix(success=f"{ok_count}/{len(results)}",
                                    rate=f"{ok_count / len(results):.2f}")
            recorder.stop()
            loop = {"holds": int(node.stats.holds),
                    "dropped_cycles": int(node.stats.dropped_cycles)}
    finally:
        bar.close()
        recorder.stop()
        if len(run.nodes) == 4:
            run.nodes[3].backend.close()  # the simulator's GL context and environments
    _, _, chunks = art.extract(recorder.messages(), setup.camera_topic)
    loop["boundary_jumps"] = art.boundary_jumps(chunks)
    summary = summarize(results, settings_in_force, loop)
    if out is not None:
        metadata = {"kind": "vla-eqm demo run", "settings": settings_in_force,
                    "episodes": [{"index": e.index, "task": e.task, "variation": e.variation,
                                  "success": r.success, "steps": r.steps}
                                 for e, r in zip(recorder.episodes, results, strict=False)]}
        summary["artifacts"] = art.write_artifacts(out, recorder, setup.camera_topic, metadata,
                                                   seed, gif_every)
    return summary


def _plain(value: Any) -> Any:
    """A parameter value as JSON: rclpy returns array parameters as ``array.array``."""
    return value if value is None or isinstance(value, (str, bool, int, float)) else list(value)


