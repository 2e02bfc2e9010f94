"""``vla-eqm demo`` (behind ``make demo``): the EqM policy node closing the loop on the sim bridge.

Everything goes over real ROS 2 topics on loopback DDS: the Meta-World sim bridge publishes images,
joint states and the language goal; the lifecycle policy node (the one users launch on a robot,
``trigger: observation``, ``use_sim_time``) decodes action chunks by equilibrium solving and
publishes commands; the bridge steps once per command (lockstep), so the run is deterministic and
as fast as the CPU allows. A monitor node reads ``/episode_status`` and the node's
``~/decoder_status`` to print one line per episode (stderr, under a progress bar) and a final JSON
summary (the last stdout line). A recorder node buffers the run; afterwards ``demo_artifacts``
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

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_eqm_ros import settings
from vla_eqm_ros.waiting import wait_until

DEFAULT_SEED = 1000  # held out: vla-eqm record uses seed 0 for the training demos
# Parameters the demo owns: the lockstep loop needs trigger=observation, and the checkpoint has
# its own flag (its config also decides the tasks and the camera size).
RESERVED_PARAMS = ("checkpoint", "trigger")
# Reported in settings (read back from the node) besides any --param name.
REPORTED_PARAMS = (*settings.FIELDS, "execution", "control_rate_hz", "seed", "torch_threads")


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint directory (default: the shipped default_eqm)")
    parser.add_argument("--tasks", nargs="+", default=None,
                        help="Meta-World tasks (default: the checkpoint's training tasks)")
    parser.add_argument("--episodes", type=int, default=1, help="episodes per task")
    parser.add_argument("--max-steps", type=int, default=200, help="episode step limit")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="variation-set seed")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    parser.add_argument("--execution", choices=("sync", "async"), default=None,
                        help="policy node execution mode (default: the node's default)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="any policy_node parameter, e.g. tau:=0.05 (repeatable)")
    parser.add_argument("--out", type=Path, default=None,
                        help="artifact directory (default: runs/demo/<YYYYmmdd-HHMMSS>)")
    parser.add_argument("--no-artifacts", action="store_true",
                        help="write no bag, GIF or plots")
    parser.add_argument("--gif-every", type=int, default=4,
                        help="one GIF frame every N sim steps")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_params(items: list[str], execution: str | None = None) -> dict[str, Any]:
    """``NAME:=VALUE`` strings -> policy_node parameter overrides (values parsed like bring-up's
    ``--param``); ``execution`` (``--execution``) wins over a ``--param execution:=``."""
    from vla_eqm_ros.nodes.parameters import BY_NAME, coerce
    from vla_eqm_ros.nodes.runtime import parse_value as _parse_value

    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition(":=")
        if not sep or not name:
            raise SystemExit(f"--param {item!r}: expected NAME:=VALUE")
        if name in RESERVED_PARAMS:
            raise SystemExit(f"--param {name}: set by the demo (use --checkpoint; the lockstep "
                             "loop needs trigger=observation)")
        spec = BY_NAME.get(name)
        if spec is None:
            raise SystemExit(f"--param {name}: not a policy_node parameter; known: "
                             f"{', '.join(sorted(BY_NAME))}")
        out[name] = coerce(name, _parse_value(text))  # tau:=1 means 1.0
    if execution is not None:
        out["execution"] = execution
    return out


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


def _loopback_env() -> None:
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] != "LOCALHOST":
        raise SystemExit("refusing to run the demo off loopback: set "
                         "ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 200))
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def default_out_dir() -> Path:
    return Path("runs") / "demo" / time.strftime("%Y%m%d-%H%M%S")


def _stderr_line(text: str) -> None:
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)


def run_demo(checkpoint: Path | None, tasks: list[str] | None, episodes: int, max_steps: int,
             seed: int, emit: Callable[[str], None] | None = None, *,
             params: dict[str, Any] | None = None, out: Path | None = None,
             progress: bool = False, gif_every: int = 4) -> dict[str, Any]:
    """Bring up bridge + node + monitor (+ recorder) in one process, run the episodes, return the
    summary; with ``out``, also write the artifacts there (``summary["artifacts"]``)."""
    _loopback_env()
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_srvs.srv import Trigger
    from tqdm import tqdm

    from vla_eqm_msgs.msg import DecoderStatus, EpisodeStatus
    from vla_eqm_ros.checkpoint import load_config
    from vla_eqm_ros.contract import Contract
    from vla_eqm_ros.nodes.policy_node import PolicyNode
    from vla_eqm_ros.nodes.runtime import shut_down
    from vla_eqm_ros.policy import DEFAULT_CHECKPOINT
    from vla_eqm_sim.nodes.sim_bridge import SimBridge
    from vla_eqm_train import demo_artifacts as art

    emit = emit or _stderr_line
    params = dict(params or {})
    ckpt = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
    cfg = load_config(ckpt)  # raises CheckpointError naming the file when it is missing
    contract = Contract.from_dict(cfg.contract)
    tasks = tasks or list(cfg.provenance.get("dataset_tasks") or [])
    if not tasks:
        raise SystemExit(f"{ckpt}: the checkpoint names no training tasks; pass --tasks")
    sizes = {(c.height, c.width) for c in contract.cameras}
    if len(sizes) != 1 or len(next(iter(sizes))) != 2 or len(set(next(iter(sizes)))) != 1:
        raise SystemExit(f"{ckpt}: the demo bridge renders square cameras of one size, the "
                         f"contract asks for {sorted(sizes)}")
    size = next(iter(sizes))[0]
    output_mode = params.get("output_mode") or contract.action.type
    command_topic = params.get("command_topic") or contract.action.topic
    command_type = ("trajectory_msgs/msg/JointTrajectory" if output_mode == "joint_trajectory"
                    else "std_msgs/msg/Float64MultiArray")
    camera_topic = f"/camera/{contract.camera_names[0]}/image_raw"
    topics = art.demo_topics(contract.camera_names[0], command_topic, command_type)
    if out is None:  # the summary needs the chunks, status and commands; images only for files
        topics = {t: m for t, m in topics.items()
                  if m in (art.ACTION_CHUNK, art.DECODER_STATUS, art.EPISODE_STATUS)
                  or t == command_topic}
    recorder = art.RunRecorder(topics)

    context = Context()
    rclpy.init(context=context)
    nodes: list[Any] = []
    bridge = node = None
    executor = None
    results: list[EpisodeResult] = []
    loop: dict[str, Any] = {}
    bar = tqdm(total=len(tasks) * episodes, desc="demo", unit="ep", disable=not progress,
               file=sys.stderr)
    try:
        bridge = SimBridge(context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in {
                "task": tasks[0], "seed": seed, "cameras": contract.camera_names,
                "image_size": size, "clock_mode": "lockstep", "max_steps": max_steps,
                "end_on_success": True, "reliable_images": True,
                "publish_task_state": False}.items()])
        nodes.append(bridge)
        overrides = {"checkpoint": str(ckpt), "trigger": "observation", "use_sim_time": True,
                     **params}
        try:
            node = PolicyNode(context=context, parameter_overrides=[
                Parameter(k, value=v) for k, v in overrides.items()])
        except Exception as exc:  # wrong type or out of range: rclpy says which
            raise SystemExit(f"policy_node refused the parameters {params}: {exc}") from exc
        nodes.append(node)
        monitor = rclpy.create_node("demo_monitor", context=context)
        recorder_node = rclpy.create_node("demo_recorder", context=context)
        nodes += [monitor, recorder_node]
        recorder.subscribe(recorder_node)
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        status: dict[str, Any] = {"last": None}
        statuses: list[Any] = []
        lock = threading.Lock()

        def on_status(msg: Any) -> None:
            status["last"] = msg

        def on_decoder(msg: Any) -> None:
            with lock:
                statuses.append(msg)

        monitor.create_subscription(EpisodeStatus, "/episode_status", on_status, reliable)
        monitor.create_subscription(DecoderStatus, "/policy_node/decoder_status", on_decoder,
                                    reliable)
        reset_client = monitor.create_client(Trigger, "/policy_node/reset")
        executor = MultiThreadedExecutor(num_threads=4, context=context)
        for n in nodes:
            executor.add_node(n)
        threading.Thread(target=executor.spin, daemon=True).start()

        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise SystemExit("policy node failed to configure (see its log above)")
        settings = {"checkpoint": str(ckpt), "tasks": tasks, "episodes_per_task": episodes,
                    "seed": seed, "max_steps": max_steps,
                    **{n: _plain(node.get_parameter(n).value)
                       for n in dict.fromkeys([*REPORTED_PARAMS, *params]) if n != "seed"},
                    "policy_seed": node.get_parameter("seed").value,
                    "param_overrides": params}
        if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            raise SystemExit("policy node failed to activate (see its log above)")
        wait_until(lambda: reset_client.service_is_ready(), 30.0)
        if not wait_until(recorder.matched, 10.0):
            emit("# recorder: not every topic matched a publisher in 10 s; the bag may miss "
                 "the first messages")
        sync = settings["execution"] == "sync"
        status_topic = "/policy_node/decoder_status"

        def drained(solves0: int) -> bool:
            """The node answered the last observation and every solve reached both listeners:
            only then may the next episode's messages start (see RunRecorder)."""
            n_status = recorder.count(status_topic)
            with lock:
                heard = len(statuses)
            ok = heard == n_status
            if command_type.endswith("Float64MultiArray"):  # one command per observation
                ok = ok and recorder.count(command_topic) >= recorder.count("/episode_status")
            if sync:  # async: a solve still in the worker is published next episode (stamped)
                ok = ok and n_status >= node.stats.solves - solves0
            return ok

        for task in tasks:
            for variation in range(episodes):
                # fresh warm start, and the next frame starts the episode (before the sim reset)
                future = reset_client.call_async(Trigger.Request())
                if not wait_until(future.done, 10.0):
                    raise SystemExit("the policy node did not answer ~/reset")
                with lock:
                    statuses.clear()
                status["last"] = None
                solves0 = node.stats.solves
                recorder.begin_episode(task, variation)
                ok, why = bridge.reset_episode(task, variation, seed)
                if not ok:
                    raise SystemExit(f"sim reset to {task}/{variation} failed: {why}")
                done = wait_until(lambda: status["last"] is not None and status["last"].done,
                             timeout=max_steps * 2.0)
                if done and not wait_until(lambda s=solves0: drained(s), 5.0):
                    emit(f"# {task} var {variation}: late messages may count to the next episode")
                last = status["last"]
                with lock:
                    got = list(statuses)
                res = EpisodeResult(task, variation, bool(last and last.success),
                                    int(last.step if last else 0),
                                    [int(s.iterations) for s in got],
                                    [float(s.prefix_ms + s.solve_ms) for s in got],
                                    [bool(s.warm_start_used) for s in got])
                if not done:
                    emit(f"# {task} var {variation}: episode did not finish in time")
                results.append(res)
                emit(res.line())
                bar.update(1)
                ok_count = sum(r.success for r in results)
                bar.set_postfix(success=f"{ok_count}/{len(results)}",
                                rate=f"{ok_count / len(results):.2f}")
        recorder.stop()
        loop = {"holds": int(node.stats.holds), "dropped_cycles": int(node.stats.dropped_cycles)}
    finally:
        bar.close()
        recorder.stop()
        shut_down(context, executor, list(reversed(nodes)), policy_node=node)
        if bridge is not None:
            bridge.backend.close()
    _, _, chunks = art.extract(recorder.messages(), camera_topic)
    loop["boundary_jumps"] = art.boundary_jumps(chunks)
    summary = summarize(results, settings, loop)
    if out is not None:
        metadata = {"kind": "vla-eqm demo run", "settings": settings,
                    "episodes": [{"index": e.index, "task": e.task, "variation": e.variation,
                                  "success": r.success, "steps": r.steps}
                                 for e, r in zip(recorder.episodes, results, strict=False)]}
        summary["artifacts"] = art.write_artifacts(out, recorder, camera_topic, metadata, seed,
                                                   gif_every)
    return summary


def _plain(value: Any) -> Any:
    """A parameter value as JSON: rclpy returns array parameters as ``array.array``."""
    return value if value is None or isinstance(value, (str, bool, int, float)) else list(value)


def run(args: argparse.Namespace) -> int:
    print("# vla-eqm demo: sim bridge (Meta-World, lockstep) + EqM policy node over ROS 2 "
          "topics (loopback DDS)", file=sys.stderr)
    t0 = time.monotonic()
    params = parse_params(args.param, args.execution)
    out = None if args.no_artifacts else (args.out or default_out_dir())
    summary = run_demo(args.checkpoint, args.tasks, args.episodes, args.max_steps, args.seed,
                       params=params, out=out, progress=not args.no_progress,
                       gif_every=args.gif_every)
    summary["wall_s"] = round(time.monotonic() - t0, 1)
    text = json.dumps(summary)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return 0
