"""``vla-eqm contract init BAG --out contract.yaml``: the first step from a robot's bag to training.

Surveys the bag (``data/bag_survey.py``: every topic with its type, count, rate and largest gap),
prints the table, and writes a commented contract skeleton that already loads: cameras with their
recorded sizes and encodings, the JointState sources with their joint names, and the command
topic. An existing file is kept unless ``--overwrite``; the skeleton is validated before it is
written, so a file is never left half-valid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="contract_command", metavar="ACTION", required=True)
    init = sub.add_parser("init", help="survey a bag and write a contract skeleton",
                          description="list every topic of a rosbag2 bag (MCAP or sqlite3, split "
                                      "or not) and write a contract skeleton for it")
    init.add_argument("bag", type=Path, help="rosbag2 directory (the one with metadata.yaml)")
    init.add_argument("--out", type=Path, required=True, help="contract YAML to write")
    init.add_argument("--overwrite", action="store_true", help="replace an existing file")


def run(args: argparse.Namespace) -> int:
    import yaml

    from vla_eqm_ros.contract import Contract, ContractError
    from vla_eqm_train.data.bag_survey import skeleton, survey, table

    if not (args.bag / "metadata.yaml").is_file():
        print(f"error: {args.bag}: not a rosbag2 directory (no metadata.yaml)", file=sys.stderr)
        return 2
    if args.out.exists() and not args.overwrite:
        print(f"error: {args.out} exists; use --overwrite", file=sys.stderr)
        return 2
    try:
        topics = survey(args.bag)
    except Exception as exc:  # rosbags raises several types for unreadable bags
        print(f"error: {args.bag}: unreadable bag ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    print(table(topics))
    text = skeleton(topics)
    try:
        Contract.from_dict(yaml.safe_load(text))
    except ContractError as exc:  # a bag whose survey cannot make a loadable contract
        print(f"error: the skeleton does not load ({exc}); nothing written", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}: edit names, limits and hold values before training",
          file=sys.stderr)
    return 0
