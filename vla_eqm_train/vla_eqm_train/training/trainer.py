"""Training loop for EqM and FM decoders: AdamW, warm-up + cosine, EMA, clipping, random shift.

One code path for both decoders (the config's ``decoder``), so EqM vs FM comparisons differ in
that one field only. The run is seeded and resumable: ``run_dir/train_state.pt`` holds the model,
EMA, optimizer, schedule, step, loss history and every RNG state (loaded with
``weights_only=True``: tensors and plain containers only). The result is a checkpoint in the core's
format (``vla_eqm_ros.checkpoint``) holding the EMA weights, with provenance: dataset hash, the
training config, the source commit and the environment.

Multi-GPU / multi-process runs go through ``torchrun`` and torch's ``DistributedDataParallel``
(gloo on CPU, NCCL on GPUs). ``batch_size`` is the global batch: every rank keeps the same random
state, draws the whole batch's positions, shifts and noise, and trains on its 1/N slice, with the
loss normalized by the global count of valid rows. So N ranks reach the parameters one process
reaches at the same ``batch_size`` (up to float32 summation order; tested), a resumed run is
exact on every rank, and rank 0 alone writes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from vla_eqm_ros.checkpoint import save_checkpoint
from vla_eqm_ros.config import CameraConfig, PolicyConfig, get_preset
from vla_eqm_ros.model import PI0EqMModel
from vla_eqm_ros.solvers import eqm_solve, fm_integrate
from vla_eqm_train.data.augment import random_shift, shift_offsets
from vla_eqm_train.data.dataset import ChunkDataset, ChunkSample
from vla_eqm_train.data.provenance import environment, git_commit
from vla_eqm_train.training.config import TrainConfig
from vla_eqm_train.training.curves import plot_curves
from vla_eqm_train.training.objective import (
    MaskedObjective,
    NoiseDraws,
    draw_noise,
    masked_weight,
)

STATE_FILE = "train_state.pt"


def policy_config_for(cfg: TrainConfig, data: ChunkDataset) -> PolicyConfig:
    """Preset + overrides + everything the dataset fixes (cameras, sizes, names, contract)."""
    base = get_preset(cfg.preset)
    contract = data.contract
    model = dataclasses.replace(
        base.model,
        **{**cfg.model,
           "cameras": tuple(CameraConfig(c.name, c.height, c.width) for c in contract.cameras),
           "state_dim": contract.state_dim, "action_dim": contract.action_dim})
    top = {k: v for k, v in cfg.policy.items() if k not in ("solver", "warm_start", "fm", "eqm")}
    nested = {k: dataclasses.replace(getattr(base, k), **cfg.policy[k])
              for k in ("solver", "warm_start", "fm", "eqm") if k in cfg.policy}
    return base.replace(model=model, decoder=cfg.decoder, action_names=tuple(
        contract.action.names), state_names=tuple(contract.state_labels),
        contract=contract.to_dict(), control_period=contract.control_period, **nested, **top)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total`` steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def fit_normalizers(model: PI0EqMModel, stats: dict[str, Any]) -> None:
    """Copy the cache's (train-split) statistics into the model's normalizer buffers."""
    with torch.no_grad():
        for norm, key in ((model.action_normalizer, "action"), (model.state_normalizer, "state")):
            if key not in stats:
                continue
            for name in ("mean", "std", "q01", "q99"):
                getattr(norm, name).copy_(torch.tensor(stats[key][name], dtype=torch.float32))


def _ema_avg(decay: float):
    """EMA with the usual warm-up of the decay (min(decay, (1 + n) / (10 + n))): early averages
    are not dominated by the random initialization."""

    def avg(averaged: torch.Tensor, current: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1.0 + float(num)) / (10.0 + float(num)))
        return d * averaged + (1.0 - d) * current

    return avg


def make_batch(chunk: ChunkSample, model: PI0EqMModel, device: torch.device, shift_pad: int = 0,
               generator: torch.Generator | None = None,
               shifts: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
               ) -> dict[str, Any]:
    """A dataset chunk as the model's batch (images, state, actions, goal features), with the
    random shift when ``shift_pad`` > 0 (offsets from ``shifts``, else drawn)."""
    images = {}
    for cam, arr in chunk.images.items():
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if shift_pad > 0:
            t = random_shift(t, shift_pad, generator, None if shifts is None else shifts[cam])
        images[cam] = t.to(device)
    batch: dict[str, Any] = {"images": images,
                             "state": torch.from_numpy(chunk.state).to(device),
                             "actions": torch.from_numpy(chunk.actions).to(device)}
    feats = model.goal_features(chunk.goals)
    batch.update({k: v.to(device) for k, v in feats.items()})
    return batch


def decode_error(model: PI0EqMModel, batch: dict[str, Any], generator: torch.Generator
                 ) -> tuple[float, float]:
    """(MSE of the first ``execute_steps`` actions of a cold-start decode against the
    demonstration, in normalized units; mean solver iterations). The offline metric that
    separates the decoders before any closed-loop episode (validation, the recipe study)."""
    cfg = model.config
    prefix = model.encode_prefix(batch)
    device = model.expert.pos.device
    x0 = torch.randn((prefix.batch_size, cfg.model.horizon, cfg.model.action_dim),
                     generator=generator).to(device)
    if cfg.decoder == "eqm":
        s = cfg.solver
        res = eqm_solve(lambda a: model.field(a, prefix), x0, step_size=s.step_size,
                        momentum=s.momentum, tau=s.tau, k_max=s.k_max)
        iterations = float(res.iterations.float().mean())
    else:
        res = fm_integrate(lambda x, t: model.field(x, prefix, t), x0, cfg.fm.steps)
        iterations = float(cfg.fm.steps)
    target = model.action_normalizer.normalize(batch["actions"])
    k = cfg.execute_steps
    return float(((res.actions[:, :k] - target[:, :k]) ** 2).mean()), iterations


class Trainer:
    """Builds model, objective, optimizer, schedule and EMA from a ``TrainConfig``; ``fit()``."""

    def __init__(self, cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> None:
        self.cfg = cfg
        self.progress = progress
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.is_main = self.rank == 0
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        want_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
        if want_cuda:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            self.device = torch.device("cuda", local)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        if cfg.batch_size % self.world:
            raise ValueError(f"batch_size {cfg.batch_size} does not split over {self.world} "
                             "processes (it is the global batch)")
        if self.world > 1 and not torch.distributed.is_initialized():
            if not want_cuda and os.environ.get("MASTER_ADDR", "127.0.0.1") in (
                    "127.0.0.1", "localhost", "::1"):
                os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine: loopback only
            torch.distributed.init_process_group("nccl" if want_cuda else "gloo")
        self.train_data = ChunkDataset(cfg.dataset, horizon=1, split="train")
        self.policy_config = policy_config_for(cfg, self.train_data)
        horizon = self.policy_config.model.horizon
        self.train_data = ChunkDataset(cfg.dataset, horizon=horizon, split="train")
        self.val_data = ChunkDataset(cfg.dataset, horizon=horizon, split="val")
        if len(self.train_data) == 0:
            raise ValueError(f"{cfg.dataset}: the train split has no frames")
        torch.manual_seed(cfg.seed)
        self.model = PI0EqMModel(self.policy_config).to(self.device)
        fit_normalizers(self.model, self.train_data.meta["stats"])
        self.objective = MaskedObjective(self.model, cfg.repeats)
        self.train_module: torch.nn.Module = self.objective
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.train_module = DistributedDataParallel(
                self.objective, device_ids=[self.device.index] if want_cuda else None)
        params = [p for p in self.model.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]  # biases, norms, embeddings offsets
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_factor(s, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio))
        self.ema = AveragedModel(self.model, avg_fn=_ema_avg(cfg.ema_decay), use_buffers=True)
        # The same streams on every rank: each draws the global batch and keeps its slice.
        self.rng = np.random.default_rng(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.step = 0
        self.history: dict[str, list[list[float]]] = {"train_loss": [], "val_loss": [],
                                                      "val_decode_mse": []}
        self.elapsed_s = 0.0
        self.run_dir = cfg.run_path
        if resume:
            self.load_state()

    # ------------------------------------------------------------------------------ batches
    def _to_batch(self, chunk: ChunkSample, augment: bool, model: PI0EqMModel,
                  shifts: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
                  ) -> dict[str, Any]:
        """``shifts``: per camera, this batch's random-shift offsets (default: drawn here)."""
        pad = self.cfg.shift_pad if augment else 0
        return make_batch(chunk, model, self.device, pad, self.gen, shifts)

    # --------------------------------------------------------------------------------- loop
    def fit(self) -> Path:
        """Train to ``cfg.steps`` (or the time limit), then write the checkpoint; returns it."""
        from tqdm import tqdm

        cfg = self.cfg
        self.model.train()
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"train {cfg.decoder}", unit="step",
                   disable=not (self.progress and self.is_main), file=sys.stderr)
        t_start = time.monotonic() - self.elapsed_s
        stopped_early = False
        while self.step < cfg.steps:
            loss = self._train_step()
            grad_norm = (torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                         if cfg.grad_clip > 0 else torch.tensor(0.0))
            self.optimizer.step()
            self.scheduler.step()
            self.ema.update_parameters(self.model)
            self.step += 1
            self.elapsed_s = time.monotonic() - t_start
            self.history["train_loss"].append([self.step, loss])
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", gnorm=f"{float(grad_norm):.2f}",
                            lr=f"{self.scheduler.get_last_lr()[0]:.1e}")
            last = self.step >= cfg.steps
            over = cfg.time_limit_min > 0 and self._agree(
                self.elapsed_s > cfg.time_limit_min * 60)
            if self.step % cfg.val_every == 0 or last or over:
                self.validate()
            if self.is_main and (self.step % cfg.ckpt_every == 0 or last or over):
                self.save_state()
                self.export(Path(cfg.out))
            if over:
                stopped_early = True
                break
        bar.close()
        if self.world > 1:  # the others wait while rank 0 writes, so no rank exits mid-write
            torch.distributed.barrier()
        if self.is_main and stopped_early:
            print(f"stopped at step {self.step} after the {cfg.time_limit_min} min time limit",
                  file=sys.stderr)
        return Path(cfg.out)

    def _agree(self, flag: bool) -> bool:
        """One rank's clock decides for all: ranks that disagreed on stopping would leave the
        others blocked in the next step's all-reduce."""
        if self.world == 1:
            return flag
        value = torch.tensor([float(flag)], device=self.device)
        torch.distributed.broadcast(value, src=0)
        return bool(value.item())

    def close(self) -> None:
        """Leave the process group cleanly. A gloo rank that exits with its group still open can
        abort in the group's destructor (``terminate called without an active exception``), which
        torchrun reports as a failed run although training finished."""
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    def _train_step(self) -> float:
        """Forward and backward of this rank's slice of one global batch; returns the global
        loss. The draws happen in the single-process order (positions, shifts per camera,
        noise), so one process at batch B and N ranks at B/N see the same numbers."""
        cfg, b = self.cfg, self.cfg.batch_size
        positions = self.rng.integers(0, len(self.train_data), size=b)
        lo, hi = self.rank * b // self.world, (self.rank + 1) * b // self.world
        chunk = self.train_data.batch(positions[lo:hi])
        shifts = ({cam: shift_offsets(b, cfg.shift_pad, self.gen) for cam in chunk.images}
                  if cfg.shift_pad > 0 else None)
        if shifts is not None:
            shifts = {cam: (dy[lo:hi], dx[lo:hi]) for cam, (dy, dx) in shifts.items()}
        batch = self._to_batch(chunk, augment=True, model=self.model, shifts=shifts)
        mask = torch.from_numpy(chunk.mask)
        model_cfg = self.policy_config.model
        draws: NoiseDraws = draw_noise(b * cfg.repeats, model_cfg.horizon, model_cfg.action_dim,
                                       self.policy_config, self.gen)
        draws = draws.samples(lo, hi, cfg.repeats)
        denom = None
        if self.world > 1:  # every rank divides by the whole batch's count; DDP averages
            denom = masked_weight(mask, model_cfg.action_dim) * cfg.repeats
            torch.distributed.all_reduce(denom)
            denom = denom / self.world
        loss, _ = self.train_module(batch, mask, draws=draws, denom=denom)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        value = loss.detach().clone()
        if self.world > 1:
            torch.distributed.all_reduce(value)
            value /= self.world
        return float(value)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation loss of the EMA model on fixed batches (fixed noise), and the error of a
        cold-start decode of the first executed actions (normalized units)."""
        if len(self.val_data) == 0 or not self.is_main:
            return {}
        ema_model: PI0EqMModel = self.ema.module  # type: ignore[assignment]
        ema_model.eval()
        objective = MaskedObjective(ema_model, repeats=self.cfg.repeats)
        gen = torch.Generator().manual_seed(12345)
        rng = np.random.default_rng(12345)
        losses, errors = [], []
        for _ in range(self.cfg.val_batches):
            chunk = self.val_data.batch(rng.integers(0, len(self.val_data), self.cfg.batch_size))
            batch = self._to_batch(chunk, augment=False, model=ema_model)
            loss, _ = objective(batch, torch.from_numpy(chunk.mask), gen)
            losses.append(float(loss))
            errors.append(decode_error(ema_model, batch, gen)[0])
        out = {"val_loss": float(np.mean(losses)), "val_decode_mse": float(np.mean(errors))}
        self.history["val_loss"].append([self.step, out["val_loss"]])
        self.history["val_decode_mse"].append([self.step, out["val_decode_mse"]])
        train_recent = np.mean([v for _, v in self.history["train_loss"][-50:]] or [math.nan])
        print(f"step {self.step}: train_loss {train_recent:.4f} val_loss {out['val_loss']:.4f} "
              f"val_decode_mse {out['val_decode_mse']:.4f} ({self.elapsed_s / 60:.1f} min)",
              file=sys.stderr)
        return out

    # ---------------------------------------------------------------------------- persistence
    def save_state(self) -> Path:
        """Everything needed to continue bit-for-bit (tensors and plain containers only)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"last_epoch": self.scheduler.last_epoch,
                          "base_lrs": self.scheduler.base_lrs},
            "torch_rng": self.gen.get_state(),
            "numpy_rng": json.dumps(self.rng.bit_generator.state),
            "history": json.dumps(self.history),
            "train_config": json.dumps(self.cfg.to_dict()),
        }
        tmp = self.run_dir / (STATE_FILE + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.run_dir / STATE_FILE)
        plot_curves(self.history, self.run_dir / "loss_curves.png",
                    title=f"{self.cfg.decoder} on {Path(self.cfg.dataset).name}")
        (self.run_dir / "history.json").write_text(json.dumps(self.history))
        return self.run_dir / STATE_FILE

    def load_state(self) -> None:
        path = self.run_dir / STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"cannot resume: {path} does not exist")
        state = torch.load(path, map_location=self.device, weights_only=True)
        saved_cfg = json.loads(state["train_config"])
        for key in ("dataset", "decoder", "preset", "model", "seed", "batch_size"):
            if saved_cfg.get(key) != self.cfg.to_dict().get(key):
                raise ValueError(f"cannot resume {path}: '{key}' changed from "
                                 f"{saved_cfg.get(key)!r} to {self.cfg.to_dict().get(key)!r}")
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.last_epoch = int(state["scheduler"]["last_epoch"])
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]  # type: ignore[attr-defined]
        self.gen.set_state(state["torch_rng"])
        self.rng.bit_generator.state = json.loads(state["numpy_rng"])
        self.history = json.loads(state["history"])
        self.step = int(state["step"])
        self.elapsed_s = float(state["elapsed_s"])

    def export(self, out: Path) -> Path:
        """Write the EMA weights as a core checkpoint, with provenance."""
        ema_model: PI0EqMModel = self.ema.module  # type: ignore[assignment]
        last_val = self.history["val_loss"][-1][1] if self.history["val_loss"] else None
        provenance = {
            "dataset": str(self.cfg.dataset),
            "dataset_hash": self.train_data.hash,
            "dataset_tasks": self.train_data.meta["tasks"],
            "dataset_episodes": len(self.train_data.meta["episodes"]),
            "train_config": self.cfg.to_dict(),
            "commit": git_commit(),
            "environment": environment(),
            "steps": self.step,
            "wall_time_min": round(self.elapsed_s / 60.0, 2),
            "final_val_loss": last_val,
            "weights": "ema",
        }
        config = self.policy_config.replace(provenance=provenance)
        ema_model.config = config
        return save_checkpoint(out, ema_model, config)
