"""The two decoders' inner loops, written once: EqM equilibrium solving and FM Euler integration.

Both take a field callable that closes over a cached observation prefix, so one iteration costs one
action-expert pass, and both return the same ``SolveResult`` so that callers (policy, node,
benchmarks) treat the decoders alike.

Conventions (pinned by test_solvers.py):
- iterations = field evaluations. EqM stops at the first k with r_k <= tau; if the initial guess
  already satisfies it, that costs exactly one evaluation.
- The returned iterate is the lookahead point A~_k at which the last residual r_k was measured, so
  ``residual`` is the residual of the returned chunk (DecoderStatus.residual promises that).
- A deadline is checked after every evaluation; the solve then returns its current iterate
  (anytime decoding): EqM iterates carry no time semantics, so every iterate is a valid chunk.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

STOP_THRESHOLD = "threshold"
STOP_K_MAX = "k_max"
STOP_DEADLINE = "deadline"
STOP_FIXED_STEPS = "fixed_steps"


@dataclass
class SolveResult:
    """One (batched) decode: chunk, depth, residuals and why each sample stopped."""

    actions: Tensor  # (B, H, d) in the field's (normalized) action space
    iterations: Tensor  # (B,) int64, field evaluations spent on each sample
    residual: Tensor  # (B,) r at the returned iterate (NaN for FM)
    trace: Tensor  # (B, K) r_k per evaluation; NaN after a sample stopped (FM: K = 0)
    stop_reason: list[str]  # per sample: threshold | k_max | deadline | fixed_steps
    solve_ms: float  # wall clock of the whole loop


def residual_norm(f: Tensor) -> Tensor:
    """r = ||f||_2 / sqrt(H * d) per sample (paper Eq. 4): an RMS, comparable across H and d."""
    return torch.linalg.vector_norm(f.flatten(1), dim=1) / math.sqrt(f[0].numel())


@torch.no_grad()  # not inference_mode: an EqM-E field needs autograd (under the caller's mode)
def eqm_solve(
    field: Callable[[Tensor], Tensor],
    x0: Tensor,
    *,
    step_size: float,
    momentum: float,
    tau: float | Tensor,
    k_max: int,
    deadline_s: float | None = None,
    frozen_rows: int = 0,
) -> SolveResult:
    """Nesterov lookahead descent on the EqM field (paper Eqs. 2-4), stopping per sample.

    A~_k = A_k + mu (A_k - A_{k-1}),  r_k = ||f(A~_k)|| / sqrt(H d),  A_{k+1} = A~_k - eta f(A~_k),
    with A_{-1} = A_0. Stopped samples are frozen (masked), still evaluated with the batch.
    ``deadline_s`` is a budget in seconds from the call (None or <= 0: no deadline). ``tau``
    is one threshold or one per sample (B,): a batch of goals with their own thresholds.
    ``frozen_rows`` leading rows of ``x0`` stay fixed (the ``frozen`` warm start): they condition
    the rest through the field, and the residual is measured over the free rows only.
    """
    start = time.perf_counter()
    if k_max < 1:
        raise ValueError(f"k_max must be >= 1, got {k_max}")
    if not 0 <= frozen_rows < x0.shape[1]:
        raise ValueError(f"frozen_rows must be in [0, H={x0.shape[1]}), got {frozen_rows}")
    if x0.shape[0] == 1:
        return _eqm_solve_single(field, x0, step_size, momentum, float(tau), k_max, start,
                                 deadline_s, frozen_rows)
    b = x0.shape[0]
    x = x0.clone()
    x_prev = x.clone()
    out = x.clone()
    trace = torch.full((b, k_max), float("nan"), dtype=torch.float32)
    iterations = torch.zeros(b, dtype=torch.int64)
    residual = torch.full((b,), float("nan"), dtype=torch.float32)
    reasons = [STOP_K_MAX] * b
    active = torch.ones(b, dtype=torch.bool)
    end = _deadline(start, deadline_s)
    k_done = 0
    for k in range(k_max):
        look = x + momentum * (x - x_prev)  # A~_k (Eq. 2)
        f = field(look)
        r = residual_norm(f[:, frozen_rows:]).float().cpu()  # r_k (Eq. 4), over the free rows
        k_done = k + 1
        trace[:, k] = torch.where(active, r, trace[:, k])
        residual = torch.where(active, r, residual)
        iterations += active.to(torch.int64)
        mask = active.to(look.device).reshape(b, *([1] * (look.dim() - 1)))
        out = torch.where(mask, look, out)
        hit = active & (r <= tau)
        for i in hit.nonzero().flatten().tolist():
            reasons[i] = STOP_THRESHOLD
        active = active & ~hit
        if not bool(active.any()):
            break
        if time.perf_counter() >= end:
            for i in active.nonzero().flatten().tolist():
                reasons[i] = STOP_DEADLINE
            break
        mask = active.to(look.device).reshape(b, *([1] * (look.dim() - 1)))
        x_new = torch.where(mask, look - step_size * f, x)  # A_{k+1} (Eq. 3), frozen if stopped
        x_new[:, :frozen_rows] = x0[:, :frozen_rows]
        x_prev = torch.where(mask, x, x_prev)
        x = x_new
    return SolveResult(
        actions=out,
        iterations=iterations,
        residual=residual,
        trace=trace[:, :k_done].clone(),
        stop_reason=reasons,
        solve_ms=(time.perf_counter() - start) * 1e3,
    )


def _deadline(start: float, deadline_s: float | None) -> float:
    return start + deadline_s if deadline_s is not None and deadline_s > 0 else math.inf


def _eqm_solve_single(
    field: Callable[[Tensor], Tensor], x0: Tensor, step_size: float, momentum: float,
    tau: float, k_max: int, start: float, deadline_s: float | None, frozen: int = 0,
) -> SolveResult:
    """B = 1 (the control loop): same math, no masking, one host sync (the residual) per step."""
    end = _deadline(start, deadline_s)
    scale = 1.0 / math.sqrt(x0[:, frozen:].numel())
    x = x0.clone()
    x_prev = x
    trace: list[float] = []
    reason = STOP_K_MAX
    look = x
    for _ in range(k_max):
        look = torch.add(x, x - x_prev, alpha=momentum) if momentum else x  # Eq. 2
        f = field(look)
        r = float(torch.linalg.vector_norm(f[:, frozen:] if frozen else f)) * scale  # Eq. 4
        trace.append(r)
        if r <= tau:
            reason = STOP_THRESHOLD
            break
        if time.perf_counter() >= end:
            reason = STOP_DEADLINE
            break
        x_prev, x = x, torch.add(look, f, alpha=-step_size)  # Eq. 3
        if frozen:
            x[:, :frozen] = x0[:, :frozen]
    return SolveResult(
        actions=look,
        iterations=torch.tensor([len(trace)], dtype=torch.int64),
        residual=torch.tensor([trace[-1]], dtype=torch.float32),
        trace=torch.tensor([trace], dtype=torch.float32),
        stop_reason=[reason],
        solve_ms=(time.perf_counter() - start) * 1e3,
    )


@torch.no_grad()
def fm_integrate(field: Callable[[Tensor, Tensor], Tensor], x0: Tensor, steps: int) -> SolveResult:
    """Euler from t = 1 (noise) to t = 0 (data): x <- x + dt * v(x, t), dt = -1/N (openpi pi0)."""
    start = time.perf_counter()
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    b = x0.shape[0]
    dt = -1.0 / steps
    x = x0.clone()
    for i in range(steps):
        t = torch.full((b,), 1.0 + i * dt, dtype=x.dtype, device=x.device)
        x = x + dt * field(x, t)
    return SolveResult(
        actions=x,
        iterations=torch.full((b,), steps, dtype=torch.int64),
        residual=torch.full((b,), float("nan")),
        trace=torch.zeros((b, 0)),
        stop_reason=[STOP_FIXED_STEPS] * b,
        solve_ms=(time.perf_counter() - start) * 1e3,
    )
