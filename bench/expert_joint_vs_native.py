"""Scripted-expert success in joint-position control against native (mocap) control.

For each task, the same ``--episodes`` variations (0..N-1 of ``MT1(task, seed)``) run twice through
``MetaWorldBackend``: native (the Cartesian expert drives the mocap) and joint (the same expert
through differential IK, commanding the arm's position servos). No cameras, no ROS: this measures
the control layer only. Prints one JSON object: per task the native and joint success rates, mean
episode lengths of successful episodes, and the difference; then the means over tasks.

    python bench/expert_joint_vs_native.py --episodes 20 \\
        --tasks button-press-v3 drawer-open-v3 ...  # default: the 15 of docs/joint_control.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import numpy as np

from vla_eqm_sim.metaworld_backend import MetaWorldBackend
from vla_eqm_sim.scripted_experts import ScriptedExpert
from vla_eqm_sim.scripted_joint_expert import JointSpaceExpert

DEFAULT_TASKS = [
    "button-press-v3", "button-press-topdown-v3", "coffee-button-v3", "door-open-v3",
    "drawer-close-v3", "drawer-open-v3", "faucet-open-v3", "handle-press-v3", "lever-pull-v3",
    "pick-place-v3", "plate-slide-v3", "push-v3", "reach-v3", "window-close-v3", "window-open-v3",
]


def run_mode(task: str, mode: str, episodes: int, seed: int) -> dict:
    """Success rate and lengths of ``episodes`` expert episodes in one control mode."""
    backend = MetaWorldBackend(task, 0, seed, control_mode=mode)
    expert = JointSpaceExpert(task) if mode == "joint" else ScriptedExpert(task)
    successes, lengths, ik_errors = [], [], []
    t0 = time.perf_counter()
    try:
        for variation in range(episodes):
            backend.reset(task, variation, seed)
            while not backend.done:
                backend.step(expert.act(backend.task_state()))
                if mode == "joint":
                    ik_errors.append(expert.last_ik_error)
            successes.append(backend.success)
            lengths.append(backend.step_count)
    finally:
        backend.close()
    ok_lengths = [n for n, ok in zip(lengths, successes, strict=True) if ok]
    out = {
        "success": float(np.mean(successes)),
        "mean_steps_successful": float(np.mean(ok_lengths)) if ok_lengths else None,
        "failed_variations": [v for v, ok in enumerate(successes) if not ok],
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if ik_errors:
        out["ik_error_p99_mm"] = round(float(np.percentile(ik_errors, 99)) * 1e3, 3)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=DEFAULT_TASKS,
                        help="Meta-World tasks, comma or space separated")
    parser.add_argument("--episodes", type=int, default=20, help="variations per task and mode")
    parser.add_argument("--seed", type=int, default=0, help="variation-set seed of MT1")
    args = parser.parse_args()
    tasks = [t for item in args.tasks for t in item.split(",") if t]
    if not 1 <= args.episodes <= 50:
        print(f"error: --episodes must be in [1, 50], got {args.episodes}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    per_task = {}
    for task in tasks:
        native = run_mode(task, "cartesian", args.episodes, args.seed)
        joint = run_mode(task, "joint", args.episodes, args.seed)
        per_task[task] = {
            "native": native,
            "joint": joint,
            "difference_points": round(100.0 * (joint["success"] - native["success"]), 1),
        }
        print(f"{task}: native {native['success']:.2f} joint {joint['success']:.2f}",
              file=sys.stderr, flush=True)
    native_mean = float(np.mean([r["native"]["success"] for r in per_task.values()]))
    joint_mean = float(np.mean([r["joint"]["success"] for r in per_task.values()]))
    print(json.dumps({
        "episodes_per_task": args.episodes,
        "seed": args.seed,
        "tasks": per_task,
        "native_mean": round(native_mean, 4),
        "joint_mean": round(joint_mean, 4),
        "difference_points": round(100.0 * (joint_mean - native_mean), 1),
        "within_5_points": abs(joint_mean - native_mean) <= 0.05,
        "seconds": round(time.perf_counter() - t0, 1),
        "note": "wall times on a shared 2-core CPU machine",
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
