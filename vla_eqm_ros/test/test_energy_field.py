"""EqM-E: the field is the gradient of a learned scalar energy (the EqM reference code's explicit
variant). The gradient is exact, training backpropagates through it, and the policy decodes with
it although decoding otherwise runs under inference_mode."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vla_eqm_ros.config import get_preset
from vla_eqm_ros.model import PI0EqMModel
from vla_eqm_ros.observation import Observation
from vla_eqm_ros.policy import Policy


def _model(energy: str) -> PI0EqMModel:
    cfg = get_preset("debug")
    torch.manual_seed(0)
    return PI0EqMModel(cfg.replace(eqm=dataclasses.replace(cfg.eqm, energy=energy)))


def _batch(model: PI0EqMModel, b: int = 3) -> dict:
    gen = torch.Generator().manual_seed(1)
    batch = {"images": {"corner": torch.randint(0, 255, (b, 32, 32, 3), dtype=torch.uint8,
                                                generator=gen)},
             "state": torch.randn(b, 4, generator=gen),
             "actions": torch.randn(b, 8, 4, generator=gen)}
    batch.update(model.goal_features(["press the button"] * b))
    return batch


@pytest.mark.parametrize("energy", ["dot", "l2"])
def test_the_field_is_the_exact_gradient_of_the_energy(energy):
    model = _model(energy).eval()
    with torch.no_grad():
        prefix = model.encode_prefix(_batch(model))
    a = torch.randn(3, 8, 4, generator=torch.Generator().manual_seed(2))
    direction = torch.randn_like(a)
    with torch.no_grad():
        field = model.field(a, prefix)

        def g(x):
            f = model.expert(x, prefix.kv, None)
            return ((x * f).flatten(1).sum(1) if energy == "dot"
                    else -0.5 * (f * f).flatten(1).sum(1))

        eps = 1e-2  # float32: central differences, error O(eps^2) on a smooth energy
        numeric = (g(a + eps * direction) - g(a - eps * direction)) / (2 * eps)
    analytic = (field * direction).flatten(1).sum(1)
    torch.testing.assert_close(analytic, numeric, rtol=1e-2, atol=1e-3)


def test_training_backpropagates_through_the_energy_gradient():
    model = _model("dot")
    loss, _ = model(_batch(model), torch.Generator().manual_seed(0))
    loss.backward()
    expert_grads = [p.grad for p in model.expert.parameters() if p.grad is not None]
    assert expert_grads and all(torch.isfinite(g).all() for g in expert_grads)
    assert sum(float(g.abs().sum()) for g in expert_grads) > 0


def test_the_policy_decodes_an_energy_model_and_reports_its_iterations():
    policy = Policy(_model("dot"), seed=0)
    obs = Observation(images={"corner": np.zeros((32, 32, 3), np.uint8)},
                      state=np.zeros(4, np.float32), goal="press the button")
    chunk, record = policy.predict_action_chunk(obs)
    assert chunk.shape == (8, 4) and np.isfinite(chunk).all()
    assert 1 <= record.iterations <= policy.config.solver.k_max
    with pytest.raises(ValueError, match="energy"):
        dataclasses.replace(policy.config.eqm, energy="quadratic")
