"""PI0EqMModel on the debug preset: shapes, the cached prefix, time handling, a training step."""

from __future__ import annotations

import torch

from vla_eqm_ros.config import get_preset
from vla_eqm_ros.model import PI0EqMModel


def _batch(cfg, b: int = 2, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    m = cfg.model
    cam = m.cameras[0]
    return {
        "images": {cam.name: torch.randint(0, 256, (b, cam.height, cam.width, 3), generator=gen,
                                           dtype=torch.uint8)},
        "state": torch.randn(b, m.state_dim, generator=gen),
        "goal_embedding": torch.nn.functional.normalize(torch.randn(b, 384, generator=gen), dim=-1),
        "actions": torch.randn(b, m.horizon, m.action_dim, generator=gen),
    }


def test_field_maps_a_chunk_to_a_chunk_of_the_same_shape():
    cfg = get_preset("debug")
    model = PI0EqMModel(cfg).eval()
    batch = _batch(cfg, 3)
    with torch.inference_mode():
        prefix = model.encode_prefix(batch)
        out = model.field(batch["actions"], prefix)
    m = cfg.model
    assert out.shape == (3, m.horizon, m.action_dim)
    assert prefix.tokens.shape == (3, m.vision_grid ** 2 + m.language_tokens + 1, m.width)
    assert len(prefix.kv.kv) == m.depth


def test_the_cached_prefix_gives_the_same_field_as_encoding_again():
    cfg = get_preset("debug")
    model = PI0EqMModel(cfg).eval()
    batch = _batch(cfg)
    a = torch.randn(2, cfg.model.horizon, cfg.model.action_dim)
    with torch.inference_mode():
        prefix = model.encode_prefix(batch)
        first = [model.field(a, prefix) for _ in range(3)]
        again = model.field(a, model.encode_prefix(batch))
    assert all(torch.equal(first[0], f) for f in first)
    assert torch.allclose(first[0], again, atol=1e-6)


def test_the_field_depends_on_the_observation_and_on_the_actions():
    cfg = get_preset("debug")
    model = PI0EqMModel(cfg).eval()
    a = torch.randn(2, cfg.model.horizon, cfg.model.action_dim)
    with torch.inference_mode():
        p0 = model.encode_prefix(_batch(cfg, seed=0))
        p1 = model.encode_prefix(_batch(cfg, seed=1))
        assert not torch.allclose(model.field(a, p0), model.field(a, p1))
        assert not torch.allclose(model.field(a, p0), model.field(a + 1.0, p0))


def test_eqm_has_no_time_input_and_fm_mixes_in_a_time_embedding():
    eqm = PI0EqMModel(get_preset("debug"))
    fm = PI0EqMModel(get_preset("debug").replace(decoder="fm"))
    assert eqm.expert.time_mlp is None and fm.expert.time_mlp is not None
    batch = _batch(fm.config)
    a = batch["actions"]
    with torch.inference_mode():
        prefix = fm.encode_prefix(batch)
        v0 = fm.field(a, prefix, torch.zeros(2))
        v1 = fm.field(a, prefix, torch.ones(2))
    assert not torch.allclose(v0, v1)


def test_training_steps_reduce_the_loss_on_a_fixed_batch_and_leave_minilm_out_of_the_weights():
    torch.manual_seed(0)
    cfg = get_preset("debug")
    model = PI0EqMModel(cfg)
    batch = _batch(cfg, 8)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(30):
        loss, metrics = model(batch, generator=torch.Generator().manual_seed(step % 2), repeats=4)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(metrics["loss"])
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-4:]) < sum(losses[:4])
    assert not any("minilm" in k.lower() or "bert" in k.lower() for k in model.state_dict())


def test_the_fm_baseline_trains_through_the_same_forward():
    cfg = get_preset("debug").replace(decoder="fm")
    model = PI0EqMModel(cfg)
    loss, metrics = model(_batch(cfg, 4), generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and metrics["loss"] > 0
    assert model.expert.time_mlp[0].weight.grad is not None
