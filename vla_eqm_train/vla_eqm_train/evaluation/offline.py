"""The offline screen: how well a checkpoint's decoder reproduces held-out demonstrations.

A cold-start decode (fresh noise, no warm start) of every validation sample, scored by the MSE
of the first ``execute_steps`` actions against the demonstration in normalized units, the
trainer's ``val_decode_mse`` on more samples. It separated the decoders where closed-loop
success did (door-open: 0.12 vs 0.062, 6/10 vs 10/10), at a thousandth of the cost, so the recipe
study screens levers with it, and solver settings (tau, K_max, eta) are screened without
retraining.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch


def offline_decode(checkpoint: str | Path, cache: str | Path,
                   overrides: dict[str, Any] | None = None, samples: int = 256,
                   batch_size: int = 64, seed: int = 12345) -> dict[str, Any]:
    """``val_decode_mse`` and mean iterations of ``checkpoint`` on ``samples`` validation
    chunks of ``cache`` (fixed draws: the same samples and noise for every checkpoint)."""
    from vla_eqm_ros.policy import Policy
    from vla_eqm_train.data.dataset import ChunkDataset
    from vla_eqm_train.training.trainer import decode_error, make_batch

    policy = Policy.from_checkpoint(checkpoint, seed=seed)
    if overrides:
        policy.update_solver(**overrides)
    model = policy.model
    model.config = policy.config
    model.eval()
    data = ChunkDataset(cache, horizon=policy.config.model.horizon, split="val")
    if len(data) == 0:
        raise ValueError(f"{cache}: the validation split is empty")
    rng = np.random.default_rng(seed)
    positions = rng.choice(len(data), size=min(samples, len(data)), replace=False)
    gen = torch.Generator().manual_seed(seed)
    errors, iters, weights = [], [], []
    with torch.no_grad():
        for start in range(0, len(positions), batch_size):
            chunk = data.batch(positions[start:start + batch_size])
            batch = make_batch(chunk, model, torch.device("cpu"))
            mse, it = decode_error(model, batch, gen)
            errors.append(mse)
            iters.append(it)
            weights.append(len(chunk.goals))
    w = np.asarray(weights, dtype=float)
    return {"val_decode_mse": float(np.average(errors, weights=w)),
            "iterations": float(np.average(iters, weights=w)), "samples": int(w.sum())}
