"""``vla-eqm demo`` (behind ``make demo``): the EqM policy node closing the loop on the sim bridge.

The command line only: arguments, ``--param`` parsing, the summary JSON. The run itself is
``vla_eqm_train.demo.run.run_demo`` (bring-up, episodes, artifacts).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from vla_eqm_sim.suites import add_task_arguments, expand
from vla_eqm_train.demo.run import DEFAULT_SEED, run_demo

# Parameters the demo owns: the lockstep loop needs trigger=observation, and the checkpoint has
# its own flag (its config also decides the tasks and the camera size).
RESERVED_PARAMS = ("checkpoint", "trigger")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint directory (default: the shipped default_eqm)")
    add_task_arguments(parser, "the checkpoint's training tasks")
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
    """``NAME:=VALUE`` strings -> policy_node parameter overrides (parsed as bring-up's
    ``--param``); ``execution`` (``--execution``) wins over a ``--param execution:=``."""
    from vla_eqm_ros.nodes.parameters import BY_NAME, coerce
    from vla_eqm_ros.nodes.runtime import parse_overrides

    out: dict[str, Any] = {}
    for name, value in parse_overrides(items).items():
        if name in RESERVED_PARAMS:
            raise SystemExit(f"--param {name}: set by the demo (use --checkpoint; the lockstep "
                             "loop needs trigger=observation)")
        if name not in BY_NAME:
            raise SystemExit(f"--param {name}: not a policy_node parameter; known: "
                             f"{', '.join(sorted(BY_NAME))}")
        out[name] = coerce(name, value)  # tau:=1 means 1.0
    if execution is not None:
        out["execution"] = execution
    return out


def default_out_dir() -> Path:
    return Path("runs") / "demo" / time.strftime("%Y%m%d-%H%M%S")


def run(args: argparse.Namespace) -> int:
    print("# vla-eqm demo: sim bridge (Meta-World, lockstep) + EqM policy node over ROS 2 "
          "topics (loopback DDS)", file=sys.stderr)
    t0 = time.monotonic()
    params = parse_params(args.param, args.execution)
    out = None if args.no_artifacts else (args.out or default_out_dir())
    try:
        tasks = expand(args.tasks, args.suite) or None
    except ValueError as exc:
        raise SystemExit(f"demo: {exc}") from None
    summary = run_demo(args.checkpoint, tasks, args.episodes, args.max_steps, args.seed,
                       params=params, out=out, progress=not args.no_progress,
                       gif_every=args.gif_every)
    summary["wall_s"] = round(time.monotonic() - t0, 1)
    text = json.dumps(summary)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return 0
