"""``vla-eqm dataset build``: rosbag2 demonstrations -> a memory-mapped training cache.

Bags are decoded once, through the contract and the shared decode path (``bags.read_episode``),
and streamed into the cache (``dataset.write_cache``). Prints a progress bar on stderr, a
human-readable summary (episodes, frames, tasks, per-field statistics) and, with ``--json``, the
same summary as one JSON object on stdout. Any bag problem stops the build with an error that
names the bag, the topic and the problem (exit code 1).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_CONTRACT = Path(__file__).resolve().parents[2] / "config" / "metaworld_contract.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="decode bags into a training cache",
                           description="decode rosbag2 bags once into a memory-mapped cache")
    build.add_argument("bags", nargs="+", type=Path,
                       help="bag directories, or folders searched for bags (failed/ is skipped)")
    build.add_argument("--out", type=Path, required=True, help="cache directory to create")
    build.add_argument("--contract", type=Path, default=DEFAULT_CONTRACT,
                       help="contract YAML (default: the Meta-World contract of vla_eqm_train)")
    build.add_argument("--val-fraction", type=float, default=0.1,
                       help="share of episodes held out for validation (split by episode)")
    build.add_argument("--seed", type=int, default=0, help="seed of the episode split")
    build.add_argument("--include-failures", action="store_true",
                       help="keep episodes whose /episode_info says the demo failed")
    build.add_argument("--overwrite", action="store_true", help="replace an existing cache")
    build.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")


def summarize(meta: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The build summary: counts per task and the statistics the normalizers will use."""
    stats = meta["stats"]
    fields = {"action": dict(zip(meta["action_names"], zip(stats["action"]["mean"],
                                                          stats["action"]["std"], strict=True),
                                 strict=True))}
    if "state" in stats:
        fields["state"] = dict(zip(meta["state_names"], zip(stats["state"]["mean"],
                                                           stats["state"]["std"], strict=True),
                                   strict=True))
    return {
        "cache": meta.get("path", ""),
        "hash": meta["hash"],
        "episodes": len(meta["episodes"]),
        "frames": meta["frames"],
        "train_episodes": len(meta["split"]["train"]),
        "val_episodes": len(meta["split"]["val"]),
        "tasks": {t: {"episodes": sum(e["task"] == t for e in meta["episodes"]),
                      "frames": meta["frames_per_task"][t]} for t in meta["tasks"]},
        "instructions": meta["instructions"],
        "stats_mean_std": {k: {n: [round(m, 4), round(s, 4)] for n, (m, s) in v.items()}
                           for k, v in fields.items()},
        "seconds": round(seconds, 2),
    }


def _print_summary(summary: dict[str, Any], out=sys.stderr) -> None:
    print(f"cache {summary['cache']}  hash {summary['hash'][:12]}", file=out)
    print(f"{summary['episodes']} episodes ({summary['train_episodes']} train / "
          f"{summary['val_episodes']} val), {summary['frames']} frames, "
          f"{summary['seconds']} s", file=out)
    for task, c in summary["tasks"].items():
        print(f"  {task:32s} {c['episodes']:4d} episodes {c['frames']:7d} frames", file=out)
    for group, per_name in summary["stats_mean_std"].items():
        for name, (m, s) in per_name.items():
            print(f"  {group:6s} {name:24s} mean {m:+.4f}  std {s:.4f}", file=out)


def build(bags: list[Path], out: Path, contract_path: Path, *, val_fraction: float = 0.1,
          seed: int = 0, include_failures: bool = False, progress: bool = True
          ) -> dict[str, Any]:
    """Build a cache; returns the summary. Raises BagError / ContractError / DatasetError."""
    from tqdm import tqdm

    from vla_eqm_ros.contract import Contract
    from vla_eqm_train.data.bags import find_bags, read_episode
    from vla_eqm_train.data.dataset import DatasetError, write_cache

    contract = Contract.from_yaml(contract_path)
    paths = find_bags(bags)
    if not paths:
        raise DatasetError(f"no bags found under {[str(b) for b in bags]}")
    t0 = time.monotonic()
    dropped: list[str] = []

    def episodes():
        bar = tqdm(paths, desc="dataset", unit="bag", disable=not progress, file=sys.stderr)
        for path in bar:
            ep = read_episode(path, contract)
            if ep.info.get("success") is False and not include_failures:
                dropped.append(path.name)
                continue
            bar.set_postfix(frames=ep.length)
            yield ep

    meta = write_cache(out, episodes(), contract, val_fraction=val_fraction, seed=seed,
                       sources=[str(p) for p in paths])
    meta["path"] = str(out)
    summary = summarize(meta, time.monotonic() - t0)
    summary["dropped_failed_demos"] = dropped
    return summary


def run(args: argparse.Namespace) -> int:
    from vla_eqm_ros.contract import ContractError
    from vla_eqm_train.data.bags import BagError
    from vla_eqm_train.data.dataset import DatasetError

    out: Path = args.out
    if out.exists() and any(out.iterdir()):
        if not args.overwrite:
            print(f"error: {out} exists and is not empty; use --overwrite", file=sys.stderr)
            return 2
        shutil.rmtree(out)
    try:
        summary = build(args.bags, out, args.contract, val_fraction=args.val_fraction,
                        seed=args.seed, include_failures=args.include_failures,
                        progress=not args.no_progress)
    except (BagError, ContractError, DatasetError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        shutil.rmtree(out, ignore_errors=True)  # never leave a half-written cache behind
        return 1
    _print_summary(summary)
    if args.json:
        print(json.dumps(summary))
    return 0
