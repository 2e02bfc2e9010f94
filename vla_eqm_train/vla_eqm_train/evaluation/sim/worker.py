"""One evaluation worker process: a lockstep sim bridge and a policy client on a private domain.

``python -m vla_eqm_train.evaluation.sim.worker SETTINGS_JSON`` takes jobs (lists of episodes) on
stdin and prints one JSON line per episode on stdout (the parent's progress bar reads them); the
parent (``vla_eqm_sim.workers.JobPool``) gives every worker its own ``ROS_DOMAIN_ID`` (loopback
only), so workers never hear each other.
The bridge and the client share one executor in this process but talk through DDS topics,
exactly like separate processes (the same arrangement as ``vla_eqm_sim.expert_session``).
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any


class EvalSession:
    """A lockstep bridge and a policy client (or the scripted expert) in one rclpy context;
    ``episode()`` runs one evaluation episode. ``spec``: checkpoint, overrides, max_steps, seed,
    expert, contract, threads, stall_timeout_s,
    bridge (the bridge's probe parameters) (see ``eval_sim.evaluate``)."""

    def __init__(self, spec: dict[str, Any], first_task: str) -> None:
        import rclpy
        import torch
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter

        from vla_eqm_msgs.srv import ResetEpisode
        from vla_eqm_ros.contract import Contract
        from vla_eqm_ros.waiting import spin_until
        from vla_eqm_sim.bringup import contract_bridge_params
        from vla_eqm_sim.nodes.sim_bridge import SimBridge
        from vla_eqm_train.evaluation.sim.client import PolicyClient

        torch.set_num_threads(int(spec.get("threads", 1)))
        self.stall_timeout_s = float(spec.get("stall_timeout_s", 60.0))
        expert = spec.get("expert", False)
        policy = None
        if not expert:
            from vla_eqm_ros.policy import Policy

            policy = Policy.from_checkpoint(spec["checkpoint"], seed=int(spec.get("seed", 0)))
            if spec.get("overrides"):
                policy.update_solver(**spec["overrides"])
            contract = Contract.from_dict(policy.config.contract)
        else:
            contract = Contract.from_dict(spec["contract"])
        cameras = contract_bridge_params(contract)
        self.context = Context()
        rclpy.init(context=self.context)
        self.nodes: list[Any] = []
        try:
            self.bridge = SimBridge(context=self.context, parameter_overrides=[
                Parameter("task", value=first_task),
                *[Parameter(k, value=v) for k, v in cameras.items()],
                Parameter("clock_mode", value="lockstep"),
                Parameter("max_steps", value=int(spec["max_steps"])),
                Parameter("reliable_images", value=True),
                Parameter("publish_task_state", value=bool(expert)),
                *[Parameter(k, value=v) for k, v in spec.get("bridge", {}).items()]])
            self.nodes.append(self.bridge)
            self.client = PolicyClient(policy, contract, context=self.context)
            self.nodes.append(self.client)
            self.executor = SingleThreadedExecutor(context=self.context)
            if expert:
                from vla_eqm_sim.nodes.expert_node import ExpertNode

                self.nodes.append(ExpertNode(context=self.context))
            for node in self.nodes:
                self.executor.add_node(node)
            self.reset = self.client.create_client(ResetEpisode, "/sim/reset")
            ready = spin_until(self.executor, lambda: self.bridge.outputs_matched()
                               and self.client.command_matched()
                               and self.reset.service_is_ready(), 90.0)
            if not ready:
                raise RuntimeError("the bridge and the policy client did not discover each other")
        except BaseException:
            self.close()
            raise

    def episode(self, task: str, variation: int, seed: int) -> dict[str, Any]:
        return _episode(self.executor, self.bridge, self.client, self.reset, task, variation,
                        seed, self.stall_timeout_s)

    def close(self) -> None:
        import rclpy

        for node in self.nodes:
            if node is self.nodes[0]:
                node.backend.close()
            node.destroy_node()
        self.nodes = []
        if self.context.ok():
            rclpy.shutdown(context=self.context)


def run_worker(spec: dict[str, Any], emit=print) -> list[dict[str, Any]]:
    """Run ``spec["episodes"]`` ([task, variation, seed] each) in one session; returns one record
    per episode and emits each as a JSON line."""
    session = EvalSession(spec, spec["episodes"][0][0])
    try:
        records = []
        for task, variation, seed in spec["episodes"]:
            records.append(session.episode(task, variation, seed))
            emit(json.dumps(records[-1]))
        return records
    finally:
        session.close()


def _episode(executor, bridge, client, reset, task: str, variation: int, seed: int,
             stall_timeout_s: float) -> dict[str, Any]:
    from vla_eqm_msgs.srv import ResetEpisode
    from vla_eqm_ros.waiting import spin_until

    t0 = time.monotonic()
    client.start_episode()
    future = reset.call_async(ResetEpisode.Request(task=task, variation=variation, seed=seed))
    error = ""
    if not spin_until(executor, future.done, 60.0) or not future.result().success:
        error = "reset failed" if future.done() else "reset timed out"
    last_step, last_progress = -1, time.monotonic()
    while not error and not client.log.done:
        executor.spin_once(timeout_sec=0.02)
        step = bridge.backend.step_count
        if step != last_step:
            last_step, last_progress = step, time.monotonic()
        elif time.monotonic() - last_progress > stall_timeout_s:
            error = f"no progress for {stall_timeout_s:.0f} s at step {step}"
    client.active = False
    log = client.log
    return {"task": task, "variation": variation, "seed": seed,
            "success": bool(log.success and not error), "steps": int(bridge.backend.step_count),
            "iterations": log.iterations, "decode_ms": [round(v, 3) for v in log.decode_ms],
            "residuals": [None if math.isnan(v) else round(v, 5) for v in log.residuals],  # FM
            "solve_ms": [round(v, 3) for v in log.solve_ms],
            "k_max_hits": log.k_max_hits, "deadline_hits": log.deadline_hits,
            "decode_errors": log.decode_errors, "bad_messages": log.bad_messages,
            "error": error, "wall_s": round(time.monotonic() - t0, 3)}


def main(argv: list[str] | None = None) -> int:
    """``SETTINGS_JSON``: the spec without episodes; jobs (``{"episodes": [[task, variation,
    seed], ...]}``) arrive on stdin, one JSON line each (``vla_eqm_sim.workers.JobPool``)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m vla_eqm_train.evaluation.sim.worker SETTINGS_JSON",
              file=sys.stderr)
        return 2
    from vla_eqm_ros.nodes.runtime import require_loopback
    from vla_eqm_sim.workers import serve

    require_loopback()
    settings = json.loads(argv[0])

    def handle(session: EvalSession, job: dict[str, Any], emit) -> None:
        for task, variation, seed in job["episodes"]:
            emit({"event": "episode", **session.episode(task, variation, seed)})
        emit({"event": "job_done"})

    # any failure is reported to the parent, which names the worker
    return serve(lambda job: EvalSession(settings, job["episodes"][0][0]), handle)


if __name__ == "__main__":
    sys.exit(main())
