"""Warm-start initialization: which rows are reused, what the tail is, and that it saves depth."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vla_eqm_ros.config import EqMConfig, WarmStartConfig
from vla_eqm_ros.objectives import eqm_loss
from vla_eqm_ros.solvers import eqm_solve
from vla_eqm_ros.warm_start import WarmStartState, frozen_rows, init_chunk, reused_rows

H, D = 8, 2


def _state() -> WarmStartState:
    st = WarmStartState()
    st.update(torch.arange(H * D, dtype=torch.float32).view(1, H, D))  # row i = [2i, 2i+1]
    return st


def test_without_a_previous_chunk_every_mode_starts_from_the_noise():
    noise = torch.randn(1, H, D)
    for mode in ("none", "copy", "shifted"):
        x0, used = init_chunk(WarmStartState(), WarmStartConfig(mode=mode), noise, 1)
        assert not used and torch.equal(x0, noise)


def test_copy_reuses_the_first_rows_of_the_previous_chunk_as_in_the_paper():
    noise = torch.randn(1, H, D)
    st = _state()
    x0, used = init_chunk(st, WarmStartConfig("copy", 0.5, "noise"), noise, steps_executed=3)
    assert used
    assert torch.equal(x0[:, :4], st.previous[:, :4])
    assert torch.equal(x0[:, 4:], noise[:, 4:])


def test_shifted_advances_the_previous_chunk_by_the_steps_executed():
    noise = torch.randn(1, H, D)
    st = _state()
    x0, used = init_chunk(st, WarmStartConfig("shifted", 0.5, "noise"), noise, steps_executed=3)
    assert used
    assert torch.equal(x0[:, :4], st.previous[:, 3:7])
    assert torch.equal(x0[:, 4:], noise[:, 4:])


def test_shifted_reuse_is_capped_by_what_is_left_of_the_previous_chunk():
    noise = torch.randn(1, H, D)
    st = _state()
    x0, used = init_chunk(st, WarmStartConfig("shifted", 1.0, "hold"), noise, steps_executed=6)
    assert used
    assert torch.equal(x0[:, :2], st.previous[:, 6:8])
    assert torch.equal(x0[:, 2:], st.previous[:, 7:8].expand(-1, 6, -1))
    x0, used = init_chunk(st, WarmStartConfig("shifted", 1.0, "hold"), noise, steps_executed=H)
    assert not used and torch.equal(x0, noise)
    assert reused_rows(WarmStartConfig("shifted", 0.5), 16, 10) == (10, 6)


def test_hold_tail_repeats_the_last_reused_action():
    noise = torch.randn(1, H, D)
    st = _state()
    x0, _ = init_chunk(st, WarmStartConfig("copy", 0.25, "hold"), noise, steps_executed=1)
    assert torch.equal(x0[:, :2], st.previous[:, :2])
    assert torch.equal(x0[:, 2:], st.previous[:, 1:2].expand(-1, H - 2, -1))


def test_steps_executed_defaults_to_the_count_the_state_keeps_and_reset_forgets():
    noise = torch.zeros(1, H, D)
    st = _state()
    st.advance(2)
    x0, _ = init_chunk(st, WarmStartConfig("shifted", 0.5, "noise"), noise)
    assert torch.equal(x0[:, :4], st.previous[:, 2:6])
    st.reset()
    assert st.previous is None and st.steps_since == 0


def test_init_chunk_leaves_its_inputs_untouched():
    noise = torch.randn(1, H, D)
    keep = noise.clone()
    st = _state()
    prev = st.previous.clone()
    init_chunk(st, WarmStartConfig("shifted", 1.0, "hold"), noise, 1)
    assert torch.equal(noise, keep) and torch.equal(st.previous, prev)


# -------------------------------------------------------------- the toy experiment of issue #3

TOY_H, TOY_D, DT = 16, 4, 0.05
OMEGA = torch.tensor([1.3, 2.1, 2.9, 1.7])


def toy_chunk(t: torch.Tensor) -> torch.Tensor:
    """Chunk(t)[h] = sin(omega (t + h dt)): chunk(t + dt) is chunk(t) shifted."""
    ts = t[:, None] + DT * torch.arange(TOY_H)
    return torch.sin(ts[..., None] * OMEGA)  # (B, H, d)


def toy_condition(t: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.sin(t[:, None] * OMEGA), torch.cos(t[:, None] * OMEGA)], dim=1)


@pytest.fixture(scope="module")
def toy_field():
    return fit_toy_field()


def fit_toy_field() -> torch.nn.Module:
    """A 3-layer MLP EqM field f(A; c), fitted here on the smooth trajectories (a few seconds)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(TOY_H * TOY_D + 8, 192), torch.nn.SiLU(),
                              torch.nn.Linear(192, 192), torch.nn.SiLU(),
                              torch.nn.Linear(192, TOY_H * TOY_D))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 800)
    for _ in range(800):
        t = torch.rand(128, generator=gen) * 20
        cond = toy_condition(t)
        loss, _ = eqm_loss(lambda x, c=cond: net(torch.cat([x.flatten(1), c], 1)).view_as(x),
                           toy_chunk(t), EqMConfig(), generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    return net


def toy_closed_loop(net, ws: WarmStartConfig, cycles: int = 40, tau: float = 0.1):
    """One step executed per cycle; returns per-cycle iterations and errors to the true chunk."""
    gen = torch.Generator().manual_seed(1)
    st = WarmStartState()
    iters, errors = [], []
    t = torch.tensor([3.0])
    for _ in range(cycles):
        cond = toy_condition(t)
        x0, _ = init_chunk(st, ws, torch.randn(1, TOY_H, TOY_D, generator=gen), 1)
        res = eqm_solve(lambda x, c=cond: net(torch.cat([x.flatten(1), c], 1)).view_as(x), x0,
                        step_size=0.05, momentum=0.3, tau=tau, k_max=200)
        st.update(res.actions)
        iters.append(int(res.iterations[0]))
        errors.append(float((res.actions - toy_chunk(t)).pow(2).mean().sqrt()))
        t = t + DT
    return np.array(iters[2:]), np.array(errors[2:])


def test_on_correlated_conditions_warm_starts_need_fewer_iterations_than_cold(toy_field):
    cold, cold_err = toy_closed_loop(toy_field, WarmStartConfig("none"))
    copy, copy_err = toy_closed_loop(toy_field, WarmStartConfig("copy", 0.5, "noise"))
    shifted, sh_err = toy_closed_loop(toy_field, WarmStartConfig("shifted", 0.5, "noise"))
    hold, hold_err = toy_closed_loop(toy_field, WarmStartConfig("shifted", 0.5, "hold"))
    means = [cold.mean(), copy.mean(), shifted.mean(), hold.mean()]
    assert means[1] < means[0] and means[2] < means[0], means
    assert means[3] < means[2], means  # holding the tail beats noise on smooth motion
    cold_median = float(np.median(cold_err))
    assert cold_median < 0.35  # the fitted field decodes the trajectory (signal RMS is ~0.7)
    for err in (copy_err, sh_err, hold_err):  # warm starts save depth, not accuracy
        assert float(np.median(err)) < 1.25 * cold_median
    assert not math.isnan(cold_median)


def test_frozen_holds_its_first_rows_through_the_solve_and_fits_the_rest(toy_field):
    st = _state()
    ws = WarmStartConfig("frozen", 0.5, "hold", frozen_rows=2)
    noise = torch.randn(1, H, D)
    x0, used = init_chunk(st, ws, noise, steps_executed=3)
    assert used and torch.equal(x0[:, :4], st.previous[:, 3:7])  # the shifted guess
    assert frozen_rows(ws, H, 3, used) == 2
    assert frozen_rows(ws, H, 3, False) == 0  # nothing reused, nothing to hold
    assert frozen_rows(WarmStartConfig("shifted", 0.5), H, 3, True) == 0
    assert frozen_rows(WarmStartConfig("frozen", 1.0, frozen_rows=H), H, 0, True) == H - 1
    # on the fitted toy field: the held rows come back bit for bit, the others are solved
    cond = toy_condition(torch.tensor([3.0]))
    def field(x: torch.Tensor) -> torch.Tensor:
        c = cond.expand(x.shape[0], -1)
        return toy_field(torch.cat([x.flatten(1), c], 1)).view_as(x)

    guess = toy_chunk(torch.tensor([3.0 - DT])).clone()  # the last cycle's plan
    for batch in (1, 3):  # the control loop's path and the batched one
        x = guess.expand(batch, -1, -1).clone()
        res = eqm_solve(field, x, step_size=0.05, momentum=0.3, tau=0.0, k_max=30,
                        frozen_rows=2)
        assert torch.equal(res.actions[:, :2], x[:, :2])
        assert not torch.equal(res.actions[:, 2:], x[:, 2:])
        free = field(res.actions)[:, 2:]  # the residual is the free rows' own
        expected = torch.linalg.vector_norm(free.flatten(1), dim=1) / math.sqrt(free[0].numel())
        torch.testing.assert_close(res.residual, expected.float(), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="frozen_rows"):
        eqm_solve(field, guess, step_size=0.05, momentum=0.3, tau=0.0, k_max=3,
                  frozen_rows=TOY_H)
