"""`vla-eqm`: one command line for the whole stack.

Each subcommand lives in the module that owns the work and exposes two functions,
``add_arguments(parser)`` and ``run(args) -> int``. This file only routes, and imports a
subcommand's module lazily so that `vla-eqm --help` stays fast and a missing optional dependency
of one subcommand cannot break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module, one-line help). "dataset build" is a nested subcommand of "dataset".
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "record": ("vla_eqm_sim.record_cli",
               "record scripted-expert demonstrations as rosbag2 (MCAP)"),
    "dataset": ("vla_eqm_train.commands.dataset",
                "build a training cache from bags; export or import LeRobot v3 datasets"),
    "train": ("vla_eqm_train.commands.train", "train an EqM or FM checkpoint"),
    "eval-sim": ("vla_eqm_train.commands.eval_sim",
                 "closed-loop evaluation against the sim bridge"),
    "eval-bag": ("vla_eqm_train.commands.eval_bag",
                 "replay rosbag2 files through a checkpoint and report"),
    "contract": ("vla_eqm_train.commands.contract",
                 "write a contract skeleton from a bag (init); validate one on bags (check)"),
    "rl": ("vla_eqm_train.commands.rl",
           "online RL fine-tuning of a checkpoint in simulation (PPO on a small head)"),
    "demo": ("vla_eqm_train.commands.demo",
             "closed-loop EqM demo: sim bridge + policy node over ROS 2"),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vla-eqm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # only import what will run
            importlib.import_module(module).add_arguments(sp)
            sp.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from vla_eqm_ros.nodes.runtime import ensure_ament_prefix

    ensure_ament_prefix()  # run from the venv without scripts/dev_env.sh
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
