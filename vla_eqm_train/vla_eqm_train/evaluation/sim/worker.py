"""One evaluation worker process: a lockstep sim bridge and a policy client on a private domain.

``python -m vla_eqm_train.evaluation.sim.worker SPEC.json`` runs the episodes listed in the spec
and prints one JSON line per episode on stdout (the parent's progress bar reads them). The parent
gives every worker its own ``ROS_DOMAIN_ID`` (loopback only), so workers never hear each other.
The bridge and the client share one executor in this process but talk through DDS topics,
exactly like separate processes (the same arrangement as ``vla_eqm_sim.expert_session``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def run_worker(spec: dict[str, Any], emit=print) -> list[dict[str, Any]]:
    """Run ``spec["episodes"]`` ([task, variation, seed] each); returns one record per episode."""
    import rclpy
    import torch
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from vla_eqm_msgs.srv import ResetEpisode
    from vla_eqm_ros.contract import Contract
    from vla_eqm_ros.waiting import spin_until
    from vla_eqm_sim.bringup import bridge_image_size
    from vla_eqm_sim.nodes.sim_bridge import SimBridge
    from vla_eqm_train.evaluation.sim.client import PolicyClient

    torch.set_num_threads(int(spec.get("threads", 1)))
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
    cameras = contract.camera_names
    size = bridge_image_size(contract)
    if size is None:
        sizes = {(c.height, c.width) for c in contract.cameras}
        raise ValueError(f"the sim bridge renders square images of one size; contract has {sizes}")
    first = spec["episodes"][0]
    context = Context()
    rclpy.init(context=context)
    nodes: list[Any] = []
    try:
        bridge = SimBridge(context=context, parameter_overrides=[
            Parameter("task", value=first[0]), Parameter("cameras", value=cameras),
            Parameter("image_size", value=size),
            Parameter("clock_mode", value="lockstep"),
            Parameter("max_steps", value=int(spec["max_steps"])),
            Parameter("reliable_images", value=True),
            Parameter("publish_task_state", value=bool(expert))])
        nodes.append(bridge)
        client = PolicyClient(policy, contract, context=context)
        nodes.append(client)
        executor = SingleThreadedExecutor(context=context)
        if expert:
            from vla_eqm_sim.nodes.expert_node import ExpertNode

            nodes.append(ExpertNode(context=context))
        for node in nodes:
            executor.add_node(node)
        reset = client.create_client(ResetEpisode, "/sim/reset")
        ready = spin_until(executor, lambda: bridge.outputs_matched() and client.command_matched()
                           and reset.service_is_ready(), 90.0)
        if not ready:
            raise RuntimeError("the bridge and the policy client did not discover each other")
        records = []
        for task, variation, seed in spec["episodes"]:
            records.append(_episode(executor, bridge, client, reset, task, variation, seed,
                                    float(spec.get("stall_timeout_s", 60.0))))
            emit(json.dumps(records[-1]))
        return records
    finally:
        for node in nodes:
            if node is nodes[0]:
                node.backend.close()
            node.destroy_node()
        if context.ok():
            rclpy.shutdown(context=context)


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
            "decode_errors": log.decode_errors, "bad_messages": log.bad_messages,
            "error": error, "wall_s": round(time.monotonic() - t0, 3)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m vla_eqm_train.evaluation.sim.worker SPEC.json", file=sys.stderr)
        return 2
    from vla_eqm_ros.nodes.runtime import require_loopback

    require_loopback()
    with open(argv[0]) as fh:
        spec = json.load(fh)

    def emit(line: str) -> None:
        print(line, flush=True)

    run_worker(spec, emit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
