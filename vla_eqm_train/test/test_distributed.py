"""Multi-process training is real: ``torchrun --nproc-per-node 2`` with gloo on CPU reaches the
parameters that one process reaches at the same global batch.

Each rank trains on half of every batch (B/2) of the numbers one process at batch B would draw,
and DDP averages the gradients. What may differ is float32 summation order only: the two halves'
gradients are summed by gloo instead of inside one backward pass, a relative difference of a few
1e-7 in each gradient. AdamW divides each gradient by its running RMS, so after 4 steps at
lr 1e-3 the parameters may differ by a few lr * 1e-6; we allow 2e-5 absolute, 100 times less
than what one optimizer step moves the parameters (checked below), so a rank that trained on
other rows, another seed or an unscaled loss cannot pass.

One exception, found by this test: the key bias of every attention layer has an exactly zero
gradient (softmax does not change when q . b_k is added to every logit), so what it receives is
rounding noise, which Adam normalizes to steps of up to lr in a random direction. Those slices
are held to Adam's bound instead, 2 lr per step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from bag_factory import contract, write_bag
from safetensors.torch import load_file

from vla_eqm_train.data.bags import read_episode
from vla_eqm_train.data.dataset import write_cache
from vla_eqm_train.training.config import TrainConfig
from vla_eqm_train.training.trainer import Trainer

TOLERANCE = 2e-5
LR, STEPS = 1e-3, 4


def key_bias(name: str, n: int) -> slice | None:
    """The key part of a packed attention bias: q, k, v (in_proj_bias, qkv) or k, v (kv)."""
    if name.endswith(("in_proj_bias", "qkv.bias")):
        return slice(n // 3, 2 * n // 3)
    if name.endswith("kv.bias"):
        return slice(0, n // 2)
    return None


def worst_difference(a: dict, b: dict) -> tuple[float, float]:
    """Max |a - b| outside the attention key biases, and inside them."""
    rest, keys = 0.0, 0.0
    for name, x in a.items():
        d = (x.float() - b[name].float()).abs()
        k = key_bias(name, d.numel()) if d.dim() == 1 else None
        if k is not None:
            keys = max(keys, float(d[k].max()))
            d = torch.cat([d[:k.start], d[k.stop:]])
        rest = max(rest, float(d.max()) if d.numel() else 0.0)
    return rest, keys


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    c = contract()
    # Episodes of unequal length: chunks near an end are padded, so the two halves of a batch
    # hold different numbers of valid rows (the loss must be normalized globally).
    eps = [read_episode(write_bag(root / f"b{i}", 5 + 2 * i, goal=f"goal {i % 2}",
                                  task=f"t{i % 2}", textured=True), c) for i in range(4)]
    write_cache(root / "cache", eps, c, val_fraction=0.25)
    return root


def _config(root, name: str, decoder: str) -> dict:
    return dict(dataset=str(root / "cache"), out=str(root / name / "ckpt"),
                run_dir=str(root / name / "run"), preset="debug", decoder=decoder, steps=STEPS,
                model={"vision_channels": [16, 16]},
                batch_size=8, repeats=2, lr=LR, warmup_steps=1, val_every=STEPS,
                val_batches=1, ckpt_every=STEPS, ema_decay=0.9, threads=1, device="cpu",
                shift_pad=1, seed=3)


def _torchrun(root, cfg: dict, name: str = "") -> subprocess.CompletedProcess:
    path = root / f"{name or cfg['decoder'] + '_ddp'}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
           "MASTER_ADDR": "127.0.0.1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "vla_eqm_train.cli", "train", "--config", str(path), "--no-progress"],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize("decoder", ["eqm", "fm"])
def test_two_gloo_processes_at_half_batch_reach_the_single_process_parameters(cache, decoder):
    single = Trainer(TrainConfig(**_config(cache, f"{decoder}_single", decoder)), progress=False)
    start = {k: v.clone() for k, v in single.model.state_dict().items()}
    single.fit()
    _torchrun(cache, _config(cache, f"{decoder}_ddp", decoder))

    state = torch.load(cache / f"{decoder}_ddp" / "run" / "train_state.pt", weights_only=True)
    assert state["step"] == STEPS
    moved = max(float((single.model.state_dict()[k] - start[k]).abs().max()) for k in start)
    assert moved > 100 * TOLERANCE  # training moved the weights far more than we tolerate
    rest, keys = worst_difference(single.model.state_dict(), state["model"])
    assert rest < TOLERANCE, f"DDP weights differ by {rest:.2e}"
    assert keys <= 2 * LR * STEPS
    # The exported EMA checkpoints agree too, and the logged losses are the global batch's.
    ema_single = load_file(cache / f"{decoder}_single" / "ckpt" / "model.safetensors")
    ema_ddp = load_file(cache / f"{decoder}_ddp" / "ckpt" / "model.safetensors")
    assert ema_single.keys() == ema_ddp.keys()
    rest, keys = worst_difference(ema_single, ema_ddp)
    assert rest < TOLERANCE and keys <= 2 * LR * STEPS
    losses = [v for _, v in single.history["train_loss"]]
    ddp_losses = [v for _, v in json.loads(state["history"])["train_loss"]]
    torch.testing.assert_close(torch.tensor(ddp_losses), torch.tensor(losses), atol=1e-5,
                               rtol=1e-5)


def test_a_batch_that_does_not_split_over_the_processes_is_refused(cache, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match="does not split over 3"):
        Trainer(TrainConfig(**_config(cache, "odd", "eqm")), progress=False)


def test_the_time_limit_stops_every_rank_at_the_same_step(cache):
    """Rank 0's clock decides for all ranks (a rank that stopped alone would leave the other
    blocked in the next all-reduce), and every rank leaves the process group cleanly, so
    torchrun reports success for a run cut short."""
    cfg = _config(cache, "limit_ddp", "eqm") | {"time_limit_min": 1e-6}
    proc = _torchrun(cache, cfg, "limit_ddp")
    assert "after the 1e-06 min time limit" in proc.stderr
    state = torch.load(cache / "limit_ddp" / "run" / "train_state.pt", weights_only=True)
    assert state["step"] == 1 < STEPS
