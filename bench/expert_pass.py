"""One EqM solver iteration of the action expert against its FLOP bound, measured in one run.

An iteration is one expert pass over the H action tokens with the cached prefix K/V (B = 1, the
control loop's batch). Its arithmetic is counted from the architecture (every matmul and
attention product, 2 FLOP per multiply-add); the bound is that count at the GFLOP/s a
512x512x512 sgemm reaches on one thread of this machine, measured in the same run. The ratio
``ms_per_iteration / bound_ms`` says how far the pass is from compute: the gap is per-op
overhead (Python, dispatch, small-kernel launch).

Implementations, all on the same weights and inputs (their outputs are compared):

- ``module_calls``: the block as it was written before (every LayerNorm / Linear / MLP through
  its nn.Module ``__call__``), kept here as the reference;
- ``functional``: ``PI0EqMModel.field`` as shipped (the same ops as functional calls on the
  modules' tensors): what the policy runs;
- ``jit``: ``torch.jit.trace`` + ``freeze`` of the shipped expert (TorchScript).

``gemm_floor_ms`` times the pass's matrix products alone (the same shapes, back to back, no
other op): the time of the arithmetic at the efficiency one thread reaches on 16-row operands,
which is far below a 512x512 sgemm's. It shows how much of the gap per-op overhead can close.

    python bench/expert_pass.py [--checkpoint DIR] [--iterations 2000] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for pkg in ("vla_eqm_ros", "vla_eqm_sim", "vla_eqm_train"):
    sys.path.insert(0, str(ROOT / pkg))


def expert_flops(m, prefix_tokens: int) -> int:
    """FLOPs of one expert pass at B = 1 (matmuls and attention products)."""
    h, w, d = m.horizon, m.width, m.action_dim
    hidden = int(w * m.mlp_ratio)
    mm = lambda rows, k, n: 2 * rows * k * n  # noqa: E731
    per_block = (mm(h, w, 3 * w) + mm(h, w, w)            # self-attn qkv, proj
                 + 2 * mm(h, w, h)                        # q k^T and attn v (all heads)
                 + mm(h, w, w) + mm(h, w, w)              # cross q, proj
                 + 2 * mm(h, w, prefix_tokens)            # cross q k^T and attn v
                 + mm(h, w, hidden) + mm(h, hidden, w))   # MLP
    return m.depth * per_block + mm(h, d, w) + mm(h, w, d)


def sgemm_gflops(n: int = 512, reps: int = 50) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(5):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def module_calls(expert, a, kv):
    """The expert pass through nn.Module calls (the block as first written)."""
    import torch.nn.functional as F

    x = expert.action_in(a) + expert.pos
    for blk, (k, v) in zip(expert.blocks, kv.kv, strict=True):
        b, h, w = x.shape
        hd = w // blk.heads
        qkv = blk.qkv(blk.norm1(x)).view(b, h, 3, blk.heads, hd).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + blk.proj(y.transpose(1, 2).reshape(b, h, w))
        q = blk.q(blk.norm2(x)).view(b, h, blk.heads, hd).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=kv.mask)
        x = x + blk.cross_proj(y.transpose(1, 2).reshape(b, h, w))
        x = x + blk.mlp(blk.norm3(x))
    return expert.action_out(expert.norm_out(x))


def gemm_floor(m, prefix_tokens: int, iterations: int) -> float:
    """ms of the pass's matrix products alone (same shapes, preallocated outputs)."""
    h, w, d = m.horizon, m.width, m.action_dim
    hidden, hd = int(w * m.mlp_ratio), w // m.heads
    shapes = [(h, d, w), (h, w, d)] + m.depth * [(h, w, 3 * w), (h, w, w), (h, w, w), (h, w, w),
                                                 (h, w, hidden), (h, hidden, w)]
    mats = [(torch.randn(r, k), torch.randn(k, n), torch.empty(r, n)) for r, k, n in shapes]
    att = m.depth * [(h, h), (h, prefix_tokens)]
    bmms = [(torch.randn(m.heads, h, hd), torch.randn(m.heads, hd, p), torch.empty(m.heads, h, p),
             torch.randn(m.heads, p, hd), torch.empty(m.heads, h, hd)) for _, p in att]

    def run(_):
        for a, b, out in mats:
            torch.mm(a, b, out=out)
        for q, kt, s, v, o in bmms:
            torch.bmm(q, kt, out=s)
            torch.bmm(s, v, out=o)

    return time_per_call(run, None, iterations)[0]


def time_per_call(fn, x, iterations: int) -> tuple[float, float]:
    """(p50, p10) ms per call over blocks of 50 calls (the median block: noise-robust)."""
    for _ in range(50):
        fn(x)
    blocks = []
    for _ in range(max(1, iterations // 50)):
        t0 = time.perf_counter()
        for _ in range(50):
            fn(x)
        blocks.append((time.perf_counter() - t0) / 50 * 1e3)
    return float(np.median(blocks)), float(np.percentile(blocks, 10))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="default: the shipped default_eqm")
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from vla_eqm_ros.observation import Observation
    from vla_eqm_ros.policy import DEFAULT_CHECKPOINT, Policy

    policy = Policy.from_checkpoint(args.checkpoint or DEFAULT_CHECKPOINT, seed=0)
    model, m = policy.model, policy.config.model
    obs = Observation(images={c.name: np.zeros((c.height, c.width, 3), np.uint8)
                              for c in m.cameras},
                      state=np.zeros(m.state_dim, np.float32), goal="press the button")
    with torch.inference_mode():
        prefix = model.encode_prefix(policy.observation_batch([obs]))
        x = torch.randn(1, m.horizon, m.action_dim)
        reference = lambda a: module_calls(model.expert, a, prefix.kv)  # noqa: E731
        shipped = lambda a: model.field(a, prefix)  # noqa: E731
        kv = [t for pair in prefix.kv.kv for t in pair]

        class Traced(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.expert = model.expert

            def forward(self, a, *flat):
                from vla_eqm_ros.action_expert import PrefixKV

                pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
                return self.expert(a, PrefixKV(pairs, None))

    with torch.no_grad():  # tracing records ops: plain tensors, not inference-mode ones
        example = (x.clone(), *(t.clone() for t in kv))
        traced = torch.jit.freeze(torch.jit.trace(Traced().eval(), example))
    with torch.inference_mode():
        jit = lambda a: traced(a, *kv)  # noqa: E731
        ref = reference(x)
        agree = {name: float((fn(x) - ref).abs().max()) for name, fn in
                 (("functional", shipped), ("jit", jit))}
        timings = {name: time_per_call(fn, x, args.iterations) for name, fn in
                   (("module_calls", reference), ("functional", shipped), ("jit", jit))}
    tokens = int(prefix.kv.kv[0][0].shape[2])
    floor_ms = gemm_floor(m, tokens, args.iterations)
    flops = expert_flops(m, tokens)
    gflops = sgemm_gflops()
    bound_ms = flops / (gflops * 1e9) * 1e3
    out = {
        "checkpoint": str(args.checkpoint or DEFAULT_CHECKPOINT),
        "architecture": {"horizon": m.horizon, "width": m.width, "depth": m.depth,
                         "heads": m.heads, "mlp_ratio": m.mlp_ratio, "prefix_tokens": tokens},
        "torch_threads": args.threads,
        "mflop_per_iteration": round(flops / 1e6, 3),
        "sgemm_512_gflops": round(gflops, 1),
        "flop_bound_ms": round(bound_ms, 4),
        "ms_per_iteration": {k: round(v[0], 4) for k, v in timings.items()},
        "ms_per_iteration_p10": {k: round(v[1], 4) for k, v in timings.items()},
        "ratio_to_bound": {k: round(v[0] / bound_ms, 2) for k, v in timings.items()},
        "gemm_floor_ms": round(floor_ms, 4),
        "gemm_floor_ratio_to_bound": round(floor_ms / bound_ms, 2),
        "max_abs_diff_vs_module_calls": agree,
        "torch": torch.__version__,
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
