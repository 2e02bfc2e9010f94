"""Training objectives: Equilibrium Matching and the flow-matching baseline.

Sign convention (the paper's Eq. 1 has it backwards together with its Eq. 3): the EqM target is
``w(gamma) * (eps - A)``, which points from the data toward the noise, so the descent update
``A <- A~ - eta * f(A~)`` of ``solvers.eqm_solve`` walks toward the data. The FM target is the same
direction ``eps - A`` (openpi), integrated from t = 1 (noise) to t = 0 (data) with ``dt = -1/N``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from vla_eqm_ros.config import EqMConfig, FMConfig


def _expand(scalar_per_sample: Tensor, like: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1) so it broadcasts over the (B, H, d) chunk."""
    return scalar_per_sample.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)


# ----------------------------------------------------------------------------------------- EqM


def eqm_weight(gamma: Tensor, lam: float, a: float) -> Tensor:
    """w(gamma) = lam * min(1, (1 - gamma) / (1 - a)): constant, then linear to 0 at gamma = 1.

    The decay is what makes the data an equilibrium: the target magnitude vanishes on the data.
    """
    return lam * torch.clamp((1.0 - gamma) / (1.0 - a), max=1.0)


def eqm_interpolant(actions: Tensor, noise: Tensor, gamma: Tensor) -> Tensor:
    """A_gamma = gamma * A + (1 - gamma) * eps; gamma = 1 is the data, gamma = 0 pure noise."""
    g = _expand(gamma, actions)
    return g * actions + (1.0 - g) * noise


def eqm_target(actions: Tensor, noise: Tensor, gamma: Tensor, cfg: EqMConfig) -> Tensor:
    """w(gamma) * (eps - A): the gradient of an implicit energy that is zero on the data."""
    return _expand(eqm_weight(gamma, cfg.lam, cfg.a), actions) * (noise - actions)


def _beta_sample(n: int, alpha: float, beta: float,
                 generator: torch.Generator | None) -> Tensor:
    """n draws of Beta(alpha, beta). torch's Beta sampler cannot take a generator; with one, we
    seed a forked global RNG from it, so training stays reproducible without touching the
    caller's global random state."""
    a, b = torch.tensor(float(alpha)), torch.tensor(float(beta))
    if generator is None:
        return torch.distributions.Beta(a, b).sample((n,))
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.distributions.Beta(a, b).sample((n,))


def eqm_sample_gamma(n: int, cfg: EqMConfig, generator: torch.Generator | None = None) -> Tensor:
    """gamma for n training rows: U(0, 1) (the paper) or Beta(gamma_alpha, gamma_beta)."""
    if cfg.gamma_dist == "beta":
        return _beta_sample(n, cfg.gamma_alpha, cfg.gamma_beta, generator)
    return torch.rand((n,), generator=generator)


def eqm_loss(
    field: Callable[[Tensor], Tensor],
    actions: Tensor,
    cfg: EqMConfig,
    *,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Mean squared error between f(A_gamma) and the EqM target, gamma ~ U(0, 1), eps ~ N(0, I).

    actions: (B, H, d) normalized demonstration chunks; field maps (B, H, d) -> (B, H, d).
    """
    b = actions.shape[0]
    noise = torch.randn(actions.shape, generator=generator, device=actions.device,
                        dtype=actions.dtype)
    gamma = eqm_sample_gamma(b, cfg, generator).to(device=actions.device, dtype=actions.dtype)
    pred = field(eqm_interpolant(actions, noise, gamma))
    loss = torch.mean((pred - eqm_target(actions, noise, gamma, cfg)) ** 2)
    return loss, {"loss": float(loss.detach())}


# ------------------------------------------------------------------------------------------ FM


def fm_sample_time(
    batch: int, cfg: FMConfig, *, device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> Tensor:
    """t ~ Beta(alpha, beta) * 0.999 + 0.001 (openpi pi0): weighted toward t = 1, the noisy end."""
    t = _beta_sample(batch, cfg.beta_alpha, cfg.beta_beta, generator)
    return (t * 0.999 + 0.001).to(device)


def fm_interpolant(actions: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """x_t = t * eps + (1 - t) * A (openpi); t = 1 is noise, t = 0 the data."""
    tt = _expand(t, actions)
    return tt * noise + (1.0 - tt) * actions


def fm_target(actions: Tensor, noise: Tensor) -> Tensor:
    """u = eps - A, the constant velocity of the straight path (openpi)."""
    return noise - actions


def fm_loss(
    field: Callable[[Tensor, Tensor], Tensor],
    actions: Tensor,
    cfg: FMConfig,
    *,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Mean squared error between v(x_t, t) and eps - A; field: ((B, H, d), (B,)) -> (B, H, d)."""
    noise = torch.randn(actions.shape, generator=generator, device=actions.device,
                        dtype=actions.dtype)
    t = fm_sample_time(actions.shape[0], cfg, device=actions.device, generator=generator)
    t = t.to(actions.dtype)
    pred = field(fm_interpolant(actions, noise, t), t)
    loss = torch.mean((pred - fm_target(actions, noise)) ** 2)
    return loss, {"loss": float(loss.detach())}
