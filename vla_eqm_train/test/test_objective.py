"""The masked training objective and the random-shift augmentation."""

from __future__ import annotations

import torch

from vla_eqm_ros.config import get_preset
from vla_eqm_ros.model import PI0EqMModel
from vla_eqm_train.data.augment import random_shift
from vla_eqm_train.training.objective import MaskedObjective, masked_mse


def _batch(model: PI0EqMModel, b: int = 3) -> dict:
    m = model.config.model
    g = torch.Generator().manual_seed(0)
    cam = m.cameras[0]
    batch = {"images": {cam.name: torch.randint(0, 255, (b, cam.height, cam.width, 3),
                                                generator=g, dtype=torch.uint8)},
             "state": torch.randn(b, m.state_dim, generator=g),
             "actions": torch.randn(b, m.horizon, m.action_dim, generator=g)}
    batch.update(model.goal_features(["press the button"] * b))
    return batch


def test_with_nothing_masked_the_eqm_loss_equals_the_cores_loss_for_the_same_noise():
    torch.manual_seed(0)
    model = PI0EqMModel(get_preset("debug"))
    batch = _batch(model)
    mask = torch.ones(3, model.config.model.horizon, dtype=torch.bool)
    ours, _ = MaskedObjective(model)(batch, mask, torch.Generator().manual_seed(7))
    core, _ = model(batch, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(ours, core)


def test_padded_rows_get_no_gradient_so_they_teach_the_field_nothing():
    torch.manual_seed(0)
    model = PI0EqMModel(get_preset("debug").replace(decoder="fm"))
    batch = _batch(model)
    h = model.config.model.horizon
    mask = torch.ones(3, h, dtype=torch.bool)
    mask[:, h // 2:] = False
    outputs = []
    original = model.field

    def field(*args, **kwargs):
        out = original(*args, **kwargs)
        out.retain_grad()
        outputs.append(out)
        return out

    model.field = field  # type: ignore[method-assign]
    loss, metrics = MaskedObjective(model)(batch, mask, torch.Generator().manual_seed(1))
    loss.backward()
    grad = outputs[0].grad
    assert torch.all(grad[:, h // 2:] == 0)
    assert torch.all(grad[:, : h // 2].abs().sum(-1) > 0)
    assert metrics["valid_rows"] == 0.5


def test_masked_mse_averages_over_valid_rows_only():
    pred = torch.zeros(1, 2, 2)
    target = torch.tensor([[[1.0, 1.0], [5.0, 5.0]]])
    assert float(masked_mse(pred, target, torch.tensor([[True, False]]))) == 1.0
    assert float(masked_mse(pred, target, torch.tensor([[True, True]]))) == 13.0


def test_random_shift_translates_each_image_by_at_most_the_padding():
    img = torch.zeros(16, 12, 12, 3, dtype=torch.uint8)
    img[:, 6, 6] = 255
    out = random_shift(img, 2, torch.Generator().manual_seed(0))
    assert out.shape == img.shape and out.dtype == torch.uint8
    for k in range(16):
        ys, xs = torch.nonzero(out[k, :, :, 0], as_tuple=True)
        assert len(ys) == 1 and abs(int(ys[0]) - 6) <= 2 and abs(int(xs[0]) - 6) <= 2
    moved = [torch.nonzero(out[k, :, :, 0]).tolist() != [[6, 6]] for k in range(16)]
    assert any(moved)


def test_random_shift_with_zero_padding_returns_the_images_unchanged():
    img = torch.randint(0, 255, (2, 5, 5, 3), dtype=torch.uint8)
    assert torch.equal(random_shift(img, 0), img)
