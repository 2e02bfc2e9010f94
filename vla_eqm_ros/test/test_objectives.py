"""EqM and FM objectives: the schedule, the sign, the endpoints and the time distribution."""

from __future__ import annotations

import torch

from vla_eqm_ros.config import EqMConfig, FMConfig
from vla_eqm_ros.objectives import (
    eqm_interpolant,
    eqm_loss,
    eqm_target,
    eqm_weight,
    fm_interpolant,
    fm_loss,
    fm_sample_time,
    fm_target,
)


def test_eqm_weight_is_lambda_until_a_then_decays_linearly_to_zero():
    g = torch.tensor([0.0, 0.5, 0.8, 0.9, 1.0])
    assert torch.allclose(eqm_weight(g, 4.0, 0.8), torch.tensor([4.0, 4.0, 4.0, 2.0, 0.0]))


def test_eqm_target_vanishes_at_gamma_one_where_the_interpolant_is_the_data():
    a, eps = torch.randn(3, 8, 2), torch.randn(3, 8, 2)
    one = torch.ones(3)
    assert torch.equal(eqm_target(a, eps, one, EqMConfig()), torch.zeros_like(a))
    assert torch.allclose(eqm_interpolant(a, eps, one), a)
    assert torch.allclose(eqm_interpolant(a, eps, torch.zeros(3)), eps)


def test_eqm_target_points_from_the_data_toward_the_noise():
    a, eps = torch.randn(4, 8, 2), torch.randn(4, 8, 2)
    tgt = eqm_target(a, eps, torch.full((4,), 0.3), EqMConfig())
    assert torch.allclose(tgt, 4.0 * (eps - a))


def test_eqm_loss_is_the_mean_squared_error_to_the_target():
    a = torch.randn(5, 4, 3)
    gen = torch.Generator().manual_seed(0)
    loss, metrics = eqm_loss(lambda x: torch.zeros_like(x), a, EqMConfig(), generator=gen)
    gen = torch.Generator().manual_seed(0)
    eps = torch.randn(a.shape, generator=gen)
    gamma = torch.rand((5,), generator=gen)
    expected = eqm_target(a, eps, gamma, EqMConfig()).pow(2).mean()
    assert torch.allclose(loss, expected) and metrics["loss"] == float(loss)


def test_fm_time_follows_beta_one_point_five_one_toward_the_noisy_end():
    t = fm_sample_time(20000, FMConfig(), generator=torch.Generator().manual_seed(0))
    assert float(t.min()) >= 0.001 and float(t.max()) <= 1.0
    assert abs(float(t.mean()) - (0.6 * 0.999 + 0.001)) < 0.01  # E[Beta(1.5, 1)] = 0.6
    again = fm_sample_time(20000, FMConfig(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(t, again)


def test_fm_interpolant_is_noise_at_one_and_data_at_zero_with_target_noise_minus_data():
    a, eps = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    assert torch.allclose(fm_interpolant(a, eps, torch.ones(2)), eps)
    assert torch.allclose(fm_interpolant(a, eps, torch.zeros(2)), a)
    assert torch.equal(fm_target(a, eps), eps - a)


def test_fm_loss_is_zero_for_the_exact_velocity_of_each_sample():
    a = torch.randn(3, 4, 2)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(a.shape, generator=torch.Generator().manual_seed(0))
    loss, _ = fm_loss(lambda x, t: noise - a, a, FMConfig(), generator=gen)
    assert float(loss) < 1e-12


def test_gamma_can_be_drawn_from_a_beta_that_leans_toward_the_data_reproducibly():
    import pytest

    from vla_eqm_ros.objectives import eqm_sample_gamma

    cfg = EqMConfig(gamma_dist="beta", gamma_alpha=4.0, gamma_beta=1.0)
    g1 = eqm_sample_gamma(20000, cfg, torch.Generator().manual_seed(3))
    g2 = eqm_sample_gamma(20000, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(g1, g2) and float(g1.min()) >= 0.0 and float(g1.max()) <= 1.0
    assert abs(float(g1.mean()) - 0.8) < 0.01  # Beta(4, 1) has mean 4 / 5
    uniform = eqm_sample_gamma(20000, EqMConfig(), torch.Generator().manual_seed(3))
    assert abs(float(uniform.mean()) - 0.5) < 0.01
    with pytest.raises(ValueError, match="gamma_dist"):
        EqMConfig(gamma_dist="lognormal")
