"""The EqM solver and the FM integrator, pinned on fields whose answers are known exactly."""

from __future__ import annotations

import math
import time

import pytest
import torch

from vla_eqm_ros.config import EqMConfig
from vla_eqm_ros.objectives import eqm_loss, eqm_target
from vla_eqm_ros.solvers import eqm_solve, fm_integrate, residual_norm

CFG = EqMConfig()


def oracle_eqm_field(data: torch.Tensor, gamma: float = 0.9):
    """The field the EqM objective asks for around one data chunk, built from ``eqm_target``.

    For x = gamma A + (1 - gamma) eps the noise is eps = (x - gamma A) / (1 - gamma), and the
    objective's target there is eqm_target(A, eps, gamma). If the target's sign were flipped, the
    descent solver would walk away from the data and the tests below would fail.
    """

    def field(x: torch.Tensor) -> torch.Tensor:
        g = torch.full((x.shape[0],), gamma)
        eps = (x - gamma * data) / (1.0 - gamma)
        return eqm_target(data.expand_as(x), eps, g, CFG)

    return field


def test_solver_started_from_noise_reaches_the_data_on_the_objectives_own_field():
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(1, 16, 4, generator=gen)
    x0 = torch.randn(1, 16, 4, generator=gen)
    res = eqm_solve(oracle_eqm_field(data), x0, step_size=0.05, momentum=0.3, tau=1e-4,
                    k_max=200)
    assert res.stop_reason == ["threshold"]
    assert torch.allclose(res.actions, data, atol=1e-4)


def test_solver_started_from_noise_reaches_the_data_of_a_tiny_model_fitted_in_the_test():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    data = torch.tensor([[[1.0, -1.0], [0.5, 0.5]]])  # one (H=2, d=2) chunk to learn
    net = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.SiLU(), torch.nn.Linear(64, 64),
                              torch.nn.SiLU(), torch.nn.Linear(64, 4))

    def field(x: torch.Tensor) -> torch.Tensor:
        return net(x.flatten(1)).view_as(x)

    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(600):
        loss, _ = eqm_loss(field, data.expand(256, -1, -1), CFG, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x0 = torch.randn(8, 2, 2, generator=gen)
    res = eqm_solve(field, x0, step_size=0.05, momentum=0.3, tau=0.05, k_max=300)
    start_error = (x0 - data).norm(dim=(1, 2))
    end_error = (res.actions - data).norm(dim=(1, 2))
    assert torch.all(end_error < 0.15), end_error
    assert torch.all(end_error < 0.2 * start_error)


def test_residual_is_the_rms_of_the_field_independent_of_horizon_and_action_size():
    for h, d in [(4, 2), (16, 7), (50, 14)]:
        f = torch.full((3, h, d), 0.25)
        assert torch.allclose(residual_norm(f), torch.full((3,), 0.25))
    f = torch.zeros(1, 4, 2)
    f[0, 0, 0] = 2.0
    assert math.isclose(float(residual_norm(f)[0]), 2.0 / math.sqrt(8), rel_tol=1e-6)


def test_first_residual_is_measured_at_the_initial_guess_and_a_met_threshold_costs_one_evaluation():
    calls = []

    def field(x):
        calls.append(x.clone())
        return 0.01 * torch.ones_like(x)

    x0 = torch.randn(1, 8, 3)
    res = eqm_solve(field, x0, step_size=0.05, momentum=0.3, tau=0.1, k_max=10)
    assert len(calls) == 1 and torch.equal(calls[0], x0)
    assert res.iterations.tolist() == [1] and res.stop_reason == ["threshold"]
    assert torch.equal(res.actions, x0)
    assert math.isclose(float(res.residual[0]), 0.01, rel_tol=1e-5)


def test_nesterov_iterates_match_the_paper_equations_by_hand():
    a = torch.tensor([[[2.0]]])

    def field(x):
        return 3.0 * (x - a) ** 3 + (x - a)  # nonlinear, so momentum matters

    x0 = torch.tensor([[[0.0]]])
    eta, mu = 0.05, 0.5
    x_prev, x, looks = x0.clone(), x0.clone(), []
    for _ in range(4):
        look = x + mu * (x - x_prev)
        looks.append(look)
        x_prev, x = x, look - eta * field(look)
    res = eqm_solve(field, x0, step_size=eta, momentum=mu, tau=0.0, k_max=4)
    assert res.stop_reason == ["k_max"] and res.iterations.tolist() == [4]
    assert torch.allclose(res.actions, looks[-1])  # the returned iterate is the last lookahead
    expected = [float(residual_norm(field(lk))[0]) for lk in looks]
    assert res.trace[0].tolist() == pytest.approx(expected, rel=1e-6)


def test_samples_in_a_batch_stop_on_their_own_residual_and_match_single_solves():
    targets = torch.tensor([0.0, 1.0, -3.0]).view(3, 1, 1) * torch.ones(3, 6, 2)
    gains = torch.tensor([20.0, 5.0, 2.0]).view(3, 1, 1)

    def field(x):
        return gains[: x.shape[0]] * (x - targets[: x.shape[0]])

    x0 = torch.randn(3, 6, 2, generator=torch.Generator().manual_seed(3)) * 2
    kw = dict(step_size=0.05, momentum=0.3, tau=0.01, k_max=400)
    batch = eqm_solve(field, x0, **kw)
    assert batch.stop_reason == ["threshold"] * 3
    its = batch.iterations.tolist()
    assert len(set(its)) == 3, its  # different depths in one batch
    for i in range(3):
        gi, ti = gains[i:i + 1], targets[i:i + 1]
        single = eqm_solve(lambda x, g=gi, t=ti: g * (x - t), x0[i:i + 1], **kw)
        assert single.iterations.tolist() == [its[i]]
        assert torch.allclose(batch.actions[i], single.actions[0], atol=1e-6)
        assert torch.isnan(batch.trace[i, its[i]:]).all()
        assert not torch.isnan(batch.trace[i, :its[i]]).any()


def test_a_deadline_stop_returns_a_finite_chunk_before_k_max():
    def slow_field(x):
        time.sleep(0.002)
        return 0.5 * (x - 1.0) + 0.3 * torch.sin(7 * x)

    x0 = torch.randn(2, 8, 4)
    for batch in (x0[:1], x0):
        res = eqm_solve(slow_field, batch, step_size=0.01, momentum=0.0, tau=0.0, k_max=10_000,
                        deadline_s=0.02)
        assert set(res.stop_reason) == {"deadline"}
        assert torch.isfinite(res.actions).all()
        assert 1 <= int(res.iterations.max()) < 100
        assert res.solve_ms < 200


def test_fm_with_n_steps_matches_hand_computed_euler():
    def v(x, t):
        return x * t[:, None, None] + 1.0

    x0 = torch.randn(2, 3, 2)
    steps = 4
    x, t = x0.clone(), 1.0
    for _ in range(steps):
        x = x + (-1.0 / steps) * (x * t + 1.0)
        t -= 1.0 / steps
    res = fm_integrate(v, x0, steps)
    assert torch.allclose(res.actions, x, atol=1e-6)
    assert res.iterations.tolist() == [steps, steps]
    assert res.stop_reason == ["fixed_steps"] * 2
    assert torch.isnan(res.residual).all() and res.trace.shape == (2, 0)


def test_fm_on_the_straight_path_field_lands_on_the_data():
    data = torch.randn(1, 5, 3)
    noise = torch.randn(1, 5, 3)
    res = fm_integrate(lambda x, t: noise - data, noise, 10)  # v = eps - A (openpi target)
    assert torch.allclose(res.actions, data, atol=1e-5)
