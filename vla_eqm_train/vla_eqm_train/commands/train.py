"""``vla-eqm train --config FILE``: train an EqM or FM checkpoint from a dataset cache.

Command-line flags override the YAML (``--steps``, ``--decoder``, ``--out``, ...), so the shipped
configs double as recipes: the FM twin of the default policy is the EqM config with
``--decoder fm --out ...``. ``--resume`` continues from ``run_dir/train_state.pt``. Multi-process
or multi-GPU: ``torchrun --nproc-per-node N -m vla_eqm_train.cli train --config ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True,
                        help=f"training YAML (shipped: {CONFIG_DIR}/default_eqm.yaml, ...)")
    parser.add_argument("--dataset", help="override: dataset cache directory")
    parser.add_argument("--out", help="override: checkpoint directory")
    parser.add_argument("--run-dir", help="override: directory for resumable state and curves")
    parser.add_argument("--decoder", choices=["eqm", "fm"], help="override: decoder")
    parser.add_argument("--steps", type=int, help="override: optimizer steps")
    parser.add_argument("--batch-size", type=int, help="override: batch size")
    parser.add_argument("--seed", type=int, help="override: seed")
    parser.add_argument("--threads", type=int, help="override: torch CPU threads")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override: device")
    parser.add_argument("--time-limit-min", type=float, help="override: stop after N minutes")
    parser.add_argument("--resume", action="store_true",
                        help="continue from run_dir/train_state.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


_OVERRIDES = ("dataset", "out", "run_dir", "decoder", "steps", "batch_size", "seed", "threads",
              "device", "time_limit_min")


def load_config(args: argparse.Namespace):
    from vla_eqm_train.training.config import TrainConfig

    cfg = TrainConfig.load(args.config)
    changes = {k: getattr(args, k) for k in _OVERRIDES if getattr(args, k, None) is not None}
    return cfg.replace(**changes) if changes else cfg


def run(args: argparse.Namespace) -> int:
    from vla_eqm_train.data.dataset import DatasetError
    from vla_eqm_train.training.trainer import Trainer

    try:
        cfg = load_config(args)
        trainer = Trainer(cfg, resume=args.resume, progress=not args.no_progress)
    except (OSError, ValueError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        out = trainer.fit()
    finally:
        trainer.close()
    if trainer.is_main:
        val = trainer.history["val_loss"][-1][1] if trainer.history["val_loss"] else None
        print(json.dumps({"checkpoint": str(out), "run_dir": str(cfg.run_path),
                          "decoder": cfg.decoder, "steps": trainer.step,
                          "wall_time_min": round((time.monotonic() - t0) / 60.0, 2),
                          "val_loss": val, "dataset_hash": trainer.train_data.hash}))
    return 0
