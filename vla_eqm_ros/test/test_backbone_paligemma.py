"""The PaliGemma backbone option, exercised end to end with a tiny random model built here.

No real PaliGemma weights exist on this machine (and none may be downloaded), so the test builds a
tiny randomly initialized PaliGemmaConfig (SigLIP + Gemma), saves it with ``save_pretrained`` into
a temporary directory, and loads it through the production code path (``from_pretrained`` with
``local_files_only=True``). The tiny model has no tokenizer, so the test passes a byte-level
tokenizer; real checkpoints use the tokenizer saved next to the weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vla_eqm_ros.config import CameraConfig, ModelConfig, PolicyConfig
from vla_eqm_ros.model import PI0EqMModel
from vla_eqm_ros.observation import Observation
from vla_eqm_ros.policy import Policy

VOCAB = 300
IMAGE_TOKEN = VOCAB - 1


def byte_tokenizer(goals: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Bytes of the goal (mod 256, offset past the special ids), right-padded with a mask."""
    rows = [[2] + [3 + (b % 250) for b in g.encode()][:15] for g in goals]
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = True
    return ids, mask


@pytest.fixture(scope="module")
def tiny_paligemma(tmp_path_factory):
    from transformers import (
        GemmaConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        SiglipVisionConfig,
    )

    torch.manual_seed(0)
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                num_attention_heads=2, image_size=28, patch_size=14)
    text = GemmaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                       num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                       head_dim=16)
    cfg = PaliGemmaConfig(vision_config=vision.to_dict(), text_config=text.to_dict(),
                          image_token_index=IMAGE_TOKEN, projection_dim=32)
    path = tmp_path_factory.mktemp("tiny_paligemma")
    PaliGemmaForConditionalGeneration(cfg).save_pretrained(path)
    return path


def _config(path, freeze: bool = True) -> PolicyConfig:
    model = ModelConfig(cameras=(CameraConfig("corner", 40, 40), CameraConfig("wrist", 24, 32)),
                        image_size=32, state_dim=3, action_dim=2, horizon=4, width=32, depth=1,
                        heads=2, backbone="paligemma", backbone_path=str(path),
                        freeze_backbone=freeze)
    return PolicyConfig(model=model, execute_steps=1)


def _obs(goal: str = "pick up the cube") -> Observation:
    rng = np.random.default_rng(0)
    return Observation(images={"corner": rng.integers(0, 255, (40, 40, 3), dtype=np.uint8),
                               "wrist": rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)},
                       state=np.array([0.1, -0.2, 0.3], np.float32), goal=goal)


def test_a_policy_on_a_local_paligemma_decodes_a_finite_chunk(tiny_paligemma):
    model = PI0EqMModel(_config(tiny_paligemma), tokenizer=byte_tokenizer)
    policy = Policy(model, seed=0)
    chunk, rec = policy.predict_action_chunk(_obs())
    assert chunk.shape == (4, 2) and np.isfinite(chunk).all()
    assert rec.iterations >= 1 and rec.prefix_ms > 0
    n_tokens = 2 * (28 // 14) ** 2 + len(byte_tokenizer(["pick up the cube"])[0][0]) + 1
    batch = policy.observation_batch([_obs()])
    with torch.inference_mode():
        assert model.encode_prefix(batch).tokens.shape == (1, n_tokens, 32)


def test_padded_goal_tokens_are_masked_out_of_the_prefix(tiny_paligemma):
    model = PI0EqMModel(_config(tiny_paligemma), tokenizer=byte_tokenizer).eval()
    policy = Policy(model, seed=0)
    batch = policy.observation_batch([_obs("go"), _obs("a much longer goal")])
    with torch.inference_mode():
        prefix = model.encode_prefix(batch)
    mask = prefix.kv.mask[:, 0, 0]
    assert mask[0].sum() < mask[1].sum() and bool(mask[:, -1].all())  # state token always valid


def test_a_frozen_backbone_is_reloaded_from_its_directory_not_stored(tiny_paligemma, tmp_path):
    from vla_eqm_ros.checkpoint import load_checkpoint, save_checkpoint

    model = PI0EqMModel(_config(tiny_paligemma), tokenizer=byte_tokenizer)
    assert not any(p.requires_grad for p in model.prefix_encoder.vlm.parameters())
    assert not any(k.startswith("prefix_encoder.vlm.") for k in model.persistent_state_dict())
    save_checkpoint(tmp_path / "ckpt", model)
    _, loaded = load_checkpoint(tmp_path / "ckpt", tokenizer=byte_tokenizer)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_a_trainable_backbone_gets_gradients_and_is_stored(tiny_paligemma):
    model = PI0EqMModel(_config(tiny_paligemma, freeze=False), tokenizer=byte_tokenizer)
    policy = Policy(model, seed=0)
    batch = policy.observation_batch([_obs(), _obs("place it")])
    batch["actions"] = torch.zeros(2, 4, 2)
    model.train()
    loss, _ = model(batch)
    loss.backward()
    grads = [p.grad for p in model.prefix_encoder.vlm.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    assert any(k.startswith("prefix_encoder.vlm.") for k in model.persistent_state_dict())


def test_a_directory_without_weights_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        PI0EqMModel(_config(tmp_path), tokenizer=byte_tokenizer)
