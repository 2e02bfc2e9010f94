"""``vla-eqm contract init BAG --out FILE`` and ``vla-eqm contract check BAG --contract FILE``.

The first steps from a robot's bag to training. ``init`` surveys the bag (``data/bag_survey.py``:
every topic with its type, count, rate and largest gap), prints the table, and writes a commented
contract skeleton that already loads: cameras with their recorded sizes and encodings, the
JointState sources with their joint names, the command topic, and an ``episodes`` section when a
topic looks like an episode marker. An existing file is kept unless ``--overwrite``; the
skeleton is validated before it is written, so a file is never left half-valid. ``check``
converts the bags with the edited contract exactly as ``dataset build`` will
(``bag_survey.check``) and prints per bag the topic rates, the skew of every input against the
reference camera, the control ticks that yield no frame and why, and the episodes and training
samples; exit 1 when a bag cannot be converted.
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
    check = sub.add_parser("check", help="validate a contract against bags",
                           description="convert bags with a contract, as dataset build would, "
                                       "and print the per-topic rate, the skew against the "
                                       "reference camera, the dropped ticks and the samples")
    check.add_argument("bags", nargs="+", type=Path, help="rosbag2 directories or folders")
    check.add_argument("--contract", type=Path, required=True, help="contract YAML")
    check.add_argument("--json", action="store_true", help="print the reports as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    return _init(args) if args.contract_command == "init" else _check(args)


def _check(args: argparse.Namespace) -> int:
    import json

    from vla_eqm_ros.contract import Contract, ContractError
    from vla_eqm_train.data.bag_survey import check, check_table
    from vla_eqm_train.data.bags import BagError, find_bags

    try:
        contract = Contract.from_yaml(args.contract)
        bags = find_bags(args.bags)
    except (ContractError, BagError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not bags:
        print(f"error: no rosbag2 bag under {[str(b) for b in args.bags]}", file=sys.stderr)
        return 2
    reports, failed = [], 0
    for bag in bags:
        try:
            report = check(bag, contract)
        except BagError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
            reports.append({"bag": str(bag), "error": str(exc)})
            continue
        reports.append(report)
        print(check_table(report), file=sys.stderr)
    total = sum(r.get("samples", 0) for r in reports)
    print(f"{len(bags) - failed}/{len(bags)} bag(s) usable, {total} training samples",
          file=sys.stderr)
    if args.json:
        print(json.dumps(reports))
    return 1 if failed else 0


def _init(args: argparse.Namespace) -> int:
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
