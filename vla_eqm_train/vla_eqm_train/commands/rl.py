"""``vla-eqm rl --checkpoint DIR --tasks ... --out DIR``: online RL fine-tuning in simulation.

A small head over the frozen policy learns with PPO from piRL's sparse success reward
(``--method residual``: a Gaussian correction of the executed rows of each solved chunk;
``steer``: an offset of the solver's initial iterate). Rollouts run in ``--workers`` processes
against the simulator directly (no DDS) through the policy node's executor; the head's mean is
evaluated on eval-sim's held-out variations every ``--eval-every`` iterations. ``OUT`` is an
ordinary checkpoint (the node and eval-sim load it: the head's weights are in its
safetensors, ``rl:`` in its config says how they act). ``RUN_DIR`` holds ``rl_state.pt``
(``--resume``), ``rl_report.json`` (before/after per task, the curve, the cost) and
``learning_curve.png``. Flags override ``--config`` (a YAML of ``rl.config.RLTrainConfig``).
See docs/rl.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vla_eqm_sim.suites import add_task_arguments, expand

_FLAGS = ("method", "iterations", "episodes_per_iteration", "max_steps", "eval_every",
          "eval_episodes", "workers", "time_limit_min", "seed", "lr", "init_std", "scale")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="the policy to fine-tune")
    add_task_arguments(parser, "the checkpoint's training tasks")
    parser.add_argument("--out", type=Path, required=True, help="fine-tuned checkpoint directory")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="resumable state, report and curve (default: runs/rl/<out name>)")
    parser.add_argument("--config", type=Path, default=None, help="RL settings YAML")
    parser.add_argument("--method", choices=["residual", "steer"], help="what the head acts on")
    parser.add_argument("--iterations", type=int, help="rollout + PPO iterations")
    parser.add_argument("--episodes-per-iteration", type=int, help="rollouts per task per "
                        "iteration")
    parser.add_argument("--max-steps", type=int, help="episode step limit (default 200)")
    parser.add_argument("--eval-every", type=int, help="iterations between held-out evaluations")
    parser.add_argument("--eval-episodes", type=int, help="held-out episodes per task")
    parser.add_argument("--workers", type=int, help="rollout worker processes")
    parser.add_argument("--time-limit-min", type=float,
                        help="stop after this many minutes in all (resumable)")
    parser.add_argument("--seed", type=int, help="seed of exploration and minibatches")
    parser.add_argument("--lr", type=float, help="Adam learning rate of the head")
    parser.add_argument("--init-std", type=float, help="initial exploration std")
    parser.add_argument("--scale", type=float, help="bound of the head's mean offset")
    parser.add_argument("--resume", action="store_true", help="continue RUN_DIR/rl_state.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from vla_eqm_ros.checkpoint import CheckpointError
    from vla_eqm_train.rl.config import RLTrainConfig
    from vla_eqm_train.rl.loop import RLRun

    try:
        cfg = RLTrainConfig.load(args.config) if args.config else RLTrainConfig()
        changes = {k: getattr(args, k) for k in _FLAGS if getattr(args, k, None) is not None}
        tasks = expand(args.tasks, args.suite)
        if tasks:
            changes["tasks"] = tuple(tasks)
        cfg = cfg.replace(**changes)
        run_dir = args.run_dir or Path("runs") / "rl" / args.out.name
        report = RLRun(cfg, args.checkpoint, args.out, run_dir, resume=args.resume,
                       progress=not args.no_progress).run()
    except (CheckpointError, ValueError, KeyError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for task, r in report["tasks"].items():
        print(f"{task:32s} before {r['before']:.2f}  after {r['after']:.2f}  "
              f"({r['episodes']} held-out episodes)", file=sys.stderr)
    print(json.dumps({k: v for k, v in report.items() if k != "curve"}))
    return 0 if report["stopped"] in ("iterations", "time_limit") else 1
